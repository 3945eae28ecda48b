"""Witnesses: signed tree heads kept outside the store, and what the log does when it cannot
hand one over (it stops acknowledging — fail closed)."""

from __future__ import annotations

import contextlib
import json
import os
import stat
import sys
import tempfile
from pathlib import Path

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from astrid_audit import (
    AuditLog,
    Checkpoint,
    CommandWitness,
    FileWitness,
    Outcome,
    OutcomeKind,
    TreeHeadCache,
    Witnesses,
    verify_storage,
)
from astrid_audit._log import NS_CHECKPOINT, NS_ENTRY, NS_META
from astrid_core import SessionId, StorageError, VerificationError
from astrid_core.storage import MemoryStorage, Storage
from astrid_crypto import KeyPair

pytestmark = pytest.mark.anyio


async def _append(log: AuditLog, n: int, session: SessionId | None = None) -> None:
    for i in range(n):
        await log.append(Outcome(kind=OutcomeKind.DENIED, reason=f"step {i}"), session_id=session)


def _sizes(witness: FileWitness) -> list[int]:
    return [h.checkpoint.tree_size for h in witness.heads()]


async def test_checkpoints_every_n_entries_and_at_session_end_reach_the_witness(
    storage: Storage, key: KeyPair, tmp_path: Path
) -> None:
    witness = FileWitness(tmp_path / "witness" / "checkpoints")
    log = await AuditLog.open(storage, key, checkpoint_every=5, witness=witness)
    await _append(log, 7)
    session = SessionId.new()
    await log.append(Outcome(kind=OutcomeKind.SESSION_END, reason="ended"), session_id=session)
    assert _sizes(witness) == [5, 8]
    assert stat.S_IMODE(witness.path.stat().st_mode) == 0o600
    assert stat.S_IMODE(witness.path.parent.stat().st_mode) == 0o700
    report = await verify_storage(storage, [key.public_key], witnessed=witness.heads())
    assert report.witnessed == 2
    assert report.head is not None
    assert report.head.tree_size == 8


async def test_a_store_shorter_than_the_witness_is_refused_and_named(
    storage: Storage, key: KeyPair, tmp_path: Path
) -> None:
    witness = FileWitness(tmp_path / "checkpoints")
    log = await AuditLog.open(storage, key, checkpoint_every=10, witness=witness)
    await _append(log, 50)
    for seq in range(40, 50):
        await storage.delete(NS_ENTRY, f"{seq:012d}")
    await storage.put(NS_META, "size", 40)
    for cp_key, raw in await storage.scan(NS_CHECKPOINT):
        if raw["tree_size"] > 40:  # type: ignore[index, operator]
            await storage.delete(NS_CHECKPOINT, cp_key)
    # The chain heads and tiles would still show the cut: the attacker drops their marker (the
    # next start then rebuilds them from the entries, as for a store written before them).
    await storage.delete(NS_META, "layout")
    assert (await verify_storage(storage, [key.public_key])).entries == 40  # store alone: fine
    with pytest.raises(VerificationError, match=r"entries 40\.\.49 are missing.*tree of 50"):
        await verify_storage(storage, [key.public_key], witnessed=witness.heads())
    with pytest.raises(VerificationError, match=r"entries 40\.\.49 are missing") as refused:
        await AuditLog.open(storage, key, witness=witness)
    assert "astrid audit verify --offline" in refused.value.hint


async def test_an_older_head_appended_after_the_newest_does_not_lower_the_bar(
    storage: Storage, key: KeyPair, tmp_path: Path
) -> None:
    """Appending an older signed checkpoint (the store keeps copies) to the witness file made
    start-up compare the store with that smaller head, so a cut tail passed at open."""
    witness = FileWitness(tmp_path / "checkpoints")
    log = await AuditLog.open(storage, key, checkpoint_every=10, witness=witness)
    await _append(log, 50)
    older = next(h for h in witness.heads() if h.checkpoint.tree_size == 20)
    with (tmp_path / "checkpoints").open("a") as handle:
        handle.write(older.checkpoint.model_dump_json() + "\n")
    for seq in range(40, 50):
        await storage.delete(NS_ENTRY, f"{seq:012d}")
    await storage.put(NS_META, "size", 40)
    with pytest.raises(VerificationError, match=r"entries 40\.\.49 are missing"):
        await AuditLog.open(storage, key, witness=witness)


async def test_a_rewritten_history_of_the_same_size_is_caught(tmp_path: Path, key: KeyPair) -> None:
    witness = FileWitness(tmp_path / "checkpoints")
    first = await AuditLog.open(MemoryStorage(), key, checkpoint_every=4, witness=witness)
    await _append(first, 4)
    other = MemoryStorage()  # the same key (stolen) signs a different history of 4 entries
    forged = await AuditLog.open(other, key, checkpoint_every=100)
    for i in range(4):
        await forged.append(Outcome(kind=OutcomeKind.ALLOWED, reason=f"other {i}"))
    with pytest.raises(VerificationError, match="first 4 entries do not have the Merkle root"):
        await verify_storage(other, [key.public_key], witnessed=witness.heads())


