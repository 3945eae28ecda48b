"""The audit log under attack: every tampering is caught and named; failure is fail-closed."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import anyio
import pytest

from astrid_audit import (
    AuditLog,
    Checkpoint,
    Outcome,
    OutcomeKind,
    export_jsonl,
    verify_export,
    verify_storage,
)
from astrid_audit._log import NS_ENTRY, NS_META
from astrid_core import (
    Authorization,
    AuthorizationProof,
    FileDelete,
    McpToolCall,
    ProofKind,
    SessionId,
    ShellCommand,
    StorageError,
    VerificationError,
)
from astrid_core.storage import Expect, MemoryStorage, Storage, Write, open_storage
from astrid_crypto import KeyPair

from .conftest import FailingStorage

pytestmark = pytest.mark.anyio
ALLOW = Authorization.allow(AuthorizationProof(kind=ProofKind.POLICY, detail="test"))


async def filled(storage: Storage, key: KeyPair, n: int = 6) -> AuditLog:
    log = await AuditLog.open(storage, key, checkpoint_every=4)
    sessions = [SessionId.new(), SessionId.new()]
    for i in range(n):
        await log.append(
            Outcome(kind=OutcomeKind.ALLOWED, reason=f"step {i}"),
            session_id=sessions[i % 2],
            action=FileDelete(path=f"/ws/file{i}.txt"),
            authorization=ALLOW,
        )
    return log


async def test_clean_log_verifies(storage: Storage, key: KeyPair) -> None:
    await filled(storage, key)
    report = await verify_storage(storage, [key.public_key])
    assert report.entries == 6
    assert report.sessions == 2
    assert report.checkpoints == 1


async def _stored(storage: Storage) -> list[tuple[str, Any]]:
    return await storage.scan(NS_ENTRY)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("timestamp_ms", 1),
        ("chain", "someone-else"),
        ("chain_seq", 7),
        ("action", {"kind": "file_read", "path": "/ws/file2.txt"}),
        ("authorization", None),
        (
            "outcome",
            {
                "kind": "denied",
                "reason": "step 2",
                "success": None,
                "output_digest": None,
                "output_preview": "",
                "detail": {},
            },
        ),
        ("prev_hash", "1" * 64),
        ("key_id", "0000000000000000"),
        ("id", "00000000-0000-4000-8000-000000000000"),
    ],
)
async def test_tampering_any_field_is_detected(
    storage: Storage, key: KeyPair, field: str, value: Any
) -> None:
    await filled(storage, key)
    k, raw = (await _stored(storage))[2]
    raw[field] = value
    await storage.put(NS_ENTRY, k, raw)
    with pytest.raises(VerificationError, match=r"entry 2 .*(hash does not match|untrusted key)"):
        await verify_storage(storage, [key.public_key])


async def test_deleted_entry_is_detected(storage: Storage, key: KeyPair) -> None:
    await filled(storage, key)
    k, _ = (await _stored(storage))[3]
    await storage.delete(NS_ENTRY, k)
    with pytest.raises(VerificationError, match=r"sequence number 4 at position 3"):
        await verify_storage(storage, [key.public_key])


async def test_swapped_entries_are_detected(storage: Storage, key: KeyPair) -> None:
    await filled(storage, key)
    rows = await _stored(storage)
    await storage.put(NS_ENTRY, rows[1][0], rows[3][1])
    await storage.put(NS_ENTRY, rows[3][0], rows[1][1])
    with pytest.raises(VerificationError, match="deleted, inserted or reordered"):
        await verify_storage(storage, [key.public_key])


async def test_truncated_tail_is_detected_by_a_saved_checkpoint(
    storage: Storage, key: KeyPair
) -> None:
    log = await filled(storage, key)
    saved: Checkpoint = await log.checkpoint()  # the user keeps this one elsewhere (size 6)
    for k, _ in (await _stored(storage))[4:]:
        await storage.delete(NS_ENTRY, k)
    await storage.put(NS_META, "size", 4)  # an attacker fixing the size record too...
    from astrid_audit._log import NS_CHECKPOINT

    await storage.delete(NS_CHECKPOINT, f"{6:012d}")  # ...and removing the stored checkpoint
    await storage.delete(NS_META, "layout")  # ...and the index rows' marker (heads, tiles)
    assert (await verify_storage(storage, [key.public_key])).entries == 4  # looks consistent
    with pytest.raises(VerificationError, match="truncated"):
        await verify_storage(storage, [key.public_key], saved_checkpoint=saved)


async def test_truncation_below_stored_checkpoint_is_detected(
    storage: Storage, key: KeyPair
) -> None:
    await filled(storage, key)  # checkpoint at size 4
    for k, _ in (await _stored(storage))[2:]:
        await storage.delete(NS_ENTRY, k)
    await storage.put(NS_META, "size", 2)
    with pytest.raises(VerificationError, match="tail was truncated"):
        await verify_storage(storage, [key.public_key])


async def test_forged_entry_signed_by_another_key(storage: Storage, key: KeyPair) -> None:
    log = await filled(storage, key)
    attacker = KeyPair.generate()
    # An attacker appending with its own key (it drops the capability index seal, which its
    # key could not check: an AuditLog refuses a seal signed by a key it does not trust).
    await storage.delete(NS_META, "cap_seal")
    forger = await AuditLog.open(storage, attacker)
    await forger.append(Outcome(kind=OutcomeKind.ALLOWED, reason="I was allowed"))
    del log
    with pytest.raises(VerificationError, match=r"entry 6 .*untrusted key"):
        await verify_storage(storage, [key.public_key])


async def test_verifier_never_trusts_a_key_found_in_the_log(storage: Storage, key: KeyPair) -> None:
    await filled(storage, key)
    attacker = KeyPair.generate()
    rows = await _stored(storage)
    from astrid_audit import AuditEntry

    for k, raw in rows:  # re-sign everything with the attacker's key, embedding its id
        entry = AuditEntry.model_validate(raw).model_copy(update={"key_id": attacker.key_id})
        await storage.put(NS_ENTRY, k, entry.sealed(attacker).model_dump(mode="json"))
    with pytest.raises(VerificationError, match="untrusted key"):
        await verify_storage(storage, [key.public_key])


async def test_key_rotation_is_signed_by_the_old_key(storage: Storage, key: KeyPair) -> None:
    log = await filled(storage, key)
    new_key = KeyPair.generate()
    await log.rotate_key(new_key)
    await log.append(Outcome(kind=OutcomeKind.ALLOWED, reason="after rotation"))
    report = await verify_storage(storage, [key.public_key])  # only the OLD key is trusted up front
    assert new_key.key_id in report.key_ids


async def test_a_rotation_written_by_someone_else_is_not_trusted_at_open(
    storage: Storage, key: KeyPair
) -> None:
    """Someone with write access to the store (not to the key) appends a "rotation" to their
    own key and entries signed by it. Opening the log used to trust that key because the store
    named it, so the daemon's own verify passed and it signed a checkpoint over the forgery."""
    await filled(storage, key, n=3)
    evil = KeyPair.generate()
    forger = await AuditLog.open(storage, evil, checkpoint_every=0)
    await forger.rotate_key(evil)
    await forger.append(Outcome(kind=OutcomeKind.ALLOWED, reason="forged"))
    with pytest.raises(VerificationError, match=r"key rotation entry 3 .* untrusted key"):
        await AuditLog.open(storage, key, checkpoint_every=0)


