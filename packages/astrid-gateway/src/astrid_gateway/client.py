"""GatewayClient: the async client every frontend (CLI, Telegram, tests) uses.

It finds the daemon through ``$ASTRID_HOME/daemon.port``, and before it sends anything it makes
sure it talks to the daemon: the pid in the port file must hold ``daemon.lock`` and own the
listening socket (Linux, from /proc), and the daemon must prove it knows the token (HMAC of our
nonce) before we prove that we do (HMAC of its nonce). The token itself never crosses the wire,
so a process squatting on a port a dead daemon left behind learns nothing. It can auto-start an
ephemeral daemon (detached, so it outlives the CLI invocation that started it, and exits by
itself 30 s after its last client leaves) and reports at once, with the daemon's own words,
when that daemon dies while starting.
"""

from __future__ import annotations

import contextlib
import hmac
import json
import logging
import os
import secrets
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from itertools import count
from types import TracebackType
from typing import Any, Self

import anyio
from anyio.abc import TaskGroup
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream
from pydantic import JsonValue, ValidationError
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus

from astrid_core import AstridError, AstridTimeoutError, ConfigError, JsonObject

from ._state import (
    DaemonLock,
    PortRecord,
    StatePaths,
    check_private_dir,
    client_proof,
    daemon_proof,
    lock_holders,
    read_private,
    read_token,
    socket_owner_problem,
    state_dir,
)
from .protocol import (
    AUTH_CLOSE_CODE,
    AUTH_METHOD,
    DAEMON_PID_HEADER,
    DAEMON_PROOF_HEADER,
    EVENT_METHOD,
    MAX_FRAME_BYTES,
    NONCE_HEADER,
    SERVER_NONCE_HEADER,
    AgentEvent,
    ErrorCode,
    parse_event,
    valid_nonce,
)

__all__ = [
    "GatewayClient",
    "RpcCallError",
    "DaemonUnavailable",
    "DaemonNotAuthentic",
    "DaemonStartFailed",
    "locate_daemon",
    "start_daemon",
    "start_failure",
    "read_port",
    "Located",
]


log = logging.getLogger("astrid.gateway.client")


class DaemonUnavailable(AstridError):
    code = "gateway.unavailable"
    default_hint = "start it with `astrid daemon run` (or let the CLI auto-start it)"


class DaemonNotAuthentic(DaemonUnavailable):
    """What listens on the daemon's port could not prove it is our daemon."""

    code = "gateway.not_authentic"
    default_hint = (
        "nothing was sent to it; if no daemon of yours runs, `astrid daemon run` starts one "
        "(it replaces the stale files); `ss -ltnp` shows who holds the port"
    )


class DaemonStartFailed(DaemonUnavailable):
    """The daemon the client started exited before it was ready."""

    code = "gateway.start_failed"


class RpcCallError(AstridError):
    """The daemon answered a call with a JSON-RPC error."""

    def __init__(self, rpc_code: int, message: str, data: JsonObject | None = None) -> None:
        data = data or {}
        super().__init__(
            message, hint=str(data.get("hint", "")), code=str(data.get("code", "gateway.rpc"))
        )
        self.rpc_code = rpc_code
        self.data = data


def read_port(paths: StatePaths) -> int | None:
    """The port in ``daemon.port`` as written (unverified: use :func:`locate_daemon`)."""
    try:
        text = read_private(paths.port)
    except (OSError, ConfigError):
        return None
    record = PortRecord.parse(text) if text is not None else None
    return record.port if record is not None else None


@dataclass(frozen=True)
class Located:
    """The daemon's verified port record, or why there is none to talk to."""

    record: PortRecord | None
    reason: str


def locate_daemon(paths: StatePaths) -> Located:
    """Read ``daemon.port`` and believe it only if its pid holds ``daemon.lock`` now and owns
    every socket listening on its port. Nothing is sent anywhere."""
    text = read_private(paths.port)
    if text is None:
        return Located(None, f"no {paths.port.name} in {paths.root}")
    record = PortRecord.parse(text)
    if record is None:
        return Located(None, f"{paths.port} is unreadable (not written by astridd)")
    holders = lock_holders(paths.lock)
    if holders is None:  # no /proc/locks: the challenge-response alone decides
        return Located(record, "")
    if record.pid is None:
        return Located(None, f"{paths.port} was written by an older astridd and names no pid")
    if record.pid not in holders:
        held = f"held by pid {min(holders)}" if holders else "held by no process"
        return Located(
            None,
            f"{paths.port} is stale: it names pid {record.pid}, but {paths.lock.name} is {held} "
            "(the daemon that wrote it exited without cleaning up, e.g. after kill -9)",
        )
    try:
        lock_info = os.lstat(paths.lock)
    except FileNotFoundError:
        return Located(None, f"{paths.lock} is gone")
    if record.lock_ino is not None and (lock_info.st_dev, lock_info.st_ino) != (
        record.lock_dev,
        record.lock_ino,
    ):
        return Located(None, f"{paths.port} was written for a {paths.lock.name} that was replaced")
    problem = socket_owner_problem(record.port, record.pid)
    if problem is not None:
        return Located(None, f"{paths.port} names pid {record.pid}, but {problem}")
    return Located(record, "")


