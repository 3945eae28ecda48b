"""The audit log on a real filesystem that fills up: refused while full, appends again once space
is freed — the same AuditLog and storage objects, no restart — and the log still verifies."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import anyio
import pytest

from astrid_audit import AuditLog, Outcome, OutcomeKind, verify_storage
from astrid_core import SessionId, StorageError
from astrid_core.storage import open_storage
from astrid_crypto import KeyPair

pytestmark = pytest.mark.anyio


@pytest.fixture
def small_fs(tmp_path: Path) -> Iterator[Path]:
    """A 4 MiB tmpfs (skips where mounting is not permitted)."""
    target = tmp_path / "fs"
    target.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root (CAP_SYS_ADMIN)")
    run = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=4m,mode=0700", "tmpfs", str(target)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    if run.returncode != 0:
        pytest.skip(f"mount -t tmpfs is not permitted here: {run.stderr.strip()[:200]}")
    try:
        yield target
    finally:
        subprocess.run(["umount", "-l", str(target)], check=False, timeout=30)


def _fill(directory: Path) -> Path:
    filler = directory / "filler"

    def write_until_full() -> None:
        with filler.open("wb") as out:
            for _ in range(10_000):  # bounded
                out.write(b"\0" * 65536)
                out.flush()

    with pytest.raises(OSError, match="No space left"):
        write_until_full()
    return filler


async def test_audit_append_after_enospc_and_freed_space_succeeds_without_restart(
    small_fs: Path,
) -> None:
    key = KeyPair.generate()
    storage = await open_storage(f"surrealkv://{small_fs / 'state'}")
    storage.reopen_backoff = 0.05  # type: ignore[attr-defined]
    session = SessionId.new()
    try:
        audit = await AuditLog.open(storage, key)
        await audit.append(Outcome(kind=OutcomeKind.SESSION_START), session_id=session)
        filler = _fill(small_fs)
        with pytest.raises(StorageError) as info:
            await audit.append(
                Outcome(kind=OutcomeKind.DENIED, reason="x" * 30_000), session_id=session
            )
        assert "NOT performed" in info.value.hint
        assert "free space" in info.value.hint  # the real cause, not "another astridd"
        assert "another astridd" not in str(info.value)
        filler.unlink()
        deadline = time.monotonic() + 10
        while True:
            try:
                entry = await audit.append(
                    Outcome(kind=OutcomeKind.SESSION_END), session_id=session
                )
                break
            except StorageError:
                if time.monotonic() > deadline:
                    raise
                await anyio.sleep(0.05)
        assert entry.seq == 1  # the refused entry left no gap and no trace
        report = await verify_storage(storage, [key.public_key])
        assert report.entries == 2
    finally:
        await storage.aclose()


async def test_a_size_moved_underneath_names_both_sizes_and_the_fix() -> None:
    from astrid_core.storage import MemoryStorage

    storage = MemoryStorage()
    audit = await AuditLog.open(storage, KeyPair.generate())
    await audit.append(Outcome(kind=OutcomeKind.SESSION_START))
    await storage.put("audit_meta", "size", 2)  # e.g. a batch reported failed that landed
    with pytest.raises(StorageError) as info:
        await audit.append(Outcome(kind=OutcomeKind.SESSION_END))
    assert "stored audit log size is 2, this process expected 1" in info.value.message
    assert "restart the daemon" in info.value.hint
    assert "another astridd" not in str(info.value)