async def test_a_real_rotation_is_trusted_at_open_with_the_retired_key(
    storage: Storage, key: KeyPair
) -> None:
    log = await filled(storage, key, n=3)
    new_key = KeyPair.generate()
    await log.rotate_key(new_key)
    await log.append(Outcome(kind=OutcomeKind.ALLOWED, reason="after rotation"))
    reopened = await AuditLog.open(storage, new_key, retired_keys=[key.public_key])
    assert set(reopened.trusted_keys) == {key.key_id, new_key.key_id}
    with pytest.raises(VerificationError, match="untrusted key"):
        await AuditLog.open(storage, new_key)  # without the key that signed the rotation


async def test_storage_failure_raises_and_leaves_log_consistent(key: KeyPair) -> None:
    storage = FailingStorage()
    log = await filled(storage, key, n=3)
    storage.fail = True
    with pytest.raises(StorageError, match="NOT performed"):
        await log.append(Outcome(kind=OutcomeKind.ALLOWED))
    assert log.size == 3
    storage.fail = False
    await log.append(Outcome(kind=OutcomeKind.ALLOWED))
    assert (await verify_storage(storage, [key.public_key])).entries == 4


async def test_record_does_not_run_the_body_when_audit_fails(key: KeyPair) -> None:
    storage = FailingStorage()
    log = await AuditLog.open(storage, key)
    storage.fail = True
    ran = False
    with pytest.raises(StorageError):
        async with log.record(FileDelete(path="/ws/x"), authorization=ALLOW):
            ran = True
    assert ran is False


