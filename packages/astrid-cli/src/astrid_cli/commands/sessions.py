"""``astrid sessions``: list, inspect and delete the daemon's sessions."""

from __future__ import annotations

from typing import Any

import click

from .._support import emit_json, with_client


@click.group()
def sessions() -> None:
    """List, show and delete sessions (stored by the daemon, resumable with `chat --resume`).

    \b
    Examples:
      astrid sessions list
      astrid sessions show 1f0c9a3e-...
      astrid sessions delete 1f0c9a3e-... --yes
      astrid sessions cleanup --older-than 30 --yes
    """


@sessions.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def sessions_list(ctx: click.Context, as_json: bool) -> None:
    """Every stored session, most recently used first."""
    rows: list[dict[str, Any]] = with_client(ctx, lambda c: c.call("listSessions"))
    rows.sort(key=lambda row: str(row.get("updated_at", "")), reverse=True)
    if as_json:
        emit_json(rows)
        return
    if not rows:
        click.echo("no sessions yet (start one with `astrid chat`)")
        return
    from .._format import local_time, short_id, shorten

    click.echo(f"{'id':<8}  {'last used':<19}  {'turns':>5}  {'state':<8} workspace / title")
    for row in rows:
        title = f"  {shorten(str(row['title']), 50)}" if row.get("title") else ""
        click.echo(
            f"{short_id(row['session_id']):<8}  {local_time(row.get('updated_at')):<19}  "
            f"{row.get('turns', 0):>5}  {row.get('state', '')!s:<8} {row['workspace']}{title}"
        )
    click.echo("(`astrid sessions show ID` or `astrid chat --resume ID` take these short ids)")


@sessions.command("show")
@click.argument("session_id")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def sessions_show(ctx: click.Context, session_id: str, as_json: bool) -> None:
    """A session's budget, standing allowances and recent audit entries."""

    from .._format import allowance_lines, audit_lines, budget_lines, resolve_session

    async def gather(client: Any) -> dict[str, Any]:
        sid = await resolve_session(client, session_id)
        return {
            "session_id": sid,
            "budget": await client.call("sessionBudget", session_id=sid),
            "allowances": await client.call("sessionAllowances", session_id=sid),
            "audit": await client.call("sessionAudit", session_id=sid, limit=20),
        }

    info = with_client(ctx, gather)
    if as_json:
        emit_json(info)
        return
    click.echo(f"session {info['session_id']}")
    click.echo("budget:")
    for line in budget_lines(info["budget"]):
        click.echo(f"  {line}")
    click.echo("allowances:")
    for line in allowance_lines(info["allowances"]):
        click.echo(f"  {line}")
    click.echo("recent audit entries:")
    for line in audit_lines(info["audit"]):
        click.echo(f"  {line}")


@sessions.command("delete")
@click.argument("session_id")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@click.pass_context
def sessions_delete(ctx: click.Context, session_id: str, yes: bool) -> None:
    """Delete a session's history (its audit entries stay: the log is append-only)."""
    from .._format import resolve_session

    sid: str = with_client(ctx, lambda c: resolve_session(c, session_id))
    if not yes:  # asked outside the event loop, where Ctrl-C interrupts a blocked read
        click.confirm(f"delete session {sid}?", abort=True)
    with_client(ctx, lambda c: c.call("deleteSession", session_id=sid))
    click.echo(f"deleted session {sid} (its audit entries are kept)")


@sessions.command("cleanup")
@click.option(
    "--older-than",
    "days",
    type=click.IntRange(min=0),
    default=30,
    show_default=True,
    help="Delete sessions not used for this many days.",
)
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@click.pass_context
def sessions_cleanup(ctx: click.Context, days: int, yes: bool) -> None:
    """Delete sessions idle for longer than --older-than days (never a running one).

    Their audit entries are kept: the log is append-only.
    """
    from datetime import UTC, datetime, timedelta

    rows: list[dict[str, Any]] = with_client(ctx, lambda c: c.call("listSessions"))
    cutoff = datetime.now(UTC) - timedelta(days=days)
    stale = [
        row
        for row in rows
        if row.get("state") != "running" and datetime.fromisoformat(str(row["updated_at"])) < cutoff
    ]
    if not stale:
        click.echo(f"no session idle for more than {days} days")
        return
    if not yes:
        click.confirm(f"delete {len(stale)} session(s) idle for more than {days} days?", abort=True)

    async def delete_all(client: Any) -> None:
        for row in stale:
            await client.call("deleteSession", session_id=row["session_id"])

    with_client(ctx, delete_all)
    click.echo(f"deleted {len(stale)} session(s); their audit entries are kept")


__all__ = ["sessions"]
