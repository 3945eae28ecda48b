"""``astrid init``: give a workspace its own (tighten-only) configuration layer."""

from __future__ import annotations

from pathlib import Path

import click

from .._support import fail

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


@click.command()
@click.argument(
    "workspace", default=".", type=click.Path(file_okay=False, exists=True, resolve_path=True)
)
@click.option("--force", is_flag=True, help="Overwrite an existing .astrid/config.toml.")
def init(workspace: str, force: bool) -> None:
    """Create WORKSPACE/.astrid/config.toml with safe, commented defaults.

    Example: astrid init .
    """
    target = Path(workspace) / ".astrid" / "config.toml"
    if target.exists() and not force:
        fail(f"{target} already exists", "pass --force to replace it")
    target.parent.mkdir(exist_ok=True)
    target.write_text(_TEMPLATE)
    click.echo(f"wrote {target}")
    click.echo(f"check it with: astrid config validate --workspace {workspace}")
