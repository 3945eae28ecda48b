"""The example capsules in examples/capsules, as shipped: built from their sources, installed with
the real installer and explicit trust, and used through the real runtime, WASM engine and MCP
client. Only the model's words are scripted.

  weather-notes  C compiled to WASM: read_file + kv in a session, http_request to a local server,
                 its [[cron]] job run at a time the test chooses
  docs-mcp       a Python MCP server (the `mcp` SDK), started sandboxed from its capsule config
  style-guide    a static skill that reaches the system prompt
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest

from astrid_audit import AuditEntry, OutcomeKind
from astrid_capsule.install import CapsuleInstaller, InstallRecord, TrustAck, TrustRequired
from astrid_capsule.manifest import load_manifest
from astrid_capsule.wasm import HostContext, HostGrants, WasmCapsule, WasmLimits, load_wasm_bytes
from astrid_core import (
    ApprovalOption,
    Authorization,
    AuthorizationProof,
    CapsuleHostCall,
    DirectoryList,
    FileRead,
    JsonObject,
    McpToolCall,
    NetworkRequest,
    ProofKind,
    SensitiveAction,
)
from astrid_core.storage import MemoryStorage
from astrid_crypto import hash_file
from astrid_mcp import SecureMcpClient
from astrid_runtime.llm import ModelRequest, ScriptedTurn
from astrid_runtime.runtime import AgentRuntime
from astrid_workspace import landlock_abi

from .conftest import Human, collect, open_runtime

pytestmark = pytest.mark.anyio

EXAMPLES = Path(__file__).resolve().parents[3] / "examples" / "capsules"
WEATHER = EXAMPLES / "weather-notes"
DOCS = EXAMPLES / "docs-mcp"
STYLE = EXAMPLES / "style-guide"
TRUST = TrustAck(method="flag", actor="test")


@dataclass
class Model:
    """The scripted model's turns, keeping every request so tests can read what it was shown."""

    turns: list[ScriptedTurn]
    requests: list[ModelRequest] = field(default_factory=list[ModelRequest])

    def __call__(self, request: ModelRequest) -> ScriptedTurn:
        self.requests.append(request)
        return self.turns.pop(0) if self.turns else ScriptedTurn("done")


@dataclass
class AllowingGuard:
    """A Guard that allows everything and records what it was asked (engine and MCP tests)."""

    seen: list[SensitiveAction] = field(default_factory=list[SensitiveAction])

    async def authorize(self, action: SensitiveAction, reason: str) -> Authorization:
        self.seen.append(action)
        return Authorization.allow(AuthorizationProof(kind=ProofKind.POLICY, detail="test"))


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    ws = tmp_path / "project"
    (ws / "notes").mkdir(parents=True)
    (ws / "notes" / "weather.md").write_text(
        '# Rain in "Lyon" on Monday\n\nTake an umbrella.\nCafé terraces closed.\n'
    )
    (ws / "secret.txt").write_text("not for capsules")
    return Path(os.path.realpath(ws))


class _Forecast(BaseHTTPRequestHandler):
    hits: ClassVar[list[str]]  # set per server: it makes a new handler for each request

    def do_GET(self) -> None:
        type(self).hits.append(self.path)
        body = b"Lyon: rain +12C"
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        return


@pytest.fixture
def forecast_server() -> Iterator[tuple[int, list[str]]]:
    """A stand-in for wttr.in on 127.0.0.1 (OS-chosen port): yields (port, paths requested)."""
    hits: list[str] = []
    handler = type("Forecast", (_Forecast,), {"hits": hits})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield int(server.server_address[1]), hits
    server.shutdown()
    server.server_close()


async def install(installer: CapsuleInstaller, source: Path) -> InstallRecord:
    return await installer.commit(await installer.plan(source), TRUST)


def runtime_installer(runtime: AgentRuntime) -> CapsuleInstaller:
    return CapsuleInstaller(runtime.home, runtime.storage)


# ---------------------------------------------------------------------- as shipped


def _component_hash(capsule: Path) -> str:
    component = load_manifest(capsule).component
    assert component is not None
    assert component.hash is not None
    return component.hash


def test_shipped_component_matches_the_hash_in_its_manifest() -> None:
    assert _component_hash(WEATHER) == hash_file(WEATHER / "component.wasm").hex
    for capsule in (DOCS, STYLE):
        assert load_manifest(capsule).component is None  # no code of theirs runs in the host


