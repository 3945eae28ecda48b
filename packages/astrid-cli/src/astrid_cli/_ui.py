"""Rendering daemon events in a terminal and asking the human, for chat/run/demo.

Event payloads are the JSON of ``astrid_runtime.events`` plus the relay's approval/elicitation
messages; this module only reads dicts, so it needs nothing heavier than rich.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from rich.console import Console
from rich.live import Live
from rich.markdown import Markdown
from rich.panel import Panel
from rich.prompt import Prompt
from rich.text import Text

__all__ = ["ChatUI", "OPTION_KEYS", "RISK_STYLE", "read_line"]


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


# key the user presses -> (wire value, label), in the order seed 000 lists them
OPTION_KEYS: dict[str, tuple[str, str]] = {
    "1": ("allow_once", "Allow Once"),
    "2": ("allow_session", "Allow Session"),
    "3": ("allow_workspace", "Allow Workspace"),
    "4": ("allow_always", "Allow Always"),
    "5": ("deny", "Deny"),
}
RISK_STYLE = {
    "low": "green",
    "medium": "yellow",
    "high": "bold red",
    "critical": "bold white on red",
}

Asker = Callable[[str, list[str], str], str]  # (question, choices, default) -> answer


def _default_ask(question: str, choices: list[str], default: str) -> str:
    return Prompt.ask(question, choices=choices, default=default, show_choices=False)


class ChatUI:
    def __init__(
        self, console: Console | None = None, *, ask: Asker = _default_ask, markdown: bool = True
    ) -> None:
        self.console = console or Console()
        self.ask = ask
        self.markdown = markdown
        self._text = ""
        self._live: Live | None = None
        self.last_error: dict[str, Any] | None = None
        self.denials = 0

    # ------------------------------------------------------------------ streaming text

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

    def render(self, event: dict[str, Any]) -> None:
        kind = event.get("type")
        if kind == "text":
            self._append_text(str(event.get("text", "")))
            return
        self._flush_text()
        if kind == "tool_call_start":
            summary = event.get("summary") or event.get("tool")
            self.console.print(Text(f"⚙ {summary}", style="cyan"))
        elif kind == "tool_call_result":
            output = str(event.get("output", "")).strip().splitlines()
            first = output[0][:160] if output else ""
            if event.get("denied"):
                self.denials += 1
                self.console.print(Text(f"  ✗ denied: {first}", style="bold red"))
            elif event.get("ok"):
                more = f"  (+{len(output) - 1} lines)" if len(output) > 1 else ""
                self.console.print(Text(f"  ✓ {first}{more}", style="green"))
            else:
                self.console.print(Text(f"  ✗ {first}", style="red"))
        elif kind == "usage":
            cost = int(event.get("cost_micros", 0)) / 1_000_000
            total = int(event.get("session_cost_micros", 0)) / 1_000_000
            self.console.print(
                Text(
                    f"  {event.get('input_tokens')} in / {event.get('output_tokens')} out tokens, "
                    f"${cost:.4f} (session ${total:.4f})",
                    style="dim",
                )
            )
        elif kind == "budget_warning":
            self.console.print(Text(f"⚠ budget: {event.get('message')}", style="bold yellow"))
        elif kind == "error":
            self.last_error = event
            hint = f"\n  hint: {event['hint']}" if event.get("hint") else ""
            self.console.print(Text(f"error: {event.get('message')}{hint}", style="bold red"))
        elif kind == "status":
            self.console.print(Text(str(event.get("message")), style="dim"))
        elif kind == "approval_resolved":
            self.console.print(
                Text(
                    f"  approval {event.get('option')} (by {event.get('resolved_by')})", style="dim"
                )
            )
        elif kind == "url_elicitation_needed":
            request = event.get("request", {})
            self.console.print(
                Panel(
                    f"{request.get('message', '')}\n\n"
                    f"Open this link yourself: [link]{request.get('url')}[/link]\n"
                    "(the model never sees what you enter there)",
                    title=f"{request.get('source', 'server')} asks you to visit a URL",
                )
            )
        elif kind == "deferred_approvals":
            items = event.get("items") or []
            self.console.print(
                Text(
                    f"{len(items)} deferred approval(s) waiting: `astrid` will ask for them",
                    style="yellow",
                )
            )
        elif kind == "turn_complete":
            reason = event.get("stop_reason")
            if reason not in ("end_turn", "stop", None):
                self.console.print(Text(f"(turn ended: {reason})", style="dim"))

    # ------------------------------------------------------------------ questions

    def approval_panel(self, request: dict[str, Any]) -> Panel:
        risk = str(request.get("risk", "medium"))
        style = RISK_STYLE.get(risk, "yellow")
        body = Text()
        body.append(f"{request.get('summary', '')}\n", style="bold")
        body.append("risk: ")
        body.append(risk.upper(), style=style)
        if request.get("reason"):
            body.append(f"\nwhy:  {request['reason']}")
        for line in request.get("details") or []:
            body.append(f"\n{line}")
        offered = set(request.get("options") or [v for v, _ in OPTION_KEYS.values()])
        body.append("\n\n")
        for key, (value, label) in OPTION_KEYS.items():
            if value in offered:
                body.append(f"[{key}] {label}  ", style="bold red" if value == "deny" else "bold")
        return Panel(body, title="Approval needed", border_style=style)

    async def ask_approval_async(self, request: dict[str, Any]) -> str:
        """``ask_approval`` read on the event loop, so the question can be withdrawn (Ctrl-C
        cancels it) instead of holding the turn until someone presses Enter."""
        self._flush_text()
        self.console.print(self.approval_panel(request))
        offered = set(request.get("options") or [v for v, _ in OPTION_KEYS.values()])
        keys = [k for k, (v, _) in OPTION_KEYS.items() if v in offered]
        default = "5" if "5" in keys else keys[-1]
        while True:
            answer = (await read_line(self.console, f"Your choice ({default}): ")).strip()
            answer = answer or default
            if answer in keys:
                return OPTION_KEYS[answer][0]
            self.console.print("[prompt.invalid]Please select one of the available options")

    def ask_approval(self, request: dict[str, Any]) -> str:
        """Show the approval and return the chosen wire option (allow_once, …, deny)."""
        self._flush_text()
        self.console.print(self.approval_panel(request))
        offered = set(request.get("options") or [v for v, _ in OPTION_KEYS.values()])
        keys = [k for k, (v, _) in OPTION_KEYS.items() if v in offered]
        answer = self.ask("Your choice", keys, "5" if "5" in keys else keys[-1])
        return OPTION_KEYS[answer][0]

    def ask_elicitation(self, request: dict[str, Any]) -> tuple[str, dict[str, Any] | None]:
        """A short guided form from a JSON schema; returns (action, content)."""
        self._flush_text()
        schema = request.get("requested_schema") or {}
        self.console.print(
            Panel(str(request.get("message", "")), title=f"{request.get('source', 'server')} asks")
        )
        if self.ask("Answer it?", ["y", "n"], "n") != "y":
            return "decline", None
        content: dict[str, Any] = {}
        for name, spec in (schema.get("properties") or {}).items():
            kind = spec.get("type", "string")
            label = spec.get("title") or spec.get("description") or name
            if "enum" in spec:
                content[name] = self.ask(
                    label, [str(v) for v in spec["enum"]], str(spec["enum"][0])
                )
            elif kind == "boolean":
                content[name] = self.ask(label, ["y", "n"], "n") == "y"
            else:
                raw = Prompt.ask(label)
                content[name] = int(raw) if kind == "integer" and raw.lstrip("-").isdigit() else raw
        return "accept", content
