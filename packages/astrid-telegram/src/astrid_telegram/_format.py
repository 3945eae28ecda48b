"""Telegram text: HTML escaping and splitting at the 4,096-character limit.

We send ``parse_mode=HTML`` and escape everything the model or a tool produced, so no model
output can inject markup (or break a message with a stray ``<``). Splitting happens on the raw
text (then each part is escaped), on the safest boundary available: paragraph, line, space,
and only as a last resort inside a word. Telegram counts UTF-16 code units, so we do too.
"""

from __future__ import annotations

import html
from typing import Any

__all__ = ["escape", "split_text", "utf16_len", "tool_line", "TELEGRAM_LIMIT"]

TELEGRAM_LIMIT = 4096


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


def tool_line(event: dict[str, Any]) -> str:
    """A compact, escaped one-liner for a tool call event."""
    if event.get("type") == "tool_call_start":
        return f"⚙ <code>{escape(str(event.get('summary') or event.get('tool')))[:300]}</code>"
    output = str(event.get("output", "")).strip().splitlines()
    first = escape(output[0][:200]) if output else ""
    if event.get("denied"):
        return f"⛔ denied: {first}"
    return ("✅ " if event.get("ok") else "❌ ") + first
