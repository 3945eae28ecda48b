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
/exit        leave (the session is saved; `astrid chat --resume ID` continues it)
/NAME ARGS   any other /command goes to the agent: an installed capsule's [[command]]
             expands into its prompt there (`astrid capsule info NAME` lists them)"""
_BUILT_IN = ("/help", "/status", "/budget", "/allowances", "/audit", "/exit", "/quit")


async def _open_session(client: Any, resume: str | None, workspace: str) -> str:
    if resume:
        from .._format import resolve_session

        sid = await resolve_session(client, resume)  # a short id from `sessions list` works
        info = await client.call("resumeSession", session_id=sid)
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

    Approvals show what will happen (a diff, the arguments, the command), why the policy asks
    and what each option grants; answer with a key: y (allow once), s (this session),
    w (this workspace), a (always, for the token lifetime), n (deny), d (deny and tell the
    model what to do instead), v (view the whole diff), or the digits 1-5. Ctrl-C withdraws
    an open question and cancels the running turn; a second Ctrl-C exits.

    Example: astrid chat --workspace ~/projects/app
    """
    from .._signals import take_back_ctrl_c
    from .._turns import Answer, drive_turn
    from .._ui import ChatUI, read_line

    take_back_ctrl_c()
    ui = ChatUI()
    root = os.path.realpath(workspace)

    async def ask(request: dict[str, Any]) -> Answer:
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
                if line.split()[0] in _BUILT_IN:
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
    from .._format import allowance_lines, audit_lines, budget_lines, status_lines

    command = line.split()[0]
    if command in ("/exit", "/quit"):
        return False
    if command == "/status":
        for text in status_lines(await client.call("status")):
            ui.console.print(text, markup=False, highlight=False)
        return True
    views = {
        "/budget": ("sessionBudget", {"session_id": session}, budget_lines),
        "/allowances": ("sessionAllowances", {"session_id": session}, allowance_lines),
        "/audit": ("sessionAudit", {"session_id": session, "limit": 10}, audit_lines),
    }
    if command in views:
        method, params, lines = views[command]
        for text in lines(await client.call(method, **params)):
            ui.console.print(text, markup=False, highlight=False)
        return True
    ui.console.print(SLASH_HELP, markup=False, highlight=False)
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


__all__ = ["chat", "run"]
