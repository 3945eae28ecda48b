"""``astrid daemon run|status|stop`` and ``astrid status``."""

from __future__ import annotations

from typing import Any

import click

from .._support import emit_json, fail, home_of, server_confinement, with_client


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
@click.option(
    "--ephemeral",
    is_flag=True,
    help="Exit once no client has been connected for [gateway] ephemeral_idle_seconds (30 s).",
)
@click.option(
    "--port", type=int, default=None, help="Port (default: [gateway] port; 0 = OS-chosen)."
)
@click.pass_context
def daemon_run(ctx: click.Context, ephemeral: bool, port: int | None) -> None:
    """Run the daemon in the foreground (Ctrl-C or SIGTERM stops it cleanly).

    Example: astrid daemon run --ephemeral
    """
    from astrid_gateway.__main__ import main as astridd_main

    argv = [] if port is None else ["--port", str(port)]
    home = home_of(ctx)
    if home:
        argv += ["--state-dir", home]
    if ephemeral:
        argv.append("--ephemeral")
    ctx.exit(astridd_main(argv))


def _print_status(status: dict[str, Any]) -> None:
    """The status for a person: the daemon, then what it hosts, then what needs attention."""
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    console = Console()
    runtime: dict[str, Any] = status.get("runtime") or {}
    uptime = float(status.get("uptime_seconds") or 0)
    daemon = (
        f"running, pid {status.get('pid')}, version {status.get('version')}, "
        f"up {_duration(uptime)}"
        + (" (ephemeral: stops when idle)" if status.get("ephemeral") else "")
    )
    facts = Table(show_header=False, box=None)
    rows: list[tuple[str, object]] = [
        ("daemon", daemon),
        ("clients", status.get("clients")),
        ("state", status.get("state_dir")),
        ("log", status.get("log")),
        ("storage", runtime.get("storage_url")),
        ("runtime key", runtime.get("runtime_key_id")),
        ("sandbox", runtime.get("sandbox")),
        (
            "sessions",
            f"{runtime.get('sessions', 0)} ({runtime.get('running_turns', 0)} running a turn)",
        ),
        (
            "approvals",
            f"{runtime.get('pending_approvals', 0)} waiting, "
            f"{runtime.get('deferred_approvals', 0)} deferred",
        ),
    ]
    for label, value in rows:
        if value is not None:
            facts.add_row(f"[bold]{label}[/bold]", escape(str(value)))
    console.print(facts)
    servers: list[dict[str, Any]] = runtime.get("servers") or []
    if servers:
        table = Table(title="MCP servers", title_justify="left")
        for column in ("server", "state", "tools", "restarts", "sandbox"):
            table.add_column(column)
        for server in servers:
            table.add_row(
                *(
                    escape(str(server.get(key, "")))
                    for key in ("name", "state", "tools", "restarts")
                ),
                escape(server_confinement(server)),  # the machine's sandbox is a fact above
            )
        console.print(table)
    scheduled: list[dict[str, Any]] = runtime.get("scheduled") or []
    if scheduled:
        table = Table(title="Scheduled capsule jobs", title_justify="left")
        for column in ("capsule / job", "schedule", "next due", "runs", "skipped", "last"):
            table.add_column(column)
        for job in scheduled:
            table.add_row(
                escape(f"{job.get('capsule')} / {job.get('job')}"),
                escape(str(job.get("schedule"))),
                escape(str(job.get("next_due") or "-")),
                str(job.get("runs", 0)),
                str(job.get("skipped", 0)),
                escape(str(job.get("last") or "-")),
            )
        console.print(table)
    warnings: list[str] = runtime.get("warnings") or []
    for warning in warnings:
        console.print(f"[yellow]⚠ {escape(warning)}[/yellow]")
    if not warnings:
        console.print("[green]no warnings[/green]")


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


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

    not_running = "" if autostart else _why_not_running(ctx)
    if not_running:
        # Like `systemctl status`: "not running" is an answer, not an error; exit code 3.
        if as_json:
            emit_json({"running": False})
        else:
            click.echo(f"daemon: not running ({not_running}; start it with `astrid daemon run`)")
        ctx.exit(3)
    result = with_client(ctx, body, autostart=autostart)
    result = {"running": True, **result}
    if as_json:
        emit_json(result)
    else:
        _print_status(result)


def _why_not_running(ctx: click.Context) -> str:
    """Why no daemon answers for this home ("" when one does): no port file, or a stale one."""
    from astrid_core import AstridError
    from astrid_gateway.client import locate_daemon
    from astrid_gateway.paths import StatePaths, check_private_dir, state_dir

    paths = StatePaths(state_dir(home_of(ctx)))
    try:
        check_private_dir(paths.root)
        return locate_daemon(paths).reason
    except AstridError as exc:  # a planted link or a foreign file: refuse, do not trace back
        fail(exc.message, exc.hint, error_code=exc.code)
        raise


@daemon.command("reload")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def daemon_reload(ctx: click.Context, as_json: bool) -> None:
    """Re-read the configuration files in the running daemon and apply what can be applied.

    The daemon reads /etc/astrid/config.toml and $ASTRID_HOME/config.toml again, under the
    environment it was started with. Policy, budget, workspace and limit keys apply to sessions
    started from now on; keys the daemon uses at start (model provider and key, servers, keys,
    audit, gateway, logging, telegram) are listed as needing `astrid daemon restart`. A file
    with an error is refused with its line and column, and the daemon keeps its configuration.

    Example: astrid daemon reload
    """
    from .._support import connected, run_async

    async def go() -> dict[str, Any]:
        async with connected(ctx, autostart=False, check_config=False) as client:
            result: dict[str, Any] = await client.call("reloadConfig")
            return result

    result = run_async(go)
    if as_json:
        emit_json(result)
        return
    applied: list[str] = result.get("applied") or []
    restart: list[str] = result.get("needs_restart") or []
    if not applied and not restart:
        click.echo("configuration reloaded: nothing changed")
        return
    if applied:
        click.echo("applied (to sessions started from now on): " + ", ".join(applied))
    if restart:
        click.echo("not applied, needs `astrid daemon restart`: " + ", ".join(restart))


@daemon.command("restart")
@click.pass_context
def daemon_restart(ctx: click.Context) -> None:
    """Stop the running daemon and start it again with this shell's environment and the
    configuration files as they are now (detached; an ephemeral daemon stays ephemeral).

    Example: astrid daemon restart
    """
    from astrid_gateway.client import GatewayClient

    from .._support import StartingNotice, open_client, run_async, wait_for_exit

    async def go() -> int:
        async with await open_client(ctx, autostart=False) as client:
            info: dict[str, Any] = await client.call("configInputs")
            await client.call("shutdown")
        await wait_for_exit(int(info["pid"]))
        notice = StartingNotice()
        try:
            new = await GatewayClient.open(
                home_of(ctx),
                client_name="cli",
                on_start=notice.show,
                ephemeral=bool(info.get("ephemeral")),
            )
        finally:
            notice.clear()
        async with new:
            status: dict[str, Any] = await new.call("status")
        return int(status["pid"])

    pid = run_async(go)
    click.echo(f"daemon restarted (pid {pid})")


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
