"""``astrid audit``: verify the tamper-evident log and read a session's entries."""

from __future__ import annotations

from typing import Any

import click

from .._support import emit_json, with_client


@click.group()
def audit() -> None:
    """Verify and inspect the audit log (signed, hash-chained, Merkle tree with checkpoints).

    For an exported log, verify offline with only the public key:
    `python -m astrid_audit verify audit.jsonl --key runtime.pub`.

    \b
    Examples:
      astrid audit verify
      astrid audit show 1f0c9a3e-... --limit 50
    """


@audit.command("verify")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def audit_verify(ctx: click.Context, as_json: bool) -> None:
    """Check every signature, hash chain, the Merkle root and the checkpoints.

    Exit 0 when the log verifies; 1 (with the entry and the failed check) when it does not.
    """
    report: dict[str, Any] = with_client(ctx, lambda c: c.call("auditVerify", timeout=600))
    if as_json:
        emit_json(report)
    else:
        click.echo(f"audit log verified: {report['summary']}")


@audit.command("show")
@click.argument("session_id")
@click.option("--limit", default=100, show_default=True, help="Most recent entries to show.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def audit_show(ctx: click.Context, session_id: str, limit: int, as_json: bool) -> None:
    """The audit entries of one session, oldest first."""
    entries: list[dict[str, Any]] = with_client(
        ctx, lambda c: c.call("sessionAudit", session_id=session_id, limit=limit)
    )
    if as_json:
        emit_json(entries)
        return
    if not entries:
        click.echo("no audit entries for this session")
    for entry in entries:
        outcome = entry.get("outcome", {})
        action = entry.get("action") or {}
        what = action.get("kind", "-")
        reason = outcome.get("reason", "")
        click.echo(f"#{entry.get('seq'):<6} {outcome.get('kind'):<20} {what:<16} {reason}")
