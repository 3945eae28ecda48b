"""``astrid policy``: least privilege written down in policy.toml — check, apply, list, revoke."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from .._support import emit_json, fail, with_client


@click.group()
def policy() -> None:
    """Write least privilege down: grants with caveats, minted into signed tokens.

    A policy file lists grants (an MCP tool, a file glob, a set of commands, a host, a capsule
    function), each with permissions, caveats (each_in, range, absent, only_args, ...), a TTL
    and a call count. `check` validates it and shows what each grant allows, with examples;
    `apply` has the daemon mint the tokens (audited; the previous policy's tokens are replaced
    in one transaction). A call a grant covers but a caveat refuses is denied with the
    caveat's reason.

    \b
    Examples:
      astrid policy check examples/policies/mail-assistant.toml
      astrid policy apply ~/.astrid/policy.toml
      astrid policy list
      astrid policy revoke --grant "mail to the team"
    """


def _read(file: str) -> str:
    path = Path(file)
    try:
        return path.read_text(encoding="utf-8")
    except OSError as exc:
        fail(f"cannot read {file}: {exc.strerror or exc}", "give the path of a policy.toml")
        raise AssertionError from exc  # fail() exits


def _parse(file: str) -> Any:
    from astrid_approval import parse_policy  # the parser the daemon uses
    from astrid_core import AstridError

    text = _read(file)
    try:
        return parse_policy(text, file)
    except AstridError as exc:
        fail(exc.message, exc.hint or "", error_code=exc.code)
        raise AssertionError from exc


@policy.command("check")
@click.argument("file")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def policy_check(file: str, as_json: bool) -> None:
    """Validate FILE and show what each grant allows, with examples."""
    parsed = _parse(file)
    if as_json:
        emit_json(
            {
                "valid": True,
                "settings": parsed.settings.to_json(),
                "grants": [
                    {
                        "name": g.name,
                        "line": g.line,
                        "resources": [r.pattern for r in g.resources],
                        "permissions": [p.value for p in g.permissions],
                        "caveats": [c.to_json() for c in g.all_caveats],
                        "ttl_seconds": g.ttl_seconds,
                    }
                    for g in parsed.grants
                ],
            }
        )
        return
    for line in parsed.describe():
        click.echo(line)
    click.echo(f"{file} is valid; `astrid policy apply {file}` mints its grants")


@policy.command("apply")
@click.argument("file")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def policy_apply(ctx: click.Context, file: str, as_json: bool) -> None:
    """Mint FILE's grants through the daemon, replacing the previous policy's tokens."""
    _parse(file)  # a mistake is shown with its line before anything is sent
    text = _read(file)
    path = str(Path(file).resolve())
    result: dict[str, Any] = with_client(ctx, lambda c: c.call("policyApply", text=text, path=path))
    if as_json:
        emit_json(result)
        return
    tokens = result.get("tokens") or []
    click.echo(f"applied {file}: {len(tokens)} token(s) minted, audit entry {result['audit_id']}")
    for token in tokens:
        click.echo(f"  {token['id']}  {','.join(token['permissions'])}  {token['resource']}")
    revoked = result.get("revoked") or []
    if revoked:
        click.echo(f"replaced the previous policy: {len(revoked)} token(s) revoked")


@policy.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def policy_list(ctx: click.Context, as_json: bool) -> None:
    """The applied policy: its settings and the status of each grant's tokens."""
    result: dict[str, Any] = with_client(ctx, lambda c: c.call("policyList"))
    if as_json:
        emit_json(result)
        return
    if not result.get("applied"):
        click.echo("no policy is applied (`astrid policy apply FILE`)")
        return
    settings = result.get("settings") or {}
    click.echo(
        f"{result.get('path')} (audit entry {result.get('audit_id')}): strict="
        f"{str(settings.get('strict')).lower()}, "
        f"on_caveat_mismatch={settings.get('on_caveat_mismatch')}"
    )
    for row in result.get("tokens") or []:
        click.echo(f"  {row['grant']}: {row['id']}  {row['status']}  {row.get('resource', '?')}")


@policy.command("revoke")
@click.option("--grant", default=None, help="Revoke only this grant's tokens (by name).")
@click.option("--reason", default="policy revoked by the admin", help="Recorded on the audit log.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def policy_revoke(ctx: click.Context, grant: str | None, reason: str, as_json: bool) -> None:
    """Revoke the applied policy's tokens (all of them, or one grant's)."""
    result: dict[str, Any] = with_client(
        ctx, lambda c: c.call("policyRevoke", grant=grant, reason=reason)
    )
    if as_json:
        emit_json(result)
        return
    revoked = result.get("revoked") or []
    click.echo(f"revoked {len(revoked)} token(s) of {', '.join(result.get('grants') or [])}")


__all__ = ["policy"]