# Detached daemons outlive this process by design; keeping the Popen objects referenced stops
# Python from warning that a still-running child was garbage-collected.
_DETACHED: list[subprocess.Popen[bytes]] = []


def start_daemon(
    paths: StatePaths, *, ephemeral: bool = True, extra_args: Sequence[str] = ()
) -> subprocess.Popen[bytes]:
    """Spawn astridd detached (own session). It logs to ``logs/astridd.log`` (rotated); its
    stderr is a pipe to us until it is listening, so a start-up failure reaches the user."""
    paths.ensure()
    paths.ensure_logs()
    argv = [
        sys.executable,
        "-m",
        "astrid_gateway",
        "--state-dir",
        str(paths.root),
        "--log-file",
        str(paths.log),
    ]
    if ephemeral:
        argv.append("--ephemeral")
    argv.extend(extra_args)
    proc = subprocess.Popen(
        argv,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,  # survives the CLI's terminal and Ctrl-C
        close_fds=True,
    )
    assert proc.stderr is not None
    os.set_blocking(proc.stderr.fileno(), False)
    _DETACHED.append(proc)
    return proc


_STDERR_KEEP = 64 * 1024


def _drain(proc: subprocess.Popen[bytes], buffer: bytearray) -> None:
    """Move what the daemon wrote to stderr into ``buffer`` (last 64 KiB), without blocking."""
    if proc.stderr is None or proc.stderr.closed:
        return
    while True:
        try:
            chunk = os.read(proc.stderr.fileno(), 65536)
        except BlockingIOError:
            return
        except OSError:
            chunk = b""
        if not chunk:
            proc.stderr.close()
            return
        buffer.extend(chunk)
        del buffer[:-_STDERR_KEEP]


def start_failure(
    returncode: int, stderr: str, log_path: os.PathLike[str] | str
) -> DaemonStartFailed:
    """The daemon's own error ("astridd: error: ..." / "astridd: hint: ...") as our error."""
    message, hint = "", ""
    for line in stderr.splitlines():
        if line.startswith("astridd: error: "):
            message = line.removeprefix("astridd: error: ")
        elif line.startswith("astridd: hint: "):
            hint = line.removeprefix("astridd: hint: ")
    if not message:
        tail = [line for line in stderr.strip().splitlines() if line.strip()][-5:]
        message = " | ".join(tail) if tail else "(it printed nothing)"
    return DaemonStartFailed(
        f"the daemon exited while starting (exit code {returncode}): {message}",
        hint=hint or f"see its log: {log_path}",
    )


def _event_of(params: object) -> AgentEvent | None:
    """The event of an ``astrid.event`` notification; None (logged) when it is not one this
    version can read."""
    event = params.get("event") if isinstance(params, dict) else None
    if not isinstance(event, dict):
        log.warning("astrid.event without an event object: ignored")
        return None
    try:
        parsed = parse_event(event)  # pyright: ignore[reportUnknownArgumentType]
    except ValidationError as exc:
        log.warning("astrid.event %s does not validate: %s", event.get("type"), exc)
        return None
    if parsed is None:
        log.debug("astrid.event of unknown type %s: ignored", event.get("type"))
    return parsed


