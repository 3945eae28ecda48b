"""Durable means fsynced; a deleted or replaced state directory is noticed; an I/O failure heals.

Real SurrealDB embedded in real processes: fsyncs are counted with ``strace -f -c`` over a child
that commits N times, ENOSPC comes from a real, full tmpfs mounted for the test.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import anyio
import pytest

from astrid_core import StorageError
from astrid_core.storage import open_storage

pytestmark = pytest.mark.anyio

SCHEMES = ["sqlite://", "surrealkv://"]
on_disk = pytest.mark.parametrize("scheme", SCHEMES)

COMMITS = 60

COMMITTER = textwrap.dedent(
    """
    import sys, anyio
    from astrid_core.storage import open_storage

    async def main(url: str, durable: str, commits: int) -> None:
        store = await open_storage(url, durable=durable == "durable")
        for i in range(commits):
            await store.put("t", f"k{i:04d}", {"i": i})
        await store.aclose()

    anyio.run(main, sys.argv[1], sys.argv[2], int(sys.argv[3]))
    """
)


def _strace_usable() -> str | None:
    """None when ``strace -f -c`` can trace a child here, else why not."""
    if shutil.which("strace") is None:
        return "strace is not installed (scripts/install-test-deps installs Debian strace)"
    probe = subprocess.run(
        ["strace", "-f", "-c", "-e", "trace=fsync", "true"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    if probe.returncode != 0:
        return f"strace cannot trace here (ptrace not permitted?): {probe.stderr.strip()[:200]}"
    return None


def _count_syncs(tmp_path: Path, mode: str, scheme: str) -> int:
    """fsync + fdatasync calls of a child process that commits COMMITS single puts."""
    url = f"{scheme}{tmp_path / mode}"
    run = subprocess.run(
        [
            *("strace", "-f", "-c", "-e", "trace=fsync,fdatasync"),
            *(sys.executable, "-c", COMMITTER, url, mode, str(COMMITS)),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={k: v for k, v in os.environ.items() if k != "SURREAL_SYNC_DATA"},
    )
    assert run.returncode == 0, run.stderr[-2000:]
    total = 0
    for line in run.stderr.splitlines():
        match = re.match(
            r"\s*[\d.]+\s+[\d.]+\s+\d+\s+(\d+)\s+(?:\d+\s+)?(fsync|fdatasync)\s*$", line
        )
        if match:
            total += int(match.group(1))
    return total


@on_disk
def test_every_commit_is_fsynced_by_default(tmp_path: Path, scheme: str) -> None:
    why = _strace_usable()
    if why is not None:
        pytest.skip(why)
    durable = _count_syncs(tmp_path, "durable", scheme)
    relaxed = _count_syncs(tmp_path, "relaxed", scheme)
    # One fsync (at least) per acknowledged commit when durable; the explicit opt-out does not
    # fsync per commit (measured: a handful for the whole run, at open and close).
    assert durable >= COMMITS, f"only {durable} fsync/fdatasync calls for {COMMITS} commits"
    assert relaxed < COMMITS // 4, f"{relaxed} syncs with durable=False: the opt-out is not one"


def test_a_durable_open_after_the_engine_started_without_sync_fails_closed(tmp_path: Path) -> None:
    # The engine reads its sync setting once per process, so this needs a process of its own.
    script = textwrap.dedent(
        f"""
        import anyio
        from astrid_core import StorageError
        from astrid_core.storage import open_storage

        async def main() -> None:
            first = await open_storage("surrealkv://{tmp_path / "a"}", durable=False)
            await first.aclose()
            try:
                await open_storage("surrealkv://{tmp_path / "b"}")
            except StorageError as exc:
                print(exc.code)
                return
            print("opened")

        anyio.run(main)
        """
    )
    env = {k: v for k, v in os.environ.items() if k != "SURREAL_SYNC_DATA"}
    run = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, env=env
    )
    assert run.stdout.strip() == "storage.not_durable", run.stderr[-2000:]


@on_disk
async def test_a_deleted_state_directory_refuses_the_next_write(
    tmp_path: Path, scheme: str
) -> None:
    directory = tmp_path / "state"
    store = await open_storage(f"{scheme}{directory}")
    try:
        await store.put("t", "before", 1)
        shutil.rmtree(directory)
        with pytest.raises(StorageError) as info:
            await store.put("t", "after", 2)
        assert info.value.code == "storage.directory_lost"
        assert "was deleted while the daemon ran" in info.value.message
        assert "astrid audit verify --offline" in info.value.hint
        directory.mkdir()  # a fresh empty directory under the old name does not make it good
        with pytest.raises(StorageError, match="deleted"):
            await store.put("t", "later", 3)
    finally:
        await store.aclose()


@on_disk
async def test_a_replaced_state_directory_refuses_every_write(tmp_path: Path, scheme: str) -> None:
    directory = tmp_path / "state"
    store = await open_storage(f"{scheme}{directory}")
    try:
        await store.put("t", "k", 1)
        directory.rename(tmp_path / "moved")
        (tmp_path / "other").mkdir()
        (tmp_path / "state").symlink_to(tmp_path / "other")  # a symlink in its place
        for attempt in (store.put("t", "k", 2), store.delete("t", "k")):
            with pytest.raises(StorageError) as info:
                await attempt
            assert info.value.code == "storage.directory_lost"
            assert "was replaced" in info.value.message
        assert any("replaced" in problem for problem in store.health())  # type: ignore[attr-defined]
    finally:
        await store.aclose()


def _mount_tmpfs(target: Path, size: str) -> str | None:
    """Mount a small tmpfs at ``target``; None when done, else why it cannot be."""
    target.mkdir()
    if os.geteuid() != 0:
        return "mounting a tmpfs needs root (CAP_SYS_ADMIN)"
    run = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", str(target)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    if run.returncode != 0:
        return f"mount -t tmpfs is not permitted here: {run.stderr.strip()[:200]}"
    return None


@pytest.fixture
def small_fs(tmp_path: Path) -> Iterator[Path]:
    """A 4 MiB tmpfs: a real filesystem that really fills up (skips where mounting is denied)."""
    target = tmp_path / "fs"
    why = _mount_tmpfs(target, "4m")
    if why is not None:
        pytest.skip(why)
    try:
        yield target
    finally:
        subprocess.run(["umount", "-l", str(target)], check=False, timeout=30)


def fill(directory: Path) -> Path:
    """Write a file until the filesystem is full; the file to delete to free the space."""
    filler = directory / "filler"

    def write_until_full() -> None:
        with filler.open("wb") as out:
            for _ in range(10_000):  # bounded: 640 MiB would be far past any test filesystem
                out.write(b"\0" * 65536)
                out.flush()

    with pytest.raises(OSError, match="No space left") as info:
        write_until_full()
    assert info.value.errno == 28  # ENOSPC
    return filler


async def test_enospc_then_freed_space_heals_without_a_restart(small_fs: Path) -> None:
    store = await open_storage(f"surrealkv://{small_fs / 'state'}")
    store.reopen_backoff = 0.05  # type: ignore[attr-defined]
    try:
        await store.put("t", "before", "kept")
        filler = fill(small_fs)
        with pytest.raises(StorageError) as info:
            await store.put("t", "during", "x" * 20_000)
        assert info.value.code == "storage.io"
        assert "disk is full" in info.value.message
        assert "free space" in info.value.hint
        assert "another astridd" not in str(info.value)
        assert any("disk is full" in p for p in store.health())  # type: ignore[attr-defined]
        assert await store.get("t", "before") == "kept"  # reads still answer while it is full
        filler.unlink()
        deadline = time.monotonic() + 10
        while True:  # the first write after the backoff reopens the store
            try:
                await store.put("t", "after", "written")
                break
            except StorageError:
                if time.monotonic() > deadline:
                    raise
                await anyio.sleep(0.05)
        assert await store.get("t", "before") == "kept"
        assert await store.get("t", "after") == "written"
        assert await store.get("t", "during") is None  # refused, so not there
        health = store.health()  # type: ignore[attr-defined]
        assert any("reopened" in p and "disk is full" in p for p in health), health
    finally:
        await store.aclose()
    reopened = await open_storage(f"surrealkv://{small_fs / 'state'}")  # and it stays good
    try:
        assert [k for k, _ in await reopened.scan("t")] == ["after", "before"]
    finally:
        await reopened.aclose()


async def test_sqlite_enospc_fails_the_write_and_heals_without_a_restart(small_fs: Path) -> None:
    url = f"sqlite://{small_fs / 'state'}"
    store = await open_storage(url)
    try:
        await store.put("t", "before", "kept")
        filler = fill(small_fs)
        with pytest.raises(StorageError) as info:
            await store.put("t", "during", "x" * 200_000)
        assert info.value.code == "storage.io"
        assert "disk is full" in info.value.message
        assert "free space" in info.value.hint
        assert any("disk is full" in p for p in store.health())  # type: ignore[attr-defined]
        assert await store.get("t", "before") == "kept"  # reads still answer while it is full
        filler.unlink()
        await store.put("t", "after", "written")
        assert await store.get("t", "during") is None  # refused, so not there
        health = store.health()  # type: ignore[attr-defined]
        assert any("writes again" in p and "disk is full" in p for p in health), health
    finally:
        await store.aclose()
    reopened = await open_storage(url)  # and it stays good
    try:
        assert [k for k, _ in await reopened.scan("t")] == ["after", "before"]
    finally:
        await reopened.aclose()
