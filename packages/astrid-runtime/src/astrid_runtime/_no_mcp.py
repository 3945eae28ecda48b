"""The runtime's MCP bridge, made when the first server needs it (no mcp SDK import before).

With ``[[servers]]`` configured the bridge is made at start; without, only when a session loads
a capsule with an ``[[mcp_server]]``. Until then nothing imports the mcp SDK (~2 s), so a daemon
without servers starts fast. ``run()`` hosts the bridge in the caller's task (the daemon's task
group) for the runtime's whole life: it waits, cheaply, until a bridge exists, then runs it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio

from astrid_core import AstridError, JsonObject, NotFoundError

if TYPE_CHECKING:
    from astrid_mcp import McpServerConfig

    from ._mcp_bridge import McpBridge

__all__ = ["LazyMcpBridge"]

_HINT = "add the server to [[servers]] in config.toml"


class LazyMcpBridge:
    def __init__(self, make_bridge: Callable[[], McpBridge], *, make_now: bool) -> None:
        self._make_bridge = make_bridge
        self._bridge: McpBridge | None = make_bridge() if make_now else None
        self._bridge_made = anyio.Event()
        if self._bridge is not None:
            self._bridge_made.set()
        self._hosted = False
        self._no_servers = anyio.Event()
        self._no_servers.set()

    @property
    def bridge(self) -> McpBridge | None:
        """The bridge to the MCP servers, None until a server is configured (the gateway's MCP
        endpoint reads the servers' clients through it)."""
        return self._bridge

    @property
    def running(self) -> anyio.Event:
        """Set once the configured servers have started or failed (at once when none exist)."""
        return self._bridge.running if self._bridge is not None else self._no_servers

    async def run(self) -> None:
        self._hosted = True
        try:
            await self._bridge_made.wait()
            assert self._bridge is not None
            await self._bridge.run()
        finally:
            self._hosted = False

    async def ensure_servers(
        self,
        configs: Sequence[McpServerConfig],
        *,
        roots: Sequence[Path] = (),
        before_launch: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        """Start servers at runtime (a capsule's): see ``McpBridge.ensure_servers``."""
        if not self._hosted:
            raise AstridError(
                "nothing runs the runtime's MCP servers",
                hint="sessions with capsule MCP servers need the daemon (or a task running"
                " AgentRuntime.run_background)",
            )
        if self._bridge is None:
            self._bridge = self._make_bridge()
            self._bridge_made.set()
        await self._bridge.ensure_servers(configs, roots=roots, before_launch=before_launch)

    async def install_scoped(
        self, registry: Any, servers: Mapping[str, str], *, scope: str, wait_s: float
    ) -> list[tuple[str, str]]:
        if self._bridge is None:
            return []
        return await self._bridge.install_scoped(registry, servers, scope=scope, wait_s=wait_s)

    async def settled(self, timeout: float = 10.0) -> None:
        if self._bridge is not None:
            await self._bridge.settled(timeout)

    def status(self) -> list[JsonObject]:
        return self._bridge.status() if self._bridge is not None else []

    async def install(self, registry: Any) -> None:
        if self._bridge is not None:
            await self._bridge.install(registry)

    def sandbox_report(self) -> str:
        if self._bridge is not None:
            return self._bridge.sandbox_report()
        from astrid_workspace import sandbox_summary  # ctypes only, no SDK

        return sandbox_summary()

    def _bridge_for(self, name: str) -> McpBridge:
        if self._bridge is None:
            raise NotFoundError(f"no MCP server named {name!r} is configured", hint=_HINT)
        return self._bridge

    async def start(self, name: str) -> JsonObject:
        return await self._bridge_for(name).start(name)

    async def stop(self, name: str) -> JsonObject:
        return await self._bridge_for(name).stop(name)

    async def login(self, name: str) -> JsonObject:
        return await self._bridge_for(name).login(name)

    async def finish_login(self, name: str) -> JsonObject:
        return await self._bridge_for(name).finish_login(name)

    async def logout(self, name: str) -> JsonObject:
        return await self._bridge_for(name).logout(name)

    async def approve(self, server: str, tool: str) -> JsonObject:
        return await self._bridge_for(server).approve(server, tool)

    async def mcp_annotations(self, server: str, tool: str) -> JsonObject | None:
        """The tool's MCP annotations (readOnlyHint, ...), or None when unknown."""
        if self._bridge is None:
            return None
        return await self._bridge.mcp_annotations(server, tool)
