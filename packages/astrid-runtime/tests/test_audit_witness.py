"""Tampering with $ASTRID_HOME/state alone is caught: the witness outside it remembers.

Each case is what an attacker with write access to the stopped daemon's store does (issue 21):
cut the tail and fix the size record and the checkpoints, erase a session, wipe the log, delete
the directory, corrupt a checkpoint. Real stores (sqlite3, the default backend), a real runtime.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from astrid_audit import Checkpoint, Outcome, OutcomeKind
from astrid_audit._log import NS_CHECKPOINT, NS_ENTRY, NS_META
from astrid_core import ConfigError, SessionId, VerificationError
from astrid_core.storage import open_storage, state_url
from astrid_runtime._audit_witness import client_head_cache, verify_offline
from astrid_runtime.runtime import AgentRuntime

from .conftest import open_runtime, turns

pytestmark = pytest.mark.anyio
CONFIG = "[audit]\ncheckpoint_every = 10\n"


async def _runtime(tmp_path: Path, config: str = CONFIG) -> AgentRuntime:
    return await open_runtime(tmp_path, turns(("ok", [])), config=config)


async def _fill(runtime: AgentRuntime, n: int, session: SessionId | None = None) -> None:
    for i in range(n):
        await runtime.audit.append(
            Outcome(kind=OutcomeKind.DENIED, reason=f"step {i}"), session_id=session
        )


async def _logged(tmp_path: Path, n: int = 50) -> Path:
    runtime = await _runtime(tmp_path)
    try:
        await _fill(runtime, n)
    finally:
        await runtime.aclose()  # signs and witnesses a checkpoint over all n
    return tmp_path / "home"


async def _cut(home: Path, keep: int) -> None:
    """Keep the first ``keep`` entries: delete the rest, fix the size record and delete every
    checkpoint past the cut — everything an attacker of the store alone can do."""
    storage = await open_storage(state_url(home / "state"))
    try:
        for key, _ in await storage.scan(NS_ENTRY):
            if int(key) >= keep:
                await storage.delete(NS_ENTRY, key)
        await storage.put(NS_META, "size", keep)
        for key, raw in await storage.scan(NS_CHECKPOINT):
            if int(raw["tree_size"]) > keep:  # type: ignore[index, call-overload]
                await storage.delete(NS_CHECKPOINT, key)
    finally:
        await storage.aclose()


async def _checkpoint_rows(home: Path) -> list[tuple[str, Any]]:
    storage = await open_storage(state_url(home / "state"))
    try:
        return await storage.scan(NS_CHECKPOINT)
    finally:
        await storage.aclose()


async def test_a_cut_tail_with_size_and_checkpoints_fixed_is_named_at_start_and_offline(
    tmp_path: Path,
) -> None:
    home = await _logged(tmp_path)
    await _cut(home, 40)
    with pytest.raises(VerificationError, match=r"entries 40\.\.49 are missing") as refused:
        await _runtime(tmp_path)
    assert "astrid audit verify --offline" in refused.value.hint
    with pytest.raises(VerificationError, match=r"entries 40\.\.49 are missing.*tree of 50"):
        await verify_offline(home)


async def test_an_erased_session_is_named(tmp_path: Path) -> None:
    runtime = await _runtime(tmp_path)
    try:
        await _fill(runtime, 7)
        victim = SessionId.new()
        await _fill(runtime, 5, victim)
        await runtime.audit.append(
            Outcome(kind=OutcomeKind.SESSION_END, reason="session ended"), session_id=victim
        )  # a session's end is checkpointed and witnessed at once
    finally:
        await runtime.aclose()
    home = tmp_path / "home"
    await _cut(home, 7)  # the session was the tail: all 6 of its entries go
    with pytest.raises(VerificationError, match=r"entries 7\.\.12 are missing"):
        await _runtime(tmp_path)
    with pytest.raises(VerificationError, match=r"entries 7\.\.12 are missing"):
        await verify_offline(home)


async def test_a_wiped_log_is_empty_after_witnessed_entries(tmp_path: Path) -> None:
    home = await _logged(tmp_path)
    await _cut(home, 0)
    with pytest.raises(VerificationError, match="empty after 50 entries were witnessed"):
        await _runtime(tmp_path)
    with pytest.raises(VerificationError, match="empty after 50 entries were witnessed"):
        await verify_offline(home)


async def test_a_deleted_state_directory_is_caught_at_restart(tmp_path: Path) -> None:
    home = await _logged(tmp_path)
    shutil.rmtree(home / "state")
    with pytest.raises(VerificationError, match=r"missing: entries 0\.\.49"):
        await verify_offline(home)  # reads only: the directory is not created again
    assert not (home / "state").exists()
    with pytest.raises(VerificationError, match="empty after 50 entries were witnessed"):
        await _runtime(tmp_path)


async def test_a_corrupted_stored_checkpoint_is_reported_and_never_overwritten(
    tmp_path: Path,
) -> None:
    home = await _logged(tmp_path)
    storage = await open_storage(state_url(home / "state"))
    try:
        key, raw = (await storage.scan(NS_CHECKPOINT))[-1]
        damaged = {**raw, "root": "00" * 32}  # type: ignore[dict-item]
        await storage.put(NS_CHECKPOINT, key, damaged)
    finally:
        await storage.aclose()
    runtime = await _runtime(tmp_path)
    try:
        with pytest.raises(VerificationError, match="checkpoint"):
            await runtime.audit_verify()
    finally:
        with pytest.raises(VerificationError, match="corrupted"):
            await runtime.aclose()  # its checkpoint at that size would overwrite: refused
    assert dict(await _checkpoint_rows(home))[key] == damaged


async def test_verify_signs_nothing_before_the_log_has_verified(tmp_path: Path) -> None:
    runtime = await _runtime(tmp_path)
    try:
        await _fill(runtime, 25)  # checkpoints at 10 and 20
        before = [key for key, _ in await runtime.storage.scan(NS_CHECKPOINT)]
        for seq in range(20, 25):  # the tail goes while the daemon runs
            await runtime.storage.delete(NS_ENTRY, f"{seq:012d}")
        await runtime.storage.put(NS_META, "size", 20)
        with pytest.raises(VerificationError, match=r"entries 20\.\.24 are missing"):
            await runtime.audit_verify()
        assert [key for key, _ in await runtime.storage.scan(NS_CHECKPOINT)] == before
    finally:
        await runtime.storage.aclose()


async def test_a_client_kept_head_catches_a_rollback_of_store_and_witness(
    tmp_path: Path,
) -> None:
    runtime = await _runtime(tmp_path)
    home = tmp_path / "home"
    try:
        await _fill(runtime, 30)
        answer: dict[str, Any] = dict(await runtime.audit_verify())
        kept: dict[str, Any] = answer["checkpoint"]
        assert kept["tree_size"] == 30
        await _fill(runtime, 5)
        grown: dict[str, Any] = dict(await runtime.audit_verify([kept]))  # proof from 30 to 35
        assert grown["consistency"][0]["from"] == 30
        assert grown["consistency"][0]["proof"]
    finally:
        await runtime.aclose()
    client_head_cache(home, "cli").save(Checkpoint.model_validate(kept))
    await _cut(home, 20)
    witness = home / "witness" / "checkpoints"
    lines = witness.read_text().splitlines(keepends=True)
    witness.write_text(
        "".join(ln for ln in lines if '"tree_size":20' in ln or '"tree_size":10' in ln)
    )
    with pytest.raises(
        VerificationError, match=r"entries 20\.\.29 are missing.*tree head kept by the client"
    ):
        await verify_offline(home)


async def test_the_witness_may_not_live_inside_the_state_directory(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="inside the state directory"):
        await _runtime(tmp_path, '[audit]\nwitness = "state/witness"\n')


@pytest.mark.parametrize("damage", ["delete_last", "delete_middle", "garble", "garble_size"])
async def test_the_daemon_error_for_a_damaged_log_names_the_offline_verifier(
    tmp_path: Path, damage: str
) -> None:
    home = await _logged(tmp_path, 12)
    storage = await open_storage(state_url(home / "state"))
    try:
        if damage == "garble":
            await storage.put(NS_ENTRY, f"{5:012d}", {"not": "an entry"})
        elif damage == "garble_size":
            await storage.put(NS_META, "size", "twelve")
        else:  # the size record left as it was
            await storage.delete(NS_ENTRY, f"{11 if damage == 'delete_last' else 5:012d}")
    finally:
        await storage.aclose()
    with pytest.raises(VerificationError) as refused:
        await _runtime(tmp_path)
    assert "astrid audit verify --offline" in refused.value.hint
    with pytest.raises(VerificationError):
        await verify_offline(home)
