"""The official npm reference servers, driven through SecureMcpClient (stdio and HTTP).

Installed by scripts/install-test-deps into .cache/node. Missing packages fail the tests with
the command to run: these are the real-world servers the client must work with.
"""

from __future__ import annotations

import ipaddress
import os
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest
from mcp import types

from astrid_core import McpSampling, McpToolCall
from astrid_core.testing import ScriptedFrontend
from astrid_mcp import McpServerConfig, SecureMcpClient
from astrid_mcp._errors import ServerStartError
from astrid_workspace import IPAddress

from .conftest import SERVERS, RuleGuard

pytestmark = [pytest.mark.anyio, pytest.mark.needs_node]

REPO = Path(__file__).resolve().parents[3]
NODE_BIN = REPO / ".cache" / "node" / "node_modules" / ".bin"


def _bin(name: str) -> str:
    path = NODE_BIN / name
    if not path.exists():
        pytest.fail(f"{path} is missing: run scripts/install-test-deps (installs the npm servers)")
    return str(path)


def everything(**overrides: Any) -> McpServerConfig:
    fields: dict[str, Any] = {"name": "everything", "command": _bin("mcp-server-everything")}
    fields.update(overrides)
    return McpServerConfig.model_validate(fields)


class CountingSampler:
    model = "local-test-model"

    def __init__(self) -> None:
        self.prompts: list[str] = []

    def estimate_cost_micros(self, params: types.CreateMessageRequestParams) -> int:
        return params.max_tokens

    async def create_message(
        self, server: str, params: types.CreateMessageRequestParams
    ) -> types.CreateMessageResult:
        content = params.messages[0].content
        self.prompts.append(content.text if isinstance(content, types.TextContent) else "")
        return types.CreateMessageResult(
            role="assistant",
            content=types.TextContent(type="text", text="sampled!"),
            model=self.model,
        )


async def test_everything_server_tools_resources_prompts_sandboxed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-host-secret")
    guard = RuleGuard()
    async with SecureMcpClient(everything(), guard=guard) as client:
        assert client.launch is not None
        assert client.launch.sandboxed
        tools = await client.tools()
        assert {"echo", "get-sum", "get-env"} <= tools.keys()
        assert (await client.call_tool("echo", {"message": "hello"})).text.endswith("hello")
        assert "5" in (await client.call_tool("get-sum", {"a": 2, "b": 3})).text
        env = (await client.call_tool("get-env", {})).text
        assert "sk-host-secret" not in env
        assert "OPENAI_API_KEY" not in env
        resources = await client.list_resources()
        assert resources
        read = await client.read_resource(str(resources[0].uri))
        assert read.contents
        templates = await client.list_resource_templates()
        assert templates
        prompts = await client.list_prompts()
        simple = next(p for p in prompts if not p.arguments)
        assert (await client.get_prompt(simple.name)).messages
    assert McpToolCall(server="everything", tool="get-sum", args={"a": 2, "b": 3}) in guard.seen


async def test_everything_server_client_features() -> None:
    sampler = CountingSampler()
    frontend = ScriptedFrontend(forms=[{"name": "Ada Lovelace", "check": True}])
    guard = RuleGuard()
    async with SecureMcpClient(
        everything(), guard=guard, frontend=frontend, sampler=sampler, roots=[REPO]
    ) as client:
        with anyio.fail_after(10):  # capability-dependent tools are registered after initialize
            while "trigger-sampling-request" not in await client.tools():
                await anyio.sleep(0.1)
        sampled = await client.call_tool(
            "trigger-sampling-request", {"prompt": "hi", "maxTokens": 7}
        )
        assert "sampled!" in sampled.text
        assert sampler.prompts
        assert "hi" in sampler.prompts[0]
        assert (
            McpSampling(
                server="everything",
                model="local-test-model",
                max_tokens=7,
                estimated_cost_micros=7,
            )
            in guard.seen
        )

        elicited = await client.call_tool("trigger-elicitation-request", {})
        assert "Ada Lovelace" in elicited.text
        assert frontend.elicited[0].source == "mcp:everything"

        url = await client.call_tool(
            "trigger-url-elicitation", {"url": "https://example.com/login", "message": "sign in"}
        )
        assert "completed" in url.text
        assert frontend.urls[0].url == "https://example.com/login"

        roots = await client.call_tool("get-roots-list", {})
        assert REPO.as_uri() in roots.text


async def test_everything_server_long_running_task() -> None:
    async with SecureMcpClient(everything(), guard=RuleGuard()) as client:
        with anyio.fail_after(10):
            while "simulate-research-query" not in await client.tools():
                await anyio.sleep(0.1)
        task = await client.start_tool_task("simulate-research-query", {"topic": "landlock"})
        with anyio.fail_after(60):
            status = await client.get_task(task.task_id)
            while status.status not in {"completed", "failed", "cancelled"}:
                await anyio.sleep(0.2)
                status = await client.get_task(task.task_id)
        assert status.status == "completed"
        result = await client.task_result(task.task_id, tool="simulate-research-query")
        assert "landlock" in result.text.lower()

        second = await client.start_tool_task("simulate-research-query", {"topic": "cancel me"})
        await client.cancel_task(second.task_id)
        assert (await client.get_task(second.task_id)).status == "cancelled"


