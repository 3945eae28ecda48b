"""``astrid demo``: the main job, offline — a real daemon, a scripted model, real approvals."""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
from importlib import resources
from pathlib import Path
from typing import Any

import click

from .._support import run_async
from .chat import APPROVAL_CHOICES

_PROJECT = {
    "app/__init__.py": "",
    "app/greet.py": 'def greet(name: str) -> str:\n    return f"Helo, {name}!"\n',
    "README.md": "# demo app\n\nA tiny project for the Astrid demo.\n",
    "build.log": "stale build output\n",
}

STEPS: list[tuple[str, str]] = [
    (
        "Delete a file (the seed's delete_file walkthrough)",
        "Clean up the stale build log in this project.",
    ),
    (
        "The same delete again: the Allow Always token answers",
        "The build recreated build.log, delete it again.",
    ),
    ("An edit inside the workspace", "Fix the typo in app/greet.py."),
    (
        "An MCP tool on a real server (sandboxed, approved, audited)",
        "Check the style guide on greetings.",
    ),
    (
        "sudo hidden in a command line (blocked by policy)",
        "Install libyaml-dev for the YAML support.",
    ),
    ("Run the project's check (nearing the budget)", "Run a quick check that the greeting works."),
]


def _config(script: Path, workspace: Path, docs_server: Path) -> str:
    return f"""# written by `astrid demo`: an isolated state directory, deleted afterwards
[model]
provider = "scripted"
model = "astrid-demo"
script = "{script}"
stream_delay_ms = 8

[workspace]
root = "{workspace}"
mode = "guided"
escape_policy = "ask"

[budget]
session_limit_micros = 140000
per_action_limit_micros = 60000
warn_at_percent = 70

[[servers]]
name = "docs"
trusted = true  # written by astrid itself; still sandboxed
command = {json.dumps(sys.executable)}
args = [{json.dumps(str(docs_server))}]
"""


@click.command()
@click.option(
    "--auto",
    "auto",
    type=click.Choice(APPROVAL_CHOICES),
    default=None,
    help="Answer every approval with this option instead of asking you.",
)
@click.option(
    "--keep", is_flag=True, help="Keep the demo's state directory and workspace afterwards."
)
@click.pass_context
def demo(ctx: click.Context, auto: str | None, keep: bool) -> None:
    """Play a realistic coding-agent session offline (no API key needed).

    A real astridd daemon starts on an isolated state directory with a scripted model. You will
    see a delete that needs your approval, the same delete authorized by the signed token your
    "Allow Always" created, an edit inside the workspace, a `sudo` hidden in a command line
    blocked by policy, a call to a tool of a real MCP server (sandboxed with Landlock), a budget
    warning — and at the end the audit log is verified.

    Example: astrid demo --auto allow_always
    """
    from rich.console import Console
    from rich.panel import Panel

    from astrid_gateway.client import GatewayClient

    from .._signals import take_back_ctrl_c

    take_back_ctrl_c()

    from .._turns import Answer, auto_decider, drive_turn
    from .._ui import ChatUI

    console = Console()
    ui = ChatUI(console)
    root = Path(tempfile.mkdtemp(prefix="astrid-demo-"))
    home, workspace = root / "home", root / "workspace"
    home.mkdir(mode=0o700)
    for name, text in _PROJECT.items():
        (workspace / name).parent.mkdir(parents=True, exist_ok=True)
        (workspace / name).write_text(text)
    script = home / "demo_script.json"
    script.write_text(resources.files("astrid_cli").joinpath("data/demo_script.json").read_text())
    docs_server = home / "demo_docs_server.py"
    docs_server.write_text(
        resources.files("astrid_cli").joinpath("data/demo_docs_server.py").read_text()
    )
    (home / "config.toml").write_text(_config(script, workspace, docs_server))

    async def ask(request: dict[str, Any]) -> Answer:
        # Read on the event loop, never in a thread: Ctrl-C withdraws the question at once.
        return await ui.ask_approval_async(request)

    decide = auto_decider(auto) if auto else ask

    async def body() -> dict[str, Any] | None:
        async with await GatewayClient.open(home, client_name="demo", start_timeout=60) as client:
            console.print(
                Panel(
                    f"state: {home}\nworkspace: {workspace}\nmodel: scripted (offline)",
                    title="Astrid demo: a real daemon, a scripted model, your approvals",
                )
            )
            info = await client.call("createSession", workspace=str(workspace))
            session = str(info["session_id"])
            await client.subscribe(session)
            summary: dict[str, Any] = {"steps": []}
            for index, (title, prompt) in enumerate(STEPS, 1):
                if index == 2:
                    (workspace / "build.log").write_text("stale build output, again\n")
                console.rule(f"[bold]{index}. {title}")
                console.print(f"[bold cyan]you>[/bold cyan] {prompt}")
                outcome = await drive_turn(client, session, prompt, ui, decide)
                if outcome.interrupted:  # Ctrl-C: the question was withdrawn, the turn ended
                    await client.call("shutdown")
                    return None
                summary["steps"].append(
                    {
                        "title": title,
                        "stop_reason": outcome.stop_reason,
                        "denied": outcome.denied,
                        "approvals": outcome.approvals,
                    }
                )
            console.rule("[bold]Audit")
            summary["verify"] = await client.call("auditVerify")
            entries = await client.call("sessionAudit", session_id=session, limit=1000)
            counts: dict[str, int] = {}
            for entry in entries:
                kind = entry["outcome"]["kind"]
                counts[kind] = counts.get(kind, 0) + 1
            summary["audit_counts"] = counts
            summary["budget"] = await client.call("sessionBudget", session_id=session)
            await client.call("shutdown")
            return summary

    try:
        summary = run_async(body)
    finally:
        if not keep:
            shutil.rmtree(root, ignore_errors=True)
    if summary is None:
        console.print("[yellow]demo stopped (Ctrl-C): nothing was approved after that[/yellow]")
        ctx.exit(130)
        return
    verify = summary["verify"]
    console.print(f"[bold green]✓ audit log verified[/bold green]: {verify['summary']}")
    console.print(
        "entries by outcome: "
        + ", ".join(f"{k} {v}" for k, v in sorted(summary["audit_counts"].items()))
    )
    from .._format import money

    spent = money(summary["budget"].get("spent_micros", 0))
    limit = money(summary["budget"].get("session_limit_micros", 0))
    console.print(f"spent {spent} of the demo's {limit} budget")
    if keep:
        console.print(f"kept: {root}")
    console.print(json.dumps({"demo": "ok", "entries": verify["entries"]}))


__all__ = ["demo"]
