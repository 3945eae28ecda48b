"""The WebSocket JSON-RPC server underneath astridd.

Transport only: authentication, framing, dispatch, subscriptions, the single-instance lock,
the port/token files, ephemeral shutdown and signals. What the methods *do* is registered by
the daemon (``astrid_gateway.daemon``), which composes the agent runtime.

Hostile input never kills the daemon: every frame is parsed defensively, each request runs in
its own task with a per-connection cap, and an unexpected exception in a handler becomes
``-32603 internal error`` for that request only (and is logged).
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import signal
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from http import HTTPStatus
from itertools import count

import anyio
from anyio.abc import TaskStatus
from pydantic import JsonValue
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from astrid_core import AstridError, JsonObject

from ._jsonrpc import (
    RequestId,
    RpcError,
    RpcRequest,
    error_for,
    error_frame,
    parse_frame,
    result_frame,
)
from ._ratelog import RateLimitedLog
from ._state import (
    DaemonLock,
    PortRecord,
    StatePaths,
    client_proof,
    daemon_proof,
    new_token,
    tokens_equal,
    write_private,
)
from .protocol import (
    AUTH_CLOSE_CODE,
    AUTH_METHOD,
    AUTH_TIMEOUT_SECONDS,
    DAEMON_PID_HEADER,
    DAEMON_PROOF_HEADER,
    EVENT_METHOD,
    MAX_FRAME_BYTES,
    NONCE_HEADER,
    SERVER_NONCE_HEADER,
    AgentEvent,
    ErrorCode,
    dump_event,
    valid_nonce,
)

__all__ = ["GatewayServer", "Connection", "Handler"]

log = logging.getLogger("astrid.gateway")

# Frames above MAX_FRAME_BYTES get a JSON-RPC error; far larger ones are cut off by websockets
# itself (close code 1009) before we buffer them.
_HARD_FRAME_LIMIT = MAX_FRAME_BYTES * 4
_MAX_INFLIGHT_PER_CONNECTION = 64
_QUIET_WEBSOCKETS = logging.getLogger("astrid.gateway.websockets")
_QUIET_WEBSOCKETS.setLevel(logging.CRITICAL)


class Connection:
    """One authenticated client."""

    _ids = count(1)

    def __init__(self, ws: ServerConnection) -> None:
        self.id = next(self._ids)
        self.ws = ws
        self.subscriptions: dict[str, str | None] = {}  # subscription id -> session filter
        self.client_name = (
            ws.request.headers.get("X-Astrid-Client", "unknown") if ws.request else "unknown"
        )
        self._send_lock = anyio.Lock()

    async def send(self, text: str) -> bool:
        async with self._send_lock:
            try:
                await self.ws.send(text)
            except ConnectionClosed:
                return False
        return True

    async def notify(self, method: str, params: JsonObject) -> bool:
        return await self.send(json.dumps({"jsonrpc": "2.0", "method": method, "params": params}))

    async def notify_event(self, subscription: str, event: AgentEvent) -> bool:
        return await self.notify(
            EVENT_METHOD, {"subscription": subscription, "event": dump_event(event)}
        )

    def wants(self, session_id: str | None) -> list[str]:
        return [sub for sub, flt in self.subscriptions.items() if flt is None or flt == session_id]


Handler = Callable[[Connection, JsonObject], Awaitable[JsonValue]]


class GatewayServer:
    def __init__(
        self,
        paths: StatePaths,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        ephemeral: bool = False,
        idle_grace_seconds: float = 30.0,
        allow_remote: bool = False,
    ) -> None:
        if host not in ("127.0.0.1", "::1", "localhost") and not allow_remote:
            raise AstridError(
                f"refusing to listen on {host}: astridd listens on loopback only",
                hint="set [gateway] allow_remote = true if you really want a network listener",
                code="config.invalid",
            )
        self.paths = paths
        self.host = host
        self.requested_port = port
        self.ephemeral = ephemeral
        self.idle_grace_seconds = idle_grace_seconds
        self.started_at = time.time()
        self.port: int | None = None
        self._handlers: dict[str, Handler] = {}
        self._connections: dict[int, Connection] = {}
        self._token = new_token()
        self._nonces: dict[ServerConnection, tuple[str, str]] = {}  # handshakes under way
        self.failed_handshakes = RateLimitedLog(log, "failed handshakes")
        self._lock = DaemonLock(paths)
        self._locked = False
        self._stop = anyio.Event()
        self.listening = anyio.Event()
        self._idle_since: float | None = time.monotonic()
        self._sub_ids = count(1)
        self.on_subscribe: Callable[[Connection, str, str | None], Awaitable[None]] | None = None
        self.on_shutdown: list[Callable[[], Awaitable[None]]] = []
        self.shutdown_reason = ""
        self.register("astrid.subscribeEvents", self._subscribe)
        self.register("astrid.unsubscribeEvents", self._unsubscribe)

    # ------------------------------------------------------------------ registration

    @property
    def token_key(self) -> bytes:
        """A key only processes that can read the token file share (for keyed digests)."""
        return self._token.encode()

    def register(self, method: str, handler: Handler) -> None:
        self._handlers[method] = handler

    @property
    def connections(self) -> list[Connection]:
        return list(self._connections.values())

    def request_shutdown(self, reason: str = "requested") -> None:
        if not self._stop.is_set():
            self.shutdown_reason = reason
            log.info("shutdown requested: %s", reason)
            self._stop.set()

    # ------------------------------------------------------------------ events

    async def publish(self, session_id: str | None, event: AgentEvent) -> int:
        """Send an event to every subscribed connection, in the order of calls (one caller per
        session: the turn's task); returns how many received it."""
        payload = dump_event(event)
        delivered = 0
        for conn in list(self._connections.values()):
            for sub in conn.wants(session_id):
                if await conn.notify(EVENT_METHOD, {"subscription": sub, "event": payload}):
                    delivered += 1
        return delivered

    def subscriber_count(self, session_id: str | None = None) -> int:
        return sum(1 for conn in self._connections.values() if conn.wants(session_id))

    async def _subscribe(self, conn: Connection, params: JsonObject) -> JsonObject:
        session = params.get("session_id")
        if session is not None and not isinstance(session, str):
            raise RpcError(ErrorCode.INVALID_PARAMS, "session_id must be a string")
        sub = f"sub-{next(self._sub_ids)}"
        conn.subscriptions[sub] = session
        if self.on_subscribe is not None:
            await self.on_subscribe(conn, sub, session)
        return {"subscription": sub}

    async def _unsubscribe(self, conn: Connection, params: JsonObject) -> JsonObject:
        sub = params.get("subscription")
        if not isinstance(sub, str) or sub not in conn.subscriptions:
            raise RpcError(ErrorCode.INVALID_PARAMS, f"unknown subscription {sub!r}")
        del conn.subscriptions[sub]
        return {"unsubscribed": sub}

    # ------------------------------------------------------------------ handshake

    def _authenticate(self, ws: ServerConnection, request: Request) -> Response | None:
        """First half of the mutual authentication, on the HTTP upgrade: take the client's
        nonce. Nothing here needs the token; the proofs follow (see ``_handshake``)."""
        # Browsers always send Origin and cannot set custom headers on a WebSocket; refusing
        # any Origin closes the "malicious page talks to localhost" hole even without a token.
        if "Origin" in request.headers:
            self.failed_handshakes.note(f"browser origin refused from {ws.remote_address}")
            return ws.respond(HTTPStatus.FORBIDDEN, "browser origins are not allowed\n")
        nonce = request.headers.get(NONCE_HEADER, "")
        if not valid_nonce(nonce):
            self.failed_handshakes.note(f"no client nonce from {ws.remote_address}")
            return ws.respond(
                HTTPStatus.UNAUTHORIZED,
                f"send {NONCE_HEADER}: 64 hex digits and answer the daemon's challenge "
                "(astrid_gateway.client.GatewayClient does); bearer tokens are not accepted\n",
            )
        self._nonces[ws] = (nonce, secrets.token_hex(32))
        return None

    def _prove(self, ws: ServerConnection, request: Request, response: Response) -> Response:
        """On a successful upgrade, prove we know the token: HMAC over the client's nonce, our
        nonce, our port and pid. A squatter on a stale port cannot compute it."""
        nonces = self._nonces.get(ws)
        if response.status_code != HTTPStatus.SWITCHING_PROTOCOLS:
            # No connection will follow to consume the nonce. Refusals of our own were counted
            # where they were made; this counts upgrades websockets itself found invalid.
            if self._nonces.pop(ws, None) is not None:
                self.failed_handshakes.note(
                    f"upgrade refused (HTTP {response.status_code}) for {ws.remote_address}"
                )
        elif nonces is not None:
            client_nonce, server_nonce = nonces
            pid = os.getpid()
            response.headers[SERVER_NONCE_HEADER] = server_nonce
            response.headers[DAEMON_PID_HEADER] = str(pid)
            response.headers[DAEMON_PROOF_HEADER] = daemon_proof(
                self._token, client_nonce, server_nonce, self.port or 0, pid
            )
        return response

    async def _handshake(self, ws: ServerConnection) -> bool:
        """Second half: the client's first frame must be ``astrid.authenticate`` with its own
        proof (the token never crosses the wire). Anything else closes the connection."""
        nonces = self._nonces.pop(ws, None)
        if nonces is None:
            await ws.close(AUTH_CLOSE_CODE, "authentication failed")
            return False
        frame: str | bytes | None = None
        with anyio.move_on_after(AUTH_TIMEOUT_SECONDS):
            try:
                frame = await ws.recv()
            except ConnectionClosed:
                frame = None
        problem = "no authentication within the time limit" if frame is None else ""
        request_id: RequestId = None
        if frame is not None:
            try:
                request = parse_frame(frame)
                request_id = request.id
                proof = request.params.get("proof")
                expected = client_proof(self._token, *nonces, self.port or 0, os.getpid())
                if request.method != AUTH_METHOD:
                    problem = f"first call was {request.method!r}, not {AUTH_METHOD}"
                elif not isinstance(proof, str) or not tokens_equal(proof, expected):
                    problem = "wrong proof (the client does not know this daemon's token)"
            except RpcError:
                problem = "first frame is not a JSON-RPC request"
        if problem:
            self.failed_handshakes.note(f"{problem} from {ws.remote_address}")
            await ws.close(AUTH_CLOSE_CODE, "authentication failed")
            return False
        await ws.send(result_frame(request_id, {"authenticated": True, "pid": os.getpid()}))
        return True

    # ------------------------------------------------------------------ connections

    async def _connection(self, ws: ServerConnection) -> None:
        try:
            if not await self._handshake(ws):
                return
        except ConnectionClosed:
            return
        conn = Connection(ws)
        self._connections[conn.id] = conn
        self._idle_since = None
        inflight = anyio.Semaphore(_MAX_INFLIGHT_PER_CONNECTION)
        try:
            async with anyio.create_task_group() as tg:
                async for frame in ws:
                    await inflight.acquire()
                    tg.start_soon(self._handle_frame, conn, frame, inflight)
        except ConnectionClosed:
            pass
        finally:
            del self._connections[conn.id]
            if not self._connections:
                self._idle_since = time.monotonic()

    async def _handle_frame(
        self, conn: Connection, frame: str | bytes, inflight: anyio.Semaphore
    ) -> None:
        try:
            reply = await self._dispatch(conn, frame)
            if reply is not None:
                await conn.send(reply)
        finally:
            inflight.release()

    async def _dispatch(self, conn: Connection, frame: str | bytes) -> str | None:
        request: RpcRequest | None = None
        try:
            request = parse_frame(frame)
            handler = self._handlers.get(request.method)
            if handler is None:
                raise RpcError(
                    ErrorCode.METHOD_NOT_FOUND,
                    f"unknown method {request.method!r}",
                    data={"methods": list[JsonValue](sorted(self._handlers))},
                    request_id=request.id,
                )
            result = await handler(conn, request.params)
        except RpcError as err:
            if request is not None and err.request_id is None:
                err.request_id = request.id
            return error_frame(err)
        except AstridError as exc:
            return error_frame(error_for(exc, request.id if request else None))
        except Exception:  # a bug in a handler must not take the daemon down
            log.exception("internal error handling %s", request.method if request else "frame")
            return error_frame(
                RpcError(
                    ErrorCode.INTERNAL_ERROR,
                    "internal error (see the daemon log)",
                    request_id=request.id if request else None,
                )
            )
        if request.is_notification:
            return None
        return result_frame(request.id, result)

    # ------------------------------------------------------------------ lifecycle

    def lock_now(self) -> None:
        """Take the single-instance lock early (before opening storage). Idempotent."""
        if not self._locked:
            self._lock.acquire()
            self._locked = True

    def release_lock(self) -> None:
        self._lock.release()
        self._locked = False

    async def run(self, *, task_status: TaskStatus[int] = anyio.TASK_STATUS_IGNORED) -> None:
        """Take the lock, listen, publish port/token files, serve until shutdown."""
        self.lock_now()
        server: Server | None = None
        # Handle SIGTERM from before the port file exists: whoever sees the file may signal us.
        signals = anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT)
        try:
            with signals as received:
                self.paths.ensure()
                write_private(self.paths.token, self._token + "\n")
                server = await serve(
                    self._connection,
                    self.host,
                    self.requested_port,
                    process_request=self._authenticate,
                    process_response=self._prove,
                    max_size=_HARD_FRAME_LIMIT,
                    server_header="astridd",
                    # websockets logs every rejected/opened/closed connection at INFO: a flood
                    # of handshakes would be a flood of lines. Ours go through failed_handshakes.
                    logger=_QUIET_WEBSOCKETS,
                )
                sockets = list(server.sockets)
                self.port = int(sockets[0].getsockname()[1])
                write_private(self.paths.pid, f"{os.getpid()}\n")
                # The port file is written last: its presence means "ready to accept".
                lock_dev, lock_ino = self._lock.identity or (None, None)
                record = PortRecord(self.port, os.getpid(), lock_dev, lock_ino)
                write_private(self.paths.port, record.dumps())
                self.listening.set()
                log.info("astridd listening on %s:%s (pid %s)", self.host, self.port, os.getpid())
                task_status.started(self.port)
                async with anyio.create_task_group() as tg:
                    tg.start_soon(self._watch_signals, received)
                    tg.start_soon(self._flush_failure_log)
                    if self.ephemeral:
                        tg.start_soon(self._watch_idle)
                    await self._stop.wait()
                    tg.cancel_scope.cancel()
        finally:
            await self._shutdown(server)

    async def _watch_signals(self, signals: AsyncIterator[int]) -> None:
        async for signum in signals:
            self.request_shutdown(f"signal {signal.Signals(signum).name}")
            return

    async def _flush_failure_log(self) -> None:
        while True:
            await anyio.sleep(5)
            self.failed_handshakes.flush()

    async def _watch_idle(self) -> None:
        while not self._stop.is_set():
            await anyio.sleep(min(1.0, self.idle_grace_seconds / 4))
            idle_since = self._idle_since
            if idle_since is not None and time.monotonic() - idle_since >= self.idle_grace_seconds:
                self.request_shutdown(f"ephemeral: no client for {self.idle_grace_seconds:g} s")

    async def _shutdown(self, server: Server | None) -> None:
        with anyio.CancelScope(shield=True):
            for hook in self.on_shutdown:
                try:
                    await hook()
                except Exception:
                    log.exception("shutdown hook failed")
            if server is not None:
                server.close()
                await server.wait_closed()
            for path in (self.paths.port, self.paths.pid):
                path.unlink(missing_ok=True)
            self.release_lock()
