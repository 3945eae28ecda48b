"""``astrid mcp serve``: the daemon as an MCP server in front of the ``[[servers]]``.

Any MCP client (Claude Code, Claude Desktop, Cursor, the MCP Inspector) connects to Astrid
instead of to its MCP servers. The server side runs *inside the daemon*: one policy, one audit
log, one budget, the servers' one sandboxed process each. Every downstream client is a session
of the runtime (created at its first request, in the workspace it names, with its name and
version on the audit log), so its calls pass the same SecurityInterceptor as the agent's.

Transports: streamable HTTP on loopback (``McpHttpEndpoint``), with a bearer token from
``$ASTRID_HOME/mcp.token``; requests carrying an ``Origin`` are refused (a web page cannot
reach it), as is a ``Host`` that is not the loopback address we listen on. The stdio form
(``astrid mcp serve``, what a client's config runs) is a thin bridge in the CLI that copies
stdin/stdout to the daemon's unix socket (``_mcp_socket``), so there is only ever one runtime.

What a client sees:

* **Tools** under injective namespaced names (``astrid_mcp.gateway_names``). A tool is offered
  only when its pin is unchanged *and* a person accepted this exact definition for this exact
  server launch (command, arguments, environment, URL: ``launch_digest``) with ``astrid mcp
  approve``. A changed, new (a rename included) or flagged (``astrid_mcp.screening``) tool is
  not offered until then; a client that was connected sees ``notifications/tools/list_changed``.
* **Calls** are ``McpToolCall`` actions through the session's interceptor (policy, grants,
  mode, budget, approval, audit). Refused: an error result naming why; waiting for a person
  with nobody to answer: "not approved; approve with `astrid approvals`" (deferred as usual).
* **Resources and prompts** (list, templates, read, get) are forwarded; a read or a get is an
  ``McpToolCall`` of the reserved tool ``#resources.read`` / ``#prompts.get`` (``#`` is not
  allowed in MCP tool names, so no real tool shares those grants).
* Text a server returns is ``neutralize``d: no terminal escapes or control characters reach
  the client, its terminal or its model.
"""

from __future__ import annotations

import contextlib
import contextvars
import hmac
import logging
import os
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
from anyio.abc import TaskGroup
from mcp import types
from mcp.server.lowlevel import NotificationOptions, Server
from mcp.server.models import InitializationOptions

from astrid_audit import AuditTrail, Outcome, OutcomeKind
from astrid_core import (
    ApprovalDecision,
    ApprovalOption,
    ApprovalRequest,
    AstridError,
    FrontendUnavailable,
    JsonObject,
    McpToolCall,
    SessionId,
)
from astrid_mcp._digest import json_digest
from astrid_mcp.gateway_names import namespaced
from astrid_mcp.screening import Finding, neutralize, screen_tools

from . import __version__

__all__ = [
    "McpFront",
    "McpHttpEndpoint",
    "launch_digest",
    "TOKEN_FILE",
    "WORKSPACE_HEADER",
    "READ_RESOURCE",
    "GET_PROMPT",
]

log = logging.getLogger("astrid.gateway.mcp")

TOKEN_FILE = "mcp.token"  # noqa: S105 - a file name
WORKSPACE_HEADER = "X-Astrid-Workspace"
READ_RESOURCE = "#resources.read"
GET_PROMPT = "#prompts.get"
ACCEPTED = "mcp_gateway_accepted"  # storage namespace: server/tool -> accepted definition
NOT_APPROVED = "not approved; approve with `astrid approvals`"
_WATCH_INTERVAL_S = 0.25
_FLUSH_AFTER_S = 0.05  # queued outcome records are written at most this long after the call
# The request context of the client call being authorized: an approval it needs may be asked
# of that client as an elicitation, on that request's own stream.
_CALLER: contextvars.ContextVar[Any] = contextvars.ContextVar("astrid_mcp_caller")


