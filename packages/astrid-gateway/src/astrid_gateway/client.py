"""GatewayClient: the async client every frontend (CLI, Telegram, tests) uses.

It finds the daemon through ``$ASTRID_HOME/daemon.port``, authenticates with the token from
``daemon.token``, and can auto-start an ephemeral daemon (detached, so it outlives the CLI
invocation that started it, and exits by itself 30 s after its last client leaves).
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Sequence
from itertools import count
from types import TracebackType
from typing import Any, Self

import anyio
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from astrid_core import AstridError, AstridTimeoutError, ConfigError

from ._state import StatePaths, read_token, state_dir
from .protocol import AUTH_HEADER, EVENT_METHOD, MAX_FRAME_BYTES, ErrorCode

__all__ = ["GatewayClient", "RpcCallError", "DaemonUnavailable", "start_daemon"]


class DaemonUnavailable(AstridError):
    code = "gateway.unavailable"
    default_hint = "start it with `astrid daemon run` (or let the CLI auto-start it)"


class RpcCallError(AstridError):
    """The daemon answered a call with a JSON-RPC error."""

    def __init__(self, rpc_code: int, message: str, data: dict[str, Any] | None = None) -> None:
        data = data or {}
        super().__init__(
            message, hint=str(data.get("hint", "")), code=str(data.get("code", "gateway.rpc"))
        )
        self.rpc_code = rpc_code
        self.data = data


def read_port(paths: StatePaths) -> int | None:
    try:
        text = paths.port.read_text().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


# Detached daemons outlive this process by design; keeping the Popen objects referenced stops
# Python from warning that a still-running child was garbage-collected.
_DETACHED: list[subprocess.Popen[bytes]] = []


def start_daemon(
    paths: StatePaths, *, ephemeral: bool = True, extra_args: Sequence[str] = ()
) -> int:
    """Spawn astridd detached (own session, output to the log file). Returns its pid."""
    paths.ensure()
    paths.log.parent.mkdir(parents=True, exist_ok=True)
    argv = [sys.executable, "-m", "astrid_gateway", "--state-dir", str(paths.root)]
    if ephemeral:
        argv.append("--ephemeral")
    argv.extend(extra_args)
    with paths.log.open("ab") as log_file:
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # survives the CLI's terminal and Ctrl-C
            close_fds=True,
        )
    _DETACHED.append(proc)
    return proc.pid


class GatewayClient:
    """Async JSON-RPC client. Use as ``async with GatewayClient.connect(...) as client``."""

    def __init__(self, ws: ClientConnection) -> None:
        self._ws = ws
        self._ids = count(1)
        self._pending: dict[int, MemoryObjectSendStream[dict[str, Any]]] = {}
        send, receive = anyio.create_memory_object_stream[dict[str, Any]](1024)
        self._event_send: MemoryObjectSendStream[dict[str, Any]] = send
        self._event_receive: MemoryObjectReceiveStream[dict[str, Any]] = receive
        self._tg: Any = None
        self.closed = anyio.Event()

    # ------------------------------------------------------------------ connect

    @classmethod
    async def open(
        cls,
        home: str | os.PathLike[str] | None = None,
        *,
        autostart: bool = True,
        start_timeout: float = 20.0,
        client_name: str = "python",
    ) -> GatewayClient:
        paths = StatePaths(state_dir(home))
        port = read_port(paths)
        if port is not None:
            try:
                return await cls._connect(paths, port, client_name)
            except DaemonUnavailable:
                if not autostart:
                    raise
        elif not autostart:
            raise DaemonUnavailable(f"no daemon is running for {paths.root} (no {paths.port})")
        start_daemon(paths)
        deadline = time.monotonic() + start_timeout
        last_error: Exception | None = None
        while time.monotonic() < deadline:
            port = read_port(paths)
            if port is not None:
                try:
                    return await cls._connect(paths, port, client_name)
                except DaemonUnavailable as exc:
                    last_error = exc
            await anyio.sleep(0.05)
        raise DaemonUnavailable(
            f"the daemon did not come up within {start_timeout:g} s "
            f"({last_error or 'no port file'})",
            hint=f"see its log: {paths.log}",
        )

    @classmethod
    async def _connect(cls, paths: StatePaths, port: int, client_name: str) -> GatewayClient:
        token = read_token(paths.token)
        try:
            ws = await connect(
                f"ws://127.0.0.1:{port}",
                additional_headers={AUTH_HEADER: f"Bearer {token}", "X-Astrid-Client": client_name},
                max_size=MAX_FRAME_BYTES * 4,
                open_timeout=5,
            )
        except InvalidStatus as exc:
            if exc.response.status_code == 401:
                raise ConfigError(
                    "the daemon refused our token",
                    hint=f"the token in {paths.token} is stale; restart with `astrid daemon stop`",
                ) from exc
            raise DaemonUnavailable(
                f"daemon handshake failed: HTTP {exc.response.status_code}"
            ) from exc
        except (OSError, TimeoutError) as exc:
            raise DaemonUnavailable(f"cannot reach the daemon on port {port}: {exc}") from exc
        client = cls(ws)
        return client

    async def __aenter__(self) -> Self:
        self._tg = anyio.create_task_group()
        await self._tg.__aenter__()
        self._tg.start_soon(self._reader)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        # Closing must finish even when we are being cancelled, or the reader's task group
        # would be left open (anyio refuses to exit a scope out of order).
        try:
            with anyio.CancelScope(shield=True), anyio.move_on_after(5):
                await self._ws.close()
        finally:
            self._tg.cancel_scope.cancel()
            try:
                await self._tg.__aexit__(exc_type, exc, tb)
            finally:
                self._event_receive.close()
                self._event_send.close()

    # ------------------------------------------------------------------ reading

    async def _reader(self) -> None:
        try:
            async for frame in self._ws:
                message = json.loads(frame)
                if "id" in message and message.get("id") in self._pending:
                    stream = self._pending.pop(message["id"])
                    await stream.send(message)
                    await stream.aclose()
                elif message.get("method") == EVENT_METHOD:
                    # A consumer that stopped reading events must not stall call replies.
                    with contextlib.suppress(anyio.WouldBlock):
                        self._event_send.send_nowait(message["params"])
        except ConnectionClosed:
            pass
        finally:
            self.closed.set()
            for stream in self._pending.values():
                await stream.aclose()
            self._pending.clear()
            await self._event_send.aclose()

    # ------------------------------------------------------------------ calls

    async def call(self, method: str, timeout: float | None = 60.0, **params: Any) -> Any:
        """Call ``method`` (``astrid.`` prefix optional) and return its result."""
        if not method.startswith("astrid."):
            method = f"astrid.{method}"
        request_id = next(self._ids)
        send, receive = anyio.create_memory_object_stream[dict[str, Any]](1)
        self._pending[request_id] = send
        frame = json.dumps({"jsonrpc": "2.0", "id": request_id, "method": method, "params": params})
        try:
            await self._ws.send(frame)
        except ConnectionClosed as exc:
            self._pending.pop(request_id, None)
            raise DaemonUnavailable("the daemon closed the connection") from exc
        try:
            with anyio.fail_after(timeout):
                async with receive:
                    try:
                        reply = await receive.receive()
                    except anyio.EndOfStream:
                        raise DaemonUnavailable(
                            "the daemon closed the connection mid-call"
                        ) from None
        except TimeoutError:
            self._pending.pop(request_id, None)
            raise AstridTimeoutError(f"{method} got no answer within {timeout:g} s") from None
        if "error" in reply:
            err = reply["error"]
            raise RpcCallError(
                int(err.get("code", ErrorCode.INTERNAL_ERROR)),
                str(err.get("message")),
                err.get("data"),
            )
        return reply.get("result")

    async def subscribe(self, session_id: str | None = None) -> str:
        params: dict[str, Any] = {} if session_id is None else {"session_id": session_id}
        result = await self.call("astrid.subscribeEvents", **params)
        return str(result["subscription"])

    async def events(self) -> AsyncIterator[dict[str, Any]]:
        """Yield ``{"subscription": ..., "event": {...}}`` notifications as they arrive."""
        async for params in self._event_receive:
            yield params

    async def next_event(self, timeout: float = 30.0) -> dict[str, Any]:
        with anyio.fail_after(timeout):
            params = await self._event_receive.receive()
        event: dict[str, Any] = params["event"]
        return event
