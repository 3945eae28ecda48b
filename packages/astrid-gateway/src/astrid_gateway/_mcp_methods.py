"""The daemon methods behind ``astrid mcp``: the MCP endpoint, the gateway's tools, approvals.

Separate small entries (``astrid.mcp*``) so they do not touch the runtime's method table.
"""

from __future__ import annotations

import getpass
from pathlib import Path
from typing import Any

from anyio.abc import TaskGroup
from pydantic import Field

from ._methods import _parse  # pyright: ignore[reportPrivateUsage] - one params parser
from .protocol import Params
from .server import Connection, GatewayServer

__all__ = ["bind_mcp_front"]


class _Endpoint(Params):
    port: int = Field(default=0, ge=0, le=65535)


class _Approve(Params):
    server: str = Field(min_length=1, max_length=200)
    tool: str | None = Field(default=None, min_length=1, max_length=200)


def bind_mcp_front(server: GatewayServer, runtime: Any, tg: TaskGroup, home: Path) -> None:
    """Register ``astrid.mcpEndpoint``, ``astrid.mcpSocket``, ``astrid.mcpTools`` and
    ``astrid.mcpApprove``.

    The MCP SDK is imported on the first call, not at daemon start."""
    state: dict[str, Any] = {}

    def front() -> Any:
        if "front" not in state:
            from ._mcp_front import McpFront, McpHttpEndpoint
            from ._mcp_socket import McpSocketEndpoint

            state["front"] = McpFront(runtime, tg)
            state["http"] = McpHttpEndpoint(state["front"], home)
            state["socket"] = McpSocketEndpoint(state["front"], home)
        return state["front"]

    async def endpoint(conn: Connection, params: dict[str, Any]) -> Any:
        p = _parse(_Endpoint, params)
        front()
        await runtime.mcp.settled()
        url = await state["http"].ensure(tg, p.port)
        return {"url": url, "token_file": str(home / "mcp.token")}

    async def unix_socket(conn: Connection, params: dict[str, Any]) -> Any:
        _parse(_Endpoint, {})
        front()
        await runtime.mcp.settled()
        return {"path": await state["socket"].ensure(tg)}

    async def tools(conn: Connection, params: dict[str, Any]) -> Any:
        _parse(_Endpoint, {})
        await runtime.mcp.settled()
        return [view.row() for view in await front().views()]

    async def approve(conn: Connection, params: dict[str, Any]) -> Any:
        p = _parse(_Approve, params)
        await runtime.mcp.settled()
        actor = f"{conn.client_name[:100]}:{getpass.getuser()}"
        return await front().approve(p.server, p.tool, actor)

    server.register("astrid.mcpEndpoint", endpoint)
    server.register("astrid.mcpSocket", unix_socket)
    server.register("astrid.mcpTools", tools)
    server.register("astrid.mcpApprove", approve)