def _producer(wasm: bytes) -> str:
    """The compiler named in a module's `producers` section, e.g. 'Debian clang 14.0.6'."""
    at = wasm.find(b"processed-by")
    assert at > 0, "the module has no producers section"
    at += len(b"processed-by") + 1  # the field count (one byte for a handful of producers)
    name_length = wasm[at]
    name = wasm[at + 1 : at + 1 + name_length]
    at += 1 + name_length
    version = wasm[at + 1 : at + 1 + wasm[at]]
    return f"{name.decode()} {version.decode()}"


def test_weather_notes_builds_from_source_to_the_shipped_module(tmp_path: Path) -> None:
    if shutil.which("clang") is None or shutil.which("wasm-ld") is None:
        pytest.skip("clang + lld are not installed: run scripts/install-test-deps")
    copy = tmp_path / "weather-notes"
    shutil.copytree(WEATHER, copy)
    (copy / "component.wasm").unlink()
    manifest = copy / "Capsule.toml"
    manifest.write_text(manifest.read_text().replace(_component_hash(WEATHER), "0" * 64))

    env = {**os.environ, "PYTHON": sys.executable}
    build = [str(EXAMPLES / "build.sh"), str(tmp_path)]
    subprocess.run(build, check=True, capture_output=True, env=env, timeout=60)

    built = (copy / "component.wasm").read_bytes()
    assert _component_hash(copy) == hash_file(copy / "component.wasm").hex
    shipped = (WEATHER / "component.wasm").read_bytes()
    if _producer(built) != _producer(shipped):
        pytest.skip(
            f"the shipped component.wasm was built by {_producer(shipped)}, this machine has "
            f"{_producer(built)}: run examples/capsules/build.sh and commit the result"
        )
    assert _component_hash(copy) == _component_hash(WEATHER), (
        "src/weather_notes.c no longer builds to the shipped component.wasm: "
        "run examples/capsules/build.sh and commit the result"
    )
    assert built == shipped
    assert manifest.read_text() == (WEATHER / "Capsule.toml").read_text()
    # Idempotent: building again rewrites nothing.
    before = {p: p.stat().st_mtime_ns for p in copy.iterdir() if p.is_file()}
    subprocess.run(build, check=True, capture_output=True, env=env, timeout=60)
    assert before == {p: p.stat().st_mtime_ns for p in copy.iterdir() if p.is_file()}


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        (
            WEATHER,
            [
                "read files (workspace): notes/**",
                "network hosts: wttr.in",
                "its own key-value storage",
                "scheduled task nightly-index (0 3 * * *)",
                "tools: save_note, recall_note, fetch, index_notes",
            ],
        ),
        (DOCS, ["runs an MCP server (untrusted, sandboxed): docs: python3 server.py"]),
        (STYLE, ["nothing beyond its own tools"]),
    ],
    ids=["weather-notes", "docs-mcp", "style-guide"],
)
async def test_each_example_discloses_what_it_asks_for_and_needs_trust(
    tmp_path: Path, source: Path, expected: list[str]
) -> None:
    installer = CapsuleInstaller(tmp_path / "home", MemoryStorage())
    plan = await installer.plan(source)
    disclosure = plan.disclosure()
    for line in expected:
        assert line in disclosure
    assert "UNSIGNED" in disclosure
    with pytest.raises(TrustRequired):
        await installer.commit(plan, None)
    record = await install(installer, source)
    assert record.name == source.name
    assert (await installer.verify_installed(source.name)).content_hash == record.content_hash


# ---------------------------------------------------------------------- weather-notes