def launch_digest(config: Any) -> str:
    """What starts the server and what it is given: any change voids its accepted tools."""
    dumped = config.model_dump(mode="json", include={"transport", "blake3", "sandbox", "oauth"})
    return json_digest(dumped)[0]


@dataclass
class ToolView:
    """One upstream tool as the gateway sees it."""

    server: str
    tool: str
    name: str  # the namespaced name a client sees
    definition: JsonObject
    fingerprint: str
    pinned: bool  # False: changed since its pin
    accepted: bool  # a person accepted this definition for this launch
    findings: list[Finding] = field(default_factory=list[Finding])

    @property
    def offered(self) -> bool:
        return self.pinned and self.accepted

    @property
    def state(self) -> str:
        if not self.pinned:
            return "changed since approved"
        if not self.accepted:
            return "flagged, waiting for approval" if self.findings else "waiting for approval"
        return "offered"

    def row(self) -> JsonObject:
        return {
            "server": self.server,
            "tool": self.tool,
            "name": self.name,
            "state": self.state,
            "offered": self.offered,
            "description": neutralize(str(self.definition.get("description") or "")),
            "findings": [str(f) for f in self.findings],
            "fingerprint": self.fingerprint,
        }


@dataclass
class _Downstream:
    """One connected MCP client: its Astrid session and what it was last shown."""

    client: str
    version: str
    workspace: str | None
    session_id: SessionId | None = None
    shown: frozenset[str] = frozenset()
    watching: bool = False


