"""The MCP endpoint for ``astrid mcp serve`` (stdio): a unix socket in ``$ASTRID_HOME``.

The stdio bridge copies bytes between its stdin/stdout and this socket, and the daemon serves
MCP on each connection exactly as over stdio (one JSON-RPC message per line). Measured here, the
SDK's streamable HTTP costs ~20 ms per round trip on this machine where stdio costs ~2 ms; a
socket keeps the bridge's hop near stdio's cost.

Who may connect: the socket is ``$ASTRID_HOME/mcp.sock`` (the directory is the user's and not
writable by others; the socket is 0600), and each connection's peer uid (``SO_PEERCRED``) must
be the daemon's own. The first line a connection sends is the bridge's preamble
``{"astrid_workspace": "/abs/path"}`` (its working directory, the client's workspace).
"""

from __future__ import annotations

import contextvars
import json
import logging
import os
import socket
import struct
from pathlib import Path
from typing import Any

import anyio
from anyio.abc import SocketStream, TaskGroup
from anyio.streams.buffered import BufferedByteReceiveStream
from mcp import types
from mcp.shared.message import SessionMessage

from astrid_core import AstridError

__all__ = ["McpSocketEndpoint", "SOCKET_FILE", "SOCKET_WORKSPACE"]

log = logging.getLogger("astrid.gateway.mcp")

SOCKET_FILE = "mcp.sock"
MAX_LINE = 16 * 1024 * 1024
# The workspace the bridge on this connection named; read by McpFront for the session.
SOCKET_WORKSPACE: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "astrid_mcp_socket_workspace", default=None
)


def _peer_uid(stream: SocketStream) -> int | None:
    raw = stream.extra(anyio.abc.SocketAttribute.raw_socket)  # noqa: S610 - anyio, not Django
    try:
        creds = raw.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    except OSError:
        return None
    return int(struct.unpack("3i", creds)[1])


class McpSocketEndpoint:
    def __init__(self, front: Any, home: Path) -> None:
        self.front = front
        self.path = home / SOCKET_FILE
        self._started = False

    async def ensure(self, task_group: TaskGroup) -> str:
        if not self._started:
            self.path.unlink(missing_ok=True)  # a stale socket of a daemon that died
            listener = await anyio.create_unix_listener(self.path)
            os.chmod(self.path, 0o600)
            self._started = True
            task_group.start_soon(self._serve, listener)
        return str(self.path)

    async def _serve(self, listener: Any) -> None:
        try:
            await listener.serve(self._connection)
        finally:
            self.path.unlink(missing_ok=True)
            self._started = False

    async def _connection(self, stream: SocketStream) -> None:
        async with stream:
            if _peer_uid(stream) != os.getuid():
                log.warning("refused an MCP socket connection from another user")
                return
            buffered = BufferedByteReceiveStream(stream)
            try:
                preamble = json.loads(await buffered.receive_until(b"\n", MAX_LINE))
                workspace = preamble.get("astrid_workspace") if isinstance(preamble, dict) else None
            except (anyio.IncompleteRead, anyio.DelimiterNotFound, ValueError):
                return
            SOCKET_WORKSPACE.set(workspace if isinstance(workspace, str) else None)
            read_send, read_receive = anyio.create_memory_object_stream[SessionMessage | Exception](
                16
            )
            write_send, write_receive = anyio.create_memory_object_stream[SessionMessage](16)

            async def reader() -> None:
                async with read_send:
                    while True:
                        try:
                            line = await buffered.receive_until(b"\n", MAX_LINE)
                        except (anyio.EndOfStream, anyio.IncompleteRead, anyio.BrokenResourceError):
                            return
                        except anyio.DelimiterNotFound as exc:
                            await read_send.send(AstridError(f"MCP message too long: {exc}"))
                            return
                        try:
                            message = types.jsonrpc_message_adapter.validate_json(
                                line, by_name=False
                            )
                        except Exception as exc:  # answered by the SDK as a parse error
                            await read_send.send(exc)
                            continue
                        await read_send.send(SessionMessage(message))

            async def writer() -> None:
                async with write_receive:
                    async for item in write_receive:
                        data = item.message.model_dump_json(by_alias=True, exclude_unset=True)
                        await stream.send(data.encode() + b"\n")

            server = self.front.server
            async with anyio.create_task_group() as tg:
                tg.start_soon(reader)
                tg.start_soon(writer)
                try:
                    await server.run(
                        read_receive, write_send, server.create_initialization_options()
                    )
                finally:
                    tg.cancel_scope.cancel()