async def test_a_forged_witness_line_is_reported_not_trusted(
    storage: Storage, key: KeyPair, tmp_path: Path
) -> None:
    witness = FileWitness(tmp_path / "checkpoints")
    log = await AuditLog.open(storage, key, checkpoint_every=3, witness=witness)
    await _append(log, 3)
    head = witness.heads()[0].checkpoint
    forged = head.model_copy(update={"tree_size": 99})  # the old signature no longer fits
    with witness.path.open("a") as out:
        out.write(forged.model_dump_json() + "\n")
    with pytest.raises(VerificationError, match=r"witness file .*signature check failed"):
        await verify_storage(storage, [key.public_key], witnessed=witness.heads())


async def test_when_the_witness_cannot_be_written_nothing_is_acknowledged_until_it_can(
    storage: Storage, key: KeyPair, tmp_path: Path
) -> None:
    witness = FileWitness(tmp_path / "witness" / "checkpoints")
    log = await AuditLog.open(storage, key, checkpoint_every=3, witness=witness)
    await _append(log, 2)
    victim = tmp_path / "victim"
    victim.write_text("keep me")
    witness.path.parent.mkdir(mode=0o700)
    witness.path.symlink_to(victim)  # O_NOFOLLOW: refused, and the target is untouched
    with pytest.raises(StorageError, match="cannot write the audit witness") as refused:
        await _append(log, 1)
    assert "NOT performed" in refused.value.hint
    with pytest.raises(StorageError, match="cannot write the audit witness"):
        await _append(log, 1)  # still refused: the checkpoint over entry 2 is owed first
    assert log.size == 3  # the refused entry of the second append was never written
    assert victim.read_text() == "keep me"
    witness.path.unlink()
    await _append(log, 1)  # the owed checkpoint is witnessed first, then this one counts
    assert _sizes(witness) == [3]
    assert log.size == 4
    await verify_storage(storage, [key.public_key], witnessed=witness.heads())


async def test_a_smaller_checkpoint_witnessed_meanwhile_does_not_settle_the_debt(
    storage: Storage, key: KeyPair, tmp_path: Path
) -> None:
    witness = FileWitness(tmp_path / "witness" / "checkpoints")
    log = await AuditLog.open(storage, key, checkpoint_every=4, witness=witness)
    await _append(log, 2)
    await log.checkpoint()  # witnessed at 2
    await _append(log, 1)
    witness.path.rename(tmp_path / "aside")
    witness.path.symlink_to(tmp_path / "aside")
    with pytest.raises(StorageError):
        await _append(log, 1)  # the checkpoint over 4 is owed
    witness.path.unlink()
    (tmp_path / "aside").rename(witness.path)
    await log.checkpoint(size=3, root=(await log.tree.aroot(3)).hex())  # what a verify signs: 3 < 4
    assert _sizes(witness) == [2, 3]
    await _append(log, 1)  # the owed head of 4 lands first
    assert _sizes(witness) == [2, 3, 4]


async def test_a_command_witness_receives_each_checkpoint_and_its_failure_refuses(
    storage: Storage, key: KeyPair, tmp_path: Path
) -> None:
    received = tmp_path / "received"
    ship = CommandWitness(
        [sys.executable, "-c", f"import sys; open({str(received)!r}, 'a').write(sys.stdin.read())"]
    )
    log = await AuditLog.open(
        storage,
        key,
        checkpoint_every=2,
        witness=Witnesses([FileWitness(tmp_path / "checkpoints"), ship]),
    )
    await _append(log, 2)
    shipped = [Checkpoint.model_validate_json(line) for line in received.read_text().splitlines()]
    assert [cp.tree_size for cp in shipped] == [2]
    shipped[0].check({key.key_id: key.public_key})
    log.witness = CommandWitness(
        [sys.executable, "-c", "import sys; sys.stderr.write('remote is down'); sys.exit(3)"]
    )
    with pytest.raises(StorageError, match=r"failed \(exit 3\): remote is down"):
        await _append(log, 2)


