"""SecureMcpClient against a real MCP server written with the SDK (tests/servers/lab_server.py)."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import anyio
import pytest

from astrid_core import AstridTimeoutError, McpSampling, McpToolCall, PolicyDenied
from astrid_mcp import McpServerError, SecureMcpClient, ServerUnavailable, ToolNotFound
from astrid_workspace import landlock_abi

from .conftest import RuleGuard, lab_config

pytestmark = pytest.mark.anyio


async def test_tool_call_goes_through_the_guard_first(tmp_path: Path) -> None:
    guard = RuleGuard()
    async with SecureMcpClient(lab_config(tmp_path), guard=guard) as client:
        tools = await client.tools()
        assert {"echo", "slow", "crash", "big"} <= tools.keys()
        result = await client.call_tool("echo", {"text": "hi"})
    assert result.text == "hi"
    assert not result.is_error
    assert guard.seen == [McpToolCall(server="lab", tool="echo", args={"text": "hi"})]


async def test_denied_call_never_reaches_the_server(tmp_path: Path) -> None:
    guard = RuleGuard(deny_tools={"write_marker"})
    async with SecureMcpClient(lab_config(tmp_path), guard=guard) as client:
        with pytest.raises(PolicyDenied, match="test policy refuses mcp://lab/write_marker"):
            await client.call_tool("write_marker", {"name": "marker"})
        # The same server does write markers when allowed: the denial is what stopped it.
        guard.deny_tools.clear()
        await client.call_tool("write_marker", {"name": "allowed"})
    assert not (tmp_path / "marker").exists()
    assert (tmp_path / "allowed").exists()


async def test_a_guard_that_raises_fails_closed(tmp_path: Path) -> None:
    class ExplodingGuard(RuleGuard):
        async def authorize(self, action: object, reason: str):  # type: ignore[override]
            raise RuntimeError("policy engine crashed")

    async with SecureMcpClient(lab_config(tmp_path), guard=ExplodingGuard()) as client:
        with pytest.raises(RuntimeError, match="policy engine crashed"):
            await client.call_tool("write_marker", {"name": "marker"})
    assert not (tmp_path / "marker").exists()


async def test_unknown_tool_is_refused_before_the_guard(tmp_path: Path) -> None:
    guard = RuleGuard()
    async with SecureMcpClient(lab_config(tmp_path), guard=guard) as client:
        with pytest.raises(ToolNotFound, match="no tool 'nope'"):
            await client.call_tool("nope", {})
    assert guard.seen == []


async def test_timeout_sends_a_cancellation_the_server_sees(tmp_path: Path) -> None:
    async with SecureMcpClient(lab_config(tmp_path), guard=RuleGuard()) as client:
        with pytest.raises(AstridTimeoutError, match=r"timed out after 0\.5 s"):
            await client.call_tool("slow", {"seconds": 30}, timeout=0.5)
        with anyio.fail_after(10):
            while not (tmp_path / "cancelled").exists():
                await anyio.sleep(0.05)
        # The connection is still usable after a timeout.
        assert (await client.call_tool("echo", {"text": "still here"})).text == "still here"


async def test_default_call_timeout_comes_from_config(tmp_path: Path) -> None:
    config = lab_config(tmp_path, call_timeout_s=0.3)
    async with SecureMcpClient(config, guard=RuleGuard()) as client:
        with pytest.raises(AstridTimeoutError, match=r"timed out after 0\.3 s"):
            await client.call_tool("slow", {"seconds": 30})


async def test_oversize_output_is_cut_but_digested_whole(tmp_path: Path) -> None:
    config = lab_config(tmp_path, max_output_bytes=64 * 1024)
    async with SecureMcpClient(config, guard=RuleGuard()) as client:
        result = await client.call_tool("big", {"n": 3 * 1024 * 1024})
        small = await client.call_tool("big", {"n": 10})
    assert result.truncated
    assert len(result.text.encode()) < 64 * 1024 + 200
    assert "output truncated: 3145728 bytes" in result.text
    assert result.size_bytes > 3 * 1024 * 1024
    assert not small.truncated
    assert small.text == "x" * 10
    assert result.digest != small.digest


async def test_crash_during_a_call_is_a_clear_error(tmp_path: Path) -> None:
    async with SecureMcpClient(lab_config(tmp_path), guard=RuleGuard()) as client:
        with pytest.raises(ServerUnavailable, match="'lab'"):
            await client.call_tool("crash", {})
        with anyio.fail_after(5):
            await client.disconnected.wait()
        with pytest.raises(ServerUnavailable, match="not connected"):
            await client.call_tool("echo", {"text": "x"})


async def test_host_secrets_do_not_leak_into_the_server(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-secret")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "aws-secret")
    config = lab_config(tmp_path, env={"LAB_STATE": str(tmp_path), "DECLARED": "yes"})
    async with SecureMcpClient(config, guard=RuleGuard()) as client:
        leaked = await client.call_tool("env_probe", {"name": "ANTHROPIC_API_KEY"})
        aws = await client.call_tool("env_probe", {"name": "AWS_SECRET_ACCESS_KEY"})
        declared = await client.call_tool("env_probe", {"name": "DECLARED"})
        path = await client.call_tool("env_probe", {"name": "PATH"})
    assert leaked.text == "<unset>"
    assert aws.text == "<unset>"
    assert declared.text == "yes"
    assert path.text == os.environ["PATH"]


async def test_sampling_is_an_llm_call_through_the_guard(tmp_path: Path) -> None:
    from mcp import types

    class EchoSampler:
        model = "test-model"

        def __init__(self) -> None:
            self.asked: list[str] = []

        def estimate_cost_micros(self, params: types.CreateMessageRequestParams) -> int:
            return params.max_tokens * 10

        async def create_message(
            self, server: str, params: types.CreateMessageRequestParams
        ) -> types.CreateMessageResult:
            content = params.messages[0].content
            assert isinstance(content, types.TextContent)
            self.asked.append(f"{server}: {content.text}")
            return types.CreateMessageResult(
                role="assistant",
                content=types.TextContent(type="text", text="forty-two"),
                model=self.model,
            )

    sampler = EchoSampler()
    guard = RuleGuard()
    async with SecureMcpClient(lab_config(tmp_path), guard=guard, sampler=sampler) as client:
        answer = await client.call_tool("ask_llm", {"question": "meaning of life?"})
        guard.deny_llm = True
        with pytest.raises(McpServerError, match="sampling refused: test policy refuses mcp-samp"):
            await client.call_tool("ask_llm", {"question": "again?"})
    assert answer.text == "forty-two"
    assert sampler.asked == ["lab: meaning of life?"]
    sampled = [a for a in guard.seen if isinstance(a, McpSampling)]
    assert len(sampled) == 2
    assert sampled[0].estimated_cost_micros == 500
    assert sampled[0].server == "lab"
    assert sampled[0].resource == "mcp-sampling://lab"


async def test_without_a_sampler_sampling_is_not_offered(tmp_path: Path) -> None:
    async with SecureMcpClient(lab_config(tmp_path), guard=RuleGuard()) as client:
        assert client.initialize_result is not None
        with pytest.raises(McpServerError, match="ampling not supported"):
            await client.call_tool("ask_llm", {"question": "hello?"})


async def test_roots_are_ours_and_can_change(tmp_path: Path) -> None:
    first, second = tmp_path / "ws-a", tmp_path / "ws-b"
    first.mkdir()
    second.mkdir()
    async with SecureMcpClient(lab_config(tmp_path), guard=RuleGuard(), roots=[first]) as client:
        assert (await client.call_tool("my_roots", {})).text == first.as_uri()
        await client.set_roots([second])
        assert (await client.call_tool("my_roots", {})).text == second.as_uri()


async def test_listings_are_cached_until_the_server_says_they_changed(tmp_path: Path) -> None:
    async with SecureMcpClient(lab_config(tmp_path), guard=RuleGuard()) as client:
        assert await client.list_resources() == []
        assert await client.list_prompts() == []
        await client.call_tool("grow_prompts", {})
        with anyio.fail_after(5):
            while [p.name for p in await client.list_prompts()] != ["greet"]:
                await anyio.sleep(0.05)
        prompt = await client.get_prompt("greet", {"name": "Ada"})
        assert "Ada" in str(prompt.messages[0].content)
        await client.ping()


@pytest.mark.skipif(landlock_abi() < 4, reason="denying TCP needs Landlock ABI >= 4")
async def test_a_server_configured_without_network_cannot_open_a_tcp_connection(
    tmp_path: Path,
) -> None:
    sandbox = {"enabled": True, "read_paths": [str(tmp_path)]}
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]
        closed = lab_config(tmp_path, sandbox={**sandbox, "network": False})
        async with SecureMcpClient(closed, guard=RuleGuard()) as client:
            assert client.launch is not None
            assert client.launch.sandboxed
            result = await client.call_tool("tcp_connect", {"port": port})
            assert result.text.startswith("refused")
        # The default has no network either (its own network namespace); the admin's explicit
        # network = true gives the host's network.
        async with SecureMcpClient(lab_config(tmp_path, sandbox=sandbox), guard=RuleGuard()) as c:
            assert (await c.call_tool("tcp_connect", {"port": port})).text.startswith("refused")
        host = lab_config(tmp_path, sandbox={**sandbox, "network": True})
        async with SecureMcpClient(host, guard=RuleGuard()) as c:
            assert (await c.call_tool("tcp_connect", {"port": port})).text == "connected"


def test_no_network_with_the_sandbox_off_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="enforced by the sandbox"):
        lab_config(tmp_path, sandbox={"enabled": False, "network": False})


async def test_terminal_escapes_from_a_server_never_reach_the_agent(tmp_path: Path) -> None:
    hostile = "done\x1b[2J\x1b[1;1H\x1b]0;pwned\x07\rAll tests passed\u202e"
    async with SecureMcpClient(lab_config(tmp_path), guard=RuleGuard()) as client:
        result = await client.call_tool("echo", {"text": hostile})
    assert result.text == "doneAll tests passed"  # the words stay, their power goes
