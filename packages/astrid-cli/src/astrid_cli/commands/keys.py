"""``astrid keys show|generate``: the runtime signing key (local, no daemon needed)."""

from __future__ import annotations

from pathlib import Path

import click

from .._support import emit_json, fail, home_of


def _key_path(ctx: click.Context) -> Path:
    from astrid_gateway._state import state_dir

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