class McpFront:
    """The MCP server (lowlevel SDK ``Server``) the daemon offers downstream clients."""

    def __init__(self, runtime: Any, task_group: TaskGroup) -> None:
        self.runtime = runtime
        self._tg = task_group
        self._table: dict[str, tuple[str, str]] = {}
        self._by_name: dict[str, ToolView] = {}
        # views() is asked on every call and by every client's watcher: it is recomputed (with
        # its storage reads and screening) only when a listing or an acceptance changed.
        self._generation = 0
        self._cache_key: Any = None
        self._cache: list[ToolView] = []
        self._resources: dict[str, str] = {}  # uri -> server
        self._prompts: dict[str, tuple[str, str]] = {}
        self._session_lock = anyio.Lock()
        self._flush_pending = False
        self.server = _Server(
            "astrid",
            version=__version__,
            instructions=(
                "Astrid fronts your MCP servers: tools are named server__tool; every call is"
                " checked by Astrid's policy and may wait for a person's approval."
            ),
            on_list_tools=self._list_tools,
            on_call_tool=self._call_tool,
            on_list_resources=self._list_resources,
            on_list_resource_templates=self._list_templates,
            on_read_resource=self._read_resource,
            on_list_prompts=self._list_prompts,
            on_get_prompt=self._get_prompt,
        )

    # -- upstream view -------------------------------------------------------------------------

    def _bridge(self) -> Any:
        return self.runtime.mcp.bridge

    def _clients(self) -> list[Any]:
        bridge = self._bridge()
        if bridge is None:
            return []
        clients: list[Any] = []
        for status in bridge.manager.status():
            try:
                clients.append(bridge.manager.client(status.name))
            except AstridError:
                continue  # not running: `astrid servers list` says why
        return clients

    async def views(self) -> list[ToolView]:
        """Every upstream tool with its state; also rebuilds the name table."""
        listed: dict[str, list[JsonObject]] = {}
        clients = self._clients()
        tools_of: dict[str, dict[str, Any]] = {}
        for client in clients:
            try:
                tools_of[client.name] = await client.tools()
            except AstridError:
                continue
            listed[client.name] = list(client.listed.values())
        key = (
            self._generation,
            tuple(
                (c.name, id(c), tuple((n, t.fingerprint, t.enabled) for n, t in tools.items()))
                for c in clients
                if (tools := tools_of.get(c.name)) is not None
            ),
        )
        if key == self._cache_key:  # nothing changed upstream or in the acceptances
            return self._cache
        findings = screen_tools(listed)
        storage = self.runtime.storage
        views: list[ToolView] = []
        for client in clients:
            if client.name not in tools_of:
                continue
            launch = launch_digest(client.config)
            for name, tool in tools_of[client.name].items():
                definition = client.listed.get(name, {})
                record = await storage.get(ACCEPTED, f"{client.name}/{name}")
                accepted = (
                    isinstance(record, dict)
                    and record.get("fingerprint") == tool.fingerprint
                    and record.get("launch") == launch
                )
                views.append(
                    ToolView(
                        server=client.name,
                        tool=name,
                        name=namespaced(client.name, name),
                        definition=definition,
                        fingerprint=tool.fingerprint,
                        pinned=tool.enabled,
                        accepted=accepted,
                        findings=findings.get((client.name, name), []),
                    )
                )
        table: dict[str, tuple[str, str]] = {}
        for view in views:
            if view.name in table:  # cannot happen short of a digest collision: offer neither
                log.error("two tools share the gateway name %s; neither is offered", view.name)
                view.accepted = False
                continue
            table[view.name] = (view.server, view.tool)
        self._table = table
        self._by_name = {view.name: view for view in views if view.name in table}
        self._cache_key, self._cache = key, views
        return views

    async def approve(self, server: str, tool: str | None, actor: str) -> list[JsonObject]:
        """Accept ``tool`` (or every unflagged tool) of ``server`` as defined now; audited
        first. A changed tool is re-pinned too (the person saw its new definition)."""
        views = [v for v in await self.views() if v.server == server]
        if not views:
            raise AstridError(
                f"MCP server {server!r} is not running or has no tools",
                hint="see `astrid servers list`",
                code="not_found",
            )
        chosen = [v for v in views if (v.tool == tool if tool else not v.findings)]
        if tool and not chosen:
            raise AstridError(
                f"MCP server {server!r} has no tool {tool!r}",
                hint=f"see `astrid mcp tools`; {server} has: {', '.join(v.tool for v in views)}",
                code="not_found",
            )
        bridge = self._bridge()
        client = bridge.manager.client(server)
        launch = launch_digest(client.config)
        for view in chosen:
            await AuditTrail(self.runtime.audit).event(
                Outcome(
                    kind=OutcomeKind.MCP_TOOL_APPROVED,
                    reason=f"tool {view.tool!r} of MCP server {server!r} accepted for MCP clients"
                    f" by {actor}",
                    detail={
                        "server": server,
                        "tool": view.tool,
                        "fingerprint": view.fingerprint,
                        "launch": launch,
                        "findings": [str(f) for f in view.findings],
                    },
                )
            )
            if not view.pinned:
                await client.approve_tool(view.tool)
            await self.runtime.storage.put(
                ACCEPTED,
                f"{server}/{view.tool}",
                {"fingerprint": view.fingerprint, "launch": launch},
            )
            self._generation += 1
        return [v.row() for v in await self.views() if v.server == server]

    # -- downstream sessions -------------------------------------------------------------------

    async def _downstream(self, ctx: Any) -> _Downstream:
        connection = ctx.session._connection  # pyright: ignore[reportPrivateUsage]
        found = connection.state.get("astrid")
        if found is not None:
            return found
        params = ctx.session.client_params
        info = params.client_info if params is not None else None
        headers = getattr(ctx.request, "headers", None)
        workspace = headers.get(WORKSPACE_HEADER) if headers is not None else None
        if workspace is None:
            from ._mcp_socket import SOCKET_WORKSPACE

            workspace = SOCKET_WORKSPACE.get()
        found = _Downstream(
            client=neutralize(info.name if info else "unknown")[:100],
            version=neutralize(info.version if info else "")[:50],
            workspace=workspace,
        )
        connection.state["astrid"] = found
        return found

    async def _session(self, ds: _Downstream) -> SessionId:
        async with self._session_lock:
            if ds.session_id is None:
                info = await self.runtime.create_session(ds.workspace)
                ds.session_id = info.session_id
                interceptor = self.runtime.interceptor_of(ds.session_id)
                if interceptor is not None:
                    approvals = interceptor.approvals
                    approvals.register(_AlsoAskTheClient(approvals.handler, ds.client))
                await AuditTrail(self.runtime.audit, ds.session_id).event(
                    Outcome(
                        kind=OutcomeKind.MCP_SERVER_EVENT,
                        reason=f"MCP client {ds.client} {ds.version} connected to astrid mcp serve",
                        detail={
                            "event": "mcp_client_session",
                            "client": ds.client,
                            "version": ds.version,
                        },
                    )
                )
        session = ds.session_id
        assert session is not None
        return session

    def _watch(self, ctx: Any, ds: _Downstream) -> None:
        """Tell this client when the set of offered tools changes (a rug pull, an approval)."""
        if ds.watching:
            return
        ds.watching = True
        connection = ctx.session._connection  # pyright: ignore[reportPrivateUsage]

        async def watch() -> None:
            try:
                while True:
                    await anyio.sleep(_WATCH_INTERVAL_S)
                    offered = frozenset(v.name for v in await self.views() if v.offered)
                    if offered != ds.shown:
                        ds.shown = offered
                        await connection.send_tool_list_changed()
            except Exception:  # the client went away (or the runtime closes): stop watching
                ds.watching = False

        self._tg.start_soon(watch)

    # -- tools -----------------------------------------------------------------------------------

    async def _list_tools(
        self, ctx: Any, params: types.PaginatedRequestParams | None
    ) -> types.ListToolsResult:
        ds = await self._downstream(ctx)
        offered = [v for v in await self.views() if v.offered]
        ds.shown = frozenset(v.name for v in offered)
        self._watch(ctx, ds)
        return _neutralized(types.ListToolsResult(tools=[_client_tool(v) for v in offered]))

    async def _call_tool(
        self, ctx: Any, params: types.CallToolRequestParams
    ) -> types.CallToolResult:
        ds = await self._downstream(ctx)
        await self.views()  # cached: a changed tool must be refused, not called
        view = self._by_name.get(params.name)
        if view is None:
            return _error(f"no tool named {params.name!r} is offered by astrid")
        if not view.offered:
            return _error(
                f"tool {view.server}/{view.tool} is not offered: {view.state}; "
                f"approve it with `astrid mcp approve {view.server} {view.tool}`"
            )
        action = McpToolCall(server=view.server, tool=view.tool, args=dict(params.arguments or {}))
        progress = _progress_relay(ctx)
        return await self._guarded(
            ctx,
            ds,
            action,
            f"MCP client {ds.client} called {params.name}",
            lambda session, allowed: self._bridge().call_raw(session, allowed, progress=progress),
        )

    async def _guarded(
        self,
        ctx: Any,
        ds: _Downstream,
        action: McpToolCall,
        reason: str,
        run: Callable[[SessionId, McpToolCall], Awaitable[Any]],
    ) -> Any:
        session = await self._session(ds)
        interceptor = self.runtime.interceptor_of(session)
        if interceptor is None:
            return _error("the Astrid session of this client has ended; reconnect")
        token = _CALLER.set(ctx)
        try:
            decision = await interceptor.intercept(action, reason)
        finally:
            _CALLER.reset(token)
        if not decision.allowed:
            if decision.deferred:
                return _error(f"{NOT_APPROVED} ({decision.authorization.reason})")
            return _error(f"denied by Astrid: {decision.authorization.reason}")
        allowed = decision.action
        try:
            result = await run(session, allowed)
        except AstridError as exc:
            await interceptor.record_outcome(decision, success=False, output=exc.message)
            return _error(f"{exc.message}" + (f" (hint: {exc.hint})" if exc.hint else ""))
        result = _neutralized(result)
        text = _text_of(result)
        # The decision is durable before the call ran; its outcome joins the next audit write
        # (another call's decision) or the flush scheduled here, whichever comes first.
        await interceptor.record_outcome(
            decision, success=not getattr(result, "is_error", False), output=text, queue=True
        )
        self._schedule_flush(interceptor.audit)
        return result

    def _schedule_flush(self, audit: Any) -> None:
        if self._flush_pending:
            return
        self._flush_pending = True

        async def flush() -> None:
            try:
                await anyio.sleep(_FLUSH_AFTER_S)
            finally:
                self._flush_pending = False
                with anyio.CancelScope(shield=True):
                    try:
                        await audit.flush()
                    except AstridError:
                        log.exception("audit flush of MCP gateway outcomes failed")

        self._tg.start_soon(flush)

    # -- resources and prompts -----------------------------------------------------------------

    async def _list_resources(
        self, ctx: Any, params: types.PaginatedRequestParams | None
    ) -> types.ListResourcesResult:
        await self._downstream(ctx)
        found: list[types.Resource] = []
        owners: dict[str, str] = {}
        for client in self._clients():
            try:
                resources = await client.list_resources()
            except AstridError:
                continue
            for resource in resources:
                uri = str(resource.uri)
                if uri in owners:  # two servers, one URI: reads would be ambiguous; first wins
                    continue
                owners[uri] = client.name
                found.append(resource)
        self._resources = owners
        return _neutralized(types.ListResourcesResult(resources=found))

    async def _list_templates(
        self, ctx: Any, params: types.PaginatedRequestParams | None
    ) -> types.ListResourceTemplatesResult:
        await self._downstream(ctx)
        found: list[types.ResourceTemplate] = []
        for client in self._clients():
            try:
                found.extend(await client.list_resource_templates())
            except AstridError:
                continue
        return _neutralized(types.ListResourceTemplatesResult(resource_templates=found))

    async def _read_resource(
        self, ctx: Any, params: types.ReadResourceRequestParams
    ) -> types.ReadResourceResult:
        ds = await self._downstream(ctx)
        uri = str(params.uri)
        if uri not in self._resources:
            await self._list_resources(ctx, None)
        server = self._resources.get(uri)
        if server is None:
            server = await self._template_owner(uri)
        if server is None:
            raise _McpRefusal(f"no MCP server behind astrid offers resource {uri}")
        action = McpToolCall(server=server, tool=READ_RESOURCE, args={"uri": uri})

        async def read(session: SessionId, allowed: McpToolCall) -> Any:
            return await self._bridge().manager.client(server).read_resource(uri)

        result = await self._guarded(ctx, ds, action, f"MCP client {ds.client} read {uri}", read)
        if isinstance(result, types.CallToolResult):  # refused
            raise _McpRefusal(_text_of(result))
        return result

    async def _template_owner(self, uri: str) -> str | None:
        for client in self._clients():
            try:
                templates = await client.list_resource_templates()
            except AstridError:
                continue
            for template in templates:
                prefix = str(template.uri_template).split("{", 1)[0]
                if prefix and uri.startswith(prefix):
                    return client.name
        return None

    async def _list_prompts(
        self, ctx: Any, params: types.PaginatedRequestParams | None
    ) -> types.ListPromptsResult:
        await self._downstream(ctx)
        found: list[types.Prompt] = []
        table: dict[str, tuple[str, str]] = {}
        for client in self._clients():
            try:
                prompts = await client.list_prompts()
            except AstridError:
                continue
            for prompt in prompts:
                name = namespaced(client.name, prompt.name)
                table[name] = (client.name, prompt.name)
                found.append(prompt.model_copy(update={"name": name}))
        self._prompts = table
        return _neutralized(types.ListPromptsResult(prompts=found))

    async def _get_prompt(
        self, ctx: Any, params: types.GetPromptRequestParams
    ) -> types.GetPromptResult:
        ds = await self._downstream(ctx)
        if params.name not in self._prompts:
            await self._list_prompts(ctx, None)
        target = self._prompts.get(params.name)
        if target is None:
            raise _McpRefusal(f"no prompt named {params.name!r} is offered by astrid")
        server, prompt = target
        arguments: JsonObject = dict(params.arguments or {})
        action = McpToolCall(
            server=server, tool=GET_PROMPT, args={"prompt": prompt, "arguments": arguments}
        )

        async def get(session: SessionId, allowed: McpToolCall) -> Any:
            return await self._bridge().manager.client(server).get_prompt(prompt, arguments)

        result = await self._guarded(
            ctx, ds, action, f"MCP client {ds.client} got prompt {prompt}", get
        )
        if isinstance(result, types.CallToolResult):
            raise _McpRefusal(_text_of(result))
        return result


