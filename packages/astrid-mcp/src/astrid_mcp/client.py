"""SecureMcpClient: one connection to one MCP server, with Astrid's checks around it.

Every tool call is first authorized by the injected Guard as an ``McpToolCall``; a denied call
never reaches the server. Tools are pinned on first sight and disabled when they change. Server
requests (sampling, roots, elicitation) go through ``ServerRequestHandlers``. Tool output is
bounded and digested; descriptions are flattened and capped because they are untrusted text.

Use it as an async context manager; the manager runs each client in its own supervisor task.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
import time
import warnings
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Self, TextIO

import anyio
import httpx2
from anyio.abc import TaskGroup
from mcp import ClientSession, types
from mcp.client.stdio import StdioServerParameters, stdio_client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPDeprecationWarning, MCPError
from mcp.shared.inbound import MCP_PROTOCOL_VERSION_HEADER
from mcp.shared.jsonrpc_dispatcher import JSONRPCDispatcher
from mcp.shared.message import SessionMessage
from pydantic import ValidationError

from astrid_audit import AuditLog, AuditTrail, Outcome, OutcomeKind
from astrid_core import (
    AstridTimeoutError,
    Frontend,
    Guard,
    JsonObject,
    McpToolCall,
    SessionId,
    one_line,
)
from astrid_core.storage import MemoryStorage
from astrid_workspace import (
    EgressProxy,
    HostListGuard,
    ListedThenGuard,
    Resolver,
    find_server_group,
    kill_group_remains,
    process_argv,
)

from ._content import McpToolResult, tool_result, untrusted_description
from ._errors import McpServerError, ServerStartError, ServerUnavailable, ToolChanged, ToolNotFound
from ._http import pinned_http_client
from ._launch import LaunchPlan, network_mode, plan_launch
from ._server_requests import Sampler, ServerRequestHandlers
from ._startup_clock import startup_clock
from ._watched_stream import ReceiveStream, WatchedStream
from .config import HttpTransport, McpServerConfig
from .pinning import PinReport, ToolPins, tool_fingerprint

__all__ = ["SecureMcpClient", "McpTool", "CLIENT_INFO", "connect"]

CLIENT_INFO = types.Implementation(name="astrid", version="0.1.0")
_STDERR_TAIL_BYTES = 2000
_START_MARKER = "--- astrid: server started "
# Process groups of live servers in this process: two servers started with the same argv
# must not both claim the same group.
_CLAIMED_GROUPS: set[int] = set()
_GONE = (anyio.BrokenResourceError, anyio.ClosedResourceError, anyio.EndOfStream)


@dataclass(frozen=True)
class McpTool:
    server: str
    name: str
    description: str  # untrusted, flattened to one line and capped
    input_schema: JsonObject
    annotations: JsonObject
    fingerprint: str
    enabled: bool
    disabled_reason: str = ""


class SecureMcpClient:
    def __init__(
        self,
        config: McpServerConfig,
        *,
        guard: Guard,
        frontend: Frontend | None = None,
        sampler: Sampler | None = None,
        roots: Sequence[Path] = (),
        pins: ToolPins | None = None,
        audit: AuditLog | None = None,
        session_id: SessionId | None = None,
        log_dir: Path | None = None,
        http_auth: httpx2.Auth | None = None,
        resolver: Resolver | None = None,
    ) -> None:
        self.config = config
        # How an http server's host name is resolved (once, then pinned); tests inject one.
        self._resolver = resolver
        # OAuth and other HTTP auth flows (e.g. the SDK's OAuthClientProvider) for http servers.
        self._http_auth = http_auth
        self.name = config.name
        self._guard = guard
        self._frontend = frontend
        self._audit = audit
        self._session_id = session_id
        # Without persistent storage, pins still hold for the life of this client.
        self._pins = pins or ToolPins(MemoryStorage())
        self._handlers = ServerRequestHandlers(
            config.name,
            guard=guard,
            frontend=frontend,
            sampler=sampler,
            roots=roots,
            session_id=session_id,
        )
        self._log_dir = log_dir
        self._stack: contextlib.AsyncExitStack | None = None
        self._session: ClientSession | None = None
        self._task_group: TaskGroup | None = None
        self._tools: dict[str, McpTool] = {}
        # The definitions as the server sent them, for screening (``astrid_mcp.screening``):
        # McpTool.description is flattened, which hides the invisible characters it looks for.
        self.listed: dict[str, JsonObject] = {}
        self._tools_stale = True
        # Resource, template and prompt listings, dropped on the matching list_changed.
        self._listings: dict[str, list[Any]] = {}
        self._refresh_lock = anyio.Lock()
        self._stderr: TextIO | None = None
        self._stderr_path: Path | None = None
        self._garbage_lines: list[str] = []
        self.disconnected = anyio.Event()
        self.launch: LaunchPlan | None = None
        self._pgid: int | None = None
        self.initialize_result: types.InitializeResult | None = None

    # -- lifecycle ---------------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        stack = contextlib.AsyncExitStack()
        await stack.__aenter__()
        failure: BaseException | None = None
        try:
            read, write = await self._open_transport(stack)
            self._task_group = await stack.enter_async_context(anyio.create_task_group())
            # Runs just before the group exits: a tools refresh in flight would otherwise wait
            # for a transport that is only closed after the group (it is deeper in the stack).
            stack.callback(self._task_group.cancel_scope.cancel)
            watched = self._watch(read)
            # We hold the dispatcher so task-augmented calls can be sent raw (see start_tool_task).
            self._dispatcher = JSONRPCDispatcher(watched, write)
            session = ClientSession(
                dispatcher=self._dispatcher,
                sampling_callback=self._handlers.sampling if self._handlers.sampler else None,
                elicitation_callback=self._handlers.elicitation if self._frontend else None,
                list_roots_callback=self._handlers.list_roots,
                message_handler=self._on_message,
                client_info=CLIENT_INFO,
            )
            self._session = await stack.enter_async_context(session)
            # Paused while a person signs in (OAuth): see _startup_clock.
            with startup_clock(self.config.startup_timeout_s):
                self.initialize_result = await session.initialize()
        except BaseException as exc:
            failure = exc
        if failure is not None:
            # Unwound outside the except block on purpose: closing the stack inside it, while
            # the same CancelledError is being handled, makes contextlib link that exception
            # to itself (__context__ cycle), and anyio then spins forever walking the chain.
            try:
                await stack.aclose()
            except Exception as closing:
                # The transport's task group fails with what went wrong inside it (e.g. an
                # OAuth sign-in nobody could complete); that, not the cancellation it caused
                # here, is why the server did not start.
                failure = _root_failure(closing)
            finally:
                self._close_stderr()
            error = self._start_error(failure)
            if error is failure:
                raise failure
            raise error from failure
        self._stack = stack
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        # The exception in flight goes to the stack: closing it as if nothing happened while a
        # CancelledError propagates makes contextlib link that error to itself (a __context__
        # cycle), and anyio then spins forever walking the chain.
        await self._unwind(exc_type, exc, tb)

    async def aclose(self) -> None:
        await self._unwind(None, None, None)

    async def _unwind(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        stack, self._stack = self._stack, None
        self._session = None
        try:
            if stack is not None:
                # Not shielded: the stack holds task groups entered outside any new scope, and
                # anyio requires scopes to unwind in order. The SDK shields its own shutdown.
                await stack.__aexit__(exc_type, exc, tb)
        finally:
            self._close_stderr()
            self.disconnected.set()

    async def _open_transport(
        self, stack: contextlib.AsyncExitStack
    ) -> tuple[ReceiveStream[SessionMessage | Exception], Any]:
        transport = self.config.transport
        if isinstance(transport, HttpTransport):
            http = await pinned_http_client(
                transport, server=self.config.name, auth=self._http_auth, resolver=self._resolver
            )
            await stack.enter_async_context(http)
            return await stack.enter_async_context(
                streamable_http_client(transport.url, http_client=http)
            )
        proxy_socket = None
        if network_mode(self.config) == "proxy":
            # The server's own egress proxy: only its listed hosts, for as long as it runs.
            directory = tempfile.mkdtemp(prefix="astrid-egress-")
            stack.callback(shutil.rmtree, directory, True)
            # Each connection: a listed host (the server's `net`), then the session's own
            # interceptor (deny lists, approval, audit) as for bash; an unlisted host is
            # refused without asking.
            owner = f"MCP server {self.config.name}"
            guard = ListedThenGuard(
                HostListGuard(self.config.sandbox.net, owner=owner), self._guard
            )
            proxy = EgressProxy(guard, who=owner)
            await stack.enter_async_context(proxy.serving(directory))
            proxy_socket = proxy.socket_path
        self.launch = plan_launch(self.config, proxy_socket=proxy_socket)
        self._stderr = self._open_stderr_log()
        parameters = StdioServerParameters(
            command=self.launch.argv[0],
            args=self.launch.argv[1:],
            env=self.launch.env,
            cwd=self.launch.cwd,
        )
        # Registered before the transport so it runs after the transport has shut down.
        stack.callback(self._finish_process_group)
        streams = await stack.enter_async_context(stdio_client(parameters, errlog=self._stderr))
        self._pgid = find_server_group(process_argv(self.launch.argv), _CLAIMED_GROUPS)
        if self._pgid is not None:
            _CLAIMED_GROUPS.add(self._pgid)
        return streams

    def _finish_process_group(self) -> None:
        if self._pgid is not None:
            kill_group_remains(self._pgid)
            _CLAIMED_GROUPS.discard(self._pgid)

    def _open_stderr_log(self) -> TextIO:
        # The server's stderr goes to a file, never to our terminal: it is untrusted output, and
        # its tail is what makes a start failure explainable.
        directory = self._log_dir or Path(tempfile.gettempdir()) / "astrid-mcp-logs"
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._stderr_path = directory / f"{self.name}.stderr.log"
        handle = self._stderr_path.open("a", encoding="utf-8")
        # Earlier runs stay in the file; the tail we quote starts at this marker.
        handle.write(f"{_START_MARKER}{time.strftime('%Y-%m-%dT%H:%M:%S')}\n")
        handle.flush()
        return handle

    def _close_stderr(self) -> None:
        if self._stderr is not None:
            self._stderr.close()
            self._stderr = None

    def stderr_tail(self) -> str:
        if self._stderr_path is None or not self._stderr_path.exists():
            return ""
        with self._stderr_path.open("rb") as handle:
            handle.seek(0, 2)
            size = handle.tell()
            handle.seek(max(0, size - _STDERR_TAIL_BYTES))
            tail = handle.read().decode(errors="replace")
        return tail.rpartition(_START_MARKER)[2].partition("\n")[2].strip()

    def _start_error(self, exc: BaseException) -> BaseException:
        if isinstance(exc, ServerStartError | ToolChanged) or not isinstance(exc, Exception):
            return exc
        if isinstance(exc, TimeoutError):
            why = f"did not answer initialize within {self.config.startup_timeout_s:g} s"
        elif isinstance(exc, MCPError):
            why = f"failed during initialize: {exc}"
        elif hasattr(exc, "code") and hasattr(exc, "hint"):  # already one of ours
            return exc
        else:
            why = f"could not be started: {type(exc).__name__}: {exc}"
        details = []
        if self._garbage_lines:
            details.append(
                f"it wrote {len(self._garbage_lines)} line(s) that are not JSON-RPC, "
                f"first: {self._garbage_lines[0][:120]!r}"
            )
        if tail := self.stderr_tail():
            details.append(f"stderr: {tail[-500:]}")
        message = f"MCP server {self.name!r} {why}"
        if details:
            message += " (" + "; ".join(details) + ")"
        return ServerStartError(message)

    def _watch(
        self, read: ReceiveStream[SessionMessage | Exception]
    ) -> WatchedStream[SessionMessage | Exception]:
        """The transport's stream, noticing lines that were not JSON-RPC and its end (the
        server died or hung up)."""

        def on_item(item: SessionMessage | Exception) -> None:
            if isinstance(item, Exception):
                self._garbage_lines.append(_offending_input(item))

        return WatchedStream(read, on_item, self.disconnected.set)

    async def _on_message(self, message: types.ServerNotification | Exception) -> None:
        if isinstance(message, types.ResourceListChangedNotification):
            self._listings.pop("resources", None)
            self._listings.pop("templates", None)
        elif isinstance(message, types.PromptListChangedNotification):
            self._listings.pop("prompts", None)
        elif isinstance(message, types.ToolListChangedNotification):
            self._tools_stale = True
            if self._task_group is not None:
                # Refresh now, not at the next call: a changed pin must be noticed (and audited)
                # even if nobody calls the tool again.
                self._task_group.start_soon(self._refresh_quietly)

    async def _refresh_quietly(self) -> None:
        with contextlib.suppress(Exception):
            await self.refresh_tools()

    @property
    def session(self) -> ClientSession:
        if self._session is None or self.disconnected.is_set():
            raise ServerUnavailable(f"MCP server {self.name!r} is not connected")
        return self._session

    async def ping(self, timeout: float = 5.0) -> None:
        try:
            with anyio.fail_after(timeout):
                await self.session.send_ping()
        except (MCPError, TimeoutError, *_GONE) as exc:
            raise ServerUnavailable(f"MCP server {self.name!r} did not answer ping: {exc}") from exc

    # -- tools -------------------------------------------------------------------------------

    async def refresh_tools(self) -> PinReport:
        async with self._refresh_lock:
            listed = [
                tool.model_dump(by_alias=True, mode="json", exclude_none=True)
                for tool in await self._paginate_tools()
            ]
            report = await self._pins.check(self.name, listed)
            tools: dict[str, McpTool] = {}
            for raw in listed:
                name = str(raw["name"])
                changed = name in report.changed
                tools[name] = McpTool(
                    server=self.name,
                    name=name,
                    description=untrusted_description(raw.get("description")),
                    input_schema=raw.get("inputSchema") or {},
                    annotations=raw.get("annotations") or {},
                    fingerprint=tool_fingerprint(raw),
                    enabled=not changed,
                    disabled_reason="changed since it was approved; re-approve to enable"
                    if changed
                    else "",
                )
            newly_changed = [
                name for name in report.changed if self._tools.get(name, tools[name]).enabled
            ]
            self._tools = tools
            self.listed = {str(raw["name"]): raw for raw in listed}
            self._tools_stale = False
        for name in newly_changed:
            await self._report_change(tools[name], report.disabled[name])
        return report

    async def _paginate_tools(self) -> list[types.Tool]:
        tools: list[types.Tool] = []
        cursor: str | None = None
        for _ in range(1000):  # bounded: a server cannot page us forever
            params = types.PaginatedRequestParams(cursor=cursor) if cursor else None
            page = await self._request(self.session.list_tools(params=params), "tools/list")
            tools.extend(page.tools)
            cursor = page.next_cursor
            if not cursor:
                break
        return tools

    async def _report_change(self, tool: McpTool, old_fingerprint: str) -> None:
        message = (
            f"MCP server {self.name!r} changed tool {tool.name!r} since it was approved; "
            "it is disabled until you re-approve it"
        )
        if self._frontend is not None:
            self._frontend.show_status(message)
        if self._audit is not None:
            await AuditTrail(self._audit, self._session_id).event(
                Outcome(
                    kind=OutcomeKind.MCP_TOOL_CHANGED,
                    reason=message,
                    detail={
                        "server": self.name,
                        "tool": tool.name,
                        "old_fingerprint": old_fingerprint,
                        "new_fingerprint": tool.fingerprint,
                    },
                )
            )

    async def approve_tool(self, name: str) -> McpTool:
        """Re-pin a changed tool at its current definition (a human decided to trust it)."""
        tool = (await self.tools()).get(name)
        if tool is None:
            raise ToolNotFound(f"MCP server {self.name!r} has no tool {name!r}")
        listed = {t.name: t for t in await self._paginate_tools()}
        raw = listed[name].model_dump(by_alias=True, mode="json", exclude_none=True)
        if self._audit is not None:
            # Recorded before the pin is stored: a re-approved tool is on the log first.
            from .pinning import tool_fingerprint

            await AuditTrail(self._audit, self._session_id).event(
                Outcome(
                    kind=OutcomeKind.MCP_TOOL_APPROVED,
                    reason=f"tool {name!r} of MCP server {self.name!r} re-approved",
                    detail={
                        "server": self.name,
                        "tool": name,
                        "fingerprint": tool_fingerprint(raw),
                    },
                )
            )
        await self._pins.pin(self.name, raw)
        await self.refresh_tools()
        return self._tools[name]

    async def tools(self) -> dict[str, McpTool]:
        if self._tools_stale:
            await self.refresh_tools()
        return dict(self._tools)

    async def _tool(self, name: str) -> McpTool | None:
        """One tool, as ``tools()`` would list it, without copying the listing per call."""
        if self._tools_stale:
            await self.refresh_tools()
        return self._tools.get(name)

    async def call_tool(
        self,
        name: str,
        arguments: JsonObject | None = None,
        *,
        timeout: float | None = None,
        reason: str = "the agent asked for it",
    ) -> McpToolResult:
        result = await self.call_tool_raw(name, arguments, timeout=timeout, reason=reason)
        return tool_result(self.name, name, result, self.config.max_output_bytes)

    async def call_tool_raw(
        self,
        name: str,
        arguments: JsonObject | None = None,
        *,
        timeout: float | None = None,
        reason: str = "the agent asked for it",
        progress: Any = None,
    ) -> types.CallToolResult:
        """``call_tool`` with the server's result as it came (the gateway forwards it whole);
        ``progress`` receives the server's progress notifications for this call."""
        arguments = dict(arguments or {})
        await self._authorize_call(name, arguments, reason)
        limit = timeout if timeout is not None else self.config.call_timeout_s
        result = await self._request(
            self.session.call_tool(
                name, arguments, read_timeout_seconds=limit, progress_callback=progress
            ),
            f"tools/call {name}",
            timeout=limit,
        )
        if not isinstance(result, types.CallToolResult):
            raise ServerUnavailable(
                f"MCP server {self.name!r} answered tools/call {name} with an unexpected result"
            )
        return result

    async def _authorize_call(self, name: str, arguments: JsonObject, reason: str) -> None:
        """Known, enabled (pin unchanged) and allowed by the Guard — or raise; nothing is sent."""
        tool = await self._tool(name)
        if tool is None:
            raise ToolNotFound(f"MCP server {self.name!r} has no tool {name!r}")
        if not tool.enabled:
            raise ToolChanged(f"tool {self.name}/{name} is disabled: {tool.disabled_reason}")
        action = McpToolCall(server=self.name, tool=name, args=arguments)
        (await self._guard.authorize(action, reason)).require()

    async def _request(self, call: Any, what: str, *, timeout: float | None = None) -> Any:
        """Await an SDK request, translating its failures into errors a user can act on."""
        try:
            return await call
        except MCPError as exc:
            if exc.error.code == types.REQUEST_TIMEOUT:
                raise AstridTimeoutError(
                    f"MCP server {self.name!r}: {what} timed out after {timeout:g} s;"
                    " a cancellation was sent to the server",
                    hint="raise call_timeout_s for this server if the tool is legitimately slow",
                ) from exc
            if exc.error.code == types.CONNECTION_CLOSED or self.disconnected.is_set():
                raise ServerUnavailable(
                    f"MCP server {self.name!r} went away during {what}"
                    + (f" (stderr: {self.stderr_tail()[-300:]})" if self.stderr_tail() else "")
                ) from exc
            raise McpServerError(
                f"MCP server {self.name!r} answered {what} with error {exc.error.code}:"
                f" {one_line(exc.error.message)[:500]}",
                hint="the server refused or failed the request; its message says why",
            ) from exc
        except _GONE as exc:
            raise ServerUnavailable(f"MCP server {self.name!r} went away during {what}") from exc

    # -- resources, prompts, roots ----------------------------------------------------------

    async def list_resources(self) -> list[types.Resource]:
        if "resources" not in self._listings:
            result = await self._request(self.session.list_resources(), "resources/list")
            self._listings["resources"] = result.resources
        return list(self._listings["resources"])

    async def list_resource_templates(self) -> list[types.ResourceTemplate]:
        if "templates" not in self._listings:
            result = await self._request(
                self.session.list_resource_templates(), "resources/templates/list"
            )
            self._listings["templates"] = result.resource_templates
        return list(self._listings["templates"])

    async def read_resource(self, uri: str) -> types.ReadResourceResult:
        return await self._request(self.session.read_resource(uri), f"resources/read {uri}")

    async def list_prompts(self) -> list[types.Prompt]:
        if "prompts" not in self._listings:
            result = await self._request(self.session.list_prompts(), "prompts/list")
            self._listings["prompts"] = result.prompts
        return list(self._listings["prompts"])

    async def get_prompt(
        self, name: str, arguments: dict[str, str] | None = None
    ) -> types.GetPromptResult:
        return await self._request(
            self.session.get_prompt(name, arguments or {}), f"prompts/get {name}"
        )

    async def set_roots(self, roots: Sequence[Path]) -> None:
        self._handlers.roots = list(roots)
        with warnings.catch_warnings():
            # Roots are deprecated by the 2026-07-28 revision, but they are current in
            # 2025-11-25, which is what we negotiate; they are our filesystem boundary.
            warnings.filterwarnings("ignore", category=MCPDeprecationWarning)
            await self.session.send_roots_list_changed()

    # -- tasks (long-running tool calls) ----------------------------------------------------

    async def start_tool_task(
        self, name: str, arguments: JsonObject | None = None, *, ttl_ms: int = 600_000
    ) -> types.Task:
        """Start a tool call as a task; authorization is the same as for call_tool."""
        arguments = dict(arguments or {})
        await self._authorize_call(name, arguments, "the agent started it as a task")
        params = types.CallToolRequestParams(
            name=name, arguments=arguments, task=types.TaskMetadata(ttl=ttl_ms)
        ).model_dump(by_alias=True, mode="json", exclude_none=True)
        version = self.session.protocol_version or "2025-11-25"
        # The SDK's typed send_request validates every tools/call answer as a CallToolResult,
        # but a task-augmented call answers with a CreateTaskResult (2025-11-25 tasks), so this
        # one request goes through the dispatcher and is validated here instead.
        raw = await self._request(
            self._dispatcher.send_raw_request(
                "tools/call",
                params,
                {"headers": {MCP_PROTOCOL_VERSION_HEADER: version}, "timeout": 60.0},
            ),
            f"task {name}",
        )
        return types.CreateTaskResult.model_validate(raw, by_name=False).task

    async def get_task(self, task_id: str) -> types.GetTaskResult:
        request = types.GetTaskRequest(params=types.GetTaskRequestParams(task_id=task_id))
        return await self._request(
            self.session.send_request(request, types.GetTaskResult), "tasks/get"
        )

    async def task_result(self, task_id: str, *, tool: str) -> McpToolResult:
        request = types.GetTaskPayloadRequest(
            params=types.GetTaskPayloadRequestParams(task_id=task_id)
        )
        result = await self._request(
            self.session.send_request(request, types.CallToolResult), "tasks/result"
        )
        return tool_result(self.name, tool, result, self.config.max_output_bytes)

    async def cancel_task(self, task_id: str) -> types.CancelTaskResult:
        request = types.CancelTaskRequest(params=types.CancelTaskRequestParams(task_id=task_id))
        return await self._request(
            self.session.send_request(request, types.CancelTaskResult), "tasks/cancel"
        )


def _root_failure(exc: Exception) -> Exception:
    """The first real error inside (possibly nested) exception groups."""
    while isinstance(exc, ExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    return exc


def _offending_input(exc: Exception) -> str:
    """The line a server wrote that failed to parse, rather than pydantic's whole report."""
    if isinstance(exc, ValidationError):
        for error in exc.errors():
            if isinstance(error.get("input"), str):
                return error["input"]
    return str(exc)


@contextlib.asynccontextmanager
async def connect(config: McpServerConfig, **kwargs: Any) -> AsyncIterator[SecureMcpClient]:
    async with SecureMcpClient(config, **kwargs) as client:
        yield client