async def test_a_command_witness_never_sees_secret_variables(
    storage: Storage, key: KeyPair, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-secret")
    monkeypatch.setenv("ASTRID_TELEGRAM_TOKEN", "123:abc")
    monkeypatch.setenv("SSH_AUTH_SOCK", "/run/agent.sock")
    seen = tmp_path / "env.json"
    dump = f"import json, os; json.dump(dict(os.environ), open({str(seen)!r}, 'w'))"
    log = await AuditLog.open(
        storage, key, checkpoint_every=1, witness=CommandWitness([sys.executable, "-c", dump])
    )
    await _append(log, 1)
    env = json.loads(seen.read_text())
    assert "ANTHROPIC_API_KEY" not in env
    assert "ASTRID_TELEGRAM_TOKEN" not in env
    assert env["SSH_AUTH_SOCK"] == "/run/agent.sock"
    assert "PATH" in env


async def test_a_hanging_command_witness_times_out_and_refuses(
    storage: Storage, key: KeyPair
) -> None:
    slow = CommandWitness([sys.executable, "-c", "import time; time.sleep(30)"], timeout_s=0.5)
    log = await AuditLog.open(storage, key, checkpoint_every=1, witness=slow)
    with pytest.raises(StorageError, match="did not finish"):
        await _append(log, 1)


async def test_a_stored_checkpoint_is_never_overwritten(
    storage: Storage, key: KeyPair, tmp_path: Path
) -> None:
    log = await AuditLog.open(storage, key, checkpoint_every=100)
    await _append(log, 3)
    first = await log.checkpoint()
    assert await log.checkpoint() == first  # the same tree: the stored one is returned
    cp_key = f"{3:012d}"
    damaged = {**first.model_dump(mode="json"), "signature": "AAAA"}
    await storage.put(NS_CHECKPOINT, cp_key, damaged)
    with pytest.raises(VerificationError, match="stored checkpoint at size 3 is corrupted"):
        await log.checkpoint()
    assert await storage.get(NS_CHECKPOINT, cp_key) == damaged
    await storage.put(NS_CHECKPOINT, cp_key, "not a checkpoint")
    with pytest.raises(VerificationError, match="stored checkpoint 000000000003 is corrupted"):
        await verify_storage(storage, [key.public_key])


def test_a_torn_last_line_is_skipped_and_a_damaged_line_fails(tmp_path: Path) -> None:
    key = KeyPair.generate()
    cp = Checkpoint(tree_size=1, root="00" * 32, timestamp_ms=0, key_id=key.key_id).sealed(key)
    witness = FileWitness(tmp_path / "checkpoints")
    witness.path.write_text(cp.model_dump_json() + "\n" + cp.model_dump_json()[:20])
    assert [h.checkpoint for h in witness.heads()] == [cp]  # the torn append never counted
    witness.path.write_text("garbage\n" + cp.model_dump_json() + "\n")
    with pytest.raises(VerificationError, match="line 1: not a signed checkpoint"):
        witness.heads()


def test_start_up_reads_only_the_newest_head_from_the_tail(tmp_path: Path) -> None:
    key = KeyPair.generate()
    witness = FileWitness(tmp_path / "checkpoints")
    lines = [
        Checkpoint(tree_size=n, root="00" * 32, timestamp_ms=0, key_id=key.key_id)
        .sealed(key)
        .model_dump_json()
        for n in range(1, 501)
    ]
    witness.path.write_text("garbage at the start\n" + "\n".join(lines) + "\n" + lines[0][:9])
    newest = witness.newest()
    assert newest is not None
    assert newest.checkpoint.tree_size == 500  # the torn last line never counted
    with pytest.raises(VerificationError, match="line 1: not a signed checkpoint"):
        witness.heads()  # a full verification reads (and checks) every line


async def test_a_fifo_planted_as_the_witness_neither_hangs_nor_counts(
    storage: Storage, key: KeyPair, tmp_path: Path
) -> None:
    os.mkfifo(tmp_path / "checkpoints")
    witness = FileWitness(tmp_path / "checkpoints")
    with pytest.raises(VerificationError, match="not a regular file"):
        witness.heads()
    with pytest.raises(VerificationError, match="not a regular file"):
        TreeHeadCache(tmp_path / "checkpoints").load()
    log = await AuditLog.open(MemoryStorage(), key, checkpoint_every=1)
    log.witness = witness
    with pytest.raises(StorageError, match="cannot write the audit witness"):
        await _append(log, 1)  # a FIFO without a reader: ENXIO at once, not a hang


def test_a_symlinked_witness_is_not_read(tmp_path: Path) -> None:
    target = tmp_path / "elsewhere"
    target.write_text("")
    (tmp_path / "checkpoints").symlink_to(target)
    with pytest.raises(VerificationError, match="not a symlink"):
        FileWitness(tmp_path / "checkpoints").heads()


def test_a_client_cache_only_moves_forward(tmp_path: Path) -> None:
    key = KeyPair.generate()

    def head(size: int) -> Checkpoint:
        return Checkpoint(tree_size=size, root="11" * 32, timestamp_ms=0, key_id=key.key_id)

    cache = TreeHeadCache(tmp_path / "client-cli.json")
    assert cache.load() is None
    cache.save(head(10))
    cache.save(head(4))  # never rolled back
    loaded = cache.load()
    assert loaded is not None
    assert loaded.checkpoint.tree_size == 10
    assert stat.S_IMODE(os.stat(cache.path).st_mode) == 0o600
    cache.path.write_text(json.dumps({"nothing": 1}))
    with pytest.raises(VerificationError, match="is damaged"):
        cache.load()


@settings(max_examples=200, deadline=None)
@example(data=b"[" * 4000 + b"\n")
@example(data=b'{"checkpoint": ' * 1300 + b"\n")
@given(data=st.binary(max_size=600) | st.text(max_size=300).map(str.encode))
def test_any_witness_or_cache_content_is_heads_or_a_verification_error(data: bytes) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "checkpoints"
        path.write_bytes(data)
        for read in (
            FileWitness(path).heads,
            FileWitness(path).newest,
            TreeHeadCache(path).load,
        ):
            with contextlib.suppress(VerificationError):
                read()
