"""The daemon transport under attack: auth, hostile frames, concurrency, lifecycle."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys

import anyio
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from astrid_gateway._state import StatePaths
from astrid_gateway.client import GatewayClient, RpcCallError
from astrid_gateway.protocol import MAX_FRAME_BYTES, ErrorCode

from .conftest import DaemonProcess, authenticated_ws, spawn_daemon, wait_for

pytestmark = pytest.mark.anyio


async def test_token_file_is_private_and_status_works(daemon: DaemonProcess) -> None:
    assert stat.S_IMODE(daemon.paths.token.stat().st_mode) == 0o600
    async with await GatewayClient.open(daemon.paths.root, autostart=False) as client:
        status = await client.call("status")
    assert status["pid"] == daemon.proc.pid
    assert status["protocol"] == 1


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer wrong-token"},
        {"Authorization": "Basic Zm9vOmJhcg=="},
        {"Authorization": "Bearer "},
        {"X-Astrid-Nonce": "not-hex"},
        {"X-Astrid-Nonce": "AB" * 32},
    ],
)
async def test_client_without_valid_token_is_refused(
    daemon: DaemonProcess, headers: dict[str, str]
) -> None:
    with pytest.raises(InvalidStatus) as info:
        async with connect(f"ws://127.0.0.1:{daemon.port}", additional_headers=headers):
            pass
    assert info.value.response.status_code == 401


async def test_browser_origin_is_refused_even_with_token(daemon: DaemonProcess) -> None:
    headers = {"X-Astrid-Nonce": "ab" * 32, "Origin": "https://evil.example"}
    with pytest.raises(InvalidStatus) as info:
        async with connect(f"ws://127.0.0.1:{daemon.port}", additional_headers=headers):
            pass
    assert info.value.response.status_code == 403


async def _raw(daemon: DaemonProcess, frame: str) -> dict:  # type: ignore[type-arg]
    async with authenticated_ws(daemon, max_size=None) as ws:
        await ws.send(frame)
        return json.loads(await ws.recv())


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        ("{not json", ErrorCode.PARSE_ERROR),
        ("[1, 2]", ErrorCode.INVALID_REQUEST),
        ('"just a string"', ErrorCode.INVALID_REQUEST),
        ('{"jsonrpc": "1.0", "id": 1, "method": "astrid.status"}', ErrorCode.INVALID_REQUEST),
        ('{"jsonrpc": "2.0", "id": 1}', ErrorCode.INVALID_REQUEST),
        (
            '{"jsonrpc": "2.0", "id": {"x": 1}, "method": "astrid.status"}',
            ErrorCode.INVALID_REQUEST,
        ),
        ('{"jsonrpc": "2.0", "id": 1, "method": "astrid.nope"}', ErrorCode.METHOD_NOT_FOUND),
        (
            '{"jsonrpc": "2.0", "id": 1, "method": "astrid.status", "params": [1]}',
            ErrorCode.INVALID_PARAMS,
        ),
        (
            '{"jsonrpc": "2.0", "id": 1, "method": "astrid.unsubscribeEvents", "params": {}}',
            ErrorCode.INVALID_PARAMS,
        ),
    ],
)
async def test_malformed_frames_get_errors_and_daemon_survives(
    daemon: DaemonProcess, frame: str, code: ErrorCode
) -> None:
    reply = await _raw(daemon, frame)
    assert reply["error"]["code"] == int(code), reply
    async with await GatewayClient.open(daemon.paths.root, autostart=False) as client:
        assert (await client.call("status"))["pid"] == daemon.proc.pid


async def test_oversize_frame_gets_error_and_daemon_survives(daemon: DaemonProcess) -> None:
    big = json.dumps(
        {
            "jsonrpc": "2.0",
            "id": 7,
            "method": "astrid.status",
            "params": {"x": "a" * MAX_FRAME_BYTES},
        }
    )
    reply = await _raw(daemon, big)
    assert reply["error"]["code"] == int(ErrorCode.MESSAGE_TOO_LARGE)

    # Far larger than the hard limit: websockets closes that connection (1009), daemon lives on.
    async def send_huge() -> None:
        async with authenticated_ws(daemon, max_size=None) as ws:
            await ws.send("x" * (MAX_FRAME_BYTES * 5))
            await ws.recv()

    with pytest.raises(ConnectionClosed):
        await send_huge()
    async with await GatewayClient.open(daemon.paths.root, autostart=False) as client:
        assert (await client.call("status"))["pid"] == daemon.proc.pid


async def test_unimplemented_method_says_not_available(daemon: DaemonProcess) -> None:
    async with await GatewayClient.open(daemon.paths.root, autostart=False) as client:
        with pytest.raises(RpcCallError) as info:
            await client.call("loadCapsule")
    assert info.value.rpc_code == int(ErrorCode.NOT_AVAILABLE)
    assert "not available" in info.value.message


async def test_fifty_concurrent_clients(daemon: DaemonProcess) -> None:
    pids: list[int] = []

    async def one() -> None:
        async with await GatewayClient.open(daemon.paths.root, autostart=False) as client:
            for _ in range(5):
                pids.append((await client.call("status"))["pid"])

    async with anyio.create_task_group() as tg:
        for _ in range(50):
            tg.start_soon(one)
    assert pids == [daemon.proc.pid] * 250


def test_second_daemon_on_same_state_dir_is_refused(daemon: DaemonProcess) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "astrid_gateway", "--state-dir", str(daemon.paths.root)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert proc.returncode == 2
    assert f"pid {daemon.proc.pid}" in proc.stderr
    assert daemon.proc.poll() is None


def test_sigterm_stops_cleanly_and_removes_port_file(daemon: DaemonProcess) -> None:
    daemon.proc.send_signal(signal.SIGTERM)
    assert daemon.proc.wait(timeout=15) == 0
    assert not daemon.paths.port.exists()


def test_kill9_leaves_no_stale_lock(tmp_path) -> None:  # type: ignore[no-untyped-def]
    first = spawn_daemon(tmp_path / "home")
    os.killpg(first.proc.pid, signal.SIGKILL)
    first.proc.wait()
    first.paths.port.unlink()  # a killed daemon cannot clean up; the lock is the kernel's
    second = spawn_daemon(tmp_path / "home")
    try:
        assert second.proc.poll() is None
    finally:
        second.proc.send_signal(signal.SIGTERM)
        second.proc.wait(timeout=15)


def test_ephemeral_daemon_exits_after_last_client(tmp_path) -> None:  # type: ignore[no-untyped-def]
    d = spawn_daemon(tmp_path / "home", "--ephemeral", "--idle-grace", "1")

    async def touch() -> None:
        async with await GatewayClient.open(d.paths.root, autostart=False) as client:
            await client.call("status")

    anyio.run(touch)
    assert d.proc.wait(timeout=20) == 0
    assert "ephemeral" in d.log()


async def test_autostart_brings_up_an_ephemeral_daemon(tmp_path) -> None:  # type: ignore[no-untyped-def]
    home = tmp_path / "auto"
    async with await GatewayClient.open(home, autostart=True) as client:
        status = await client.call("status")
    assert status["ephemeral"] is True
    os.kill(status["pid"], signal.SIGTERM)
    wait_for(lambda: not StatePaths(home).port.exists(), what="autostarted daemon to stop")


async def test_shutdown_method(daemon: DaemonProcess) -> None:
    async with await GatewayClient.open(daemon.paths.root, autostart=False) as client:
        assert (await client.call("shutdown"))["stopping"] is True
    assert daemon.proc.wait(timeout=15) == 0


def test_every_registered_method_is_documented() -> None:
    # METHODS is what `astrid`'s help and the gateway README draw on: a method the daemon
    # serves but METHODS omits is an undocumented API.
    from astrid_gateway._methods import ROUTES
    from astrid_gateway.protocol import METHODS

    assert ROUTES, "the method table is empty"
    assert set(ROUTES) - set(METHODS) == set()
