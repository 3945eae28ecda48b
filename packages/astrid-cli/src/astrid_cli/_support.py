"""Shared helpers for commands: talking to the daemon, printing results and errors."""

from __future__ import annotations

import contextlib
import json
import os
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import click

T = TypeVar("T")

__all__ = [
    "run_async",
    "with_client",
    "open_client",
    "connected",
    "emit_json",
    "fail",
    "wants_json",
    "error_object",
    "home_of",
    "server_confinement",
    "StartingNotice",
    "wait_for_exit",
]


def home_of(ctx: click.Context) -> str | None:
    obj: dict[str, Any] = ctx.find_root().obj or {}
    home = obj.get("home")
    return str(home) if home else None


def wants_json(ctx: click.Context | None = None) -> bool:
    """True when the running command (or a group above it) was given ``--json``."""
    ctx = ctx or click.get_current_context(silent=True)
    while ctx is not None:
        if ctx.params.get("as_json"):
            return True
        ctx = ctx.parent
    return False


def error_object(message: str, hint: str = "", code: str = "astrid.error") -> dict[str, Any]:
    """The JSON form of an error, printed on stdout by every ``--json`` command that fails."""
    return {"error": {"code": code, "message": message, "hint": hint}}


def fail(message: str, hint: str = "", code: int = 1, *, error_code: str = "astrid.error") -> None:
    """Print an error the way every command does (a JSON object under ``--json``), then exit
    with ``code``."""
    if wants_json():
        emit_json(error_object(message, hint, error_code))
        sys.exit(code)
    click.secho(f"error: {message}", fg="red", err=True)
    if hint:
        click.echo(f"  hint: {hint}", err=True)
    sys.exit(code)


def run_async(func: Callable[[], Awaitable[T]]) -> T:
    """Run a coroutine; turn AstridErrors into a clean message + exit code 1."""
    import anyio

    from astrid_core import AstridError

    try:
        return anyio.run(func)
    except AstridError as exc:
        fail(exc.message, exc.hint, error_code=exc.code)
        raise  # unreachable; fail() exits
    except BaseExceptionGroup as group:  # task groups wrap errors: show the first Astrid one
        astrid = _first_astrid_error(group)
        if astrid is None:
            raise
        fail(astrid.message, astrid.hint, error_code=astrid.code)
        raise


def _first_astrid_error(group: BaseExceptionGroup[BaseException]) -> Any:
    from astrid_core import AstridError

    for exc in group.exceptions:
        if isinstance(exc, AstridError):
            return exc
        if isinstance(exc, BaseExceptionGroup):
            found = _first_astrid_error(exc)  # pyright: ignore[reportUnknownArgumentType]
            if found is not None:
                return found
    return None


def with_client(
    ctx: click.Context, body: Callable[[Any], Awaitable[T]], *, autostart: bool = True
) -> T:
    """Connect to the daemon (auto-starting an ephemeral one) and run ``body(client)``."""

    async def go() -> T:
        async with connected(ctx, autostart=autostart) as client:
            return await body(client)

    return run_async(go)


@contextlib.asynccontextmanager
async def connected(
    ctx: click.Context, *, autostart: bool = True, check_config: bool = True
) -> AsyncIterator[Any]:
    """A connected client, on a daemon whose configuration is the one this command would load.

    A daemon loads its configuration when it starts. When this command's environment or the
    config files differ from what the running daemon started with (compared as digests keyed
    with the daemon token, so no secret is sent), an ephemeral daemon — one a command started,
    which exits when idle — is restarted with this command's configuration; a persistent one
    (``astrid daemon run``) is never restarted behind the user's back: the command goes on with
    it and says what differs and how to apply it.
    """
    client = await open_client(ctx, autostart=autostart)
    async with client:
        restart_pid = await _check_configuration(ctx, client, autostart) if check_config else None
        if restart_pid is None:
            yield client
            return
    await wait_for_exit(restart_pid)
    async with await open_client(ctx, autostart=True) as client:
        yield client


