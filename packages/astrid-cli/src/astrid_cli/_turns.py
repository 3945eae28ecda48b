"""Driving one turn against the daemon: send input, render events, answer approvals.

Ctrl-C during a turn sends ``astrid.cancelTurn``; a second Ctrl-C leaves.
"""

from __future__ import annotations

import signal
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import anyio

from astrid_gateway.client import GatewayClient, RpcCallError
from astrid_gateway.protocol import (
    AgentError,
    ApprovalNeeded,
    ElicitationNeeded,
    TextDelta,
    ToolCallFinished,
    TurnComplete,
    UsageReport,
)

from ._ui import Answer, ChatUI

__all__ = ["Answer", "TurnOutcome", "drive_turn", "Decider", "auto_answer", "auto_decider"]

Decider = Callable[[dict[str, Any]], Awaitable[Answer]]


@dataclass
class TurnOutcome:
    stop_reason: str = ""
    denied: int = 0
    approvals: list[tuple[str, str]] = field(
        default_factory=list[tuple[str, str]]
    )  # (summary, option)
    errors: list[str] = field(default_factory=list[str])
    interrupted: bool = False
    text: str = ""  # everything the model said in the turn


# From the widest allow to the narrowest: an `--auto` allow that a question does not offer
# (e.g. Always, where untrusted content preceded the request and only Once is offered) falls
# back to the widest offered allow no wider than it; never to a wider one.
_ALLOWS = ("allow_always", "allow_workspace", "allow_session", "allow_once")


def auto_answer(option: str, offered: list[str]) -> str:
    """What ``--auto option`` answers to a question offering ``offered``: the option itself,
    else for an allow the widest offered allow that grants no more than it, else deny."""
    if option in offered:
        return option
    if option in _ALLOWS:
        for narrower in _ALLOWS[_ALLOWS.index(option) + 1 :]:
            if narrower in offered:
                return narrower
    return "deny"


def auto_decider(option: str, by: str = "the --auto flag") -> Decider:
    async def decide(request: dict[str, Any]) -> Answer:
        offered = request.get("options") or [option]
        return Answer(auto_answer(option, list(offered)), by=by)

    return decide


async def drive_turn(
    client: GatewayClient, session_id: str, text: str, ui: ChatUI, decide: Decider
) -> TurnOutcome:
    outcome = TurnOutcome()
    quit_requested = False
    question: anyio.CancelScope | None = None  # the open approval question, if any
    await client.call("sendInput", session_id=session_id, text=text)
    ui.waiting()
    async with anyio.create_task_group() as tg:

        async def watch_interrupts() -> None:
            nonlocal quit_requested
            with anyio.open_signal_receiver(signal.SIGINT) as signals:
                async for _ in signals:
                    if outcome.interrupted:
                        # Raised after the task group, not inside it: a KeyboardInterrupt
                        # wrapped in an ExceptionGroup would escape the caller's handler.
                        quit_requested = True
                        tg.cancel_scope.cancel()
                        return
                    outcome.interrupted = True
                    if question is not None:
                        question.cancel()  # withdrawn: answered "deny" below
                    ui.stop_waiting()
                    ui.console.print("[yellow]cancelling the turn (Ctrl-C again to quit)…[/yellow]")
                    await client.call("cancelTurn", session_id=session_id)

        tg.start_soon(watch_interrupts)
        async for event in client.events():
            if event.session_id is not None and str(event.session_id) != session_id:
                continue
            match event:
                case ApprovalNeeded(request=request):
                    answer = Answer("deny", by="you")  # a withdrawn question grants nothing
                    if not outcome.interrupted:
                        ui.stop_waiting()
                        with anyio.CancelScope() as question:
                            answer = await decide(request.model_dump(mode="json"))
                        question = None
                        if question_withdrawn(answer, outcome):
                            ui.console.print("\n[dim]question withdrawn: denied[/dim]")
                    outcome.approvals.append((request.summary, answer.option))
                    ui.answered_by[str(request.request_id)] = answer.by
                    try:
                        await client.call(
                            "approvalResponse",
                            request_id=str(request.request_id),
                            option=answer.option,
                            reason=answer.reason,
                        )
                    except RpcCallError as exc:
                        ui.answered_by.pop(str(request.request_id), None)
                        ui.console.print(
                            f"[dim]approval already resolved elsewhere: {exc.message}[/dim]"
                        )
                    if not outcome.interrupted:
                        ui.waiting(
                            "running…" if answer.option != "deny" else "waiting for the model…"
                        )
                    continue
                case ElicitationNeeded(request=request):
                    action, content = "cancel", None
                    if not outcome.interrupted:
                        with anyio.CancelScope() as question:
                            action, content = await ui.ask_elicitation_async(
                                request.model_dump(mode="json")
                            )
                        question = None
                    await client.call(
                        "elicitationResponse",
                        request_id=str(request.request_id),
                        action=action,
                        content=content,
                    )
                    continue
                case _:
                    pass
            ui.render(event)
            match event:
                case TextDelta(text=text):
                    outcome.text += text
                case ToolCallFinished(denied=True):
                    outcome.denied += 1
                case AgentError(message=message):
                    outcome.errors.append(message)
                case TurnComplete(stop_reason=reason):
                    outcome.stop_reason = reason
                    break
                case _:
                    pass
            if isinstance(event, ToolCallFinished | UsageReport) and not outcome.interrupted:
                ui.waiting()  # the model's next round: nothing shows until it speaks
        tg.cancel_scope.cancel()
    ui.stop_waiting()
    if quit_requested:
        raise KeyboardInterrupt
    return outcome


def question_withdrawn(answer: Answer, outcome: TurnOutcome) -> bool:
    return answer.option == "deny" and outcome.interrupted
