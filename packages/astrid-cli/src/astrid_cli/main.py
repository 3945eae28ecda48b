"""The ``astrid`` command group.

Start-up time matters (``astrid --version`` is measured): this module imports only click.
Each subcommand lives in its own module under ``astrid_cli.commands`` and is imported only when
it is invoked (or when help lists it), and heavy libraries are imported inside commands.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from typing import Any

import click

from . import __version__

__all__ = ["cli", "main", "LazyGroup"]

# command name -> (module, attribute, one-line help shown in `astrid --help`)
_COMMANDS: dict[str, tuple[str, str, str]] = {
    "chat": ("astrid_cli.commands.chat", "chat", "Start an interactive chat session."),
    "run": ("astrid_cli.commands.chat", "run", "Run one non-interactive turn."),
    "demo": ("astrid_cli.commands.demo", "demo", "Play the offline demo session."),
    "init": ("astrid_cli.commands.init", "init", "Write a commented config: workspace or --user."),
    "status": ("astrid_cli.commands.daemon", "status", "Show daemon and session status."),
    "daemon": ("astrid_cli.commands.daemon", "daemon", "Run, inspect or stop the daemon."),
    "sessions": ("astrid_cli.commands.sessions", "sessions", "List, show, delete sessions."),
    "servers": ("astrid_cli.commands.servers", "servers", "Manage MCP servers."),
    "audit": ("astrid_cli.commands.audit", "audit", "Inspect and verify the audit log."),
    "config": ("astrid_cli.commands.config", "config", "Show and validate configuration."),
    "keys": ("astrid_cli.commands.keys", "keys", "Show or generate signing keys."),
    "tokens": ("astrid_cli.commands.tokens", "tokens", "List and revoke Allow Always grants."),
    "policy": ("astrid_cli.commands.policy", "policy", "Check, apply, list, revoke policy.toml."),
    "capsule": ("astrid_cli.commands.capsule", "capsule", "Install and manage capsules."),
    "telegram": ("astrid_cli.commands.telegram", "telegram", "Run the Telegram frontend."),
    "mcp": ("astrid_cli.commands.mcp", "mcp", "Be the MCP server your MCP client talks to."),
    "approvals": ("astrid_cli.commands.approvals", "approvals", "Watch for and answer approvals."),
}


class LazyGroup(click.Group):
    """A click group whose subcommands are imported on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(name for name, (module, _, _) in _COMMANDS.items() if _available(module))

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        entry = _COMMANDS.get(cmd_name)
        if entry is None or not _available(entry[0]):
            return None
        module = importlib.import_module(entry[0])
        command: click.Command = getattr(module, entry[1])
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        # Use the short help from the table so `astrid --help` does not import every command.
        rows = [(name, _COMMANDS[name][2]) for name in self.list_commands(ctx)]
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)


def _available(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "-V", "--version", prog_name="astrid")
@click.option(
    "--home",
    envvar="ASTRID_HOME",
    type=click.Path(file_okay=False),
    help="State directory (default: $ASTRID_HOME or ~/.astrid).",
)
@click.pass_context
def cli(ctx: click.Context, home: str | None) -> None:
    """Astrid: a secure runtime for AI agents.

    The agent proposes; you approve; the runtime enforces it with signatures and hashes.

    \b
    Examples:
      astrid demo --auto allow_once     # offline demo, no API key needed
      astrid chat                        # interactive session (auto-starts the daemon)
      astrid audit verify                # check the tamper-evident audit log
    """
    ctx.obj = {"home": home}


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    as_json = "--json" in args
    try:
        result: Any = cli.main(args=args, prog_name="astrid", standalone_mode=False)
    except click.exceptions.Abort:
        return _failed(as_json, "aborted", "", "cli.aborted", 130)
    except click.ClickException as exc:
        if as_json:
            return _failed(
                True, exc.format_message(), "see `astrid --help`", "cli.usage", exc.exit_code
            )
        exc.show()
        return exc.exit_code
    except KeyboardInterrupt:
        return _failed(as_json, "interrupted", "", "cli.interrupted", 130)
    except Exception as exc:
        if not as_json:
            raise
        import traceback

        traceback.print_exc()  # the details for a person, on stderr
        return _failed(
            True,
            f"internal error: {type(exc).__name__}: {exc}",
            "this is a bug in astrid; the traceback is on stderr",
            "cli.internal",
            1,
        )
    return int(result) if isinstance(result, int) else 0


def _failed(as_json: bool, message: str, hint: str, code: str, exit_code: int) -> int:
    """Report a failure that happened outside a command's own error handling."""
    if as_json:
        import json

        error = {"error": {"code": code, "message": message, "hint": hint}}
        click.echo(json.dumps(error, indent=2, sort_keys=True))
    else:
        click.echo(message, err=True)
    return exit_code


if __name__ == "__main__":
    sys.exit(main())