class _AlsoAskTheClient:
    """The session's approval handler (the daemon's frontends), plus the MCP client itself
    when it can elicit: the question goes to both, the first answer wins, the other question
    is withdrawn. A client that dismisses the form leaves the question to the frontends (and
    to deferral when nobody answers)."""

    def __init__(self, inner: Any, client: str) -> None:
        self.inner = inner
        self.client = client

    async def request_approval(self, request: ApprovalRequest) -> ApprovalDecision:
        ctx = _CALLER.get(None)
        if ctx is None or not _can_elicit(ctx):
            if self.inner is None:
                raise FrontendUnavailable("no frontend is connected to answer")
            return await self.inner.request_approval(request)
        answers: list[ApprovalDecision] = []
        async with anyio.create_task_group() as tg:

            async def via_frontends() -> None:
                if self.inner is None:
                    return
                try:
                    answers.append(await self.inner.request_approval(request))
                except FrontendUnavailable:
                    return  # nobody there: the client may still answer
                tg.cancel_scope.cancel()

            async def via_client() -> None:
                answer = await _elicit_approval(ctx, request, self.client)
                if answer is not None:
                    answers.append(answer)
                    tg.cancel_scope.cancel()

            tg.start_soon(via_frontends)
            tg.start_soon(via_client)
        if not answers:
            raise FrontendUnavailable("nobody answered the approval")
        return answers[0]


