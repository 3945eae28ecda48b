"""Verification checks signatures on worker threads while it hashes and links the entries after
them. Whatever is wrong, it must report the same entry a check of each entry in turn would have
stopped at, and a rotated-in key must never be trusted on a signature not yet checked."""

from __future__ import annotations

from typing import Any

import pytest

from astrid_audit import AuditLog, Outcome, OutcomeKind, _verify, verify_storage
from astrid_audit._log import NS_ENTRY
from astrid_core import SessionId, VerificationError
from astrid_core.storage import MemoryStorage
from astrid_crypto import KeyPair, b64encode

pytestmark = pytest.mark.anyio


@pytest.fixture(autouse=True)
def small_batches(monkeypatch: pytest.MonkeyPatch) -> None:
    # Batches of 3, so a 20-entry log spans several batches in flight at once.
    monkeypatch.setattr(_verify, "_SIGNATURE_BATCH", 3)


async def log_of(storage: MemoryStorage, key: KeyPair, n: int = 20) -> AuditLog:
    log = await AuditLog.open(storage, key)
    session = SessionId.new()
    for i in range(n):
        await log.append(Outcome(kind=OutcomeKind.ALLOWED, reason=f"step {i}"), session_id=session)
    return log


async def rewrite(storage: MemoryStorage, seq: int, **changes: Any) -> None:
    key = f"{seq:012d}"
    raw = await storage.get(NS_ENTRY, key)
    assert isinstance(raw, dict)
    await storage.put(NS_ENTRY, key, {**raw, **changes})


def forged_signature() -> str:
    return b64encode(bytes(64))


async def test_a_clean_log_spanning_many_batches_verifies(key: KeyPair) -> None:
    storage = MemoryStorage()
    await log_of(storage, key)
    assert (await verify_storage(storage, [key.public_key])).entries == 20


@pytest.mark.parametrize("bad", [0, 2, 3, 10, 19])
async def test_a_bad_signature_anywhere_is_named(key: KeyPair, bad: int) -> None:
    storage = MemoryStorage()
    await log_of(storage, key)
    await rewrite(storage, bad, signature=forged_signature())
    with pytest.raises(VerificationError, match=rf"entry {bad} .*signature check failed"):
        await verify_storage(storage, [key.public_key])


async def test_an_earlier_bad_signature_wins_over_a_later_edit(key: KeyPair) -> None:
    storage = MemoryStorage()
    await log_of(storage, key)
    await rewrite(storage, 4, signature=forged_signature())  # caught on a worker thread
    await rewrite(storage, 13, timestamp_ms=1)  # caught here, while entry 4 may still be queued
    with pytest.raises(VerificationError, match=r"entry 4 .*signature check failed"):
        await verify_storage(storage, [key.public_key])


async def test_a_later_bad_signature_loses_to_an_earlier_edit(key: KeyPair) -> None:
    storage = MemoryStorage()
    await log_of(storage, key)
    await rewrite(storage, 5, timestamp_ms=1)
    await rewrite(storage, 6, signature=forged_signature())
    with pytest.raises(VerificationError, match=r"entry 5 .*hash does not match"):
        await verify_storage(storage, [key.public_key])


async def test_a_forged_rotation_is_stopped_at_its_signature(key: KeyPair) -> None:
    # A rotation entry an attacker rewrote: a key of their choosing (here not even a valid one),
    # the hash recomputed to match (hashes are not secret), a signature they could not make.
    # Checked in turn, its signature fails before its key is ever read; the background checks
    # must not let the key be read (and trusted, or choked on) first.
    storage = MemoryStorage()
    log = await log_of(storage, key, n=5)
    rotation = await log.rotate_key(KeyPair.generate())
    outcome = rotation.outcome.model_copy(
        update={"detail": {**rotation.outcome.detail, "new_public_key": "not a key!"}}
    )
    rewritten = rotation.model_copy(update={"outcome": outcome})
    forged = rewritten.model_copy(
        update={"hash": rewritten.compute_hash(), "signature": forged_signature()}
    )
    await storage.put(NS_ENTRY, f"{rotation.seq:012d}", forged.model_dump(mode="json"))
    with pytest.raises(VerificationError, match=rf"entry {rotation.seq} .*signature check failed"):
        await verify_storage(storage, [key.public_key])


async def test_the_worker_threads_are_gone_after_a_failure(key: KeyPair) -> None:
    import threading

    storage = MemoryStorage()
    await log_of(storage, key)
    await rewrite(storage, 1, timestamp_ms=1)
    before = threading.active_count()
    with pytest.raises(VerificationError):
        await verify_storage(storage, [key.public_key])
    assert threading.active_count() <= before


async def test_an_earlier_bad_signature_wins_over_a_later_entry_that_does_not_encode(
    key: KeyPair,
) -> None:
    # A lone surrogate cannot be UTF-8: hashing that entry fails with BadInputError, not a
    # VerificationError. The bad signature before it is still the failure reported.
    storage = MemoryStorage()
    await log_of(storage, key)
    await rewrite(storage, 4, signature=forged_signature())
    rows = storage._data[NS_ENTRY]  # pyright: ignore[reportPrivateUsage]
    rows[f"{13:012d}"] = rows[f"{13:012d}"].replace('"reason":"step 13"', '"reason":"\\ud800"')
    with pytest.raises(VerificationError, match=r"entry 4 .*signature check failed"):
        await verify_storage(storage, [key.public_key])
