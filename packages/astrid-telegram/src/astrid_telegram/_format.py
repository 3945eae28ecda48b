"""Telegram text: HTML escaping and splitting at the 4,096-character limit.

We send ``parse_mode=HTML`` and escape everything the model or a tool produced, so no model
output can inject markup (or break a message with a stray ``<``). Splitting happens on the raw
text (then each part is escaped), on the safest boundary available: paragraph, line, space,
and only as a last resort inside a word. Telegram counts UTF-16 code units, so we do too.
"""

from __future__ import annotations

import html
from typing import Any

from astrid_gateway.protocol import ToolCallFinished, ToolCallStarted

__all__ = [
    "escape",
    "split_text",
    "utf16_len",
    "tool_line",
    "approval_text",
    "offered_options",
    "shorten",
    "TELEGRAM_LIMIT",
    "APPROVAL_OPTIONS",
    "DENY_WITH_MESSAGE",
    "DENY_WITH_MESSAGE_GRANT",
    "RESOLVED",
    "DENY_INDEX",
    "WITH_MESSAGE_INDEX",
]

TELEGRAM_LIMIT = 4096
APPROVAL_OPTIONS: tuple[tuple[str, str], ...] = (
    ("allow_once", "Allow Once"),
    ("allow_session", "Allow Session"),
    ("allow_workspace", "Allow Workspace"),
    ("allow_always", "Allow Always"),
    ("deny", "Deny"),
)
# The CLI's `d`: a button after Deny; the owner's next message in the chat is the reason,
# which the runtime returns to the model as the tool result.
DENY_WITH_MESSAGE = "Deny with a message"
DENY_WITH_MESSAGE_GRANT = (
    "nothing; your next message here is returned to the model as the tool result "
    "(what to do instead)"
)
# How a resolved approval reads, as in the CLI: "→ allowed once (by another client (cli))"
RESOLVED = {
    "allow_once": "allowed once",
    "allow_session": "allowed for this session",
    "allow_workspace": "allowed in this workspace",
    "allow_always": "allowed always",
    "deny": "denied",
}
_RISK_ICON = {"low": "🟢", "medium": "🟡", "high": "🔴", "critical": "🛑"}


def escape(text: str) -> str:
    return html.escape(text, quote=False)


def utf16_len(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def _cut_index(text: str, limit: int) -> int:
    """Largest prefix length (in code points) whose UTF-16 length is <= limit."""
    units = 0
    for index, char in enumerate(text):
        units += 2 if ord(char) > 0xFFFF else 1
        if units > limit:
            return index
    return len(text)


def split_text(text: str, limit: int = TELEGRAM_LIMIT) -> list[str]:
    """Split into parts of at most ``limit`` UTF-16 units, preferring natural boundaries."""
    parts: list[str] = []
    rest = text
    while utf16_len(rest) > limit:
        hard = _cut_index(rest, limit)
        window = rest[:hard]
        cut = -1
        for separator in ("\n\n", "\n", " "):
            position = window.rfind(separator)
            if position > hard // 2:  # do not make tiny parts just to hit a boundary
                cut = position + len(separator)
                break
        if cut <= 0:
            cut = hard
        parts.append(rest[:cut].rstrip("\n") or rest[:cut])
        rest = rest[cut:]
    if rest.strip() or not parts:
        parts.append(rest)
    return parts


def tool_line(event: ToolCallStarted | ToolCallFinished) -> str:
    """A compact, escaped one-liner for a tool call event."""
    if isinstance(event, ToolCallStarted):
        return f"⚙ <code>{escape(shorten(event.summary or event.tool, 300))}</code>"
    output = event.output.strip().splitlines()
    first = escape(shorten(output[0], 200)) if output else ""
    if event.denied:
        return f"⛔ denied: {first}"
    return ("✅ " if event.ok else "❌ ") + first


def shorten(text: str, width: int) -> str:
    """``text`` on one line, at most ``width`` characters, cut between words (a reason is never
    cut inside a word), with an ellipsis when shortened. Escape after shortening, so an HTML
    entity is never cut in half."""
    flat = " ".join(text.split())
    if len(flat) <= width:
        return flat
    head = flat[: max(1, width - 1)]
    cut = head.rfind(" ")
    if cut > 0:  # between words, however early; only a single over-long word is cut inside
        head = head[:cut]
    return head.rstrip(" ,;:") + "…"


DENY_INDEX = 4  # APPROVAL_OPTIONS[4] is "deny"
WITH_MESSAGE_INDEX = len(APPROVAL_OPTIONS)  # the button index of "Deny with a message"


def offered_options(request: dict[str, Any]) -> list[int]:
    """Indexes into APPROVAL_OPTIONS of the options this request offers (a budget question
    offers only Allow Once and Deny), in their fixed order."""
    offered = set(request.get("options") or [value for value, _ in APPROVAL_OPTIONS])
    return [i for i, (value, _) in enumerate(APPROVAL_OPTIONS) if value in offered]


def approval_text(request: dict[str, Any], note: str = "", limit: int = TELEGRAM_LIMIT) -> str:
    """The approval message, with what the CLI prompt shows: what will happen (the diff, the
    arguments, the command — as many lines as fit in one message), why the policy asks, and
    what each option grants. Escaped HTML, at most ``limit`` UTF-16 units."""
    risk = str(request.get("risk", "medium"))
    head = (
        f"{_RISK_ICON.get(risk, '🟡')} <b>Approval needed</b> ({escape(risk)} risk)"
        + (f" {escape(note)}" if note else "")
        + f"\n{escape(str(request.get('summary', '')))}"
    )
    reasons = [str(r) for r in request.get("ask_reasons") or []]
    if not reasons and request.get("reason"):
        reasons = [str(request["reason"])]  # a daemon from before ask_reasons existed
    why = "".join(f"\n<i>why: {escape(r)}</i>" for r in reasons)
    extra = "".join(f"\n{escape(str(d))}" for d in request.get("details") or [] if d not in reasons)
    grants: dict[str, str] = request.get("grants") or {}
    offered = offered_options(request)
    options = "\n".join(
        f"<b>{escape(label)}</b>: {escape(grants.get(value, label))}"
        for value, label in (APPROVAL_OPTIONS[i] for i in offered)
    )
    if DENY_INDEX in offered:
        options += f"\n<b>{DENY_WITH_MESSAGE}</b>: {escape(DENY_WITH_MESSAGE_GRANT)}"
    fixed = f"{head}{why}{extra}\n\n{options}"
    preview = str(request.get("preview") or "").rstrip("\n")
    if not preview:
        return fixed
    room = limit - utf16_len(fixed) - 200  # the <pre> tags and the "more lines" note
    lines = preview.splitlines()
    shown: list[str] = []
    for line in lines:
        cost = utf16_len(escape(line)) + 1
        if cost > room:
            break
        shown.append(line)
        room -= cost
    more = len(lines) - len(shown)
    tail = (
        f"\n… {more} more line{'s' * (more != 1)} not shown (Telegram's message limit)"
        if more
        else ""
    )
    body = f"\n\n<pre>{escape(chr(10).join(shown))}</pre>{escape(tail)}" if shown else escape(tail)
    return f"{head}{why}{extra}{body}\n\n{options}"
