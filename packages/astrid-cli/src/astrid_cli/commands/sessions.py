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
    for row in rows:
        updated = str(row.get("updated_at", ""))[:19].replace("T", " ")
        click.echo(
            f"{row['session_id']}  {updated}  turns={row.get('turns', 0):<3} {row['workspace']}"
        )


@sessions.command("show")
@click.argument("session_id")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def sessions_show(ctx: click.Context, session_id: str, as_json: bool) -> None:
    """A session's budget, standing allowances and recent audit entries."""

    async def gather(client: Any) -> dict[str, Any]:
        return {
            "budget": await client.call("sessionBudget", session_id=session_id),
            "allowances": await client.call("sessionAllowances", session_id=session_id),
            "audit": await client.call("sessionAudit", session_id=session_id, limit=20),
        }

    info = with_client(ctx, gather)
    if as_json:
        emit_json(info)
        return
    click.echo(f"session {session_id}")
    click.echo(f"budget: {info['budget']}")
    click.echo(f"allowances: {len(info['allowances'])}")
    for allowance in info["allowances"]:
        click.echo(f"  - {allowance}")
    click.echo("recent audit entries:")
    for entry in info["audit"]:
        outcome = entry.get("outcome", {})
        action = (entry.get("action") or {}).get("kind", "-")
        click.echo(
            f"  #{entry.get('seq')} {outcome.get('kind')} {action} {outcome.get('reason', '')}"
        )


@sessions.command("delete")
@click.argument("session_id")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@click.pass_context
def sessions_delete(ctx: click.Context, session_id: str, yes: bool) -> None:
    """Delete a session's history (its audit entries stay: the log is append-only)."""
    if not yes:
        click.confirm(f"delete session {session_id}?", abort=True)
    with_client(ctx, lambda c: c.call("deleteSession", session_id=session_id))
    click.echo(f"deleted session {session_id} (its audit entries are kept)")


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
