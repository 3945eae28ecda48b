"""``astrid chat`` (interactive) and ``astrid run`` (one turn, scriptable)."""

from __future__ import annotations

import os
from typing import Any

import click

from .._support import connected, emit_json, run_async

APPROVAL_CHOICES = ["allow_once", "allow_session", "allow_workspace", "allow_always", "deny"]

SLASH_HELP = """/help        this list
/status      daemon and session status
/budget      the session's budget
/allowances  what this session may do without asking
/audit       the session's latest audit entries
/exit        leave (the session is saved; `astrid chat --resume ID` continues it)"""


async def _open_session(client: Any, resume: str | None, workspace: str) -> str:
    if resume:
        info = await client.call("resumeSession", session_id=resume)
    else:
        info = await client.call("createSession", workspace=workspace)
    return str(info["session_id"])


@click.command()
@click.option("--resume", metavar="SESSION", help="Continue a saved session.")
@click.option(
    "--workspace", type=click.Path(file_okay=False, exists=True), default=".", show_default=True
)
@click.pass_context
def chat(ctx: click.Context, resume: str | None, workspace: str) -> None:
    """Start an interactive chat session (auto-starts the daemon).

    Approvals show the risk and the five options: Allow Once, Allow Session, Allow Workspace,
    Allow Always, Deny. Ctrl-C cancels the running turn; a second Ctrl-C exits.

    Example: astrid chat --workspace ~/projects/app
    """
    from .._signals import take_back_ctrl_c
    from .._turns import drive_turn
    from .._ui import ChatUI, read_line

    take_back_ctrl_c()
    ui = ChatUI()
    root = os.path.realpath(workspace)

    async def ask(request: dict[str, Any]) -> str:
        return await ui.ask_approval_async(request)  # on the event loop: Ctrl-C withdraws it

    async def body() -> None:

        async with connected(ctx) as client:
            session = await _open_session(client, resume, root)
            await client.subscribe(session)
            ui.console.print(
                f"[bold]Astrid[/bold] session {session} — /help for commands, /exit to leave"
            )
            while True:
                try:
                    line = await read_line(ui.console, "[bold cyan]you> [/bold cyan]")
                except (EOFError, KeyboardInterrupt):
                    break
                line = line.strip()
                if not line:
                    continue
                if line.startswith("/"):
                    if not await _slash(client, session, line, ui):
                        break
                    continue
                try:
                    await drive_turn(client, session, line, ui, ask)
                except KeyboardInterrupt:
                    break
            ui.console.print(f"[dim]session saved: astrid chat --resume {session}[/dim]")

    run_async(body)


async def _slash(client: Any, session: str, line: str, ui: Any) -> bool:
    import json

    command = line.split()[0]
    if command in ("/exit", "/quit"):
        return False
    views = {
        "/status": ("status", {}),
        "/budget": ("sessionBudget", {"session_id": session}),
        "/allowances": ("sessionAllowances", {"session_id": session}),
        "/audit": ("sessionAudit", {"session_id": session, "limit": 10}),
    }
    if command in views:
        method, params = views[command]
        result = await client.call(method, **params)
        if command == "/audit":
            for entry in result:
                action = (entry.get("action") or {}).get("kind", "-")
                outcome = entry["outcome"]
                line = (
                    f"{entry['seq']:>5} {outcome['kind']:<20} {action:<16} {outcome['reason'][:60]}"
                )
                ui.console.print(line)
        else:
            ui.console.print_json(json.dumps(result, default=str))
        return True
    ui.console.print(SLASH_HELP)
    return True


@click.command()
@click.argument("prompt")
@click.option(
    "--auto",
    "auto",
    type=click.Choice(APPROVAL_CHOICES),
    default="deny",
    show_default=True,
    help="Answer every approval with this option (non-interactive).",
)
@click.option(
    "--workspace", type=click.Path(file_okay=False, exists=True), default=".", show_default=True
)
@click.option("--resume", metavar="SESSION", help="Run the turn in an existing session.")
@click.option(
    "--json", "as_json", is_flag=True, help="Print a JSON summary instead of the transcript."
)
@click.pass_context
def run(
    ctx: click.Context, prompt: str, auto: str, workspace: str, resume: str | None, as_json: bool
) -> None:
    """Run one non-interactive turn.

    Exit codes: 0 the turn completed; 1 an error; 3 something was denied (by policy, budget or
    the --auto answer); 4 an approval was deferred.

    Example: astrid run "list the TODOs in src/" --auto allow_once
    """
    from .._turns import auto_decider, drive_turn
    from .._ui import ChatUI

    ui = ChatUI(markdown=False)
    if as_json:
        from rich.console import Console

        ui = ChatUI(Console(file=open(os.devnull, "w")), markdown=False)  # noqa: SIM115

    root = os.path.realpath(workspace)

    async def body() -> tuple[str, Any]:
        async with connected(ctx) as client:
            session = await _open_session(client, resume, root)
            await client.subscribe(session)
            return session, await drive_turn(client, session, prompt, ui, auto_decider(auto))

    session, outcome = run_async(body)
    code = 1 if outcome.errors or outcome.stop_reason == "error" else 3 if outcome.denied else 0
    if as_json:
        emit_json(
            {
                "session_id": session,
                "stop_reason": outcome.stop_reason,
                "denied": outcome.denied,
                "approvals": outcome.approvals,
                "errors": outcome.errors,
                "text": outcome.text,
                "exit_code": code,
            }
        )
    ctx.exit(code)
