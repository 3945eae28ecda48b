"""McpServerManager: many servers, each in its own supervisor task.

A supervisor owns one SecureMcpClient for its whole life (anyio needs the task that entered a
connection to be the one that leaves it). It starts the server, reports ready, waits for a
stop request or a disconnect, and restarts after a crash with exponential backoff until the
restart budget is spent. One server failing never affects another: each supervisor catches its
own errors and records them in the server's status.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any, Self

import anyio
from anyio.abc import TaskGroup

from astrid_core import AstridError, NotFoundError
from astrid_workspace import sandbox_summary

from ._errors import ServerUnavailable
from .client import SecureMcpClient
from .config import McpServerConfig

__all__ = ["McpServerManager", "ServerState", "ServerStatus"]


class ServerState(StrEnum):
    STOPPED = "stopped"
    STARTING = "starting"
    RUNNING = "running"
    BACKOFF = "backoff"  # crashed; waiting to restart
    FAILED = "failed"  # could not start, or restart budget spent


@dataclass
class ServerStatus:
    name: str
    state: ServerState = ServerState.STOPPED
    last_error: str = ""
    restarts: int = 0
    started_at: float | None = None
    sandboxed: bool = False
    network: bool = True  # False: started with no network at all
    network_mode: str = "host"  # none, proxy (to its listed net hosts) or host
    confinement: str = ""  # the layers in force (namespaces, Landlock ABI, seccomp, network)
    tools: int = 0
    history: list[str] = field(default_factory=list)

    def note(self, event: str) -> None:
        self.history.append(f"{time.strftime('%H:%M:%S')} {event}")
        del self.history[:-20]


@dataclass
class _Server:
    config: McpServerConfig
    status: ServerStatus
    client: SecureMcpClient | None = None
    error: AstridError | None = None
    stop: anyio.Event = field(default_factory=anyio.Event)
    ready: anyio.Event = field(default_factory=anyio.Event)
    done: anyio.Event = field(default_factory=anyio.Event)


# May be async: building a client can need stored state first (an OAuth registration).
ClientFactory = Callable[[McpServerConfig], SecureMcpClient | Awaitable[SecureMcpClient]]


class McpServerManager:
    """Start, stop, restart and watch MCP servers. Use as an async context manager."""

    def __init__(
        self,
        configs: Sequence[McpServerConfig] = (),
        *,
        client_factory: ClientFactory | None = None,
        log_dir: Path | None = None,
        **client_options: Any,
    ) -> None:
        # client_options (guard, frontend, sampler, roots, pins, audit, ...) go to every client.
        self._factory = client_factory or (
            lambda config: SecureMcpClient(config, log_dir=log_dir, **client_options)
        )
        self._servers: dict[str, _Server] = {}
        for config in configs:
            self.add(config)
        self._task_group: TaskGroup | None = None

    async def __aenter__(self) -> Self:
        self._task_group = anyio.create_task_group()
        await self._task_group.__aenter__()
        return self

    async def __aexit__(self, *exc_info: Any) -> None:
        try:
            with anyio.CancelScope(shield=True):
                await self.stop_all()
        finally:
            assert self._task_group is not None
            self._task_group.cancel_scope.cancel()
            await self._task_group.__aexit__(None, None, None)
            self._task_group = None

    def add(self, config: McpServerConfig) -> None:
        if config.name in self._servers:
            raise AstridError(
                f"MCP server {config.name!r} is configured twice",
                hint="server names must be unique across all config layers",
                code="config.invalid",
            )
        self._servers[config.name] = _Server(config, ServerStatus(config.name))

    def names(self) -> list[str]:
        return sorted(self._servers)

    def _server(self, name: str) -> _Server:
        try:
            return self._servers[name]
        except KeyError:
            raise NotFoundError(
                f"no MCP server named {name!r}", hint=f"configured: {', '.join(self.names())}"
            ) from None

    def status(self, name: str | None = None) -> list[ServerStatus]:
        names = [name] if name is not None else self.names()
        return [self._server(n).status for n in names]

    @staticmethod
    def sandbox_report() -> str:
        return sandbox_summary()

    def client(self, name: str) -> SecureMcpClient:
        server = self._server(name)
        if server.client is None or server.status.state is not ServerState.RUNNING:
            detail = f": {server.status.last_error}" if server.status.last_error else ""
            raise ServerUnavailable(f"MCP server {name!r} is {server.status.state.value}{detail}")
        return server.client

    async def start_all(self) -> None:
        """Start every auto_start server concurrently; failures are recorded, not raised."""
        async with anyio.create_task_group() as group:
            for name, server in self._servers.items():
                if server.config.auto_start:
                    group.start_soon(self._start_quietly, name)

    async def _start_quietly(self, name: str) -> None:
        with contextlib.suppress(AstridError):  # recorded in the server's status
            await self.start(name)

    async def start(self, name: str) -> SecureMcpClient:
        """Start one server and wait until it is ready; raises its start error."""
        if self._task_group is None:
            raise RuntimeError("use McpServerManager as an async context manager")
        server = self._server(name)
        if server.status.state in {ServerState.RUNNING, ServerState.STARTING}:
            await server.ready.wait()
            return self.client(name)
        server.stop, server.ready, server.done = anyio.Event(), anyio.Event(), anyio.Event()
        server.status.restarts = 0
        server.status.last_error, server.error = "", None
        self._task_group.start_soon(self._supervise, server)
        await server.ready.wait()
        if server.error is not None and server.status.state is ServerState.FAILED:
            raise server.error
        return self.client(name)

    async def stop(self, name: str) -> None:
        server = self._server(name)
        server.stop.set()
        if server.status.state is not ServerState.STOPPED or not server.done.is_set():
            with anyio.move_on_after(15):
                await server.done.wait()

    async def restart(self, name: str) -> SecureMcpClient:
        await self.stop(name)
        return await self.start(name)

    async def stop_all(self) -> None:
        async with anyio.create_task_group() as group:
            for name, server in self._servers.items():
                if not server.done.is_set() and server.status.state is not ServerState.STOPPED:
                    group.start_soon(self.stop, name)

    async def health_check(self) -> dict[str, bool]:
        """Ping every running server; a dead one is noticed by its supervisor and restarted."""
        results: dict[str, bool] = {}
        for name, server in self._servers.items():
            if server.client is None or server.status.state is not ServerState.RUNNING:
                results[name] = False
                continue
            try:
                await server.client.ping()
                results[name] = True
            except AstridError as exc:
                server.status.last_error = str(exc)
                results[name] = False
                # A hung server is as good as dead: drop the connection so the supervisor
                # restarts it.
                server.client.disconnected.set()
        return results

    async def _new_client(self, config: McpServerConfig) -> SecureMcpClient:
        made = self._factory(config)
        return made if isinstance(made, SecureMcpClient) else await made

    async def _supervise(self, server: _Server) -> None:
        status, policy = server.status, server.config.restart
        try:
            while not server.stop.is_set():
                status.state = ServerState.STARTING
                try:
                    client = await self._new_client(server.config)
                    async with client:
                        server.client = client
                        tools = await client.tools()
                        status.state, status.started_at = ServerState.RUNNING, time.monotonic()
                        status.sandboxed = bool(client.launch and client.launch.sandboxed)
                        launch = client.launch
                        status.network_mode = launch.network if launch else "host"
                        status.network = status.network_mode != "none"
                        status.confinement = launch.confinement if launch else "remote (http)"
                        status.tools = len(tools)
                        status.note("running")
                        server.ready.set()
                        await _first_of(server.stop.wait, client.disconnected.wait)
                except AstridError as exc:
                    server.error = exc
                    status.last_error = str(exc)
                    status.note(f"error: {exc}")
                except Exception as exc:  # a server must never take the manager down
                    status.last_error = f"{type(exc).__name__}: {exc}"
                    status.note(f"error: {status.last_error}")
                finally:
                    server.client = None
                if server.stop.is_set():
                    break
                if status.state is ServerState.RUNNING:
                    if time.monotonic() - (status.started_at or 0) >= policy.healthy_after_s:
                        status.restarts = 0
                    if not status.last_error:
                        status.last_error = "the server exited or closed its connection"
                    status.note("disconnected")
                elif not server.ready.is_set():
                    # Never came up: a start error is reported, not retried in a tight loop.
                    status.state = ServerState.FAILED
                    return
                if not policy.enabled or status.restarts >= policy.max_restarts:
                    status.state = ServerState.FAILED
                    status.note(f"giving up after {status.restarts} restarts")
                    return
                status.restarts += 1
                status.state = ServerState.BACKOFF
                delay = policy.backoff(status.restarts)
                status.note(f"restart {status.restarts} in {delay:g} s")
                with anyio.move_on_after(delay):
                    await server.stop.wait()
        finally:
            if status.state is not ServerState.FAILED:
                status.state = ServerState.STOPPED
            server.ready.set()
            server.done.set()


async def _first_of(*waits: Callable[[], Any]) -> None:
    async with anyio.create_task_group() as group:

        async def run(wait: Callable[[], Any]) -> None:
            await wait()
            group.cancel_scope.cancel()

        for wait in waits:
            group.start_soon(run, wait)