async def test_weather_notes_tools_in_a_session(
    tmp_path: Path, workspace: Path, forecast_server: tuple[int, list[str]]
) -> None:
    port, hits = forecast_server
    note: JsonObject = {"path": "notes/weather.md"}
    model = Model(
        [
            ScriptedTurn(
                "saving",
                (
                    ("capsule__weather-notes__save_note", note),
                    ("capsule__weather-notes__recall_note", note),
                    ("capsule__weather-notes__save_note", {"path": "secret.txt"}),
                    ("capsule__weather-notes__fetch", {"url": f"http://127.0.0.1:{port}/Lyon"}),
                ),
            ),
            ScriptedTurn("done"),
        ]
    )
    runtime = await open_runtime(tmp_path, model)
    human = Human([ApprovalOption.ALLOW_ONCE] * 5)
    runtime.set_frontend(human)  # type: ignore[arg-type]
    try:
        await install(runtime_installer(runtime), WEATHER)
        info = await runtime.create_session(str(workspace))
        events = await collect(runtime, info.session_id, "note the weather")
        saved, recalled, undeclared, fetched = [
            json.loads(e["output"]) for e in events if e["type"] == "tool_call_result"
        ]
        summary = {"first_line": 'Rain in "Lyon" on Monday', "lines": 4, "words": 12}
        assert saved == {"ok": True, "saved": "notes/weather.md", "summary": summary}
        assert recalled == {"ok": True, "path": "notes/weather.md", "note": summary}
        stored = await runtime.storage.get("capsule_kv", "weather-notes/notes/weather.md")
        assert stored == summary
        assert undeclared["ok"] is False
        assert "not in the capsule's declared fs_read" in undeclared["error"]
        # The manifest declares wttr.in only: the local server is out of reach, never contacted.
        assert fetched["ok"] is False
        assert "'127.0.0.1' is not in the capsule's declared net hosts" in fetched["error"]
        assert hits == []
        # Each tool call was approved, and so was the file read the WASM made inside save_note;
        # the refused read and request never reached a person.
        assert [type(r.action) for r in human.asked] == [
            CapsuleHostCall,
            FileRead,
            CapsuleHostCall,
            CapsuleHostCall,
            CapsuleHostCall,
        ]
        assert human.asked[1].action == FileRead(path=str(workspace / "notes" / "weather.md"))
        refusals = [
            e.outcome.detail["function"]
            for e in await runtime.audit.entries(session_id=info.session_id)
            if e.outcome.kind is OutcomeKind.DENIED and e.outcome.detail.get("layer") == "capsule"
        ]
        assert refusals == ["read_file", "http_request"]
        assert (await runtime.audit_verify())["ok"] is True
    finally:
        await runtime.aclose()


async def test_weather_notes_fetch_reaches_its_host(
    tmp_path: Path, workspace: Path, forecast_server: tuple[int, list[str]]
) -> None:
    """http_request from the C code, end to end. The host refuses loopback addresses to capsules
    whatever their manifest says, so, as in test_wasm_engine.py, the installed module runs in
    the engine directly, with the forecast server's address as its one host and the
    test-only ``allow_private_network`` switch."""
    port, hits = forecast_server
    installer = CapsuleInstaller(tmp_path / "home", MemoryStorage())
    record = await install(installer, WEATHER)
    installed = installer.path_of(record)
    component = load_manifest(installed).component
    assert component is not None
    wasm = load_wasm_bytes(installed / component.entrypoint, component.hash, dev_mode=False)
    guard = AllowingGuard()
    context = HostContext(
        capsule="weather-notes",
        workspace=workspace,
        grants=HostGrants(net=("127.0.0.1",), allow_private_network=True),
        guard=guard,
        limits=WasmLimits(timeout_seconds=10),
    )
    plugin = WasmCapsule("weather-notes", wasm, context)
    try:
        url = f"http://127.0.0.1:{port}/Lyon?format=3"
        reply = json.loads(await plugin.call("fetch", json.dumps({"url": url})))
    finally:
        plugin.close()
    assert reply["ok"] is True
    assert reply["value"]["status"] == 200
    assert reply["value"]["body"] == "Lyon: rain +12C"
    assert hits == ["/Lyon?format=3"]
    assert guard.seen == [NetworkRequest(method="GET", url=url)]


# ---------------------------------------------------------------------- style-guide


async def test_style_guide_skill_reaches_the_system_prompt(tmp_path: Path, workspace: Path) -> None:
    model = Model([ScriptedTurn("noted")])
    runtime = await open_runtime(tmp_path, model)
    try:
        await install(runtime_installer(runtime), STYLE)
        info = await runtime.create_session(str(workspace))
        await collect(runtime, info.session_id, "write a README")
        system = model.requests[0].system
        fence = system.index('<untrusted-content source="skills of capsule style-guide">')
        heading = system.index(
            "## writing-style: how to write prose, comments and error messages in this project"
        )
        rule = system.index("Code comments say why, not what.")
        assert fence < heading < rule < system.index("</untrusted-content>")
    finally:
        await runtime.aclose()


# ---------------------------------------------------------------------- docs-mcp


