"""The WASM engine under attack: each hostile export is refused or killed, the host survives."""

from __future__ import annotations

import json
import os
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import anyio
import pytest

from astrid_capsule.wasm import (
    CapsuleError,
    HostContext,
    HostGrants,
    WasmCapsule,
    WasmLimits,
    load_wasm_bytes,
)
from astrid_core import (
    AstridTimeoutError,
    ConfigError,
    FileWrite,
    SensitiveAction,
    VerificationError,
)
from astrid_core.storage import MemoryStorage
from astrid_crypto import content_hash, hash_file

from .conftest import RecordingGuard

pytestmark = pytest.mark.anyio

DENIALS: list[tuple[str, str, SensitiveAction | None, str]] = []


async def record_denial(
    capsule: str, function: str, action: SensitiveAction | None, reason: str
) -> None:
    DENIALS.append((capsule, function, action, reason))


def make(
    module: Path,
    workspace: Path,
    guard: RecordingGuard,
    grants: HostGrants,
    limits: WasmLimits | None = None,
    storage: MemoryStorage | None = None,
) -> WasmCapsule:
    wasm = load_wasm_bytes(module, str(hash_file(module)), dev_mode=False)
    ctx = HostContext(
        capsule="notes",
        workspace=workspace,
        grants=grants,
        guard=guard,
        limits=limits or WasmLimits(),
        storage=storage,
        on_denied=record_denial,
    )
    return WasmCapsule("notes", wasm, ctx)


async def call_json(
    capsule: WasmCapsule, function: str, request: dict[str, Any] | None = None
) -> Any:
    return json.loads(await capsule.call(function, json.dumps(request or {})))


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    ws = tmp_path / "ws"
    (ws / "notes").mkdir(parents=True)
    (ws / "notes" / "todo.txt").write_text("buy milk\n")
    (ws / "secret.txt").write_text("not for capsules\n")
    return ws


@pytest.fixture(autouse=True)
def _clear_denials() -> None:
    DENIALS.clear()


async def test_read_and_write_inside_declared_paths(
    wasm_modules: dict[str, Path], workspace: Path, guard: RecordingGuard
) -> None:
    capsule = make(wasm_modules["notes_tool"], workspace, guard, HostGrants(fs_write=("notes/**",)))
    reply = await call_json(capsule, "read_note", {"path": "notes/todo.txt"})
    assert reply == {"ok": True, "value": {"text": "buy milk\n"}}
    reply = await call_json(capsule, "write_note", {"path": "notes/new.txt", "content": "hi"})
    assert reply["ok"] is True
    assert (workspace / "notes" / "new.txt").read_text() == "hi"
    kinds = [(a.kind, a.resource) for a in guard.seen]
    real = os.path.realpath(workspace)
    assert kinds == [
        ("file_read", f"file://{real}/notes/todo.txt"),
        ("file_write", f"file://{real}/notes/new.txt"),
    ]
    # The content is part of the write's action: its size and hash are decided on and audited.
    write = guard.seen[1]
    assert isinstance(write, FileWrite)
    assert write.content_bytes == 2
    assert write.content_blake3 == content_hash(b"hi").hex


async def test_undeclared_path_in_workspace_is_refused_and_reported(
    wasm_modules: dict[str, Path], workspace: Path, guard: RecordingGuard
) -> None:
    capsule = make(wasm_modules["notes_tool"], workspace, guard, HostGrants(fs_read=("notes/**",)))
    reply = await call_json(capsule, "read_note", {"path": "secret.txt"})
    assert reply["ok"] is False
    assert "not in the capsule's declared fs_read" in reply["error"]
    assert guard.seen == []  # refused before the Guard: never authorized
    assert DENIALS
    assert DENIALS[0][1] == "read_file"


@pytest.mark.parametrize(
    ("export", "fragment"),
    [
        ("read_passwd", "outside the workspace"),
        ("escape_workspace", "outside the workspace"),
        ("write_outside", "outside the workspace"),
        ("undeclared_host", "not in the capsule's declared net hosts"),
        ("metadata_ip", "private/loopback/link-local"),
    ],
)
async def test_hostile_host_calls_are_refused(
    wasm_modules: dict[str, Path],
    workspace: Path,
    guard: RecordingGuard,
    export: str,
    fragment: str,
) -> None:
    grants = HostGrants(fs_read=("**",), fs_write=("**",), net=("169.254.169.254",))
    capsule = make(wasm_modules["hostile"], workspace, guard, grants)
    reply = await call_json(capsule, export)
    assert reply["ok"] is False
    assert fragment in reply["error"]
    assert guard.seen == []
    assert DENIALS[-1][3] == reply["error"]
    assert not Path("/tmp/astrid-hostile-was-here").exists()


