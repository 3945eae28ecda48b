"""``astrid keys show|generate|rotate``: the runtime signing key (show and generate are local,
no daemon needed; rotate goes through the daemon so the audit log records it)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from .._support import emit_json, fail, home_of


def _key_path(ctx: click.Context) -> Path:
    from astrid_gateway.paths import state_dir

    return state_dir(home_of(ctx)) / "keys" / "runtime.key"


@click.group()
def keys() -> None:
    """Show or generate the runtime's Ed25519 signing key.

    The key signs capability tokens, allowances and audit entries. It lives in
    $ASTRID_HOME/keys/runtime.key (mode 0600).

    \b
    Examples:
      astrid keys show
      astrid keys generate
    """


@keys.command("show")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def keys_show(ctx: click.Context, as_json: bool) -> None:
    """Print the public key and key id (never the private key).

    Example: astrid keys show --json
    """
    from astrid_core import AstridError
    from astrid_crypto import KeyPair

    path = _key_path(ctx)
    try:
        key = KeyPair.load(path)
    except AstridError as exc:
        fail(exc.message, exc.hint)
        return
    info = {"path": str(path), "key_id": key.key_id, "public_key": key.public_key.b64}
    if as_json:
        emit_json(info)
    else:
        click.echo(
            f"key id:     {info['key_id']}\npublic key: {info['public_key']}\nfile:       {path}"
        )


@keys.command("generate")
@click.option(
    "--force", is_flag=True, help="Replace an existing key (old signatures stop verifying)."
)
@click.pass_context
def keys_generate(ctx: click.Context, force: bool) -> None:
    """Create a new runtime key.

    Example: astrid keys generate
    """
    from astrid_core import AstridError
    from astrid_crypto import KeyPair

    path = _key_path(ctx)
    key = KeyPair.generate()
    try:
        key.save(path, overwrite=force)
    except AstridError as exc:
        fail(exc.message, exc.hint)
        return
    click.echo(f"generated key {key.key_id} at {path}")
    click.echo(f"public key: {key.public_key.b64}")


@keys.command("rotate")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def keys_rotate(ctx: click.Context, as_json: bool) -> None:
    """Replace the runtime key through the daemon, audited.

    The audit log records the new public key in an entry signed by the old key before the new
    key file replaces the old one, so the whole log keeps verifying. (`keys generate --force`
    replaces the file without telling the log: entries signed by the old key then stop
    verifying.)

    Example: astrid keys rotate
    """
    from .._support import with_client

    result: dict[str, Any] = with_client(ctx, lambda c: c.call("rotateKey"))
    if as_json:
        emit_json(result)
        return
    click.echo(f"rotated {result['old_key_id']} -> {result['new_key_id']}")
    click.echo(f"public key: {result['public_key']}")
    click.echo(f"recorded as audit entry {result['audit_entry']}")


__all__ = ["keys"]
