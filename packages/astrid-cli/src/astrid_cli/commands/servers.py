"""``astrid servers``: MCP servers run by the daemon — status, start/stop, tools, pins, hashes."""

from __future__ import annotations

from typing import Any

import click

from .._support import emit_json, fail, server_confinement, with_client


@click.group()
def servers() -> None:
    """Manage the MCP servers configured in [[servers]].

    Servers run inside the daemon, sandboxed with Landlock unless an admin config turns it off.
    A tool whose name, description or schema changes after first use is disabled until you
    approve it again.

    \b
    Examples:
      astrid servers list
      astrid servers restart github
      astrid servers tools
      astrid servers approve github create_issue
      astrid servers login linear
      astrid servers hash /usr/local/bin/my-mcp-server
    """


def _table(rows: list[dict[str, Any]]) -> None:
    if not rows:
        click.echo("no MCP servers configured (add [[servers]] to config.toml)")
        return
    for row in rows:
        sandbox = server_confinement(row)
        line = f"{row['name']:<20} {row['state']:<9} tools={row.get('tools', 0):<4} {sandbox}"
        if row.get("restarts"):
            line += f" restarts={row['restarts']}"
        click.echo(line)
        if row.get("last_error"):
            click.echo(f"    last error: {row['last_error']}")
    click.echo(f"sandbox: {rows[0].get('sandbox', 'unknown')}")


@servers.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def servers_list(ctx: click.Context, as_json: bool) -> None:
    """Show every server, its state, tool count, sandbox and last error."""

    async def both(client: Any) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        rows = await client.call("listServers")
        if not rows:
            return rows, []
        try:  # screening findings of the MCP gateway (astrid mcp tools); older daemons: none
            tools = await client.call("mcpTools", timeout=120)
        except Exception:
            tools = []
        return rows, tools

    rows, tools = with_client(ctx, both)
    for row in rows:
        row["flagged"] = sorted(
            t["tool"] for t in tools if t["server"] == row["name"] and t["findings"]
        )
    if as_json:
        emit_json(rows)
    else:
        _table(rows)
        for row in rows:
            if row["flagged"]:
                click.echo(
                    f"{row['name']}: flagged tools (hidden instructions?): "
                    f"{', '.join(row['flagged'])}; see `astrid mcp tools`"
                )


def _one(ctx: click.Context, method: str, name: str) -> None:
    row: dict[str, Any] = with_client(ctx, lambda c: c.call(method, name=name, timeout=120))
    _table([row])


@servers.command("running")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def servers_running(ctx: click.Context, as_json: bool) -> None:
    """Only the servers that are up."""
    rows: list[dict[str, Any]] = with_client(ctx, lambda c: c.call("listServers"))
    running = [row for row in rows if row["state"] == "running"]
    if as_json:
        emit_json(running)
    elif running:
        _table(running)
    else:
        click.echo("no MCP server is running")


@servers.command("start")
@click.argument("name")
@click.pass_context
def servers_start(ctx: click.Context, name: str) -> None:
    """Start a server (waits until it answered initialize)."""
    _one(ctx, "startServer", name)


@servers.command("stop")
@click.argument("name")
@click.pass_context
def servers_stop(ctx: click.Context, name: str) -> None:
    """Stop a server and everything it started."""
    _one(ctx, "stopServer", name)


@servers.command("restart")
@click.argument("name")
@click.pass_context
def servers_restart(ctx: click.Context, name: str) -> None:
    """Stop, then start a server."""
    _one(ctx, "stopServer", name)
    _one(ctx, "startServer", name)


# The daemon waits 300 s for the browser to come back; this only has to outlast that.
_SIGN_IN_WAIT_S = 420


@servers.command("login")
@click.argument("name")
@click.pass_context
def servers_login(ctx: click.Context, name: str) -> None:
    """Sign in to a server configured with `oauth` (restarts it with a fresh sign-in).

    Prints the authorization URL to open in a browser, then waits until the browser has come
    back to the daemon's one-time listener on 127.0.0.1 (run this on the machine where the
    daemon runs, or forward that port). The tokens are stored by the daemon, never printed.
    """

    async def body(client: Any) -> dict[str, Any]:
        row: dict[str, Any] = await client.call("loginServer", name=name, timeout=120)
        url = row.get("url")
        if not url:
            return row
        click.echo(f"Open this URL in a browser to sign in to MCP server {name}:\n")
        click.echo(f"  {url}\n")
        click.echo("waiting for the browser to come back (Ctrl-C to give up) ...")
        return await client.call("finishServerLogin", name=name, timeout=_SIGN_IN_WAIT_S)

    row: dict[str, Any] = with_client(ctx, body)
    _table([row])
    if row["state"] != "running":
        fail(
            f"MCP server {name} did not start after the sign-in (last error above)",
            f"fix what it names, then run `astrid servers login {name}` again",
        )


@servers.command("logout")
@click.argument("name")
@click.pass_context
def servers_logout(ctx: click.Context, name: str) -> None:
    """Stop a server configured with `oauth` and delete its stored tokens."""
    row: dict[str, Any] = with_client(ctx, lambda c: c.call("logoutServer", name=name, timeout=60))
    if row.get("signed_out"):
        click.echo(f"signed out of {name}: stored tokens deleted")
    else:
        click.echo(f"no stored tokens for {name}")


@servers.command("tools")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def servers_tools(ctx: click.Context, as_json: bool) -> None:
    """List the tools the agent can call (built-in and from MCP servers)."""
    tools: list[dict[str, Any]] = with_client(ctx, lambda c: c.call("listTools"))
    if as_json:
        emit_json(tools)
        return
    for tool in tools:
        click.echo(f"{tool['name']:<40} {tool['source']}")


@servers.command("approve")
@click.argument("server")
@click.argument("tool")
@click.pass_context
def servers_approve(ctx: click.Context, server: str, tool: str) -> None:
    """Re-enable a tool that changed since it was approved (the change is audited)."""
    result: dict[str, Any] = with_client(
        ctx, lambda c: c.call("approveTool", server=server, tool=tool)
    )
    click.echo(f"approved {server}/{tool} at fingerprint {result['fingerprint']}")


@servers.command("hash")
@click.argument("command")
def servers_hash(command: str) -> None:
    """Print the BLAKE3 of a server executable, for `blake3 = "..."` in [[servers]]."""
    import os
    import shutil

    from astrid_crypto import hash_file

    found = shutil.which(command) if os.sep not in command else command
    if found is None or not os.path.isfile(found):
        fail(f"executable not found: {command}", "give a path or a command on PATH")
        return
    click.echo(f'blake3 = "{hash_file(found).hex}"  # {os.path.realpath(found)}')


__all__ = ["servers"]