async def _check_configuration(ctx: click.Context, client: Any, autostart: bool) -> int | None:
    """The pid of an ephemeral daemon to restart, or None (a difference is only reported)."""
    from astrid_gateway.client import RpcCallError
    from astrid_gateway.config_inputs import changed_inputs, config_inputs, describe_changes
    from astrid_gateway.paths import StatePaths, read_token, state_dir

    try:
        info = await client.call("configInputs")
    except RpcCallError:  # a daemon from before this check: nothing to compare
        return None
    paths = StatePaths(state_dir(home_of(ctx)))
    mine = config_inputs(paths.root, os.environ, read_token(paths.token).encode())
    changed = changed_inputs(info["inputs"], mine)
    pending: list[str] = info.get("pending_restart") or []
    if not changed and not pending:
        return None
    what = describe_changes(changed, info["inputs"])
    pid = int(info["pid"])
    if info.get("ephemeral") and autostart:
        click.echo(
            f"restarting the ephemeral daemon (pid {pid}): it started with another "
            f"configuration than this command's:\n{what or _pending_text(pending)}",
            err=True,
        )
        await client.call("shutdown")
        return pid
    click.echo(
        f"warning: the running daemon (pid {pid}) uses another configuration than this "
        f"command's:\n{_how_to_apply(changed, pending, what)}",
        err=True,
    )
    return None


def _pending_text(pending: list[str]) -> str:
    return f"  reloaded, but applied only on restart: {', '.join(pending)}"


def _how_to_apply(changed: list[str], pending: list[str], what: str) -> str:
    """What differs, then the command that applies it: a changed file is re-read by
    `astrid daemon reload` (it says which keys need a restart); an environment variable only
    reaches a daemon started from this shell (`astrid daemon restart`)."""
    from astrid_gateway.config_inputs import CONFIG_ENV

    lines = [what] if what else []
    if pending:
        lines.append(_pending_text(pending))
    if any(name not in CONFIG_ENV for name in changed):
        lines.append(
            "to apply the file: `astrid daemon reload` (it says which keys need "
            "`astrid daemon restart`)"
        )
    if pending or any(name in CONFIG_ENV for name in changed):
        lines.append(
            "to apply "
            + ("this environment" if any(n in CONFIG_ENV for n in changed) else "them")
            + ": `astrid daemon restart` (starts it again from this shell)"
        )
    return "\n".join(lines)


async def wait_for_exit(pid: int, timeout: float = 20.0) -> None:
    import anyio

    from astrid_core import AstridError

    def running() -> bool:
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            return False
        return stat.rsplit(")", 1)[1].split()[0] != "Z"  # a zombie has exited

    with anyio.move_on_after(timeout):
        while running():  # noqa: ASYNC110 - another process's exit has no event to wait on
            await anyio.sleep(0.05)
        return
    raise AstridError(
        f"the ephemeral daemon (pid {pid}) did not stop within {timeout:g} s",
        hint=f"stop it with `kill {pid}` and run the command again",
    )


async def open_client(ctx: click.Context, *, autostart: bool = True) -> Any:
    """``GatewayClient.open`` for a command: while an auto-started daemon comes up, a person on
    a terminal sees "starting the Astrid daemon…"; a daemon that dies starting is reported at
    once with its own error (raised as an AstridError, which run_async prints)."""
    from astrid_gateway.client import GatewayClient

    notice = StartingNotice()
    try:
        return await GatewayClient.open(
            home_of(ctx), autostart=autostart, client_name="cli", on_start=notice.show
        )
    finally:
        notice.clear()


class StartingNotice:
    """ "starting the Astrid daemon…" on stderr while an auto-started daemon comes up (only on
    a terminal: scripts and --json output stay clean); erased once connected or failed."""

    TEXT = "starting the Astrid daemon…"

    def __init__(self) -> None:
        self.shown = False

    def show(self) -> None:
        if sys.stderr.isatty():
            sys.stderr.write(self.TEXT)
            sys.stderr.flush()
            self.shown = True

    def clear(self) -> None:
        if self.shown:
            sys.stderr.write("\r\x1b[K")
            sys.stderr.flush()
            self.shown = False


def emit_json(value: Any) -> None:
    click.echo(json.dumps(value, indent=2, sort_keys=True, default=str))


def server_confinement(row: dict[str, Any]) -> str:
    """How a running MCP server is confined, from its status row ("" while it is not running)."""
    if row.get("state") != "running":
        return ""
    if not row.get("sandboxed"):
        return "NOT sandboxed"
    if row.get("confinement"):  # the layers in force: namespaces, Landlock, seccomp, network
        return str(row["confinement"])
    return "sandboxed, no TCP" if row.get("network") is False else "sandboxed"
