from __future__ import annotations

import contextlib
import hmac
import json
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

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
        from astrid_gateway._state import PortRecord

        record = PortRecord.parse(self.paths.port.read_text())
        assert record is not None
        return record.port

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


@contextlib.asynccontextmanager
async def authenticated_ws(daemon: DaemonProcess, **kwargs: Any) -> AsyncIterator[Any]:
    """A raw websocket that has done the challenge-response by hand (as the protocol module
    documents it), for tests that send frames the client library never would."""
    from websockets.asyncio.client import connect

    nonce = secrets.token_hex(32)
    async with connect(
        f"ws://127.0.0.1:{daemon.port}", additional_headers={"X-Astrid-Nonce": nonce}, **kwargs
    ) as ws:
        assert ws.response is not None  # the upgrade succeeded, so its response is here
        headers = ws.response.headers
        server_nonce = headers["X-Astrid-Server-Nonce"]
        pid = int(headers["X-Astrid-Daemon-Pid"])
        token = daemon.token.encode()

        def mac(role: str) -> str:
            text = f"astrid-gateway-v1|{role}|{nonce}|{server_nonce}|{daemon.port}|{pid}"
            return hmac.new(token, text.encode(), "sha256").hexdigest()

        assert hmac.compare_digest(headers["X-Astrid-Daemon-Proof"], mac("daemon"))
        await ws.send(
            json.dumps(
                {
                    "jsonrpc": "2.0",
                    "id": 0,
                    "method": "astrid.authenticate",
                    "params": {"proof": mac("client")},
                }
            )
        )
        assert json.loads(await ws.recv())["result"]["authenticated"] is True
        yield ws