async def test_symlink_out_of_the_workspace_is_refused(
    wasm_modules: dict[str, Path], workspace: Path, guard: RecordingGuard, tmp_path: Path
) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "data.txt").write_text("outside")
    (workspace / "notes" / "link").symlink_to(outside)
    capsule = make(wasm_modules["notes_tool"], workspace, guard, HostGrants(fs_read=("**",)))
    reply = await call_json(capsule, "read_note", {"path": "notes/link/data.txt"})
    assert reply["ok"] is False
    assert "outside the workspace" in reply["error"]


async def test_guard_denial_stops_the_side_effect(
    wasm_modules: dict[str, Path], workspace: Path, guard: RecordingGuard
) -> None:
    target = Path(os.path.realpath(workspace)) / "notes" / "todo.txt"
    guard.deny.add(f"file://{target}")
    capsule = make(wasm_modules["notes_tool"], workspace, guard, HostGrants(fs_write=("**",)))
    reply = await call_json(
        capsule, "write_note", {"path": "notes/todo.txt", "content": "overwritten"}
    )
    assert reply["ok"] is False
    assert "denied by policy" in reply["error"]
    assert target.read_text() == "buy milk\n"


async def test_infinite_loop_is_killed_and_host_survives(
    wasm_modules: dict[str, Path], workspace: Path, guard: RecordingGuard
) -> None:
    capsule = make(
        wasm_modules["hostile"], workspace, guard, HostGrants(), WasmLimits(timeout_seconds=0.5)
    )
    with pytest.raises(AstridTimeoutError, match="was stopped"):
        await capsule.call("spin")
    notes = make(wasm_modules["notes_tool"], workspace, guard, HostGrants())
    assert json.loads(await notes.call("noop")) == {}


async def test_cancelling_the_caller_cancels_the_plugin(
    wasm_modules: dict[str, Path], workspace: Path, guard: RecordingGuard
) -> None:
    capsule = make(
        wasm_modules["hostile"], workspace, guard, HostGrants(), WasmLimits(timeout_seconds=30)
    )
    start = anyio.current_time()
    with anyio.move_on_after(0.3):
        await capsule.call("spin")
    assert anyio.current_time() - start < 5


async def test_memory_ceiling(
    wasm_modules: dict[str, Path], workspace: Path, guard: RecordingGuard
) -> None:
    capsule = make(
        wasm_modules["hostile"],
        workspace,
        guard,
        HostGrants(),
        WasmLimits(memory_bytes=2 * 1024 * 1024),
    )
    # Either the guest sees memory.grow fail, or extism traps the call: never more memory.
    with pytest.raises(CapsuleError, match="memory ceiling"):
        await capsule.call("hog_memory")


async def test_output_over_payload_limit(
    wasm_modules: dict[str, Path], workspace: Path, guard: RecordingGuard
) -> None:
    capsule = make(
        wasm_modules["hostile"],
        workspace,
        guard,
        HostGrants(),
        WasmLimits(memory_bytes=32 * 1024 * 1024),
    )
    with pytest.raises(CapsuleError, match="payload limit"):
        await capsule.call("huge_output")


async def test_input_over_payload_limit(
    wasm_modules: dict[str, Path], workspace: Path, guard: RecordingGuard
) -> None:
    from astrid_core import BadInputError

    capsule = make(
        wasm_modules["notes_tool"], workspace, guard, HostGrants(), WasmLimits(payload_bytes=1024)
    )
    with pytest.raises(BadInputError, match="exceeds"):
        await capsule.call("noop", b"x" * 2048)


def test_limits_cannot_be_raised() -> None:
    with pytest.raises(ConfigError, match="never raised"):
        WasmLimits(memory_bytes=128 * 1024 * 1024)
    with pytest.raises(ConfigError):
        WasmLimits(timeout_seconds=31)


def test_swapped_module_fails_hash_check(wasm_modules: dict[str, Path], tmp_path: Path) -> None:
    original = hash_file(wasm_modules["notes_tool"])
    swapped = tmp_path / "notes_tool.wasm"
    swapped.write_bytes(wasm_modules["hostile"].read_bytes())
    with pytest.raises(VerificationError, match="hash mismatch"):
        load_wasm_bytes(swapped, str(original), dev_mode=False)


def test_module_without_hash_needs_dev_mode(wasm_modules: dict[str, Path]) -> None:
    with pytest.raises(VerificationError, match="no hash"):
        load_wasm_bytes(wasm_modules["notes_tool"], None, dev_mode=False)
    assert load_wasm_bytes(wasm_modules["notes_tool"], None, dev_mode=True)