def _can_elicit(ctx: Any) -> bool:
    capabilities = ctx.session.client_capabilities
    return capabilities is not None and capabilities.elicitation is not None


async def _elicit_approval(
    ctx: Any, request: ApprovalRequest, client: str
) -> ApprovalDecision | None:
    options = [option.value for option in request.options]
    lines = [neutralize(request.summary), *(neutralize(r) for r in request.ask_reasons)]
    if request.preview:
        lines.append(neutralize(request.preview)[:1500])
    schema: dict[str, Any] = {
        "type": "object",
        "properties": {
            "decision": {
                "type": "string",
                "title": "Your decision",
                "enum": options,
                "default": "deny",
            }
        },
        "required": ["decision"],
    }
    try:
        result = await ctx.session.elicit_form(
            "Astrid asks for your approval:\n" + "\n".join(lines),
            schema,  # pyright: ignore[reportArgumentType]
            related_request_id=ctx.request_id,
        )
    except Exception:  # the client cannot (or will not) show it: the frontends still can
        log.info("elicitation for approval %s failed", request.request_id, exc_info=True)
        return None
    if result.action == "decline":
        option = ApprovalOption.DENY
    elif result.action == "accept" and isinstance(result.content, dict):
        chosen = result.content.get("decision")  # pyright: ignore[reportUnknownMemberType]
        if chosen not in options:
            return None
        option = ApprovalOption(chosen)
    else:
        return None
    return ApprovalDecision(
        request_id=request.request_id,
        option=option,
        decided_by=f"mcp client {client} (elicitation)",
    )


