"""Stands in for the MCP bridge when no [[servers]] are configured (no mcp SDK import)."""

from __future__ import annotations

from typing import Any

import anyio

from astrid_core import JsonObject, NotFoundError

__all__ = ["NoMcpServers"]

_HINT = "add the server to [[servers]] in config.toml"


class NoMcpServers:
    def __init__(self) -> None:
        self.running = anyio.Event()
        self.running.set()

    async def run(self) -> None:
        return None

    async def settled(self, timeout: float = 10.0) -> None:
        return None

    def status(self) -> list[JsonObject]:
        return []

    async def install(self, registry: Any) -> None:
        return None

    def sandbox_report(self) -> str:
        from astrid_mcp.sandbox import sandbox_status  # ctypes only, no SDK

        report = sandbox_status()
        return report.detail if report.available else f"NOT SANDBOXED: {report.detail}"

    async def start(self, name: str) -> JsonObject:
        raise NotFoundError(f"no MCP server named {name!r} is configured", hint=_HINT)

    async def stop(self, name: str) -> JsonObject:
        raise NotFoundError(f"no MCP server named {name!r} is configured", hint=_HINT)

    async def approve(self, server: str, tool: str) -> JsonObject:
        raise NotFoundError(f"no MCP server named {server!r} is configured", hint=_HINT)