async def test_kv_is_declared_and_isolated(
    wasm_modules: dict[str, Path], workspace: Path, guard: RecordingGuard
) -> None:
    storage = MemoryStorage()
    capsule = make(
        wasm_modules["notes_tool"], workspace, guard, HostGrants(kv=True), storage=storage
    )
    assert (await call_json(capsule, "remember", {"key": "k", "value": {"n": 1}}))["ok"]
    assert await call_json(capsule, "recall", {"key": "k"}) == {
        "ok": True,
        "value": {"value": {"n": 1}},
    }
    assert await storage.get("capsule_kv", "notes/k") == {"n": 1}
    no_kv = make(wasm_modules["notes_tool"], workspace, guard, HostGrants(), storage=storage)
    reply = await call_json(no_kv, "recall", {"key": "k"})
    assert reply["ok"] is False
    assert "did not declare kv" in reply["error"]


async def test_garbage_request_gets_an_error_not_a_crash(
    wasm_modules: dict[str, Path], workspace: Path, guard: RecordingGuard
) -> None:
    capsule = make(wasm_modules["notes_tool"], workspace, guard, HostGrants(fs_read=("**",)))
    out = json.loads(await capsule.call("read_note", b"\xff\xfe not json"))
    assert out["ok"] is False
    out = await call_json(capsule, "read_note", {"path": 42})
    assert "non-empty string" in out["error"]


class _Redirector(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        if self.path == "/redirect":
            self.send_response(302)
            self.send_header("Location", "http://169.254.169.254/latest/meta-data/")
            self.end_headers()
            return
        body = b"hello from the test server"
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        return


@pytest.fixture
def http_server() -> Iterator[int]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Redirector)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield int(server.server_address[1])
    server.shutdown()
    server.server_close()


async def test_http_request_allowed_and_redirects_not_followed(
    wasm_modules: dict[str, Path], workspace: Path, guard: RecordingGuard, http_server: int
) -> None:
    grants = HostGrants(net=("127.0.0.1",), allow_private_network=True)
    capsule = make(wasm_modules["notes_tool"], workspace, guard, grants)
    ok = await call_json(capsule, "fetch", {"url": f"http://127.0.0.1:{http_server}/hello"})
    assert ok["value"]["status"] == 200
    assert ok["value"]["body"] == "hello from the test server"
    redirect = await call_json(
        capsule, "fetch", {"url": f"http://127.0.0.1:{http_server}/redirect"}
    )
    assert redirect["value"]["status"] == 302  # returned to the guest, not followed
    assert [a.kind for a in guard.seen] == ["network_request", "network_request"]


async def test_loopback_refused_without_explicit_private_network(
    wasm_modules: dict[str, Path], workspace: Path, guard: RecordingGuard, http_server: int
) -> None:
    capsule = make(wasm_modules["notes_tool"], workspace, guard, HostGrants(net=("127.0.0.1",)))
    reply = await call_json(capsule, "fetch", {"url": f"http://127.0.0.1:{http_server}/hello"})
    assert reply["ok"] is False
    assert "private/loopback" in reply["error"]


def _named_server(address: str, port: int, body: bytes, hits: list[str]) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            hits.append(address)
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            return

    server = ThreadingHTTPServer((address, port), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


async def test_http_request_connects_to_the_address_it_checked_dns_rebinding_fails(
    wasm_modules: dict[str, Path],
    workspace: Path,
    guard: RecordingGuard,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The name resolves to the checked address once, then to another (DNS rebinding). httpx
    # used to resolve again after the check and the approval; now it connects to what was
    # checked. (Both addresses are loopback so that nothing leaves this machine.)
    hits: list[str] = []
    checked = _named_server("127.0.0.1", 0, b"checked", hits)
    port = int(checked.server_address[1])
    rebound = _named_server("127.0.0.2", port, b"rebound", hits)
    real_getaddrinfo = socket.getaddrinfo
    lookups: list[str] = []

    def rebinding(host: Any, *args: Any, **kwargs: Any) -> Any:
        if host != "rebind.test":
            return real_getaddrinfo(host, *args, **kwargs)
        lookups.append(host)
        address = "127.0.0.1" if len(lookups) == 1 else "127.0.0.2"
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port))]

    monkeypatch.setattr(socket, "getaddrinfo", rebinding)
    grants = HostGrants(net=("rebind.test",), allow_private_network=True)
    capsule = make(wasm_modules["notes_tool"], workspace, guard, grants)
    try:
        reply = await call_json(capsule, "fetch", {"url": f"http://rebind.test:{port}/x"})
    finally:
        checked.shutdown()
        rebound.shutdown()
        checked.server_close()
        rebound.server_close()
    assert reply["value"]["body"] == "checked", reply
    assert hits == ["127.0.0.1"]
    assert lookups == ["rebind.test"]