class _Server(Server[Any]):
    """Advertises list_changed for tools, resources and prompts (we send them)."""

    def create_initialization_options(
        self,
        notification_options: NotificationOptions | None = None,
        experimental_capabilities: dict[str, dict[str, Any]] | None = None,
        extensions: dict[str, dict[str, Any]] | None = None,
    ) -> InitializationOptions:
        return super().create_initialization_options(
            notification_options
            or NotificationOptions(
                prompts_changed=True, resources_changed=True, tools_changed=True
            ),
            experimental_capabilities,
            extensions,
        )


class _McpRefusal(Exception):
    """Raised from a resource or prompt handler: the SDK turns it into a JSON-RPC error."""


def _client_tool(view: ToolView) -> types.Tool:
    d = view.definition
    description = neutralize(str(d.get("description") or ""))
    return types.Tool(
        name=view.name,
        title=neutralize(str(d["title"])) if d.get("title") else None,
        description=f"[{view.server}] {description}",
        input_schema=_schema(d.get("inputSchema")) or {"type": "object"},
        output_schema=_schema(d.get("outputSchema")),
        annotations=types.ToolAnnotations.model_validate(d["annotations"])
        if d.get("annotations")
        else None,
    )


def _schema(value: Any) -> dict[str, Any] | None:
    return dict(value) if isinstance(value, dict) else None  # pyright: ignore[reportUnknownArgumentType]


