"""Crash safety and the one-process-per-directory rule, with real processes and kill -9."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from astrid_core import StorageError
from astrid_core.storage import open_storage

pytestmark = pytest.mark.anyio

# Both on-disk backends keep the same promises (sqlite3 is the daemon's default).
SCHEMES = ["sqlite://", "surrealkv://"]
on_disk = pytest.mark.parametrize("scheme", SCHEMES)

WRITER = textwrap.dedent(
    """
    import sys, anyio
    from astrid_core.storage import open_storage

    async def main(url: str, mode: str) -> None:
        store = await open_storage(url)
        print("ready", flush=True)
        if mode == "hold":
            await anyio.sleep(120)
        for i in range(100_000):
            key = f"k{i:06d}"
            await store.put("burst", key, {"i": i, "pad": "x" * 64})
            print(key, flush=True)  # acknowledged: put returned

    anyio.run(main, sys.argv[1], sys.argv[2])
    """
)


def _spawn(url: str, mode: str) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, "-c", WRITER, url, mode],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    # Watchdog: a hung child must fail the test, not hang it (readline blocks).
    watchdog = threading.Timer(60, proc.kill)
    watchdog.daemon = True
    watchdog.start()
    line = proc.stdout.readline()
    if line.strip() != "ready":
        proc.kill()
        _, err = proc.communicate()
        raise AssertionError(f"child did not start: {line!r} {err}")
    return proc


def _kill(proc: subprocess.Popen[str]) -> tuple[str, str]:
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGKILL)
    out, err = proc.communicate(timeout=30)
    return out, err


@on_disk
async def test_kill_9_mid_burst_keeps_every_acknowledged_write(tmp_path: Path, scheme: str) -> None:
    url = f"{scheme}{tmp_path / 'db'}"
    proc = _spawn(url, "burst")
    assert proc.stdout is not None
    acknowledged: list[str] = []
    deadline = time.monotonic() + 30
    while len(acknowledged) < 300 and time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        acknowledged.append(line.strip())
    out, err = _kill(proc)  # mid-burst: the child is still writing
    assert proc.returncode == -signal.SIGKILL, err
    acknowledged += [k for k in out.split() if k]  # printed before death = acknowledged
    assert len(acknowledged) >= 300, err

    store = await open_storage(url)  # the dead child's lock does not block us
    try:
        stored = dict(await store.scan("burst"))
    finally:
        await store.aclose()
    missing = [k for k in acknowledged if k not in stored]
    assert missing == []
    for key in acknowledged:
        assert stored[key] == {"i": int(key[1:]), "pad": "x" * 64}


@on_disk
async def test_second_process_gets_storage_error_naming_pid(tmp_path: Path, scheme: str) -> None:
    url = f"{scheme}{tmp_path / 'db'}"
    proc = _spawn(url, "hold")
    try:
        with pytest.raises(StorageError, match=rf"pid {proc.pid}\b") as info:
            await open_storage(url)
        assert "only one process" in info.value.hint
        assert str(tmp_path / "db") in info.value.message
    finally:
        _kill(proc)
    # Stale lock: the holder died by SIGKILL; the OS dropped its lock, reopening works.
    assert (tmp_path / "db.lock").exists()
    store = await open_storage(url)
    await store.put("ns", "k", 1)
    await store.aclose()


@on_disk
async def test_second_opener_in_same_process_is_refused(tmp_path: Path, scheme: str) -> None:
    url = f"{scheme}{tmp_path / 'db'}"
    first = await open_storage(url)
    try:
        with pytest.raises(StorageError, match=rf"pid {os.getpid()}\b"):
            await open_storage(url)
        # A differently spelled URL for the same directory is the same directory.
        with pytest.raises(StorageError, match="in use"):
            await open_storage(f"{scheme}{tmp_path}/./x/../db/")
        await first.put("ns", "k", "still fine")
    finally:
        await first.aclose()
    second = await open_storage(url)  # aclose released the lock
    try:
        assert await second.get("ns", "k") == "still fine"
    finally:
        await second.aclose()


@on_disk
async def test_lock_file_symlink_is_refused(tmp_path: Path, scheme: str) -> None:
    victim = tmp_path / "victim"
    victim.write_text("precious")
    (tmp_path / "db.lock").symlink_to(victim)
    with pytest.raises(StorageError, match="cannot open lock file"):
        await open_storage(f"{scheme}{tmp_path / 'db'}")
    assert victim.read_text() == "precious"


@on_disk
async def test_directory_is_private(tmp_path: Path, scheme: str) -> None:
    store = await open_storage(f"{scheme}{tmp_path / 'db'}")
    await store.aclose()
    assert (tmp_path / "db").stat().st_mode & 0o077 == 0
    assert (tmp_path / "db.lock").stat().st_mode & 0o077 == 0


@on_disk
async def test_data_persists_across_reopen(tmp_path: Path, scheme: str) -> None:
    url = f"{scheme}{tmp_path / 'db'}"
    store = await open_storage(url)
    await store.put("ns", "k", {"n": [1, 2]})
    await store.aclose()
    store = await open_storage(url)
    try:
        assert await store.get("ns", "k") == {"n": [1, 2]}
    finally:
        await store.aclose()
