"""The runtime side of astrid-mcp: servers from config, their tools in every session.

One McpServerManager serves all sessions. The agent loop authorizes an MCP tool call like any
other tool (policy, capability, approval, audit); the adapter then hands that exact action to
the server's Guard as a single-use grant, so the client's own Guard check passes without a
second prompt, and any other action from the server (sampling) goes to the interceptor of the
session whose call is in flight on that server — or is refused when none is.

A capsule's ``[[mcp_server]]`` entries are added at runtime (``ensure_servers``), one process
per (capsule, workspace) with that workspace's accepted paths as its roots. Such a *scoped*
server is not offered to every session: ``install_scoped`` puts its tools into the registries of
the sessions in its workspace only. Its calls take the same path as a configured server's
(McpToolCall authorized by the session, single-use grant, tool pins).

A server configured with ``oauth`` signs in through the SDK's OAuth provider, its tokens kept in
storage. When it needs a person, the authorization URL goes to whoever asked: ``astrid servers
login NAME`` (``login``), else the attached frontend as a URL elicitation; with neither, the
start fails with a hint to run that command.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
from anyio.abc import TaskGroup
from mcp import types

from astrid_approval import InterceptResult, SecurityInterceptor
from astrid_audit import AuditTrail, Outcome, OutcomeKind
from astrid_core import (
    ApprovalDecision,
    ApprovalRequest,
    AstridError,
    Authorization,
    AuthorizationProof,
    ConfigError,
    DenialLayer,
    ElicitationRequest,
    ElicitationResponse,
    Frontend,
    JsonObject,
    McpSampling,
    McpToolCall,
    NotFoundError,
    ProofKind,
    SensitiveAction,
    SessionId,
    UrlElicitationRequest,
    UserInput,
)
from astrid_core.storage import Storage
from astrid_mcp import (
    HttpTransport,
    McpServerConfig,
    McpServerManager,
    OAuthLoginRequired,
    OAuthTokenStore,
    SecureMcpClient,
    ServerState,
    ToolPins,
    oauth_provider,
)
from astrid_mcp import McpTool as RemoteTool
from astrid_mcp._content import tool_result
from astrid_mcp.oauth import oauth_sealing_key

from .llm import ChatMessage, LlmProvider, ModelRequest, TextChunk, Usage
from .tools import ToolContext, ToolRegistry, cap_output

__all__ = ["McpBridge", "McpToolAdapter", "mcp_tool_name"]

_TOOL_NAME = re.compile(r"[^A-Za-z0-9_-]")


def mcp_tool_name(server: str, tool: str) -> str:
    """The name the model sees: provider APIs allow [A-Za-z0-9_-]{1,64}."""
    return _TOOL_NAME.sub("_", f"mcp__{server}__{tool}")[:64]


# Kept running (or starting) by the manager itself: launching again would start a second one.
_UNDER_WAY = frozenset({ServerState.RUNNING, ServerState.STARTING, ServerState.BACKOFF})


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
        sampler = self.bridge.sampler
        if isinstance(action, McpSampling) and sampler is not None:
            # Reserved now, settled by the sampler once the model has answered (or failed).
            result = await interceptor.intercept(action, reason, action.estimated_cost_micros)
            if result.allowed:
                sampler.authorized(self.server, interceptor, result)
            return result.authorization
        return await interceptor.authorize(action, reason)


class _FrontendProxy:
    """Forwards to whichever frontend the daemon has attached at the time of the request."""

    def __init__(
        self,
        current: Callable[[], Frontend | None],
        session_in_flight: Callable[[], SessionId | None] = lambda: None,
    ) -> None:
        self._current = current
        self._session_in_flight = session_in_flight

    def _stamped(self, request: Any) -> Any:
        # A [[servers]] client serves every session: the request belongs to the session whose
        # call is in flight on that server, so that frontends route it to that session's user.
        if request.session_id is None and (session := self._session_in_flight()) is not None:
            return request.model_copy(update={"session_id": session})
        return request

    def _frontend(self) -> Frontend:
        frontend = self._current()
        if frontend is None:
            raise AstridError("no frontend is attached to answer the MCP server")
        return frontend

    async def elicit(self, request: ElicitationRequest) -> ElicitationResponse:
        return await self._frontend().elicit(self._stamped(request))

    async def elicit_url(self, request: UrlElicitationRequest) -> None:
        await self._frontend().elicit_url(self._stamped(request))

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
    """Lends the runtime's model to MCP servers that ask for sampling.

    Each request was authorized just before as an ``McpSampling`` action by the interceptor of
    the session whose call is in flight (``_ServerGuard``), which reserved its estimated cost.
    Here that reservation is settled exactly like an agent turn's: committed with the cost the
    provider reports, or with nothing spent when the model fails; the completion is recorded as
    the action's outcome, which taints the session (the server wrote the prompt).
    ``max_tokens`` (``[security] sampling_max_tokens``) caps what one request may ask for."""

    def __init__(self, provider: LlmProvider, model: str, max_tokens: int | None = None) -> None:
        self.provider = provider
        self.model = model
        self.max_tokens = max_tokens
        # Authorized sampling requests per server, oldest first, waiting to be settled.
        self.pending: dict[str, list[tuple[SecurityInterceptor, InterceptResult]]] = {}

    def _capped(self, params: types.CreateMessageRequestParams) -> int:
        if self.max_tokens is None:
            return params.max_tokens
        return max(1, min(params.max_tokens, self.max_tokens))

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
            max_tokens=self._capped(params),
        )

    def estimate_cost_micros(self, params: types.CreateMessageRequestParams) -> int:
        return self.provider.estimate_cost_micros(self._request(params))

    def authorized(
        self, server: str, interceptor: SecurityInterceptor, result: InterceptResult
    ) -> None:
        self.pending.setdefault(server, []).append((interceptor, result))

    async def create_message(
        self, server: str, params: types.CreateMessageRequestParams
    ) -> types.CreateMessageResult:
        queue = self.pending.get(server) or []
        settle = queue.pop(0) if queue else None
        chunks: list[str] = []
        usage: Usage | None = None
        ok = False
        try:
            events: AsyncIterator[Any] = self.provider.stream(self._request(params))
            async for event in events:
                if isinstance(event, TextChunk):
                    chunks.append(event.text)
                elif isinstance(event, Usage):
                    usage = event
            ok = True
        finally:
            if settle is not None:
                interceptor, result = settle
                spent = self.provider.cost_micros(self.model, usage) if usage else None
                with anyio.CancelScope(shield=True):
                    await interceptor.record_outcome(
                        result,
                        success=ok,
                        output="".join(chunks),
                        actual_cost=spent if ok else 0,
                    )
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
    # The workspace of a scoped (capsule) server; None for a [[servers]] one.
    scope: str | None = None

    def action(self, args: JsonObject, ctx: ToolContext) -> SensitiveAction:
        del ctx
        return McpToolCall(server=self.server, tool=self.tool, args=dict(args))

    async def run(self, args: JsonObject, action: SensitiveAction, ctx: ToolContext) -> str:
        assert isinstance(action, McpToolCall)
        if self.scope is not None and ctx.workspace != self.scope:
            # Only installed into sessions of its workspace; a registry shared by mistake
            # must still not reach another workspace's roots.
            raise AstridError(
                f"MCP server {self.server} serves workspace {self.scope}, not {ctx.workspace}"
            )
        return await self.bridge.call(ctx.session_id, action)


@dataclass(frozen=True)
class _Scoped:
    """What a scoped server gets beyond its config: roots, and a check before every launch."""

    roots: tuple[Path, ...]
    before_launch: Callable[[], Awaitable[None]] | None


@dataclass
class _PendingLogin:
    """A sign-in started by `astrid servers login`: its URL goes back to that command."""

    url: str | None = None
    url_ready: anyio.Event = field(default_factory=anyio.Event)
    settled: anyio.Event = field(default_factory=anyio.Event)


class McpBridge:
    # How long `astrid servers login` waits for the authorization URL (or a start without one).
    login_url_timeout_s = 60.0
    # How long a sign-in waits for the browser to come back.
    login_timeout_s = 300.0
    # How long ensure_servers waits for run() to enter the manager (it was just scheduled).
    hosting_timeout_s = 10.0

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
        self._storage = storage
        self._audit = audit
        self._frontend = frontend
        self._sampler = sampler
        self.sampler = sampler
        self._log_dir = home / "logs" / "mcp"
        # One key seals the OAuth tokens of every server; its file appears at the first sign-in.
        self._oauth_key = oauth_sealing_key(home)
        self._configs = {config.name: config for config in servers}
        self._logins: dict[str, _PendingLogin] = {}
        self._scoped: dict[str, _Scoped] = {}
        self._launches: dict[str, anyio.Event] = {}
        self._task_group: TaskGroup | None = None
        self._hosting = anyio.Event()
        self.manager = McpServerManager(servers, client_factory=self._new_client)
        self.running = anyio.Event()

    async def _new_client(self, config: McpServerConfig) -> SecureMcpClient:
        scoped = self._scoped.get(config.name)
        if scoped is not None and scoped.before_launch is not None:
            await scoped.before_launch()  # raising refuses this launch (the status says why)
        http_auth = None
        if config.oauth is not None:
            redactor = getattr(self._audit, "redactor", None)
            http_auth = await oauth_provider(
                config,
                self._storage,
                show_url=lambda url: self._show_login_url(config.name, url),
                login_timeout_s=self.login_timeout_s,
                # Tokens are masked wherever they would reach the audit log.
                on_secret=redactor.add_secret if redactor is not None else None,
                sealing_key=self._oauth_key,
            )
        return SecureMcpClient(
            config,
            guard=_ServerGuard(self, config.name),
            frontend=_FrontendProxy(  # type: ignore[arg-type]
                self._frontend, lambda: self.session_for_server(config.name)
            ),
            sampler=self._sampler,
            pins=ToolPins(self._storage),
            audit=self._audit,
            log_dir=self._log_dir,
            http_auth=http_auth,
            roots=scoped.roots if scoped is not None else (),
        )

    # -- lifecycle: run() lives in a task of the daemon's task group --------------------------

    async def run(self) -> None:
        try:
            async with self.manager, anyio.create_task_group() as group:
                self._task_group = group
                self._hosting.set()
                await self.manager.start_all()
                self.running.set()
                await anyio.sleep_forever()
        finally:
            # The manager has stopped every server: nothing may be started under it any more.
            self._task_group = None
            self._hosting = anyio.Event()

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

    # -- OAuth sign-in ---------------------------------------------------------------------------

    async def _show_login_url(self, name: str, url: str) -> None:
        pending = self._logins.get(name)
        if pending is not None:  # `astrid servers login NAME` is waiting to print it
            pending.url = url
            pending.url_ready.set()
            return
        frontend = self._frontend()
        if frontend is not None:
            request = UrlElicitationRequest(
                source=f"mcp:{name}",
                message=f"MCP server {name} needs you to sign in: open this URL in a browser",
                url=url,
            )
            try:
                await frontend.elicit_url(request)
                return
            except AstridError:  # nobody connected to the frontend to open it
                pass
        raise OAuthLoginRequired(
            f"MCP server {name!r} needs a sign-in and no frontend is connected to show its URL",
            hint=f"run `astrid servers login {name}`",
        )

    def _oauth_config(self, name: str) -> McpServerConfig:
        config = self._configs.get(name)
        if config is None:
            raise NotFoundError(
                f"no MCP server named {name!r}", hint=f"configured: {', '.join(self._configs)}"
            )
        if config.oauth is None or not isinstance(config.transport, HttpTransport):
            raise ConfigError(
                f"MCP server {name!r} does not sign in with OAuth",
                hint="add `oauth = {}` to its [[servers]] entry (url servers only)",
            )
        return config

    def _token_store(self, config: McpServerConfig) -> OAuthTokenStore:
        assert isinstance(config.transport, HttpTransport)
        return OAuthTokenStore(
            self._storage, config.name, config.transport.url, sealing_key=self._oauth_key
        )

    async def login(self, name: str) -> JsonObject:
        """Restart ``name`` with a fresh sign-in; returns its status and the authorization URL.

        The URL (``url``) is None when the server started without asking for one. Otherwise
        the server is still starting: it runs once the browser has come back, which
        ``finish_login(name)`` waits for.
        """
        config = self._oauth_config(name)
        if self._task_group is None:
            raise AstridError("the MCP servers are not running yet", hint="try again in a moment")
        if name in self._logins:
            raise AstridError(
                f"a sign-in to MCP server {name!r} is already waiting for its browser",
                hint=f"finish it, or wait {self.login_timeout_s:g} s for it to time out",
            )
        await self.manager.stop(name)
        await self._token_store(config).forget_tokens()
        await self._record(name, "oauth_login", "sign-in started; stored tokens dropped")
        pending = self._logins[name] = _PendingLogin()

        async def start() -> None:
            try:
                await self.manager.start(name)
            except AstridError:
                pass  # in the server's status, which the caller reads
            finally:
                pending.settled.set()
                if self._logins.get(name) is pending:
                    del self._logins[name]

        self._task_group.start_soon(start)
        with anyio.move_on_after(self.login_url_timeout_s):
            await _first_of(pending.url_ready.wait, pending.settled.wait)
        row = next(s for s in self.status() if s["name"] == name)
        return {**row, "url": pending.url}

    async def finish_login(self, name: str) -> JsonObject:
        """Wait (bounded) for the sign-in ``login`` started to end; the status after it.

        Never starts anything: a sign-in that failed is reported in ``last_error``, not retried.
        """
        self._oauth_config(name)
        pending = self._logins.get(name)
        if pending is not None:
            with anyio.move_on_after(self.login_timeout_s + self.login_url_timeout_s):
                await pending.settled.wait()
        return next(s for s in self.status() if s["name"] == name)

    async def logout(self, name: str) -> JsonObject:
        """Stop ``name`` and delete its stored tokens and registration."""
        config = self._oauth_config(name)
        await self.manager.stop(name)
        removed = await self._token_store(config).forget()
        await self._record(name, "oauth_logout", "signed out; stored tokens deleted")
        row = next(s for s in self.status() if s["name"] == name)
        return {**row, "signed_out": removed}

    async def _record(self, name: str, event: str, what: str) -> None:
        # Names the event only: tokens are never part of an audit entry.
        if self._audit is not None:
            await AuditTrail(self._audit).event(
                Outcome(
                    kind=OutcomeKind.MCP_SERVER_EVENT,
                    reason=f"MCP server {name}: {what}",
                    detail={"server": name, "event": event},
                )
            )

    async def approve(self, server: str, tool: str) -> JsonObject:
        approved = await self.manager.client(server).approve_tool(tool)
        return {"server": server, "tool": tool, "fingerprint": approved.fingerprint}

    def sandbox_report(self) -> str:
        return self.manager.sandbox_report()

    async def mcp_annotations(self, server: str, tool: str) -> JsonObject | None:
        """The annotations the server declared for ``tool`` (information flow reads
        readOnlyHint / destructiveHint / openWorldHint), or None when unknown.

        The hints are the server's own word. ``readOnlyHint`` is honoured only when the server
        cannot carry a call's arguments anywhere: a sandboxed stdio server without network, or
        one an admin marked ``trusted``. Otherwise a malicious server could label its
        exfiltrating tool read-only and a tainted session would call it unasked."""
        try:
            client = self.manager.client(server)
            remote = (await client.tools()).get(tool)
        except AstridError:
            return None
        if remote is None:
            return None
        annotations = dict(remote.annotations)
        if annotations.get("readOnlyHint") is True and _can_reach_out(client.config):
            annotations["readOnlyHint"] = False
        return annotations

    # -- scoped servers (a capsule's, for one workspace) ----------------------------------------

    async def ensure_servers(
        self,
        configs: Sequence[McpServerConfig],
        *,
        roots: Sequence[Path] = (),
        before_launch: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        """Start those of ``configs`` that are not running or starting yet; returns at once.

        They become scoped servers: each gets ``roots`` as its filesystem roots, and
        ``before_launch`` runs before each of its launches (restarts too), so a launch can be
        refused. A name identifies one exact config (the caller puts a digest of config and
        roots in it), so a server already known is simply reused.
        """
        group = await self._host()
        for config in configs:
            if config.name in self._configs:
                raise ConfigError(
                    f"MCP server name {config.name!r} is taken by a [[servers]] entry",
                    hint="rename the [[servers]] entry: names starting 'capsule-' are for"
                    " capsules' servers",
                )
            if config.name not in self._scoped:
                self._scoped[config.name] = _Scoped(tuple(roots), before_launch)
                self.manager.add(config)
            self._launch(group, config.name)

    async def _host(self) -> TaskGroup:
        with anyio.move_on_after(self.hosting_timeout_s):
            await self._hosting.wait()
        if self._task_group is None:
            raise AstridError(
                "the MCP servers are not running",
                hint="run the runtime's background work (AgentRuntime.run_background), as the"
                " daemon does",
            )
        return self._task_group

    def _launch(self, group: TaskGroup, name: str) -> None:
        # Synchronous from the check to start_soon: two sessions loading the same capsule at
        # once must not start two processes for one server.
        pending = self._launches.get(name)
        if pending is not None and not pending.is_set():
            return
        if self.manager.status(name)[0].state in _UNDER_WAY:
            return
        done = self._launches[name] = anyio.Event()

        async def start() -> None:
            try:
                await self.manager.start(name)
            except AstridError:
                pass  # recorded in the server's status
            finally:
                done.set()

        group.start_soon(start)

    async def install_scoped(
        self, registry: ToolRegistry, servers: Mapping[str, str], *, scope: str, wait_s: float
    ) -> list[tuple[str, str]]:
        """Make ``registry``'s scoped MCP tools those of ``servers`` (running name -> the server
        name the model sees) that run now, waiting up to ``wait_s`` for ones still starting.

        A tool whose name would not fit or is taken is skipped (never truncated: two tools
        must not share a name); returns those as (server, problem).
        """
        with anyio.move_on_after(wait_s):
            for name in servers:
                if (pending := self._launches.get(name)) is not None:
                    await pending.wait()
        for name in registry.names():
            tool = registry.get(name)
            if isinstance(tool, McpToolAdapter) and tool.scope is not None:
                registry.remove(name)
        problems: list[tuple[str, str]] = []
        for server, shown in servers.items():
            try:
                remotes = (await self.manager.client(server).tools()).values()
            except AstridError:
                continue  # not running: its state and error are in the server status
            for remote in (r for r in remotes if r.enabled):
                name = _TOOL_NAME.sub("_", f"mcp__{shown}__{remote.name}")
                if len(name) > 64 or registry.get(name) is not None:
                    why = "its name is too long or already taken"
                    problems.append((server, f"MCP tool {shown}/{remote.name} skipped: {why}"))
                    continue
                registry.add(self._adapter(name, remote, scope))
        return problems

    def _adapter(self, name: str, remote: RemoteTool, scope: str | None) -> McpToolAdapter:
        return McpToolAdapter(
            name=name,
            description=(
                f"[MCP tool {remote.name} of server {remote.server}; its description is"
                f" the server's, untrusted] {remote.description}"
            ),
            input_schema=dict(remote.input_schema) or {"type": "object"},
            server=remote.server,
            tool=remote.name,
            bridge=self,
            scope=scope,
        )

    # -- guard plumbing ------------------------------------------------------------------------

    def take_grant(self, action: McpToolCall) -> bool:
        if action in self._grants:
            self._grants.remove(action)
            return True
        return False

    def session_for_server(self, server: str) -> SessionId | None:
        sessions = self._active.get(server)
        return SessionId(next(iter(sessions))) if sessions else None

    def interceptor_for_server(self, server: str) -> SecurityInterceptor | None:
        session = self.session_for_server(server)
        return self._interceptor(session) if session is not None else None

    # -- tools ---------------------------------------------------------------------------------

    async def call(self, session_id: SessionId, action: McpToolCall) -> str:
        client = self.manager.client(action.server)
        result = await self.call_raw(session_id, action)
        result = tool_result(action.server, action.tool, result, client.config.max_output_bytes)
        text = cap_output(result.text)
        return f"error from {action.server}/{action.tool}: {text}" if result.is_error else text

    async def call_raw(
        self, session_id: SessionId, action: McpToolCall, *, progress: Any = None
    ) -> types.CallToolResult:
        """Run an action the session's interceptor already allowed; the server's result whole.

        Server requests during the call (sampling) go to that session's interceptor."""
        client = self.manager.client(action.server)
        active = self._active.setdefault(action.server, Counter())
        active[str(session_id)] += 1
        self._grants.append(action)
        try:
            return await client.call_tool_raw(action.tool, action.args, progress=progress)
        finally:
            active[str(session_id)] -= 1
            if active[str(session_id)] <= 0:
                del active[str(session_id)]
            if action in self._grants:  # refused before the guard ran: never leave a grant
                self._grants.remove(action)

    async def tools(self) -> list[RemoteTool]:
        """The tools of the [[servers]] (offered to every session); scoped servers' are not."""
        found: list[RemoteTool] = []
        for status in self.manager.status():
            if status.name in self._scoped:
                continue
            try:
                client = self.manager.client(status.name)
                found.extend(t for t in (await client.tools()).values() if t.enabled)
            except AstridError:
                continue
        return found

    async def install(self, registry: ToolRegistry) -> None:
        """Make the registry's [[servers]] tools match what those servers offer right now
        (scoped tools are left to ``install_scoped``)."""
        for name in registry.names():
            tool = registry.get(name)
            if isinstance(tool, McpToolAdapter) and tool.scope is None:
                registry.remove(name)
        for remote in await self.tools():
            registry.add(self._adapter(mcp_tool_name(remote.server, remote.name), remote, None))

    def status(self) -> list[JsonObject]:
        sandbox = self.manager.sandbox_report()
        return [
            {
                "name": s.name,
                "state": s.state.value,
                "tools": s.tools,
                "restarts": s.restarts,
                "sandboxed": s.sandboxed,
                "network": s.network,
                "network_mode": s.network_mode,
                "confinement": s.confinement,
                "sandbox": sandbox,
                "last_error": s.last_error,
            }
            for s in self.manager.status()
        ]


async def _first_of(*waits: Callable[[], Any]) -> None:
    async with anyio.create_task_group() as group:

        async def run(wait: Callable[[], Any]) -> None:
            await wait()
            group.cancel_scope.cancel()

        for wait in waits:
            group.start_soon(run, wait)


def _can_reach_out(config: McpServerConfig) -> bool:
    """Whether a server's tool calls can leave this machine (so its hints cannot be taken on
    trust): a URL server always does; a stdio one unless sandboxed without network."""
    if config.trusted:
        return False
    if isinstance(config.transport, HttpTransport):
        return True
    sandbox = config.sandbox
    return not sandbox.enabled or sandbox.network is True or bool(sandbox.net)