async def test_record_audits_decision_then_result_and_failures(
    storage: Storage, key: KeyPair
) -> None:
    log = await AuditLog.open(storage, key)
    session = SessionId.new()
    async with log.record(FileDelete(path="/ws/a"), session_id=session, authorization=ALLOW) as rec:
        rec.success("deleted")
    with pytest.raises(RuntimeError):
        async with log.record(FileDelete(path="/ws/b"), session_id=session, authorization=ALLOW):
            raise RuntimeError("disk on fire")
    kinds = [(e.outcome.kind, e.outcome.success) for e in await log.entries(session_id=session)]
    assert kinds == [
        (OutcomeKind.ALLOWED, None),
        (OutcomeKind.EXECUTED, True),
        (OutcomeKind.ALLOWED, None),
        (OutcomeKind.EXECUTED, False),
    ]


async def test_secrets_are_redacted_before_signing(storage: Storage, key: KeyPair) -> None:
    log = await AuditLog.open(storage, key)
    entry = await log.append(
        Outcome(kind=OutcomeKind.DENIED, reason="used sk-ant-api03-abcdefghijklmnopqrstuv"),
        action=McpToolCall(
            server="gh", tool="push", args={"token": "hunter2-long", "note": "ghp_" + "a" * 36}
        ),
    )
    text = json.dumps(entry.model_dump(mode="json"))
    assert "hunter2" not in text
    assert "sk-ant" not in text
    assert "ghp_" not in text
    assert "[redacted:" in text
    assert (await verify_storage(storage, [key.public_key])).entries == 1


async def test_concurrent_appends_are_all_durable_and_ordered(
    storage: Storage, key: KeyPair
) -> None:
    log = await AuditLog.open(storage, key)
    async with anyio.create_task_group() as tg:
        for i in range(100):
            tg.start_soon(log.append, Outcome(kind=OutcomeKind.ALLOWED, reason=str(i)))
    assert log.size == 100
    assert (await verify_storage(storage, [key.public_key])).entries == 100