@pytest.mark.skipif(
    landlock_abi() == 0, reason="kernel has no Landlock: capsule MCP servers only run sandboxed"
)
async def test_docs_mcp_server_answers_from_its_capsule_config(
    tmp_path: Path, workspace: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The capsule runs `python3 server.py`: the python3 found first must have the `mcp` SDK.
    monkeypatch.setenv("PATH", f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    runtime = await open_runtime(tmp_path, Model([]))
    try:
        await install(runtime_installer(runtime), DOCS)
        [config] = await runtime.capsules.mcp_server_configs(str(workspace))
    finally:
        await runtime.aclose()
    assert config.name == "capsule-docs-mcp-docs"
    assert config.trusted is False
    assert config.sandbox.read_paths == []  # no fs_read declared: the workspace stays closed

    guard = AllowingGuard()
    async with SecureMcpClient(config, guard=guard, log_dir=tmp_path / "logs") as client:
        assert client.launch is not None
        assert client.launch.sandboxed
        assert sorted(await client.tools()) == ["list_docs", "read_doc", "search_docs"]
        listed = await client.call_tool("list_docs")
        found = await client.call_tool("search_docs", {"query": "landlock"})
        escape = await client.call_tool("read_doc", {"name": "../Capsule"})
    assert listed.text.split() == ["capsules", "mcp-servers"]
    assert found.text.startswith("mcp-servers:6: Servers from capsules are never trusted.")
    assert "Landlock sandbox" in found.text
    assert "no document named '../Capsule'" in escape.text
    assert [a for a in guard.seen if isinstance(a, McpToolCall)] == [
        McpToolCall(server="capsule-docs-mcp-docs", tool="list_docs", args={}),
        McpToolCall(server="capsule-docs-mcp-docs", tool="search_docs", args={"query": "landlock"}),
        McpToolCall(server="capsule-docs-mcp-docs", tool="read_doc", args={"name": "../Capsule"}),
    ]


# ---------------------------------------------------------------------- weather-notes: [[cron]]

NIGHTLY_T0 = datetime(2030, 1, 1, 2, 59, 30)  # when the scheduler first sees the capsule
NIGHTLY = datetime(2030, 1, 1, 3, 0)  # "0 3 * * *": the first run due after NIGHTLY_T0
INDEX_NOTES = "capsule__weather-notes__index_notes"


async def stored_index(runtime: AgentRuntime) -> object:
    return await runtime.storage.get("capsule_kv", "weather-notes/index")


async def nightly_entries(runtime: AgentRuntime) -> list[AuditEntry]:
    """The audit chain of the capsule's cron session (the one session titled for it)."""
    [session] = [
        s.session_id for s in await runtime.list_sessions() if s.title == "cron: weather-notes"
    ]
    return await runtime.audit.entries(session_id=session)


async def run_nightly(runtime: AgentRuntime) -> str:
    """The scheduler sees the capsule just before 03:00, then runs what is due at 03:00; the
    run's status and detail."""
    runtime.cron.clock = lambda: NIGHTLY_T0
    assert await runtime.cron.run_due(NIGHTLY_T0) == []  # not due before 03:00
    [run] = await runtime.cron.run_due(NIGHTLY)
    assert (run.capsule, run.job, run.scheduled) == ("weather-notes", "nightly-index", NIGHTLY)
    return f"{run.status}: {run.detail}"


async def test_weather_notes_nightly_index_runs_once_allowed_for_the_workspace(
    tmp_path: Path, workspace: Path
) -> None:
    model = Model(
        [
            ScriptedTurn("indexing", ((INDEX_NOTES, {}),)),
            ScriptedTurn("done"),
            ScriptedTurn(
                "recalling", (("capsule__weather-notes__recall_note", {"path": "index"}),)
            ),
            ScriptedTurn("done"),
        ]
    )
    runtime = await open_runtime(tmp_path, model, config=f'root = "{workspace}"\n')
    # Safe mode asks for the tool and for the listing it makes: both allowed for the workspace.
    human = Human([ApprovalOption.ALLOW_WORKSPACE] * 2 + [ApprovalOption.ALLOW_ONCE])
    runtime.set_frontend(human)  # type: ignore[arg-type]
    try:
        await install(runtime_installer(runtime), WEATHER)
        info = await runtime.create_session(str(workspace))
        await collect(runtime, info.session_id, "index my notes")
        assert [r.action for r in human.asked] == [
            CapsuleHostCall(capsule="weather-notes", function="index_notes", args={}),
            DirectoryList(path=str(workspace / "notes")),
        ]
        assert await stored_index(runtime) == {"names": ["weather.md"], "count": 1}

        # A note added after the session: only the nightly run can have listed it.
        (workspace / "notes" / "frost.md").write_text("# Frost on Tuesday\n")
        index = {"names": ["frost.md", "weather.md"], "count": 2}
        output = json.dumps({"ok": True, "index": index}, separators=(",", ":"))
        assert await run_nightly(runtime) == f"ok: {output}"
        assert await stored_index(runtime) == index
        assert len(human.asked) == 2  # the job asked nobody: the allowances covered it

        entries = await nightly_entries(runtime)
        allowed = [e for e in entries if e.outcome.kind is OutcomeKind.ALLOWED]
        assert [e.action["kind"] for e in allowed if e.action] == [
            "capsule_host_call",
            "directory_list",
        ]
        proofs: list[Any] = [(e.authorization or {}).get("proof") for e in allowed]
        assert [proof["kind"] for proof in proofs] == ["allowance", "allowance"]
        [end] = [e for e in entries if e.outcome.detail.get("stage") == "end"]
        assert (end.outcome.kind, end.outcome.success) == (OutcomeKind.EXECUTED, True)

        # recall_note reads the index back for the agent.
        events = await collect(runtime, info.session_id, "what is indexed?")
        [recalled] = [json.loads(e["output"]) for e in events if e["type"] == "tool_call_result"]
        assert recalled == {"ok": True, "path": "index", "note": index}
        assert (await runtime.audit_verify())["ok"] is True
    finally:
        await runtime.aclose()


async def test_weather_notes_nightly_index_without_the_grants_writes_nothing(
    tmp_path: Path, workspace: Path
) -> None:
    model = Model([ScriptedTurn("indexing", ((INDEX_NOTES, {}),)), ScriptedTurn("done")])
    runtime = await open_runtime(tmp_path, model, config=f'root = "{workspace}"\n')
    # Only an Allow Once for the tool, then a refusal of the listing: nothing to reuse at night.
    human = Human([ApprovalOption.ALLOW_ONCE, ApprovalOption.DENY])
    runtime.set_frontend(human)  # type: ignore[arg-type]
    try:
        await install(runtime_installer(runtime), WEATHER)
        info = await runtime.create_session(str(workspace))
        await collect(runtime, info.session_id, "index my notes")
        assert len(human.asked) == 2
        assert await stored_index(runtime) is None

        status = await run_nightly(runtime)
        assert status.startswith("denied: ")
        assert "cron job nightly-index of capsule weather-notes runs unattended" in status
        assert "Allow Workspace or Allow Always" in status
        assert await stored_index(runtime) is None
        assert len(human.asked) == 2  # denied at once, nobody asked

        entries = await nightly_entries(runtime)
        [denial] = [e for e in entries if e.outcome.kind is OutcomeKind.APPROVAL_DENIED]
        assert denial.action is not None
        assert denial.action["kind"] == "capsule_host_call"
        assert "runs unattended" in denial.outcome.reason
        [end] = [e for e in entries if e.outcome.detail.get("stage") == "end"]
        assert end.outcome.kind is OutcomeKind.DENIED
        assert not [e for e in entries if e.outcome.kind is OutcomeKind.ALLOWED]

        # The tool allowed for the workspace but not the listing (safe mode asks for it): the
        # export runs, the host refuses it the listing, and the index stays unwritten.
        await runtime.allowances.grant(
            CapsuleHostCall(capsule="weather-notes", function="index_notes", args={}),
            scope="workspace",
            session_id=info.session_id,
            workspace=str(workspace),
            approval_audit_id=None,
        )
        [run] = await runtime.cron.run_due(datetime(2030, 1, 2, 3, 0))  # the next night
        assert run.status == "ok"  # the export answered, with the host's refusal
        assert json.loads(run.detail)["ok"] is False
        assert "runs unattended" in json.loads(run.detail)["error"]
        assert await stored_index(runtime) is None
        denials = [
            e.action["kind"]
            for e in await nightly_entries(runtime)
            if e.outcome.kind is OutcomeKind.APPROVAL_DENIED and e.action
        ]
        assert denials == ["capsule_host_call", "directory_list"]
        warnings = (await runtime.status()).warnings
        [warning] = [w for w in warnings if "runs unattended" in w]
        assert DirectoryList(path=str(workspace / "notes")).summary in warning
    finally:
        await runtime.aclose()
