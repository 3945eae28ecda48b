"""``astrid audit``: verify the tamper-evident log and read a session's entries."""

from __future__ import annotations

import shutil
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
      astrid audit list
      astrid audit stats
      astrid audit show 1f0c9a3e-... --limit 50
      astrid audit export audit.jsonl
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
    from .._format import audit_lines, resolve_session

    async def read(client: Any) -> list[dict[str, Any]]:
        sid = await resolve_session(client, session_id)
        return await client.call("sessionAudit", session_id=sid, limit=limit)

    entries: list[dict[str, Any]] = with_client(ctx, read)
    if as_json:
        emit_json(entries)
        return
    if not entries:
        click.echo("no audit entries for this session")
        return
    for line in audit_lines(entries, width=shutil.get_terminal_size().columns):
        click.echo(line)


@audit.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def audit_list(ctx: click.Context, as_json: bool) -> None:
    """Every chain in the log (one per session, plus `system`) with its entry count."""
    stats: dict[str, Any] = with_client(ctx, lambda c: c.call("auditStats", timeout=600))
    chains = sorted(stats["by_chain"].items(), key=lambda kv: (-kv[1], kv[0]))
    if as_json:
        emit_json(dict(chains))
        return
    if not chains:
        click.echo("the audit log is empty: entries appear as soon as a session starts")
        return
    for chain, count in chains:
        click.echo(f"{chain:<38} {count} entr{'y' if count == 1 else 'ies'}")


@audit.command("stats")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def audit_stats(ctx: click.Context, as_json: bool) -> None:
    """How many entries, by outcome and by session."""
    stats: dict[str, Any] = with_client(ctx, lambda c: c.call("auditStats", timeout=600))
    if as_json:
        emit_json(stats)
        return
    if not stats["entries"]:
        click.echo("the audit log is empty: entries appear as soon as a session starts")
        return
    click.echo(f"{stats['entries']} entries")
    for kind, count in sorted(stats["by_outcome"].items(), key=lambda kv: -kv[1]):
        click.echo(f"  {kind:<22} {count}")
    click.echo(f"{len(stats['by_chain'])} chains (sessions, plus 'system')")


@audit.command("export")
@click.argument("file", type=click.Path(dir_okay=False, writable=True))
@click.pass_context
def audit_export(ctx: click.Context, file: str) -> None:
    """Export the log for offline verification (entries, checkpoints, inclusion proofs).

    Also writes FILE.pub, the runtime public key. Verify anywhere with:
    python -m astrid_audit verify FILE --key FILE.pub
    """
    result: dict[str, Any] = with_client(ctx, lambda c: c.call("auditExport", timeout=600))
    shutil.copyfile(result["path"], file)
    with open(f"{file}.pub", "w") as pub:
        pub.write(result["public_key"] + "\n")
    click.echo(f"exported {result['entries']} entries to {file} (public key: {file}.pub)")
    click.echo(f"verify offline: python -m astrid_audit verify {file} --key {file}.pub")