async def test_filesystem_server_obeys_the_roots_we_return(tmp_path: Path) -> None:
    workspace, elsewhere = tmp_path / "workspace", tmp_path / "elsewhere"
    workspace.mkdir()
    elsewhere.mkdir()
    (workspace / "notes.txt").write_text("inside the roots")
    (elsewhere / "secret.txt").write_text("outside the roots")
    config = McpServerConfig.model_validate(
        {
            "name": "filesystem",
            "command": _bin("mcp-server-filesystem"),
            # The server is started with both directories; the roots we return replace them.
            "args": [str(workspace), str(elsewhere)],
            # Landlock lets it read both, so a refusal can only come from the server's roots.
            "sandbox": {"read_paths": [str(tmp_path)]},
        }
    )
    async with SecureMcpClient(config, guard=RuleGuard(), roots=[workspace]) as client:
        tool = "read_text_file" if "read_text_file" in await client.tools() else "read_file"
        with anyio.fail_after(10):
            while True:  # the server asks for roots after initialize
                allowed = await client.call_tool("list_allowed_directories", {})
                if str(elsewhere) not in allowed.text:
                    break
                await anyio.sleep(0.1)
        inside = await client.call_tool(tool, {"path": str(workspace / "notes.txt")})
        assert inside.text == "inside the roots"
        outside = await client.call_tool(tool, {"path": str(elsewhere / "secret.txt")})
        assert outside.is_error
        assert "outside the roots" not in outside.text
        assert "denied" in outside.text.lower() or "outside" in outside.text.lower()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def everything_http() -> Iterator[str]:
    port = _free_port()
    env = os.environ | {
        "PORT": str(port),
        "NODE_OPTIONS": f"--require {SERVERS / 'loopback-only.cjs'}",
    }
    process = subprocess.Popen(
        [_bin("mcp-server-everything"), "streamableHttp"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        for _ in range(200):
            with socket.socket() as sock:
                if sock.connect_ex(("127.0.0.1", port)) == 0:
                    break
            if process.poll() is not None:
                pytest.fail(
                    f"everything server exited: {process.stderr.read() if process.stderr else ''}"
                )
            time.sleep(0.05)
        yield f"http://127.0.0.1:{port}/mcp"
    finally:
        process.terminate()
        process.wait(10)
        if process.stderr is not None:
            process.stderr.close()


async def test_everything_server_over_streamable_http(everything_http: str) -> None:
    guard = RuleGuard(deny_tools={"get-env"})
    config = McpServerConfig.model_validate({"name": "everything-http", "url": everything_http})
    async with SecureMcpClient(config, guard=guard) as client:
        assert (await client.call_tool("echo", {"message": "over http"})).text.endswith("over http")
        with pytest.raises(Exception, match="test policy refuses mcp://everything-http/get-env"):
            await client.call_tool("get-env", {})
        invalid = await client.call_tool("get-sum", {"a": "not a number"})
        assert invalid.is_error


class RebindingResolver:
    """Answers 127.0.0.1 (where the test server is) first, then somewhere else: a client
    that looked the name up again would not reach the server at all."""

    def __init__(self, later: str = "169.254.169.254") -> None:
        self.lookups: list[str] = []
        self.later = later

    async def __call__(self, host: str, port: int) -> list[IPAddress]:
        self.lookups.append(host)
        answer = "127.0.0.1" if len(self.lookups) == 1 else self.later
        return [ipaddress.ip_address(answer)]


async def test_an_http_servers_address_is_pinned_dns_rebinding_fails(
    everything_http: str,
) -> None:
    port = httpx2.URL(everything_http).port
    url = f"http://mcp.rebind.test:{port}/mcp"
    config = McpServerConfig.model_validate(
        {"name": "pinned", "url": url, "private_network": True, "trusted": True}
    )
    resolver = RebindingResolver()
    async with SecureMcpClient(config, guard=RuleGuard(), resolver=resolver) as client:
        for i in range(3):  # several requests, new connections included
            assert (await client.call_tool("echo", {"message": f"m{i}"})).text.endswith(f"m{i}")
    assert resolver.lookups == ["mcp.rebind.test"]  # once: every connection went to the pin


async def test_an_http_server_name_on_a_private_address_is_refused_unless_configured(
    everything_http: str,
) -> None:
    port = httpx2.URL(everything_http).port
    config = McpServerConfig.model_validate(
        {"name": "internal", "url": f"http://mcp.rebind.test:{port}/mcp"}
    )
    with pytest.raises(ServerStartError, match="private_network = true"):
        async with SecureMcpClient(config, guard=RuleGuard(), resolver=RebindingResolver()):
            pass


def test_private_network_is_only_for_an_admins_trusted_server() -> None:
    with pytest.raises(ValueError, match="only an admin's trusted server"):
        McpServerConfig.model_validate(
            {"name": "ws", "url": "https://mcp.example.com/mcp", "private_network": True}
        )
