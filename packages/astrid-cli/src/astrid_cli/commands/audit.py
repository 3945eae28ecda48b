"""``astrid audit``: verify the tamper-evident log and read a session's entries."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from .._support import emit_json, fail, home_of, run_async, with_client

if TYPE_CHECKING:
    from astrid_audit import Checkpoint


@click.group()
def audit() -> None:
    """Verify and inspect the audit log (signed, hash-chained, Merkle tree with checkpoints).

    For an exported log, verify offline with only the public key:
    `python -m astrid_audit verify audit.jsonl --key runtime.pub`.

    \b
    Examples:
      astrid audit verify
      astrid audit verify --offline      (daemon stopped, e.g. it refused a damaged log)
      astrid audit list
      astrid audit stats
      astrid audit show 1f0c9a3e-... --limit 50
      astrid audit export audit.jsonl
    """


@audit.command("verify")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.option(
    "--offline",
    is_flag=True,
    help="Read the store directly, without the daemon (which must be stopped); signs nothing.",
)
@click.pass_context
def audit_verify(ctx: click.Context, as_json: bool, offline: bool) -> None:
    """Check every signature, hash chain, the Merkle root, the checkpoints, and that the log
    extends every tree head witnessed outside the store and the last one this CLI verified
    (kept in $ASTRID_HOME/witness/client-cli.json).

    Exit 0 when the log verifies; 1 (naming the entry, or the missing range, and the failed
    check) when it does not. Nothing is signed until the log has verified. With --offline the
    store is opened directly under its lock, for a log that stops the daemon from starting.
    """
    from astrid_gateway.paths import state_dir

    home = state_dir(home_of(ctx))
    report = _verify_offline(home) if offline else _verify_online(ctx, home)
    if as_json:
        emit_json(report)
    else:
        click.echo(f"audit log verified: {report['summary']}")


def _verify_offline(home: Path) -> dict[str, Any]:
    from astrid_runtime._audit_witness import verify_offline

    result = run_async(lambda: verify_offline(home))
    report = result.report
    return {
        "ok": True,
        "entries": report.entries,
        "sessions": report.sessions,
        "checkpoints": report.checkpoints,
        "witnessed": report.witnessed,
        "root": report.root,
        "summary": report.summary(),
        "witnessed_by": result.witnessed_by,
        "checkpoint": report.head.model_dump(mode="json") if report.head else None,
    }


def _verify_online(ctx: click.Context, home: Path) -> dict[str, Any]:
    from astrid_audit import TreeHeadCache
    from astrid_core import AstridError

    cache = TreeHeadCache(home / "witness" / "client-cli.json")
    try:
        kept = cache.load()
    except AstridError as exc:
        fail(exc.message, exc.hint)
        raise
    known = [kept.checkpoint.model_dump(mode="json")] if kept else []
    report: dict[str, Any] = with_client(
        ctx, lambda c: c.call("auditVerify", known_heads=known, timeout=600)
    )
    try:
        cache.save(_checked_head(report, kept.checkpoint if kept else None))
    except AstridError as exc:
        fail(exc.message, exc.hint)
    except (ValueError, KeyError, TypeError) as exc:
        fail(f"the daemon's verification answer is malformed: {exc}", "")
    return report


def _checked_head(report: dict[str, Any], kept: Checkpoint | None) -> Checkpoint:
    """The daemon's new signed head, checked here: its signature, and (RFC 6962) that it
    extends the head this CLI kept. Only then does it replace the kept one."""
    from astrid_audit import Checkpoint, verify_consistency
    from astrid_core import VerificationError
    from astrid_crypto import PublicKey

    head = Checkpoint.model_validate(report["checkpoint"])
    key = PublicKey.from_b64(str(report["public_key"]))
    keys = {key.key_id: key}
    # Keys the log vouches for by signed rotation entries (the daemon already proved it is the
    # daemon of this ASTRID_HOME): a stored checkpoint may be signed by one of them. Each key
    # is filed under the id it really has, never the id the answer claims.
    for raw in dict(report.get("public_keys") or {}).values():
        older = PublicKey.from_b64(str(raw))
        keys[older.key_id] = older
    head.check(keys)
    if kept is not None and kept.tree_size:
        if kept.key_id == head.key_id:
            kept.check(keys)
        proofs = [p for p in report.get("consistency", []) if p.get("from") == kept.tree_size]
        if not proofs:
            raise VerificationError("the daemon sent no consistency proof from the kept head")
        verify_consistency(
            kept.tree_size,
            head.tree_size,
            bytes.fromhex(kept.root),
            bytes.fromhex(head.root),
            [bytes.fromhex(p) for p in proofs[0]["proof"]],
        )
    return head


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


__all__ = ["audit"]
