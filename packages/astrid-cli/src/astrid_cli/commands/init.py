"""``astrid init``: a workspace's own (tighten-only) configuration layer, or the user's."""

from __future__ import annotations

import os
from pathlib import Path

import click

from .._support import fail, home_of

_TEMPLATE = """\
# Astrid settings for this workspace. This layer may only TIGHTEN what the user and system
# configuration allow: lower budgets, a safer mode, more blocked commands. A looser value is
# refused with the file and key named (`astrid config validate --workspace .` shows it), and
# the daemon then refuses to start a session here until it is fixed.

[workspace]
# safe: ask before everything; guided: reads inside the workspace pass; autonomous: everything
# inside the workspace passes. Outside the workspace, escape_policy decides (ask | deny);
# uncomment it to refuse everything outside the workspace without asking.
mode = "safe"
# escape_policy = "deny"

[security]
# Added to the built-in lists, never replacing them.
blocked_commands = []
denied_paths = []

[budget]
# Micro-dollars (1_000_000 = $1). Uncomment to cap spending in this workspace.
# session_limit_micros = 2_000_000

# Hooks, keys, model endpoints and API keys can only be set by the user or system
# configuration. MCP servers declared here are checked (untrusted, sandboxed, confined to this
# workspace) but not started by the daemon yet: declare servers in ~/.astrid/config.toml.
# [[servers]]
# name = "docs"
# command = "/usr/local/bin/docs-mcp"
"""


_USER_HEADER = """\
# Your Astrid settings ($ASTRID_HOME/config.toml, the user layer). Every key is here with its
# default, commented out: uncomment a line and change its value to override it. Written by
# `astrid init --user`; check it with `astrid config validate`, see the result with
# `astrid config show`. A running daemon reads it when it starts: `astrid daemon restart`.
#
"""


def user_config_text() -> str:
    """The commented user configuration: the rendered defaults with every setting commented out.

    Generated from the configuration models (the same text as ``defaults.toml``), so it always
    lists exactly the keys this version knows; uncommenting one line yields a valid file.
    """
    from astrid_runtime.config import render_defaults_toml

    out: list[str] = []
    for line in render_defaults_toml().splitlines():
        if line.startswith(("# GENERATED", "# the two differ")):
            continue
        if line and not line.startswith(("#", "[[")):
            is_header = line.startswith("[") and line.rstrip().endswith("]")
            out.append(line if is_header else f"# {line}")
        else:
            out.append(line)
    return _USER_HEADER + "\n".join(out).lstrip("\n") + "\n"


@click.command()
@click.argument(
    "workspace", default=".", type=click.Path(file_okay=False, exists=True, resolve_path=True)
)
@click.option("--force", is_flag=True, help="Overwrite an existing configuration file.")
@click.option(
    "--user",
    is_flag=True,
    help="Write the user configuration $ASTRID_HOME/config.toml (every key, commented) instead.",
)
@click.pass_context
def init(ctx: click.Context, workspace: str, force: bool, user: bool) -> None:
    """Create WORKSPACE/.astrid/config.toml with safe, commented defaults.

    With --user, write $ASTRID_HOME/config.toml (default ~/.astrid/config.toml) instead: every
    key with its default, commented out, mode 0600 (it may come to hold an API key).

    Examples: astrid init .    astrid init --user
    """
    if user:
        from astrid_gateway.paths import state_dir

        target = Path(state_dir(home_of(ctx))) / "config.toml"
        text = user_config_text()
    else:
        target = Path(workspace) / ".astrid" / "config.toml"
        text = _TEMPLATE
    if target.exists() and not force:
        fail(f"{target} already exists", "pass --force to replace it (its content is lost)")
    target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(text)
    click.echo(f"wrote {target}")
    hint = "astrid config validate" if user else f"astrid config validate --workspace {workspace}"
    click.echo(f"check it with: {hint}")


__all__ = ["init", "user_config_text"]
