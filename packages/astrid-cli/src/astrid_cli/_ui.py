"""Rendering daemon events in a terminal and asking the human, for chat/run/demo.

Event payloads are the JSON of ``astrid_runtime.events`` plus the relay's approval/elicitation
messages; this module only reads dicts, so it needs nothing heavier than rich.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from rich.console import Console
from rich.live import Live
from rich.markdown import Markdown
from rich.markup import escape
from rich.panel import Panel
from rich.status import Status
from rich.text import Text

from astrid_gateway.protocol import (
    AgentError,
    AgentEvent,
    ApprovalResolved,
    BudgetWarning,
    DeferredApprovals,
    ModelRetrying,
    StatusNote,
    TextDelta,
    ToolCallFinished,
    ToolCallStarted,
    TurnComplete,
    UrlElicitationNeeded,
    UsageReport,
)

from ._format import shorten

__all__ = ["Answer", "ChatUI", "OPTIONS", "OPTION_KEYS", "RISK_STYLE", "read_line"]


_typed_ahead = bytearray()  # bytes read from stdin past the last line handed out


async def read_line(console: Console, prompt: str) -> str:
    """The next line typed, waited for on the event loop (raises EOFError at end of input).

    Not in a worker thread: a thread blocked in input() cannot be cancelled, so Ctrl-C would
    leave the process waiting for Enter. stdin is read unbuffered (os.read) with our own
    buffer: Python's buffered reader could swallow a line typed ahead while the event loop
    waits for the descriptor, which lost keystrokes. stdin that cannot be polled (a regular
    file) is simply read.
    """
    import contextlib
    import sys

    import anyio

    console.print(prompt, end="", markup=True, highlight=False)
    fd = sys.stdin.fileno()
    while b"\n" not in _typed_ahead:
        with contextlib.suppress(OSError, ValueError):  # not pollable: a plain read is fine
            await anyio.wait_readable(fd)
        chunk = os.read(fd, 4096)
        if not chunk:
            if not _typed_ahead:
                raise EOFError
            _typed_ahead.extend(b"\n")  # a last line without its newline
        _typed_ahead.extend(chunk)
    end = _typed_ahead.index(b"\n") + 1
    line = bytes(_typed_ahead[:end]).decode("utf-8", errors="replace")
    del _typed_ahead[:end]
    return line


# wire value -> (letter, digit, short label), in the order seed 000 lists them
OPTIONS: dict[str, tuple[str, str, str]] = {
    "allow_once": ("y", "1", "Allow Once"),
    "allow_session": ("s", "2", "Allow Session"),
    "allow_workspace": ("w", "3", "Allow Workspace"),
    "allow_always": ("a", "4", "Allow Always"),
    "deny": ("n", "5", "Deny"),
}
# key the user presses -> (wire value, label); digits and letters both answer
OPTION_KEYS: dict[str, tuple[str, str]] = {
    key: (value, label)
    for value, (letter, digit, label) in OPTIONS.items()
    for key in (digit, letter)
}
DENY_WITH_MESSAGE = "d"
VIEW_ALL = "v"
PREVIEW_LINES = 40  # lines of a diff or arguments shown before "press v to view all"
# How a resolved approval reads: "approval: allowed once (by you)"
RESOLVED = {
    "allow_once": "allowed once",
    "allow_session": "allowed for this session",
    "allow_workspace": "allowed in this workspace",
    "allow_always": "allowed always",
    "deny": "denied",
}
RISK_STYLE = {
    "low": "green",
    "medium": "yellow",
    "high": "bold red",
    "critical": "bold white on red",
}


@dataclass(frozen=True)
class Answer:
    """What a frontend answers an approval with, and who answered (for truthful labels)."""

    option: str
    reason: str | None = None  # with "deny": the person's words, returned to the model
    by: str = "you"  # "you" | "the --auto flag" | ...


class ChatUI:
    def __init__(self, console: Console | None = None, *, markdown: bool = True) -> None:
        self.console = console or Console()
        self.markdown = markdown
        self._text = ""
        self._live: Live | None = None
        self._status: Status | None = None
        # request id -> who answered it from this process ("you", "the --auto flag")
        self.answered_by: dict[str, str] = {}
        self.last_error: AgentError | None = None
        self.denials = 0

    # ------------------------------------------------------------------ streaming text

    def waiting(self, message: str = "waiting for the model…") -> None:
        """A spinner while nothing arrives (the model thinking, a retry's wait). Only on a
        terminal: piped output gets the events, not an animation."""
        if not self.console.is_terminal or self.console.is_dumb_terminal:
            return
        if self._status is None:
            self._status = self.console.status(message, spinner="dots")
            self._status.start()
        else:
            self._status.update(message)

    def stop_waiting(self) -> None:
        if self._status is not None:
            self._status.stop()
            self._status = None

    def _flush_text(self) -> None:
        if self._live is not None:
            self._live.stop()
            self._live = None
        elif self._text and not self.markdown:
            self.console.print()
        self._text = ""

    def _append_text(self, delta: str) -> None:
        self._text += delta
        if not self.markdown:
            self.console.print(delta, end="", markup=False, highlight=False)
            return
        if self._live is None:
            self._live = Live(
                Markdown(self._text),
                console=self.console,
                refresh_per_second=12,
                vertical_overflow="visible",
            )
            self._live.start()
        else:
            self._live.update(Markdown(self._text))

    # ------------------------------------------------------------------ events

    def render(self, event: AgentEvent) -> None:
        self.stop_waiting()
        if isinstance(event, TextDelta):
            self._append_text(event.text)
            return
        self._flush_text()
        match event:
            case ToolCallStarted(summary=summary, tool=tool):
                self.console.print(Text(f"⚙ {summary or tool}", style="cyan"))
            case ToolCallFinished(output=output, denied=denied, ok=ok):
                lines = output.strip().splitlines()
                first = shorten(lines[0], 160) if lines else ""
                if denied:
                    self.denials += 1
                    self.console.print(Text(f"  ✗ denied: {first}", style="bold red"))
                elif ok:
                    more = f"  (+{len(lines) - 1} lines)" if len(lines) > 1 else ""
                    self.console.print(Text(f"  ✓ {first}{more}", style="green"))
                else:
                    self.console.print(Text(f"  ✗ {first}", style="red"))
            case UsageReport():
                cost = event.cost_micros / 1_000_000
                total = event.session_cost_micros / 1_000_000
                self.console.print(
                    Text(
                        f"  {event.input_tokens} in / {event.output_tokens} out tokens, "
                        f"${cost:.4f} (session ${total:.4f})",
                        style="dim",
                    )
                )
            case BudgetWarning(message=message):
                self.console.print(Text(f"⚠ budget: {message}", style="bold yellow"))
            case AgentError(message=message, hint=hint):
                self.last_error = event
                shown = f"\n  hint: {hint}" if hint else ""
                self.console.print(Text(f"error: {message}{shown}", style="bold red"))
            case StatusNote(message=message):
                self.console.print(Text(message, style="dim"))
            case ApprovalResolved(request_id=request_id, option=option, resolved_by=by):
                who = self.answered_by.pop(request_id, None)
                if who is None:  # another client answered: name it, never claim it was you
                    who = f"another client ({by or 'unknown'})"
                self.console.print(
                    Text(f"  approval: {RESOLVED.get(option, option)} (by {who})", style="dim")
                )
            case ModelRetrying():
                message = (
                    f"model unavailable ({shorten(event.reason, 100)}); retrying in "
                    f"{event.wait_seconds:.1f} s (attempt {event.attempt + 1} of "
                    f"{event.max_attempts})"
                )
                self.console.print(Text(f"  ↻ {message}", style="yellow"))
                self.waiting(message)
            case UrlElicitationNeeded(request=request):
                self.console.print(
                    Panel(
                        f"{request.message}\n\n"
                        f"Open this link yourself: [link]{request.url}[/link]\n"
                        "(the model never sees what you enter there)",
                        title=f"{request.source or 'server'} asks you to visit a URL",
                    )
                )
            case DeferredApprovals(items=items):
                self.console.print(
                    Text(
                        f"{len(items)} deferred approval(s) waiting: `astrid` will ask for them",
                        style="yellow",
                    )
                )
            case TurnComplete(stop_reason=reason):
                if reason not in ("end_turn", "stop"):
                    self.console.print(Text(f"(turn ended: {reason})", style="dim"))
            case _:
                pass

    # ------------------------------------------------------------------ questions

    def approval_panel(self, request: dict[str, Any], *, full: bool = False) -> Panel:
        """What will happen, why the policy asks, and what each option grants."""
        risk = str(request.get("risk", "medium"))
        style = RISK_STYLE.get(risk, "yellow")
        body = Text()
        body.append(f"{request.get('summary', '')}\n", style="bold")
        body.append("risk: ")
        body.append(risk.upper(), style=style)
        reasons = list(request.get("ask_reasons") or [])
        if not reasons and request.get("reason"):
            reasons = [str(request["reason"])]  # a daemon from before ask_reasons existed
        for index, reason in enumerate(reasons):
            body.append(f"\n{'why:  ' if index == 0 else '      '}{reason}")
        for line in request.get("details") or []:
            if line not in reasons:
                body.append(f"\n{line}", style="yellow")
        preview = str(request.get("preview") or "").rstrip("\n")
        if preview:
            lines = preview.splitlines()
            shown = lines if full else lines[:PREVIEW_LINES]
            body.append("\n\n")
            for line in shown:
                body.append(line + "\n", style=_diff_style(line))
            if len(shown) < len(lines):
                more = len(lines) - len(shown)
                plural = "s" * (more != 1)
                body.append(f"… {more} more line{plural}: press v to view all\n", style="dim")
        body.append("\n")
        grants: dict[str, str] = request.get("grants") or {}
        for value in _offered(request):
            letter, digit, label = OPTIONS[value]
            text = grants.get(value) or label
            body.append(f"[{letter}] {digit} ", style="bold red" if value == "deny" else "bold")
            body.append(f"{text}\n")
        body.append(f"[{DENY_WITH_MESSAGE}]   ", style="bold red")
        body.append("Deny and tell the model what to do instead (your words are its tool result)")
        return Panel(body, title="Approval needed", border_style=style)

    async def ask_approval_async(self, request: dict[str, Any]) -> Answer:
        """Show the approval and read the answer on the event loop, so the question can be
        withdrawn (Ctrl-C cancels it) instead of holding the turn until someone presses Enter."""
        self.stop_waiting()
        self._flush_text()
        self.console.print(self.approval_panel(request))
        offered = _offered(request)
        keys = [k for k, (v, _) in OPTION_KEYS.items() if v in offered]
        letters = "/".join(OPTIONS[v][0] for v in offered) + f"/{DENY_WITH_MESSAGE}"
        default = OPTIONS["deny"][0] if "deny" in offered else OPTIONS[offered[-1]][0]
        while True:
            raw = await read_line(self.console, f"Your choice \\[{letters}] ({default}): ")
            answer = raw.strip().lower() or default
            if answer in keys:
                return Answer(OPTION_KEYS[answer][0])
            if answer == VIEW_ALL:
                self.console.print(self.approval_panel(request, full=True))
                continue
            if answer == DENY_WITH_MESSAGE:
                words = await read_line(self.console, "Tell the model what to do instead: ")
                return Answer("deny", words.strip() or None)
            self.console.print("[prompt.invalid]Please select one of the available options")

    async def _choose(self, question: str, choices: list[str], default: str) -> str:
        while True:
            options = "/".join(choices)
            raw = await read_line(self.console, f"{escape(question)} \\[{options}] ({default}): ")
            answer = raw.strip() or default
            if answer in choices:
                return answer
            self.console.print("[prompt.invalid]Please select one of the available options")

    async def ask_elicitation_async(
        self, request: dict[str, Any]
    ) -> tuple[str, dict[str, Any] | None]:
        """A short guided form from a JSON schema; returns (action, content). Read on the event
        loop like approvals, so Ctrl-C withdraws it."""
        self.stop_waiting()
        self._flush_text()
        schema = request.get("requested_schema") or {}
        self.console.print(
            Panel(str(request.get("message", "")), title=f"{request.get('source', 'server')} asks")
        )
        if await self._choose("Answer it?", ["y", "n"], "n") != "y":
            return "decline", None
        content: dict[str, Any] = {}
        for name, spec in (schema.get("properties") or {}).items():
            kind = spec.get("type", "string")
            label = spec.get("title") or spec.get("description") or name
            if "enum" in spec:
                choices = [str(v) for v in spec["enum"]]
                content[name] = await self._choose(label, choices, choices[0])
            elif kind == "boolean":
                content[name] = await self._choose(label, ["y", "n"], "n") == "y"
            else:
                raw = (await read_line(self.console, f"{escape(str(label))}: ")).strip()
                content[name] = int(raw) if kind == "integer" and raw.lstrip("-").isdigit() else raw
        return "accept", content


def _offered(request: dict[str, Any]) -> list[str]:
    offered = set(request.get("options") or OPTIONS)
    return [value for value in OPTIONS if value in offered]


def _diff_style(line: str) -> str:
    if line.startswith(("+++", "---")):
        return "bold"
    if line.startswith("+"):
        return "green"
    if line.startswith("-"):
        return "red"
    if line.startswith("@@"):
        return "cyan"
    return ""
