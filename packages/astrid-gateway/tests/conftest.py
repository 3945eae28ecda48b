from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from astrid_gateway._state import StatePaths


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def wait_for(predicate, timeout: float = 20.0, what: str = "condition") -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


class DaemonProcess:
    def __init__(self, paths: StatePaths, proc: subprocess.Popen[bytes]) -> None:
        self.paths = paths
        self.proc = proc

    @property
    def port(self) -> int:
        return int(self.paths.port.read_text())

    @property
    def token(self) -> str:
        return self.paths.token.read_text().strip()

    def log(self) -> str:
        return self.paths.log.read_text() if self.paths.log.exists() else ""


def spawn_daemon(home: Path, *args: str) -> DaemonProcess:
    paths = StatePaths(home)
    paths.ensure()
    paths.log.parent.mkdir(parents=True, exist_ok=True)
    log = paths.log.open("ab")
    proc = subprocess.Popen(
        [sys.executable, "-m", "astrid_gateway", "--state-dir", str(home), *args],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    log.close()
    wait_for(lambda: paths.port.exists() or proc.poll() is not None, what="daemon port file")
    if proc.poll() is not None:
        raise AssertionError(f"daemon exited early: {paths.log.read_text()}")
    return DaemonProcess(paths, proc)


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[DaemonProcess]:
    d = spawn_daemon(tmp_path / "home")
    yield d
    if d.proc.poll() is None:
        d.proc.send_signal(signal.SIGTERM)
        try:
            d.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(d.proc.pid, signal.SIGKILL)
            d.proc.wait()