def _error(text: str) -> types.CallToolResult:
    return types.CallToolResult(content=[types.TextContent(type="text", text=text)], is_error=True)


def _neutralized(result: Any) -> Any:
    """``result`` (any model we send a client: a listing, a tool, resource or prompt result)
    with every string in it, keys and nested values included, ``neutralize``d: a server's
    escapes reach the client through none of its fields (descriptions, annotation titles,
    structured content, prompt descriptions), not only through text blocks."""

    def clean(value: Any) -> Any:
        if isinstance(value, str):
            return neutralize(value)
        if isinstance(value, dict):
            return {clean(k): clean(v) for k, v in value.items()}  # pyright: ignore[reportUnknownVariableType]
        if isinstance(value, list):
            return [clean(v) for v in value]  # pyright: ignore[reportUnknownVariableType]
        return value

    if not isinstance(result, types.Result):
        return result
    dumped = result.model_dump(by_alias=True, exclude_unset=True)
    return type(result).model_validate(clean(dumped))


def _text_of(result: Any) -> str:
    if isinstance(result, types.CallToolResult):
        return "\n".join(b.text for b in result.content if isinstance(b, types.TextContent))
    return ""


def _progress_relay(
    ctx: Any,
) -> Callable[[float, float | None, str | None], Awaitable[None]] | None:
    """Upstream progress for this call, relayed to the client (under the client's own token)
    when the client asked for progress."""
    meta = ctx.meta
    if not isinstance(meta, dict) or meta.get("progress_token") is None:
        return None

    async def relay(progress: float, total: float | None, message: str | None) -> None:
        text = neutralize(message) if message else None
        await ctx.session.report_progress(progress, total, text)

    return relay


# -- the HTTP endpoint ---------------------------------------------------------------------------


def read_or_create_token(home: Path) -> str:
    """The bearer token MCP clients present: ``$ASTRID_HOME/mcp.token``, 0600, made once."""
    from ._state import write_private

    path = home / TOKEN_FILE
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except FileNotFoundError:
        token = secrets.token_urlsafe(32)
        write_private(path, token + "\n")
        return token
    with os.fdopen(fd) as handle:
        stat = os.fstat(handle.fileno())
        if stat.st_uid != os.getuid() or stat.st_mode & 0o077:
            raise AstridError(
                f"{path} is readable by others or not yours: refusing to use it",
                hint=f"chmod 600 {path} (or delete it: a new token is made)",
                code="config.invalid",
            )
        token = handle.read().strip()
    if len(token) < 32:  # an empty token would be matched by "Authorization: Bearer "
        raise AstridError(
            f"{path} holds no usable token (under 32 characters): refusing to use it",
            hint=f"delete {path}: a new token is made",
            code="config.invalid",
        )
    return token


