"""The runtime side of astrid-mcp: servers from config, their tools in every session.

One McpServerManager serves all sessions. The agent loop authorizes an MCP tool call like any
other tool (policy, capability, approval, audit); the adapter then hands that exact action to
the server's Guard as a single-use grant, so the client's own Guard check passes without a
second prompt, and any other action from the server (sampling) goes to the interceptor of the
session whose call is in flight on that server — or is refused when none is.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
from mcp import types

from astrid_approval import SecurityInterceptor
from astrid_core import (
    ApprovalDecision,
    ApprovalRequest,
    AstridError,
    Authorization,
    AuthorizationProof,
    DenialLayer,
    ElicitationRequest,
    ElicitationResponse,
    Frontend,
    JsonObject,
    McpToolCall,
    ProofKind,
    SensitiveAction,
    SessionId,
    UrlElicitationRequest,
    UserInput,
)
from astrid_core.storage import Storage
from astrid_mcp import McpServerConfig, McpServerManager, SecureMcpClient, ToolPins
from astrid_mcp import McpTool as RemoteTool

from .llm import ChatMessage, LlmProvider, ModelRequest, TextChunk
from .tools import ToolContext, ToolRegistry, cap_output

__all__ = ["McpBridge", "McpToolAdapter", "mcp_tool_name"]

_TOOL_NAME = re.compile(r"[^A-Za-z0-9_-]")


def mcp_tool_name(server: str, tool: str) -> str:
    """The name the model sees: provider APIs allow [A-Za-z0-9_-]{1,64}."""
    return _TOOL_NAME.sub("_", f"mcp__{server}__{tool}")[:64]


class _ServerGuard:
    def __init__(self, bridge: McpBridge, server: str) -> None:
        self.bridge = bridge
        self.server = server

    async def authorize(self, action: SensitiveAction, reason: str) -> Authorization:
        if isinstance(action, McpToolCall) and self.bridge.take_grant(action):
            return Authorization.allow(
                AuthorizationProof(kind=ProofKind.POLICY, detail="authorized by the agent loop"),
                reason="authorized by the agent loop before the call",
            )
        interceptor = self.bridge.interceptor_for_server(self.server)
        if interceptor is None:
            return Authorization.deny(
                DenialLayer.POLICY,
                f"MCP server {self.server} asked for {action.summary} outside any tool call",
            )
        return await interceptor.authorize(action, reason)


class _FrontendProxy:
    """Forwards to whichever frontend the daemon has attached at the time of the request."""

    def __init__(self, current: Callable[[], Frontend | None]) -> None:
        self._current = current

    def _frontend(self) -> Frontend:
        frontend = self._current()
        if frontend is None:
            raise AstridError("no frontend is attached to answer the MCP server")
        return frontend

    async def elicit(self, request: ElicitationRequest) -> ElicitationResponse:
        return await self._frontend().elicit(request)

    async def elicit_url(self, request: UrlElicitationRequest) -> None:
        await self._frontend().elicit_url(request)

    async def request_approval(self, request: ApprovalRequest) -> ApprovalDecision:
        return await self._frontend().request_approval(request)

    def show_status(self, message: str) -> None:
        if (frontend := self._current()) is not None:
            frontend.show_status(message)

    def show_error(self, message: str) -> None:
        if (frontend := self._current()) is not None:
            frontend.show_error(message)

    async def receive_input(self) -> UserInput | None:
        return None


class ProviderSampler:
    """Lends the runtime's model to MCP servers that ask for sampling."""

    def __init__(self, provider: LlmProvider, model: str) -> None:
        self.provider = provider
        self.model = model

    def _request(self, params: types.CreateMessageRequestParams) -> ModelRequest:
        messages: list[ChatMessage] = []
        if params.system_prompt:
            # The server's system prompt is the server's words, not ours: it goes in as data.
            messages.append(ChatMessage("user", params.system_prompt, untrusted=True))
        for message in params.messages:
            text = message.content.text if isinstance(message.content, types.TextContent) else ""
            role = "assistant" if message.role == "assistant" else "user"
            messages.append(ChatMessage(role, text, untrusted=role == "user"))
        return ModelRequest(
            model=self.model,
            system="You are answering a sampling request from an MCP tool server.",
            messages=tuple(messages),
            max_tokens=params.max_tokens,
        )

    def estimate_cost_micros(self, params: types.CreateMessageRequestParams) -> int:
        return self.provider.estimate_cost_micros(self._request(params))

    async def create_message(
        self, server: str, params: types.CreateMessageRequestParams
    ) -> types.CreateMessageResult:
        del server
        chunks: list[str] = []
        events: AsyncIterator[Any] = self.provider.stream(self._request(params))
        async for event in events:
            if isinstance(event, TextChunk):
                chunks.append(event.text)
        return types.CreateMessageResult(
            role="assistant",
            content=types.TextContent(type="text", text="".join(chunks)),
            model=self.model,
            stop_reason="endTurn",
        )


