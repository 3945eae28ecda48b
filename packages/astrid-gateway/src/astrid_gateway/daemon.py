"""astridd: composes the agent runtime behind the gateway server.

Until the runtime is wired in, only transport-level methods work; every other method answers
``-32006 not available`` with a message saying so, instead of pretending.
"""

from __future__ import annotations

import os
import time
from typing import Any

from . import __version__
from ._jsonrpc import RpcError
from ._state import StatePaths
from .protocol import METHODS, PROTOCOL_VERSION, ErrorCode
from .server import Connection, GatewayServer

__all__ = ["run_daemon", "build_server"]


def build_server(
    paths: StatePaths, port: int = 0, ephemeral: bool = False, idle_grace: float = 30.0
) -> GatewayServer:
    server = GatewayServer(paths, port=port, ephemeral=ephemeral, idle_grace_seconds=idle_grace)

    async def status(conn: Connection, params: dict[str, Any]) -> dict[str, Any]:
        return {
            "version": __version__,
            "protocol": PROTOCOL_VERSION,
            "pid": os.getpid(),
            "uptime_seconds": round(time.time() - server.started_at, 3),
            "ephemeral": server.ephemeral,
            "clients": len(server.connections),
            "state_dir": str(paths.root),
        }

    async def shutdown(conn: Connection, params: dict[str, Any]) -> dict[str, Any]:
        server.request_shutdown(f"astrid.shutdown from client {conn.client_name}")
        return {"stopping": True}

    server.register("astrid.status", status)
    server.register("astrid.shutdown", shutdown)
    for method in METHODS:
        if method not in (
            "astrid.status",
            "astrid.shutdown",
            "astrid.subscribeEvents",
            "astrid.unsubscribeEvents",
        ):
            server.register(method, _not_available(method))
    return server


def _not_available(method: str) -> Any:
    async def handler(conn: Connection, params: dict[str, Any]) -> Any:
        raise RpcError(
            ErrorCode.NOT_AVAILABLE,
            f"{method} is not available in this build of astridd yet",
            data={"hint": "see the project README for what is implemented"},
        )

    return handler


async def run_daemon(paths: StatePaths, port: int, ephemeral: bool, idle_grace: float) -> None:
    server = build_server(paths, port, ephemeral, idle_grace)
    await server.run()