async def test_export_verifies_offline_with_only_the_public_key(
    tmp_path: Path, key: KeyPair
) -> None:
    storage = MemoryStorage()
    log = await filled(storage, key, n=9)
    await log.checkpoint()
    path = export_jsonl(
        tmp_path / "audit.jsonl", await log.entries(), await log.checkpoints(), [key.public_key]
    )
    assert verify_export(path, [key.public_key]).entries == 9
    pub = tmp_path / "runtime.pub"
    pub.write_text(key.public_key.b64)
    ok = subprocess.run(
        [sys.executable, "-m", "astrid_audit", "verify", str(path), "--key", str(pub)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert ok.returncode == 0, ok.stderr
    assert "OK: 9 entries" in ok.stdout
    lines = path.read_text().splitlines()
    doctored = json.loads(lines[3])
    doctored["entry"]["outcome"]["reason"] = "nothing to see"
    lines[3] = json.dumps(doctored)
    path.write_text("\n".join(lines) + "\n")
    bad = subprocess.run(
        [sys.executable, "-m", "astrid_audit", "verify", str(path), "--key", str(pub)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert bad.returncode == 1
    assert "entry 2" in bad.stderr
    assert "hash does not match" in bad.stderr


async def test_kill9_during_a_burst_keeps_every_acknowledged_entry(
    tmp_path: Path, key: KeyPair
) -> None:
    db = tmp_path / "db"
    seed = tmp_path / "seed"
    key.save(seed)
    child = textwrap.dedent(f"""
        import anyio, sys
        from astrid_audit import AuditLog, Outcome, OutcomeKind
        from astrid_core.storage import open_storage
        from astrid_crypto import KeyPair
        async def main():
            storage = await open_storage("surrealkv://{db}")
            log = await AuditLog.open(storage, KeyPair.load("{seed}"), checkpoint_every=50)
            i = 0
            while True:
                await log.append(Outcome(kind=OutcomeKind.ALLOWED, reason=str(i)))
                print(i, flush=True)
                i += 1
        anyio.run(main)
    """)
    proc = subprocess.Popen([sys.executable, "-c", child], stdout=subprocess.PIPE, text=True)
    acknowledged: list[int] = []
    deadline = time.monotonic() + 60
    assert proc.stdout is not None
    while len(acknowledged) < 150 and time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        acknowledged.append(int(line))
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    proc.stdout.close()
    assert len(acknowledged) >= 150
    storage = await open_storage(f"surrealkv://{db}")
    try:
        report = await verify_storage(storage, [key.public_key])
        assert report.entries >= len(acknowledged)
        reasons = {e.outcome.reason for e in await (await AuditLog.open(storage, key)).entries()}
        assert {str(i) for i in acknowledged} <= reasons
    finally:
        await storage.aclose()


async def test_inclusion_proof_by_entry_id_verifies_with_only_the_checkpoint(key: KeyPair) -> None:
    from astrid_audit import leaf_hash, verify_inclusion

    log = await filled(MemoryStorage(), key, n=11)
    target = (await log.entries())[7]
    checkpoint = await log.checkpoint()
    entry, proof = await log.inclusion_proof_for(target.id, checkpoint)
    checkpoint.check({key.key_id: key.public_key})
    verify_inclusion(
        leaf_hash(bytes.fromhex(entry.hash)),
        entry.seq,
        checkpoint.tree_size,
        [bytes.fromhex(p) for p in proof],
        bytes.fromhex(checkpoint.root),
    )
    assert len(proof) <= 4


async def test_stored_entries_are_exactly_the_storage_encoding(key: KeyPair) -> None:
    # Entries are handed to storage pre-encoded (one dump, no second walk); the text must be
    # byte for byte what the storage codec would have produced from the same value.
    from astrid_core.storage._codec import encode_value

    storage = MemoryStorage()
    log = await AuditLog.open(storage, key)
    await log.append(
        Outcome(kind=OutcomeKind.EXECUTED, reason="unicode: é 漢字 \u2028", detail={"n": 1}),
        session_id=SessionId.new(),
        action=FileDelete(path="/tmp/ünï/x.txt"),
    )
    stored = storage._data[NS_ENTRY]  # pyright: ignore[reportPrivateUsage]
    assert stored
    for text in stored.values():
        assert encode_value(json.loads(text)) == text


async def test_a_secret_learned_between_two_entries_of_one_action_is_redacted_in_the_second(
    key: KeyPair,
) -> None:
    # The log reuses the redacted form of the action it just recorded (a decision and its
    # outcome record the same object); a secret added in between must still be masked.
    log = await AuditLog.open(MemoryStorage(), key)
    action = ShellCommand(command="deploy --password-file pw hunter2-not-a-shape", cwd="/tmp")
    first = await log.append(Outcome(kind=OutcomeKind.ALLOWED), action=action)
    log.redactor.add_secret("hunter2-not-a-shape")
    second = await log.append(Outcome(kind=OutcomeKind.EXECUTED), action=action)
    assert first.action is not None
    assert second.action is not None
    assert "hunter2-not-a-shape" in json.dumps(first.action)
    assert "hunter2-not-a-shape" not in json.dumps(second.action)
    assert "[redacted:" in json.dumps(second.action)


class CountingStorage(MemoryStorage):
    """Counts write transactions (to see that a queued record rides with the next append)."""

    transactions = 0

    async def transaction(self, writes: Sequence[Write], *, expect: Sequence[Expect] = ()) -> bool:
        self.transactions += 1
        return await super().transaction(writes, expect=expect)


async def test_a_queued_outcome_is_written_with_the_next_append_before_it(key: KeyPair) -> None:
    storage = CountingStorage()
    log = await AuditLog.open(storage, key)
    session = SessionId.new()
    before = storage.transactions
    log.enqueue(Outcome(kind=OutcomeKind.EXECUTED, success=True), session_id=session)
    assert storage.transactions == before  # nothing written yet
    assert log.size == 0
    decision = await log.append(Outcome(kind=OutcomeKind.ALLOWED), session_id=session)
    assert storage.transactions == before + 1  # one transaction for both
    assert log.size == 2
    assert decision.chain_seq == 1  # the queued record came first in the session's chain
    report = await verify_storage(storage, [key.public_key])
    assert report.entries == 2


async def test_flush_writes_queued_records_and_a_failure_is_raised(key: KeyPair) -> None:
    storage = FailingStorage()
    log = await AuditLog.open(storage, key)
    log.enqueue(Outcome(kind=OutcomeKind.EXECUTED), session_id=SessionId.new())
    await log.flush()
    assert log.size == 1
    await log.flush()  # nothing queued: nothing happens
    log.enqueue(Outcome(kind=OutcomeKind.EXECUTED), session_id=SessionId.new())
    storage.fail = True
    with pytest.raises(StorageError, match="disk full"):
        await log.flush()
    assert log.size == 1  # fail closed: nothing in memory changed


async def test_a_decision_that_carries_a_failed_queued_record_is_refused(key: KeyPair) -> None:
    storage = FailingStorage()
    log = await AuditLog.open(storage, key)
    log.enqueue(Outcome(kind=OutcomeKind.EXECUTED), session_id=SessionId.new())
    storage.fail = True
    with pytest.raises(StorageError):
        await log.append(Outcome(kind=OutcomeKind.ALLOWED))
    storage.fail = False
    await log.flush()  # the lost record is gone, not retried twice
    assert log.size == 0


async def test_enqueue_needs_an_open_log(key: KeyPair) -> None:
    log = AuditLog(MemoryStorage(), key)
    with pytest.raises(StorageError, match="not open"):
        log.enqueue(Outcome(kind=OutcomeKind.EXECUTED))
