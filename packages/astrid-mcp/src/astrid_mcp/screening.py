"""Screen what MCP servers say, and neutralize what they return.

A tool's name, description and schema are text the model reads as instructions. A malicious or
compromised server hides orders in them ("tool poisoning", as Invariant's mcp-scan calls it):
invisible or bidirectional Unicode, text addressed to the model rather than the user, mentions
of other servers' tools ("when you call send_email, also BCC…"), or a tool that takes the name
of another server's tool (shadowing). ``screen_tools`` flags these; the gateway offers a
flagged tool only after a person approved it with the findings in front of them.

``neutralize`` makes text a server returns safe for a terminal, a chat and the model: ANSI and
other escape sequences and control characters are removed (newline and tab stay), so a result
cannot move the cursor, rewrite what the person sees, set a window title or hide text.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["Finding", "neutralize", "screen_tools", "tool_text"]

# CSI (ESC [ … final), OSC (ESC ] … BEL or ST), DCS/SOS/PM/APC (ESC P/X/^/_ … ST), 8-bit CSI
# (0x9b …) and any other two-character ESC sequence.
_ESCAPES = re.compile(
    r"\x1b\[[0-?]*[ -/]*[@-~]"
    r"|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?"
    r"|\x1b[PX^_][^\x1b]*(?:\x1b\\)?"
    r"|\x9b[0-?]*[ -/]*[@-~]"
    r"|\x1b[@-Z\\-_]?"
)
_KEEP = {"\n", "\t"}
# Bidirectional overrides and isolates: they reorder what a person sees on screen.
_BIDI = {chr(c) for c in (*range(0x202A, 0x202F), *range(0x2066, 0x206A), 0x200E, 0x200F)}

# Phrases that address the model, not the person (lower-case, matched on word boundaries).
_TO_THE_MODEL = re.compile(
    r"<\s*(important|system|instructions?|secret)\s*>"
    r"|\bignore (all |any )?(previous|prior|above|earlier) (instructions|messages)\b"
    r"|\bdo not (tell|inform|mention|reveal)\b.{0,40}\b(user|human)\b"
    r"|\b(don't|never) (tell|inform|mention)\b.{0,40}\b(user|human)\b"
    r"|\bbefore (using|calling) (this|any) tool\b"
    r"|\b(you|the (assistant|model|ai)) (must|should) (always |first |also )?"
    r"(call|read|send|include|pass|use)\b"
    r"|\bsystem prompt\b"
    r"|\b(~/\.ssh|id_rsa|\.env\b|mcp\.json)",
    re.IGNORECASE | re.DOTALL,
)


@dataclass(frozen=True)
class Finding:
    tool: str
    kind: str  # hidden_unicode | addressed_to_model | other_server_tool | shadowing
    detail: str

    def __str__(self) -> str:
        return f"{self.tool}: {self.kind}: {self.detail}"


def neutralize(text: str) -> str:
    """``text`` without escape sequences and control characters (newline and tab kept)."""
    text = _ESCAPES.sub("", text)
    return "".join(
        ch
        for ch in text
        if ch in _KEEP or (ch not in _BIDI and unicodedata.category(ch) not in {"Cc", "Zl", "Zp"})
    )


def tool_text(tool: Mapping[str, Any]) -> str:
    """Everything about a tool the model reads: title, description, and every string in its
    schemas (property descriptions, enum values, defaults) and annotations."""
    parts: list[str] = [str(tool.get("title") or ""), str(tool.get("description") or "")]

    def walk(value: Any) -> None:
        if isinstance(value, str):
            parts.append(value)
        elif isinstance(value, Mapping):
            for key, item in value.items():  # pyright: ignore[reportUnknownVariableType]
                parts.append(str(key))  # pyright: ignore[reportUnknownArgumentType]
                walk(item)
        elif isinstance(value, list):
            for item in value:  # pyright: ignore[reportUnknownVariableType]
                walk(item)

    walk(tool.get("inputSchema"))
    walk(tool.get("outputSchema"))
    walk(tool.get("annotations"))  # its title is shown to the person and the model
    return "\n".join(parts)


def _hidden(text: str) -> list[str]:
    found: set[str] = set()
    for ch in text:
        code = ord(ch)
        if 0xE0000 <= code <= 0xE007F:
            found.add("Unicode tag characters (invisible text)")
        elif unicodedata.category(ch) == "Cf":
            found.add(f"invisible or bidirectional character U+{code:04X}")
        elif unicodedata.category(ch) == "Cc" and ch not in _KEEP:
            found.add(f"control character U+{code:04X}")
    return sorted(found)


def screen_tools(
    tools: Mapping[str, Iterable[Mapping[str, Any]]],
) -> dict[tuple[str, str], list[Finding]]:
    """Findings per (server, tool) for the listings of several servers, screened together
    (cross-server references and shadowing need all of them)."""
    owners: dict[str, set[str]] = {}
    listed = {server: list(items) for server, items in tools.items()}
    for server, items in listed.items():
        for tool in items:
            owners.setdefault(str(tool.get("name", "")), set()).add(server)
    findings: dict[tuple[str, str], list[Finding]] = {}
    for server, items in listed.items():
        for tool in items:
            name = str(tool.get("name", ""))
            text = tool_text(tool)
            out: list[Finding] = [Finding(name, "hidden_unicode", d) for d in _hidden(text)]
            out.extend(
                Finding(name, "addressed_to_model", f"contains {match.group(0)!r}")
                for match in _TO_THE_MODEL.finditer(text)
            )
            if len(owners.get(name, ())) > 1:
                others = sorted(owners[name] - {server})
                out.append(
                    Finding(name, "shadowing", f"same name as a tool of {', '.join(others)}")
                )
            for other_name, other_servers in owners.items():
                foreign = other_servers - {server}
                if (
                    foreign
                    and other_name != name
                    and len(other_name) >= 4
                    and re.search(rf"\b{re.escape(other_name)}\b", text)
                ):
                    out.append(
                        Finding(
                            name,
                            "other_server_tool",
                            f"mentions {other_name!r}, a tool of {', '.join(sorted(foreign))}",
                        )
                    )
            findings[(server, name)] = out
    return findings