class McpHttpEndpoint:
    """Streamable HTTP on loopback, in the daemon's task group; started on first request."""

    def __init__(self, front: McpFront, home: Path) -> None:
        self.front = front
        self.home = home
        self.url: str | None = None
        self._started = anyio.Event()
        self._starting = False
        self._error: BaseException | None = None

    async def ensure(self, task_group: TaskGroup, port: int = 0) -> str:
        if not self._starting:
            self._starting = True
            task_group.start_soon(self._serve, port)
        await self._started.wait()
        if self._error is not None or self.url is None:
            self._starting = False
            self._started = anyio.Event()
            raise AstridError(
                f"the MCP endpoint could not listen on 127.0.0.1:{port}: {self._error}",
                hint="choose another port with `astrid mcp serve --http --port N`",
            )
        return self.url

    async def _serve(self, port: int) -> None:
        import socket

        import uvicorn
        from mcp.server.streamable_http_manager import StreamableHTTPSessionManager

        try:
            token = read_or_create_token(self.home)
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            # Inherited by accepted connections: replies are small writes, and Nagle plus the
            # peer's delayed ACK would hold each one back tens of milliseconds.
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock.bind(("127.0.0.1", port))
        except (OSError, AstridError) as exc:
            self._error = exc
            self._started.set()
            return
        bound = sock.getsockname()[1]
        manager = StreamableHTTPSessionManager(app=self.front.server, session_idle_timeout=None)
        app = _guard_app(manager.handle_request, token, bound)
        config = uvicorn.Config(app, log_level="warning", lifespan="off", access_log=False)
        server = _QuietUvicorn(config)
        async with manager.run():
            self.url = f"http://127.0.0.1:{bound}/mcp"
            self._started.set()
            log.info("MCP endpoint listening on %s", self.url)
            try:
                await server.serve(sockets=[sock])
            finally:
                sock.close()


def _guard_app(inner: Any, token: str, port: int) -> Any:
    """Bearer token (compared in constant time), no ``Origin``, loopback ``Host`` only."""
    expected = f"Bearer {token}".encode()
    hosts = {f"127.0.0.1:{port}".encode(), f"localhost:{port}".encode()}

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        headers = dict(scope.get("headers") or [])
        problem = ""
        status = 403
        if b"origin" in headers:
            problem = "browser origins are not allowed"
        elif headers.get(b"host") not in hosts:
            problem = "the Host header must be the loopback address this endpoint listens on"
        elif not hmac.compare_digest(headers.get(b"authorization", b""), expected):
            status, problem = (
                401,
                f"send Authorization: Bearer <the token in $ASTRID_HOME/{TOKEN_FILE}>",
            )
        elif scope.get("path") != "/mcp":
            status, problem = 404, "the MCP endpoint is /mcp"
        if problem:
            body = (problem + "\n").encode()
            await send(
                {
                    "type": "http.response.start",
                    "status": status,
                    "headers": [
                        (b"content-type", b"text/plain"),
                        (b"content-length", str(len(body)).encode()),
                    ],
                }
            )
            await send({"type": "http.response.body", "body": body})
            return
        await inner(scope, receive, send)

    return app


class _QuietUvicorn:
    """uvicorn without its signal handlers: the daemon owns SIGTERM/SIGINT."""

    def __init__(self, config: Any) -> None:
        import uvicorn

        class Server(uvicorn.Server):
            def capture_signals(self) -> Any:
                return contextlib.nullcontext()

        self._server = Server(config)

    async def serve(self, sockets: list[Any]) -> None:
        try:
            await self._server.serve(sockets=sockets)
        finally:
            self._server.should_exit = True
