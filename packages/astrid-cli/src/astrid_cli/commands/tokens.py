"""``astrid tokens``: the persistent capability tokens ("Allow Always" grants) — list, revoke."""

from __future__ import annotations

from typing import Any

import click

from .._support import emit_json, with_client


@click.group()
def tokens() -> None:
    """List and revoke persistent capability tokens.

    An "Allow Always" answer becomes a signed token that keeps allowing the same action until it
    expires. Revoking one also revokes every token derived from it (a sub-agent's narrowed
    copy). Every revocation is recorded on the audit log first, so a deleted revocation row in
    the store cannot revive the token.

    \b
    Examples:
      astrid tokens list
      astrid tokens revoke 0b7f2c1e-...
    """


@tokens.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.option("--all", "show_all", is_flag=True, help="Include revoked and expired tokens.")
@click.pass_context
def tokens_list(ctx: click.Context, as_json: bool, show_all: bool) -> None:
    """Every persistent token: id, status, permissions, resource, expiry."""
    rows: list[dict[str, Any]] = with_client(ctx, lambda c: c.call("listTokens"))
    if not show_all:
        rows = [row for row in rows if row.get("status") == "valid"]
    if as_json:
        emit_json(rows)
        return
    if not rows:
        click.echo(
            "no persistent tokens" + ("" if show_all else " in force (--all shows every one)")
        )
        return
    for row in rows:
        perms = ",".join(row.get("permissions") or [])
        line = f"{row['id']}  {row['status']:<8} {perms:<14} {row.get('resource', '?')}"
        if row.get("expires_at"):
            line += f"  expires_at={row['expires_at']}"
        if row.get("parent_id"):
            line += f"  parent={row['parent_id']}"
        click.echo(line)


@tokens.command("revoke")
@click.argument("token_id")
@click.option("--reason", default="revoked by the user", help="Recorded on the audit log.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def tokens_revoke(ctx: click.Context, token_id: str, reason: str, as_json: bool) -> None:
    """Revoke TOKEN_ID and every token derived from it."""
    result: dict[str, Any] = with_client(
        ctx, lambda c: c.call("revokeToken", token_id=token_id, reason=reason)
    )
    if as_json:
        emit_json(result)
        return
    revoked = result.get("revoked") or []
    click.echo(f"revoked {len(revoked)} token(s): {', '.join(revoked)}")
    click.echo(f"recorded as audit entry {result.get('audit_entry')}")


__all__ = ["tokens"]
