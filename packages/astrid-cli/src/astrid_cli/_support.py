"""Shared helpers for commands: talking to the daemon, printing results and errors."""

from __future__ import annotations

import json
import sys
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import click

T = TypeVar("T")

__all__ = ["run_async", "with_client", "emit_json", "fail", "home_of", "server_confinement"]


def home_of(ctx: click.Context) -> str | None:
    obj: dict[str, Any] = ctx.find_root().obj or {}
    home = obj.get("home")
    return str(home) if home else None


def fail(message: str, hint: str = "", code: int = 1) -> None:
    """Print an error the way every command does, then exit with ``code``."""
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
        fail(exc.message, exc.hint)
        raise  # unreachable; fail() exits
    except BaseExceptionGroup as group:  # task groups wrap errors: show the first Astrid one
        astrid = _first_astrid_error(group)
        if astrid is None:
            raise
        fail(astrid.message, astrid.hint)
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
    from astrid_gateway.client import GatewayClient

    async def go() -> T:
        async with await GatewayClient.open(
            home_of(ctx), autostart=autostart, client_name="cli"
        ) as client:
            return await body(client)

    return run_async(go)


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
