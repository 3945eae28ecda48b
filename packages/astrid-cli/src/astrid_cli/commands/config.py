"""``astrid config``: where configuration comes from, what it resolves to, and whether it is valid.

Runs locally (no daemon): it reads the same layers the daemon reads.
"""

from __future__ import annotations

from pathlib import Path

import click

from .._support import emit_json, fail, home_of


def _home(ctx: click.Context) -> Path:
    from astrid_gateway.paths import state_dir

    return state_dir(home_of(ctx))


def _load(ctx: click.Context, workspace: str | None):  # type: ignore[no-untyped-def]
    from astrid_core import ConfigError
    from astrid_runtime.config import load_config

    try:
        return load_config(_home(ctx), workspace)
    except ConfigError as exc:
        fail(exc.message, exc.hint or "fix the file and key named above")
        raise  # unreachable


_WORKSPACE = click.option(
    "--workspace", type=click.Path(file_okay=False), help="Include this workspace's layer."
)


@click.group()
def config() -> None:
    """Show and validate configuration.

    Layers, lowest first: built-in defaults, /etc/astrid/config.toml, $ASTRID_HOME/config.toml,
    <workspace>/.astrid/config.toml (which may only tighten), then ASTRID_*/ANTHROPIC_*/OPENAI_*
    environment variables for unset values.

    \b
    Examples:
      astrid config paths
      astrid config validate --workspace .
      astrid config show --json
    """


@config.command("paths")
@_WORKSPACE
@click.pass_context
def config_paths_cmd(ctx: click.Context, workspace: str | None) -> None:
    """The files read, in order, and whether each exists."""
    from astrid_runtime.config import config_paths

    for layer, path in config_paths(_home(ctx), Path(workspace) if workspace else None):
        state = "present" if path.exists() else "absent"
        click.echo(f"{layer:<10} {state:<8} {path}")


@config.command("validate")
@_WORKSPACE
@click.pass_context
def config_validate(ctx: click.Context, workspace: str | None) -> None:
    """Check every layer; exit 1 listing each problem (file, key, value, limit)."""
    loaded = _load(ctx, workspace)
    files = ", ".join(str(f) for f in loaded.files) or "no files (defaults only)"
    click.echo(f"configuration is valid ({files})")


@config.command("show")
@_WORKSPACE
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def config_show(ctx: click.Context, workspace: str | None, as_json: bool) -> None:
    """Every resolved value with the layer it came from; secrets masked."""
    from astrid_runtime.config import redacted_view

    view = redacted_view(_load(ctx, workspace))
    if as_json:
        emit_json(view)
        return
    from .._format import config_value

    for key, entry in view.items():
        assert isinstance(entry, dict)
        value = config_value(key, entry["value"])  # in full: a config value is never cut
        click.echo(f"{key:<45} {value:<30} [{entry['source']}]")


__all__ = ["config"]
