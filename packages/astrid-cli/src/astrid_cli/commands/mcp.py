"""``astrid mcp``: Astrid as the MCP server your MCP client talks to.

``astrid mcp serve`` is a thin bridge: it copies the client's stdin/stdout to the daemon's MCP
socket (``$ASTRID_HOME/mcp.sock``, 0600, peer uid checked), so every client shares the daemon's
one runtime — one policy, one audit log, one budget, one process per upstream server.
``--http`` starts the daemon's streamable HTTP endpoint instead (loopback, bearer token from
``$ASTRID_HOME/mcp.token``) and prints its URL, for clients that connect over HTTP themselves.
"""

from __future__ import annotations

import os
import sys
from typing import Any

import click

from .._support import connected, emit_json, run_async, wants_json, with_client


@click.group()
def mcp() -> None:
    """Put Astrid between your MCP client and its MCP servers.

    Your client (Claude Code, Claude Desktop, Cursor, …) runs `astrid mcp serve` instead of
    its servers; the servers move to [[servers]] in Astrid's config. Every tool call is then
    checked by Astrid's policy, may ask you, and is audited.

    \b
    Examples:
      astrid mcp tools                 # what clients see, and what waits for approval
      astrid mcp approve github        # accept github's unflagged tools as they are now
      astrid mcp approve github push   # accept one tool (also a flagged or changed one)
      astrid mcp serve                 # stdio: {"command": "astrid", "args": ["mcp", "serve"]}
      astrid mcp serve --http --port 8765
    """


@mcp.command("serve")
@click.option("--http", "http", is_flag=True, help="Serve streamable HTTP and print its URL.")
@click.option("--port", type=int, default=0, show_default=True, help="HTTP port (0: any free).")
@click.option(
    "--workspace",
    type=click.Path(file_okay=False, exists=True),
    default=None,
    help="Workspace of the client's session (default: the current directory).",
)
@click.pass_context
def serve(ctx: click.Context, http: bool, port: int, workspace: str | None) -> None:
    """Serve MCP to one client on stdin/stdout (or, with --http, to clients on loopback)."""
    where = os.path.realpath(workspace or os.getcwd())

    async def go() -> None:
        async with connected(ctx) as client:  # held open: the daemon stays up while we serve
            if http:
                info: dict[str, Any] = await client.call("mcpEndpoint", timeout=120, port=port)
                click.echo(f"MCP endpoint: {info['url']}", err=True)
                click.echo(
                    f"send Authorization: Bearer <the token in {info['token_file']}>", err=True
                )
                click.echo(info["url"])
                sys.stdout.flush()
                await client.closed.wait()
                return
            socket_info: dict[str, Any] = await client.call("mcpSocket", timeout=120)
            await _relay(str(socket_info["path"]), where)

    run_async(go)


async def _relay(path: str, workspace: str) -> None:
    """Copy bytes between our stdin/stdout and the daemon's MCP socket, unparsed: the daemon
    reads one JSON-RPC message per line, as a stdio server does."""
    import json

    import anyio

    stdin, stdout = sys.stdin.buffer.raw, sys.stdout.buffer  # type: ignore[attr-defined]
    async with await anyio.connect_unix(path) as sock, anyio.create_task_group() as tg:
        await sock.send(json.dumps({"astrid_workspace": workspace}).encode() + b"\n")

        async def downstream() -> None:
            try:
                while True:
                    data = await sock.receive(65536)
                    stdout.write(data)
                    stdout.flush()
            except (anyio.EndOfStream, anyio.BrokenResourceError):
                tg.cancel_scope.cancel()

        tg.start_soon(downstream)
        while True:
            data = await anyio.to_thread.run_sync(stdin.read, 65536, abandon_on_cancel=True)
            if not data:
                break  # the client closed stdin: we are done
            await sock.send(data)
        tg.cancel_scope.cancel()


def _rows(rows: list[dict[str, Any]]) -> None:
    if not rows:
        click.echo("no MCP server is running (see `astrid servers list`)")
        return
    for row in rows:
        click.echo(f"{row['name']:<40} {row['state']}")
        if row["findings"]:
            for finding in row["findings"]:
                click.echo(f"    finding: {finding}")
    waiting = [r for r in rows if not r["offered"]]
    if waiting:
        servers = sorted({r["server"] for r in waiting})
        click.echo(
            f"{len(waiting)} tool(s) wait for approval: review them, then "
            + "; ".join(f"`astrid mcp approve {s}`" for s in servers)
        )


@mcp.command("tools")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def tools(ctx: click.Context, as_json: bool) -> None:
    """Upstream tools as MCP clients see them: offered, or waiting (new, changed, flagged)."""
    rows: list[dict[str, Any]] = with_client(ctx, lambda c: c.call("mcpTools", timeout=120))
    if as_json or wants_json(ctx):
        emit_json(rows)
    else:
        _rows(rows)


@mcp.command("approve")
@click.argument("server")
@click.argument("tool", required=False)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def approve(ctx: click.Context, server: str, tool: str | None, as_json: bool) -> None:
    """Accept SERVER's tools for MCP clients as they are defined now (all unflagged ones, or
    TOOL alone). A later change to a tool or to the server's launch voids the acceptance."""
    shown: list[dict[str, Any]] = with_client(ctx, lambda c: c.call("mcpTools", timeout=120))
    for row in shown:
        if row["server"] == server and (tool is None or row["tool"] == tool):
            click.echo(f"{row['tool']}: {row['description'][:300]}", err=True)
    params: dict[str, Any] = {"server": server}
    if tool is not None:
        params["tool"] = tool
    rows: list[dict[str, Any]] = with_client(
        ctx, lambda c: c.call("mcpApprove", timeout=120, **params)
    )
    if as_json:
        emit_json(rows)
    else:
        _rows(rows)


@mcp.command("install-client")
@click.argument("client", type=click.Choice(["claude-code", "claude-desktop", "cursor"]))
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False),
    default=None,
    help="The client's config file (default: where that client keeps it).",
)
@click.option("--write", is_flag=True, help="Write both files (the diff is shown first).")
@click.pass_context
def install_client(ctx: click.Context, client: str, config_path: str | None, write: bool) -> None:
    """Route CLIENT's MCP servers through Astrid: they move to [[servers]] in Astrid's
    config.toml and the client gets `astrid mcp serve` instead. Prints the diff; --write
    applies it (the client's file is backed up to <file>.astrid-backup)."""
    from pathlib import Path

    from astrid_core import AstridError
    from astrid_gateway._state import state_dir

    from .._support import fail, home_of
    from ._mcp_install import default_client_config, plan_install, write_plan

    path = (
        Path(config_path) if config_path else default_client_config(client, Path.cwd(), Path.home())
    )
    astrid_config = state_dir(home_of(ctx)) / "config.toml"
    try:
        plan = plan_install(path, astrid_config)
    except AstridError as exc:
        fail(exc.message, exc.hint, error_code=exc.code)
        return
    diff = plan.diff()
    click.echo(diff or "nothing to change", nl=not diff)
    for name in plan.skipped:
        click.echo(f"{name}: already in {astrid_config}, not added again", err=True)
    if not write:
        if diff:
            click.echo(f"dry run: run again with --write to apply ({client}: {path})", err=True)
        return
    if diff:
        write_plan(plan)
        moved = ", ".join(plan.moved) or "none"
        click.echo(f"written; servers moved to Astrid: {moved}", err=True)
        click.echo(
            f"next: `astrid mcp tools`, then `astrid mcp approve SERVER`; restart {client}",
            err=True,
        )


__all__ = ["mcp"]
