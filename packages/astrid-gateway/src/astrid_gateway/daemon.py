"""astridd: composes the agent runtime behind the gateway server.

The daemon is the only process that opens the state (storage, keys, audit). It gives the
runtime a RelayFrontend so approvals reach subscribed clients, runs turns in the background,
and on SIGTERM / astrid.shutdown saves sessions and stops MCP servers before exiting.
Methods without an implementation answer ``-32006 not available`` instead of pretending.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Awaitable, Callable, Sequence
from logging.handlers import RotatingFileHandler
from typing import TYPE_CHECKING

import anyio
from pydantic import JsonValue

from astrid_core import AstridError, JsonObject
from astrid_runtime.service import RuntimeService

from . import __version__
from ._jsonrpc import RpcError
from ._relay import RelayFrontend
from ._state import StatePaths
from .config_inputs import config_inputs
from .protocol import METHODS, PROTOCOL_VERSION, AgentEvent, ErrorCode
from .server import Connection, GatewayServer, Handler

if TYPE_CHECKING:
    from astrid_runtime.runtime import AgentRuntime

__all__ = ["run_daemon", "build_server", "ConfigState"]

log = logging.getLogger("astrid.gateway")

_TRANSPORT_METHODS = (
    "astrid.configInputs",
    "astrid.status",
    "astrid.shutdown",
    "astrid.subscribeEvents",
    "astrid.unsubscribeEvents",
)


class ConfigState:
    """What the daemon's configuration was made from (``config_inputs``), and the changed
    keys a reload could not apply (they wait for ``astrid daemon restart``)."""

    def __init__(self, paths: StatePaths, key: bytes) -> None:
        self.paths = paths
        self.key = key
        self.inputs = self.read()
        self.pending_restart: list[str] = []

    def read(self) -> dict[str, str]:
        return config_inputs(self.paths.root, os.environ, self.key)


def build_server(
    paths: StatePaths, port: int = 0, ephemeral: bool = False, idle_grace: float = 30.0
) -> GatewayServer:
    server, _ = _build(paths, port, ephemeral, idle_grace)
    return server


def _build(
    paths: StatePaths, port: int, ephemeral: bool, idle_grace: float
) -> tuple[GatewayServer, ConfigState]:
    server = GatewayServer(paths, port=port, ephemeral=ephemeral, idle_grace_seconds=idle_grace)

    async def shutdown(conn: Connection, params: JsonObject) -> JsonObject:
        server.request_shutdown(f"astrid.shutdown from client {conn.client_name}")
        return {"stopping": True}

    # Taken now, as the runtime's configuration is loaded from the same files and environment.
    config = ConfigState(paths, server.token_key)

    async def configuration_inputs(conn: Connection, params: JsonObject) -> JsonObject:
        return {
            "inputs": dict[str, JsonValue](config.inputs),
            "pending_restart": list[JsonValue](config.pending_restart),
            "ephemeral": server.ephemeral,
            "pid": os.getpid(),
        }

    server.register("astrid.status", _status_handler(server, paths, None))
    server.register("astrid.shutdown", shutdown)
    server.register("astrid.configInputs", configuration_inputs)
    for method in METHODS:
        if method not in _TRANSPORT_METHODS:
            server.register(method, _not_available(method))
    return server, config


def _reload_handler(config: ConfigState, runtime: RuntimeService) -> Handler:
    async def reload(conn: Connection, params: JsonObject) -> JsonObject:
        from astrid_runtime.config import load_config

        # The admin layers as they are now, under the environment the daemon started with. A
        # broken file raises ConfigProblems (file, line, column) and nothing changes.
        try:
            loaded = load_config(config.paths.root)
        except AstridError as exc:
            log.warning("configuration reload refused: %s", exc.message)
            raise
        inputs = config.read()
        result = await runtime.reload_config(loaded)
        config.inputs = inputs
        config.pending_restart = list(result.needs_restart)
        log.info(
            "configuration reloaded by %s: applied %s; needs restart %s",
            conn.client_name,
            list(result.applied) or "nothing",
            list(result.needs_restart) or "nothing",
        )
        return {
            "applied": list[JsonValue](result.applied),
            "needs_restart": list[JsonValue](result.needs_restart),
            "files": [str(path) for path in loaded.files],
        }

    return reload


def _status_handler(
    server: GatewayServer, paths: StatePaths, runtime: RuntimeService | None
) -> Handler:
    async def status(conn: Connection, params: JsonObject) -> JsonObject:
        result: JsonObject = {
            "version": __version__,
            "protocol": PROTOCOL_VERSION,
            "pid": os.getpid(),
            "uptime_seconds": round(time.time() - server.started_at, 3),
            "ephemeral": server.ephemeral,
            "clients": len(server.connections),
            "state_dir": str(paths.root),
            "log": _log_destination(),
            "runtime": "not loaded",
        }
        if runtime is not None:
            result["runtime"] = (await runtime.status()).model_dump(mode="json")
        return result

    return status


def _log_destination() -> str:
    """Where the daemon logs, for `astrid status`: the rotated file and its limits, or stderr."""
    for handler in logging.getLogger().handlers:
        if isinstance(handler, RotatingFileHandler):
            return (
                f"{handler.baseFilename} (rotated at {handler.maxBytes} bytes, "
                f"{handler.backupCount} kept)"
            )
    return "stderr"


def _not_available(method: str) -> Handler:
    async def handler(conn: Connection, params: JsonObject) -> JsonValue:
        raise RpcError(
            ErrorCode.NOT_AVAILABLE,
            f"{method} is not available in this build of astridd yet",
            data={"hint": "see the project README for what is implemented"},
        )

    return handler


async def _open_runtime(paths: StatePaths) -> AgentRuntime:
    # Imported here, not at the top: the runtime loads the model SDKs, which a process that
    # only builds the server (tests, `astrid daemon status`) does not need.
    from astrid_runtime.runtime import AgentRuntime

    return await AgentRuntime.open(paths.root)


Companion = Callable[[StatePaths], Awaitable[None]]


async def run_daemon(
    paths: StatePaths,
    port: int,
    ephemeral: bool,
    idle_grace: float,
    companions: Sequence[Companion] = (),
    *,
    detach_stdio: bool = False,
) -> None:
    """Serve until shutdown. ``companions`` run inside the daemon once it listens (e.g. the
    embedded Telegram bot, composed by the ``astrid`` meta-package); a failing companion is
    logged and does not take the daemon down. With ``detach_stdio`` stdout and stderr (a pipe
    to the client that started us, which reads start-up errors from it) are pointed at
    /dev/null once the daemon listens."""
    server, config = _build(paths, port, ephemeral, idle_grace)
    # Take the single-instance lock before the runtime opens storage: a second daemon must
    # fail on the lock, not on a half-opened database.
    server.lock_now()
    try:
        runtime = await _open_runtime(paths)
    except BaseException:
        server.release_lock()
        raise
    relay = RelayFrontend(server)
    async with anyio.create_task_group() as tg:
        from ._methods import bind_runtime

        runtime.set_frontend(relay)
        bind_runtime(server, runtime, relay, tg)

        async def replayed(session_id: str, event: AgentEvent) -> None:
            await server.publish(session_id, event)  # a replayed deferred call, like a live one

        runtime.replay_listener = replayed
        from ._mcp_methods import bind_mcp_front

        bind_mcp_front(server, runtime, tg, paths.root)  # astrid mcp serve
        server.register("astrid.status", _status_handler(server, paths, runtime))
        server.register("astrid.reloadConfig", _reload_handler(config, runtime))
        server.on_shutdown.append(runtime.aclose)
        tg.start_soon(relay.pump)
        tg.start_soon(runtime.run_background)  # MCP servers live in the daemon's task group
        for companion in companions:
            tg.start_soon(_run_companion, companion, paths, server)
        if detach_stdio:
            tg.start_soon(_detach_stdio, server)
        try:
            await server.run()
        finally:
            relay.close()
            tg.cancel_scope.cancel()


async def _detach_stdio(server: GatewayServer) -> None:
    await server.listening.wait()
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        for fd in (1, 2):
            os.dup2(devnull, fd)
    finally:
        os.close(devnull)


async def _run_companion(companion: Companion, paths: StatePaths, server: GatewayServer) -> None:
    await server.listening.wait()  # start after the port file exists
    try:
        await companion(paths)
    except Exception:
        log.exception("daemon companion %s failed", getattr(companion, "__name__", companion))
