"""``astrid daemon run|status|stop`` and ``astrid status``."""

from __future__ import annotations

from typing import Any

import click

from .._support import emit_json, home_of, with_client


@click.group()
def daemon() -> None:
    """Run, inspect or stop the astridd daemon.

    \b
    Examples:
      astrid daemon run --ephemeral
      astrid daemon status --json
      astrid daemon stop
    """


@daemon.command("run")
@click.option("--ephemeral", is_flag=True, help="Exit 30 s after the last client disconnects.")
@click.option("--port", type=int, default=0, show_default=True, help="Port (0 = OS-chosen).")
@click.pass_context
def daemon_run(ctx: click.Context, ephemeral: bool, port: int) -> None:
    """Run the daemon in the foreground (Ctrl-C or SIGTERM stops it cleanly).

    Example: astrid daemon run --ephemeral
    """
    from astrid_gateway.__main__ import main as astridd_main

    argv = ["--port", str(port)]
    home = home_of(ctx)
    if home:
        argv += ["--state-dir", home]
    if ephemeral:
        argv.append("--ephemeral")
    ctx.exit(astridd_main(argv))


def _print_status(status: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(show_header=False, box=None)
    for key in sorted(status):
        table.add_row(f"[bold]{key}[/bold]", str(status[key]))
    Console().print(table)


@daemon.command("status")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def daemon_status(ctx: click.Context, as_json: bool) -> None:
    """Show whether the daemon runs, its pid, port, uptime and clients.

    Example: astrid daemon status --json
    """
    _status(ctx, as_json, autostart=False)


@click.command("status")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def status(ctx: click.Context, as_json: bool) -> None:
    """Show daemon status (starts an ephemeral daemon if none runs).

    Example: astrid status
    """
    _status(ctx, as_json, autostart=True)


def _status(ctx: click.Context, as_json: bool, *, autostart: bool) -> None:
    async def body(client: Any) -> dict[str, Any]:
        result: dict[str, Any] = await client.call("status")
        return result

    if not autostart and not _daemon_port_exists(ctx):
        # Like `systemctl status`: "not running" is an answer, not an error; exit code 3.
        if as_json:
            emit_json({"running": False})
        else:
            click.echo("daemon: not running (start it with `astrid daemon run`)")
        ctx.exit(3)
    result = with_client(ctx, body, autostart=autostart)
    result = {"running": True, **result}
    if as_json:
        emit_json(result)
    else:
        _print_status(result)


def _daemon_port_exists(ctx: click.Context) -> bool:
    from astrid_gateway._state import StatePaths, state_dir

    return StatePaths(state_dir(home_of(ctx))).port.exists()


@daemon.command("stop")
@click.pass_context
def daemon_stop(ctx: click.Context) -> None:
    """Ask the daemon to save everything and exit.

    Example: astrid daemon stop
    """

    async def body(client: Any) -> Any:
        return await client.call("shutdown")

    with_client(ctx, body, autostart=False)
    click.echo("daemon stopping")


__all__ = ["daemon", "status"]