class GatewayClient:
    """Async JSON-RPC client. Use as ``async with GatewayClient.connect(...) as client``."""

    def __init__(self, ws: ClientConnection, paths: StatePaths | None = None) -> None:
        self._ws = ws
        self._paths = paths
        self._ids = count(1)
        self._pending: dict[int, MemoryObjectSendStream[JsonObject]] = {}
        send, receive = anyio.create_memory_object_stream[AgentEvent](1024)
        self._event_send: MemoryObjectSendStream[AgentEvent] = send
        self._event_receive: MemoryObjectReceiveStream[AgentEvent] = receive
        self._tg: TaskGroup | None = None
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
        on_start: Callable[[], None] | None = None,
        ephemeral: bool = True,
    ) -> GatewayClient:
        """Connect to the daemon of ``home``, starting one when none runs (and ``autostart``):
        ephemeral unless ``ephemeral=False``. ``on_start`` is called just before it starts."""
        paths = StatePaths(state_dir(home))
        check_private_dir(paths.root)
        found = locate_daemon(paths)
        if found.record is not None:
            try:
                return await cls._connect(paths, found.record, client_name)
            except DaemonNotAuthentic:
                raise
            except DaemonUnavailable:
                if not autostart:
                    raise
        elif not autostart:
            raise DaemonUnavailable(f"no daemon is running for {paths.root}: {found.reason}")
        if on_start is not None:
            on_start()
        proc = start_daemon(paths, ephemeral=ephemeral)
        try:
            return await cls._await_started(paths, proc, start_timeout, client_name)
        finally:
            if proc.stderr is not None and proc.poll() is None:
                proc.stderr.close()

    @classmethod
    async def _await_started(
        cls,
        paths: StatePaths,
        proc: subprocess.Popen[bytes],
        start_timeout: float,
        client_name: str,
    ) -> GatewayClient:
        deadline = time.monotonic() + start_timeout
        stderr = bytearray()
        last_error: Exception | None = None
        unbelievable_since: float | None = None
        while time.monotonic() < deadline:
            _drain(proc, stderr)
            returncode = proc.poll()
            found = locate_daemon(paths)
            if found.record is not None:
                try:
                    return await cls._connect(paths, found.record, client_name)
                except DaemonNotAuthentic:
                    raise
                except DaemonUnavailable as exc:
                    last_error = exc
            if returncode is not None:
                _drain(proc, stderr)
                if returncode == 2 and b"already owns" in stderr:
                    # Another daemon holds the lock. Usually a client started one at the same
                    # moment: wait for it. But a lock holder whose port file we cannot believe
                    # for a second (an older astridd, a foreign listener) will not become
                    # believable: say so now instead of after the timeout.
                    last_error = start_failure(returncode, stderr.decode(errors="replace"), "")
                    if found.reason and paths.port.exists():
                        unbelievable_since = unbelievable_since or time.monotonic()
                        if time.monotonic() - unbelievable_since > 1.0:
                            holder = DaemonLock(paths).holder_pid()
                            raise DaemonUnavailable(
                                f"another astridd (pid {holder or 'unknown'}) holds "
                                f"{paths.lock.name}, but {found.reason}",
                                hint=f"stop it (`kill {holder or '<pid>'}`) and run the "
                                "command again; it may be an older version",
                            )
                    else:
                        unbelievable_since = None
                    await anyio.sleep(0.05)
                    continue
                raise start_failure(returncode, stderr.decode(errors="replace"), paths.log)
            await anyio.sleep(0.05)
        raise DaemonUnavailable(
            f"the daemon did not come up within {start_timeout:g} s "
            f"({last_error or 'no port file'})",
            hint=f"see its log: {paths.log}",
        )

    @classmethod
    async def _connect(
        cls, paths: StatePaths, record: PortRecord, client_name: str
    ) -> GatewayClient:
        """Mutual challenge-response (see ``astrid_gateway.protocol``): the daemon proves it
        knows the token before we send anything derived from it, or any request."""
        token = read_token(paths.token)
        port = record.port
        nonce = secrets.token_hex(32)
        try:
            ws = await connect(
                f"ws://127.0.0.1:{port}",
                additional_headers={NONCE_HEADER: nonce, "X-Astrid-Client": client_name},
                max_size=MAX_FRAME_BYTES * 4,
                open_timeout=5,
            )
        except InvalidStatus as exc:
            raise DaemonUnavailable(
                f"the process on port {port} refused the handshake: HTTP {exc.response.status_code}"
            ) from exc
        except (OSError, TimeoutError, InvalidHandshake) as exc:
            raise DaemonUnavailable(f"cannot reach the daemon on port {port}: {exc}") from exc
        try:
            await cls._authenticate(ws, token, nonce, record)
        except BaseException:
            with anyio.CancelScope(shield=True), anyio.move_on_after(2):
                await ws.close()
            raise
        return cls(ws, paths)

    @staticmethod
    async def _authenticate(
        ws: ClientConnection, token: str, nonce: str, record: PortRecord
    ) -> None:
        headers = ws.response.headers if ws.response is not None else None
        server_nonce = (headers.get(SERVER_NONCE_HEADER) if headers else None) or ""
        pid_text = (headers.get(DAEMON_PID_HEADER) if headers else None) or ""
        proof = (headers.get(DAEMON_PROOF_HEADER) if headers else None) or ""
        pid = int(pid_text) if pid_text.isdigit() else -1
        expected = daemon_proof(token, nonce, server_nonce, record.port, pid)
        if (
            not valid_nonce(server_nonce)
            or (record.pid is not None and pid != record.pid)
            or not hmac.compare_digest(proof.encode(), expected.encode())
        ):
            who = f"pid {record.pid}" if record.pid is not None else "an unknown process"
            raise DaemonNotAuthentic(
                f"refusing to talk to the process on port {record.port} ({who}): it could not "
                "prove that it knows the daemon token, so it is not our astridd (a stale "
                "daemon.port, or another process impersonating the daemon); no token and no "
                "request were sent to it"
            )
        frame = json.dumps(
            {
                "jsonrpc": "2.0",
                "id": 0,
                "method": AUTH_METHOD,
                "params": {"proof": client_proof(token, nonce, server_nonce, record.port, pid)},
            }
        )
        try:
            await ws.send(frame)
            with anyio.fail_after(5):
                reply = json.loads(await ws.recv())
        except ConnectionClosed as exc:
            if exc.rcvd is not None and exc.rcvd.code == AUTH_CLOSE_CODE:
                raise ConfigError(
                    "the daemon refused our proof of the token",
                    hint="the token file changed under a running daemon; restart it with "
                    "`astrid daemon stop`",
                ) from exc
            raise DaemonUnavailable(
                "the daemon closed the connection while authenticating"
            ) from exc
        except TimeoutError:
            raise DaemonUnavailable(
                "the daemon did not confirm authentication within 5 s"
            ) from None
        if not isinstance(reply, dict) or reply.get("result", {}).get("authenticated") is not True:
            raise DaemonUnavailable(f"unexpected authentication reply: {str(reply)[:200]}")

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
            assert self._tg is not None
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
                    event = _event_of(message.get("params"))
                    if event is None:
                        continue
                    # A consumer that stopped reading events must not stall call replies.
                    with contextlib.suppress(anyio.WouldBlock):
                        self._event_send.send_nowait(event)
        except ConnectionClosed:
            pass
        finally:
            self.closed.set()
            for stream in self._pending.values():
                await stream.aclose()
            self._pending.clear()
            await self._event_send.aclose()

    # ------------------------------------------------------------------ calls

    async def call(self, method: str, timeout: float | None = 60.0, **params: JsonValue) -> Any:
        """Call ``method`` (``astrid.`` prefix optional) and return its result."""
        if not method.startswith("astrid."):
            method = f"astrid.{method}"
        request_id = next(self._ids)
        send, receive = anyio.create_memory_object_stream[JsonObject](1)
        self._pending[request_id] = send
        if self.closed.is_set():  # the reader is gone: nobody would ever answer this call
            self._pending.pop(request_id, None)
            send.close()
            receive.close()
            raise DaemonUnavailable("the daemon closed the connection", hint=self._gone_hint())
        frame = json.dumps({"jsonrpc": "2.0", "id": request_id, "method": method, "params": params})
        try:
            await self._ws.send(frame)
        except ConnectionClosed as exc:
            self._pending.pop(request_id, None)
            raise DaemonUnavailable(
                "the daemon closed the connection", hint=self._gone_hint()
            ) from exc
        try:
            with anyio.fail_after(timeout):
                async with receive:
                    try:
                        reply = await receive.receive()
                    except anyio.EndOfStream:
                        raise DaemonUnavailable(
                            "the daemon closed the connection mid-call", hint=self._gone_hint()
                        ) from None
        except TimeoutError:
            self._pending.pop(request_id, None)
            raise AstridTimeoutError(f"{method} got no answer within {timeout:g} s") from None
        err = reply.get("error")
        if isinstance(err, dict):
            code, data = err.get("code"), err.get("data")
            raise RpcCallError(
                code if isinstance(code, int) else ErrorCode.INTERNAL_ERROR,
                str(err.get("message")),
                data if isinstance(data, dict) else None,
            )
        return reply.get("result")

    def _gone_hint(self) -> str:
        """Where to read why the daemon went away."""
        if self._paths is None:
            return DaemonUnavailable.default_hint
        return (
            f"it stopped or crashed: its log is {self._paths.log}; the next command starts a "
            "new one"
        )

    async def subscribe(self, session_id: str | None = None) -> str:
        if session_id is None:
            result = await self.call("astrid.subscribeEvents")
        else:
            result = await self.call("astrid.subscribeEvents", session_id=session_id)
        return str(result["subscription"])

    async def events(self) -> AsyncIterator[AgentEvent]:
        """Yield the events of this connection's subscriptions as they arrive, as the classes
        of ``astrid_gateway.protocol`` (events of a type this version does not know are
        skipped)."""
        async for event in self._event_receive:
            yield event

    async def next_event(self, timeout: float = 30.0) -> AgentEvent:
        with anyio.fail_after(timeout):
            return await self._event_receive.receive()
