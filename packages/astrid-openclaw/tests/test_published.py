"""Published OpenClaw plugins, unmodified, fetched from npm by the compiler: installed with the
usual disclosure and trust, called by the agent in a real session (real runtime, interceptor,
audit; only the model's words are scripted), against a fake upstream on 127.0.0.1."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from astrid_audit import OutcomeKind
from astrid_capsule.install import CapsuleInstaller, InstallRecord, TrustAck
from astrid_capsule.manifest import load_manifest
from astrid_core import (
    ApprovalDecision,
    ApprovalOption,
    ApprovalRequest,
    CapsuleHostCall,
    NetworkRequest,
    SessionId,
)
from astrid_openclaw import CompileResult
from astrid_runtime.config import load_config
from astrid_runtime.llm import ModelRequest, ScriptedProvider, ScriptedTurn
from astrid_runtime.runtime import AgentRuntime

from .conftest import Upstream

pytestmark = pytest.mark.anyio
Compiled = Callable[[str], CompileResult]
WEB_SEARCH = "@ollama/openclaw-web-search@0.2.2"
TOOL = "capsule__openclaw-web-search__ollama_web_search"


@dataclass
class Human:
    """A person at the frontend: answers approvals in order, Deny once the answers run out."""

    answers: list[ApprovalOption] = field(default_factory=list[ApprovalOption])
    asked: list[ApprovalRequest] = field(default_factory=list[ApprovalRequest])

    async def request_approval(self, request: ApprovalRequest) -> ApprovalDecision:
        self.asked.append(request)
        option = self.answers.pop(0) if self.answers else ApprovalOption.DENY
        return ApprovalDecision(request_id=request.request_id, option=option)

    async def elicit(self, request: Any) -> Any: ...
    async def elicit_url(self, request: Any) -> None: ...
    def show_status(self, message: str) -> None: ...
    def show_error(self, message: str) -> None: ...
    async def receive_input(self) -> Any: ...


async def open_runtime(tmp_path: Path, turns: list[ScriptedTurn], config: str) -> AgentRuntime:
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    (home / "config.toml").write_text('[workspace]\nmode = "safe"\n' + config)
    script = list(turns)

    def model(request: ModelRequest) -> ScriptedTurn:
        del request
        return script.pop(0) if script else ScriptedTurn("done")

    return await AgentRuntime.open(
        home, config=load_config(home, env={}), provider=ScriptedProvider(model)
    )


async def install(runtime: AgentRuntime, source: Path) -> tuple[str, InstallRecord]:
    installer = CapsuleInstaller(runtime.home, runtime.storage)
    plan = await installer.plan(source)
    disclosure = plan.disclosure()
    return disclosure, await installer.commit(plan, TrustAck(method="flag", actor="test"))


async def tool_results(runtime: AgentRuntime, session: SessionId, text: str) -> list[Any]:
    events = [json.loads(e.model_dump_json()) async for e in runtime.run_turn(session, text)]
    return [e for e in events if e["type"] == "tool_call_result"]


def search(query: str) -> ScriptedTurn:
    return ScriptedTurn("searching", ((TOOL, {"query": query}),))


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    ws = tmp_path / "project"
    ws.mkdir()
    return Path(os.path.realpath(ws))


async def test_web_search_from_npm_is_tier1_with_derived_capabilities(compiled: Compiled) -> None:
    result = compiled(WEB_SEARCH)
    assert result.tier == "wasm"
    manifest = load_manifest(result.capsule_dir)
    assert manifest.capabilities.net == ("127.0.0.1",)  # the Ollama address it hardcodes
    assert [t.name for t in manifest.tool] == ["ollama_web_search", "ollama_web_fetch"]
    assert manifest.tool[0].input_schema["required"] == ["query"]


async def test_web_search_answers_in_a_session_audited(
    compiled: Compiled, tmp_path: Path, workspace: Path, ollama: Upstream
) -> None:
    result = compiled(WEB_SEARCH)
    runtime = await open_runtime(
        tmp_path,
        [search("astrid runtime"), ScriptedTurn("found it")],
        "[security]\nallow_private_networks = true\n",
    )
    human = Human([ApprovalOption.ALLOW_ONCE, ApprovalOption.ALLOW_ONCE])
    runtime.set_frontend(human)  # type: ignore[arg-type]
    try:
        disclosure, _ = await install(runtime, result.capsule_dir)
        assert "network hosts: 127.0.0.1" in disclosure
        assert "tools: ollama_web_search, ollama_web_fetch" in disclosure
        info = await runtime.create_session(str(workspace))
        [answer] = await tool_results(runtime, info.session_id, "search for astrid")
        assert answer["ok"] is True
        assert answer["output"].startswith("1. About astrid runtime\n   https://a.example/1")
        assert [json.loads(r["body"]) for r in ollama.requests] == [
            {"query": "astrid runtime", "max_results": 5}
        ]
        # The tool call, then the plugin's fetch inside it, each decided by the interceptor.
        url = "http://127.0.0.1:11434/api/experimental/web_search"
        assert [r.action for r in human.asked] == [
            CapsuleHostCall(
                capsule="openclaw-web-search",
                function="ollama_web_search",
                args={"query": "astrid runtime"},
            ),
            NetworkRequest(method="POST", url=url),
        ]
        kinds = [e.outcome.kind for e in await runtime.audit.entries(session_id=info.session_id)]
        assert kinds.count(OutcomeKind.APPROVAL_GRANTED) == 2
        assert (await runtime.audit_verify())["ok"] is True
    finally:
        await runtime.aclose()


async def test_without_the_admin_loopback_stays_closed_and_the_refusal_is_audited(
    compiled: Compiled, tmp_path: Path, workspace: Path, ollama: Upstream
) -> None:
    result = compiled(WEB_SEARCH)
    runtime = await open_runtime(tmp_path, [search("x"), ScriptedTurn("no luck")], "")
    human = Human([ApprovalOption.ALLOW_ONCE])
    runtime.set_frontend(human)  # type: ignore[arg-type]
    try:
        await install(runtime, result.capsule_dir)
        info = await runtime.create_session(str(workspace))
        [answer] = await tool_results(runtime, info.session_id, "search")
        assert answer["ok"] is False
        assert "private/loopback" in answer["output"]
        assert ollama.requests == []
        assert len(human.asked) == 1  # the tool call only: the fetch was refused before asking
        refusals = [
            e
            for e in await runtime.audit.entries(session_id=info.session_id)
            if e.outcome.kind is OutcomeKind.DENIED and e.outcome.detail.get("layer") == "capsule"
        ]
        assert [e.outcome.detail["function"] for e in refusals] == ["http_request"]
    finally:
        await runtime.aclose()


GRAPHITI = "@robertogongora/graphiti@0.6.2"
GRAPHITI_TOOL = "mcp__capsule-graphiti-openclaw__graphiti_search"


async def test_graphiti_tier2_runs_sandboxed_in_a_session_and_its_network_is_confined(
    compiled: Compiled, tmp_path: Path, workspace: Path
) -> None:
    result = compiled(GRAPHITI)
    turns = [
        ScriptedTurn("searching", ((GRAPHITI_TOOL, {"query": "astrid"}),)),
        ScriptedTurn("done"),
    ]
    # A roomy hook timeout: the first turn waits for the server (node) to start.
    runtime = await open_runtime(tmp_path, turns, "[hooks]\ntimeout_seconds = 30\n")
    human = Human([ApprovalOption.ALLOW_ONCE] * 3)
    runtime.set_frontend(human)  # type: ignore[arg-type]
    try:
        disclosure, _ = await install(runtime, result.capsule_dir)
        assert (
            "runs an MCP server (untrusted, sandboxed): openclaw: node plugin/astrid-entry.mjs"
            in (disclosure)
        )
        assert "network hosts: localhost" in disclosure

        async def work() -> tuple[SessionId, list[Any], list[Any]]:
            info = await runtime.create_session(str(workspace))
            results = await tool_results(runtime, info.session_id, "search my graph")
            return info.session_id, results, await runtime.list_servers()

        session, [answer], servers = await hosted(runtime, work)
        [server] = servers
        assert server["sandboxed"] is True
        assert answer["ok"] is True
        # The plugin ran under Node in the sandbox; its request to its default server
        # (localhost:8100, a loopback address) went to the egress proxy, which refused it.
        assert answer["output"].startswith("Graphiti search failed: Graphiti /search returned 403")
        assert "Astrid egress proxy: localhost:8100 denied" in answer["output"]
        assert "loopback" in answer["output"]
        kinds = [e.outcome.kind for e in await runtime.audit.entries(session_id=session)]
        assert OutcomeKind.APPROVAL_GRANTED in kinds
    finally:
        await runtime.aclose()


async def hosted(runtime: AgentRuntime, work: Callable[[], Any]) -> Any:
    """Run ``work`` while the runtime's background work (its MCP servers) runs, as the daemon
    does; bounded, so a hang fails the test."""
    import anyio

    results: list[Any] = []
    with anyio.fail_after(90):
        async with anyio.create_task_group() as tg:
            tg.start_soon(runtime.run_background)
            results.append(await work())
            tg.cancel_scope.cancel()
    return results[0]


async def test_our_plugin_trying_an_undeclared_host_in_a_session_is_refused_and_audited(
    compiled: Compiled, tmp_path: Path, workspace: Path, upstream: Upstream
) -> None:
    result = compiled("kitchen")  # declares example.com only
    url = f"http://127.0.0.1:{upstream.port}/exfiltrate"
    turns = [
        ScriptedTurn("fetching", (("capsule__kitchen__fetch_url", {"url": url}),)),
        ScriptedTurn("refused"),
    ]
    runtime = await open_runtime(tmp_path, turns, "[security]\nallow_private_networks = true\n")
    human = Human([ApprovalOption.ALLOW_ONCE, ApprovalOption.ALLOW_ONCE])
    runtime.set_frontend(human)  # type: ignore[arg-type]
    try:
        await install(runtime, result.capsule_dir)
        info = await runtime.create_session(str(workspace))
        [answer] = await tool_results(runtime, info.session_id, "fetch it")
        assert answer["output"].startswith("fetch error: fetch failed: http_request: host")
        assert "not in the capsule's declared net hosts" in answer["output"]
        assert upstream.requests == []
        assert len(human.asked) == 1  # the tool call; the fetch never reached a person
        refusals = [
            e
            for e in await runtime.audit.entries(session_id=info.session_id)
            if e.outcome.kind is OutcomeKind.DENIED and e.outcome.detail.get("layer") == "capsule"
        ]
        assert [e.outcome.detail["function"] for e in refusals] == ["http_request"]
        assert "declared net hosts" in refusals[0].outcome.reason
    finally:
        await runtime.aclose()


async def test_a_plugin_before_tool_call_hook_denies_in_a_session(
    compiled: Compiled, tmp_path: Path, workspace: Path
) -> None:
    result = compiled("kitchen")
    turns = [
        ScriptedTurn(
            "echoing",
            (
                ("capsule__kitchen__echo", {"text": "forbidden"}),
                ("capsule__kitchen__echo", {"text": "fine"}),
            ),
        ),
        ScriptedTurn("done"),
    ]
    runtime = await open_runtime(tmp_path, turns, "")
    human = Human([ApprovalOption.ALLOW_ONCE] * 2)
    runtime.set_frontend(human)  # type: ignore[arg-type]
    try:
        disclosure, _ = await install(runtime, result.capsule_dir)
        assert "sees every BeforeToolCall event" in disclosure
        info = await runtime.create_session(str(workspace))
        denied, allowed = await tool_results(runtime, info.session_id, "echo twice")
        assert denied["denied"] is True
        assert "kitchen says no" in denied["output"]
        assert allowed["ok"] is True
        assert allowed["output"] == "echo:fine"
    finally:
        await runtime.aclose()