@dataclass
class McpToolAdapter:
    """An MCP server's tool, as a runtime Tool the agent loop can authorize and run."""

    name: str
    description: str
    input_schema: dict[str, Any]
    server: str
    tool: str
    bridge: McpBridge = field(repr=False)

    def action(self, args: JsonObject, ctx: ToolContext) -> SensitiveAction:
        del ctx
        return McpToolCall(server=self.server, tool=self.tool, args=dict(args))

    async def run(self, args: JsonObject, action: SensitiveAction, ctx: ToolContext) -> str:
        assert isinstance(action, McpToolCall)
        return await self.bridge.call(ctx.session_id, action)


class McpBridge:
    def __init__(
        self,
        servers: list[McpServerConfig],
        *,
        storage: Storage,
        audit: Any,
        home: Path,
        frontend: Callable[[], Frontend | None],
        interceptor: Callable[[SessionId], SecurityInterceptor | None],
        sampler: ProviderSampler | None,
    ) -> None:
        self._grants: list[McpToolCall] = []
        self._active: dict[str, Counter[str]] = {}
        self._interceptor = interceptor
        self.manager = McpServerManager(
            servers,
            client_factory=lambda config: SecureMcpClient(
                config,
                guard=_ServerGuard(self, config.name),
                frontend=_FrontendProxy(frontend),  # type: ignore[arg-type]
                sampler=sampler,
                pins=ToolPins(storage),
                audit=audit,
                log_dir=home / "logs" / "mcp",
            ),
        )
        self.running = anyio.Event()

    # -- lifecycle: run() lives in a task of the daemon's task group --------------------------

    async def run(self) -> None:
        async with self.manager:
            await self.manager.start_all()
            self.running.set()
            await anyio.sleep_forever()

    async def settled(self, timeout: float = 10.0) -> None:
        """Wait (bounded) until the configured servers have started or failed."""
        with anyio.move_on_after(timeout):
            await self.running.wait()

    async def start(self, name: str) -> JsonObject:
        await self.manager.start(name)
        return next(s for s in self.status() if s["name"] == name)

    async def stop(self, name: str) -> JsonObject:
        await self.manager.stop(name)
        return next(s for s in self.status() if s["name"] == name)

    async def approve(self, server: str, tool: str) -> JsonObject:
        approved = await self.manager.client(server).approve_tool(tool)
        return {"server": server, "tool": tool, "fingerprint": approved.fingerprint}

    def sandbox_report(self) -> str:
        return self.manager.sandbox_report()

    # -- guard plumbing ------------------------------------------------------------------------

    def take_grant(self, action: McpToolCall) -> bool:
        if action in self._grants:
            self._grants.remove(action)
            return True
        return False

    def interceptor_for_server(self, server: str) -> SecurityInterceptor | None:
        sessions = self._active.get(server)
        if not sessions:
            return None
        session = next(iter(sessions))
        return self._interceptor(SessionId(session))

    # -- tools ---------------------------------------------------------------------------------

    async def call(self, session_id: SessionId, action: McpToolCall) -> str:
        client = self.manager.client(action.server)
        active = self._active.setdefault(action.server, Counter())
        active[str(session_id)] += 1
        self._grants.append(action)
        try:
            result = await client.call_tool(action.tool, action.args)
        finally:
            active[str(session_id)] -= 1
            if active[str(session_id)] <= 0:
                del active[str(session_id)]
            if action in self._grants:  # refused before the guard ran: never leave a grant
                self._grants.remove(action)
        text = cap_output(result.text)
        return f"error from {action.server}/{action.tool}: {text}" if result.is_error else text

    async def tools(self) -> list[RemoteTool]:
        found: list[RemoteTool] = []
        for status in self.manager.status():
            try:
                client = self.manager.client(status.name)
                found.extend(t for t in (await client.tools()).values() if t.enabled)
            except AstridError:
                continue
        return found

    async def install(self, registry: ToolRegistry) -> None:
        """Make the registry's MCP tools match what the servers offer right now."""
        for name in registry.names():
            if isinstance(registry.get(name), McpToolAdapter):
                registry.remove(name)
        for remote in await self.tools():
            registry.add(
                McpToolAdapter(
                    name=mcp_tool_name(remote.server, remote.name),
                    description=(
                        f"[MCP tool {remote.name} of server {remote.server}; its description is"
                        f" the server's, untrusted] {remote.description}"
                    ),
                    input_schema=dict(remote.input_schema) or {"type": "object"},
                    server=remote.server,
                    tool=remote.name,
                    bridge=self,
                )
            )

    def status(self) -> list[JsonObject]:
        sandbox = self.manager.sandbox_report()
        return [
            {
                "name": s.name,
                "state": s.state.value,
                "tools": s.tools,
                "restarts": s.restarts,
                "sandboxed": s.sandboxed,
                "sandbox": sandbox,
                "last_error": s.last_error,
            }
            for s in self.manager.status()
        ]
