"""Fixtures: the real engine (built by scripts/build-openclaw-engine), plugins compiled once per
session, a real Guard that records, and fake upstream services on 127.0.0.1."""

from __future__ import annotations

import http.server
import json
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from astrid_capsule.wasm import HostContext, HostGrants, WasmCapsule, WasmLimits
from astrid_core import Authorization, AuthorizationProof, ProofKind, SensitiveAction
from astrid_openclaw import CompileResult, OpenClawError, build_capsule_dir, find_toolchain

PLUGINS = Path(__file__).resolve().parent / "plugins"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="session")
def toolchain() -> None:
    """Fail (not skip) when the engine is not built: the install script builds it."""
    try:
        find_toolchain()
    except OpenClawError as exc:
        pytest.fail(f"{exc}: run scripts/install-test-deps")


@pytest.fixture(scope="session")
def compiled(
    toolchain: None, tmp_path_factory: pytest.TempPathFactory
) -> Callable[[str], CompileResult]:
    """Compile a plugin (a folder under tests/plugins or an npm spec) once per session."""
    cache: dict[str, CompileResult] = {}

    def get(source: str) -> CompileResult:
        if source not in cache:
            path = PLUGINS / source
            out = tmp_path_factory.mktemp("capsule") / "capsule"
            cache[source] = build_capsule_dir(str(path) if path.is_dir() else source, out)
        return cache[source]

    return get


@dataclass
class RecordingGuard:
    """A real Guard: allows everything, records each action it was asked about."""

    seen: list[SensitiveAction] = field(default_factory=list[SensitiveAction])

    async def authorize(self, action: SensitiveAction, reason: str) -> Authorization:
        self.seen.append(action)
        return Authorization.allow(AuthorizationProof(kind=ProofKind.POLICY, detail="test"))


@dataclass
class Denials:
    items: list[tuple[str, str, str]] = field(default_factory=list[tuple[str, str, str]])

    async def __call__(
        self, capsule: str, function: str, action: SensitiveAction | None, reason: str
    ) -> None:
        self.items.append((capsule, function, reason))


def load(
    result: CompileResult,
    workspace: Path,
    guard: RecordingGuard,
    *,
    net: tuple[str, ...] = (),
    allow_private: bool = False,
    limits: WasmLimits | None = None,
    denials: Denials | None = None,
    kv: bool = False,
    config: dict[str, str] | None = None,
) -> WasmCapsule:
    wasm = (result.capsule_dir / "plugin.wasm").read_bytes()
    context = HostContext(
        capsule=result.plugin.capsule_name,
        workspace=workspace,
        grants=HostGrants(net=net, allow_private_network=allow_private, kv=kv, config=config or {}),
        guard=guard,
        limits=limits or WasmLimits(),
        on_denied=denials,
    )
    return WasmCapsule(result.plugin.capsule_name, wasm, context, wasi=True)


def tool_export(result: CompileResult, name: str) -> str:
    [tool] = [t for t in result.tools if t["name"] == name]
    return f"tool_{tool['index']}"


@dataclass
class Upstream:
    port: int
    requests: list[dict[str, Any]]


@pytest.fixture
def upstream() -> Iterator[Upstream]:
    """A fake HTTP service on 127.0.0.1 (any port) answering JSON; records requests."""
    yield from _serve(0)


def _serve(port: int) -> Iterator[Upstream]:
    requests: list[dict[str, Any]] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def _answer(self) -> None:
            length = int(self.headers.get("content-length") or 0)
            body = self.rfile.read(length).decode() if length else ""
            requests.append({"method": self.command, "path": self.path, "body": body})
            if self.path.startswith("/api/experimental/web_search"):
                query = json.loads(body or "{}").get("query", "")
                reply: Any = {
                    "results": [
                        {"title": f"About {query}", "url": "https://a.example/1", "content": "x"}
                    ]
                }
            elif self.path.startswith("/api/experimental/web_fetch"):
                reply = {"title": "Page", "content": "page body", "links": ["https://b.example"]}
            elif self.path == "/search":  # Graphiti
                query = json.loads(body or "{}").get("query", "")
                reply = {
                    "facts": [
                        {
                            "uuid": "u1",
                            "name": "astrid",
                            "fact": f"{query} is known",
                            "valid_at": None,
                        }
                    ]
                }
            else:
                reply = {"path": self.path}
            data = json.dumps(reply).encode()
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            self._answer()

        def do_POST(self) -> None:
            self._answer()

        def log_message(self, format: str, *args: Any) -> None:
            del format, args

    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield Upstream(server.server_address[1], requests)
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.fixture
def ollama() -> Iterator[Upstream]:
    """The fake Ollama server on 127.0.0.1:11434, the address the published plugin hardcodes."""
    try:
        yield from _serve(11434)
    except OSError as exc:  # pragma: no cover - only when a real Ollama runs here
        pytest.fail(f"127.0.0.1:11434 is taken ({exc}); stop the local Ollama to run this test")
