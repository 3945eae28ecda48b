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


# Characters that draw nothing although they are not format characters (Cf): variation
# selectors (Mn), the combining grapheme joiner, Hangul fillers (Lo), the braille blank.
_INVISIBLE = {
    *map(chr, range(0xFE00, 0xFE10)),
    *map(chr, range(0xE0100, 0xE01F0)),
    "\u034f",
    "\u115f",
    "\u1160",
    "\u3164",
    "\uffa0",
    "\u2800",
}
# Letters of other scripts that look like Latin ones (the common Cyrillic and Greek
# homoglyphs): "ignore previous instructions" written with a Cyrillic i (U+0456) must still
# read as English. The escapes below are, in order, the look-alikes of the Latin letters after.
_CONFUSABLE = str.maketrans(
    "\u0430\u0435\u043e\u0440\u0441\u0443\u0445\u0456\u0455\u0458\u0501\u04cf"
    "\u051b\u051d\u0410\u0412\u0415\u041a\u041c\u041d\u041e\u0420\u0421\u0422"
    "\u0425\u0406\u0405\u0408\u03b1\u03b2\u03b5\u03b9\u03ba\u03bd\u03bf\u03c1"
    "\u03c4\u03c5\u03c7\u0391\u0392\u0395\u0396\u0397\u0399\u039a\u039c\u039d"
    "\u039f\u03a1\u03a4\u03a5\u03a7",
    "aeopcyxisjdlqwABEKMHOPCTXISJabeikvoptuxABEZHIKMNOPTYX",
)
_LATIN = re.compile(r"[A-Za-z]")
_LOOKALIKE_SCRIPT = re.compile(r"[\u0370-\u03ff\u0400-\u052f]")


def _folded(text: str) -> str:
    """What a reader (or a model) takes the text to say: NFKC (full-width and other
    compatibility forms become plain letters), invisible characters removed, look-alike
    letters of other scripts mapped to the Latin ones."""
    text = unicodedata.normalize("NFKC", text)
    text = "".join(ch for ch in text if ch not in _INVISIBLE and unicodedata.category(ch) != "Cf")
    return text.translate(_CONFUSABLE)


def _mixed_script_words(text: str) -> list[str]:
    """Words that mix Latin letters with Cyrillic or Greek ones: how look-alike text hides."""
    return sorted(
        {
            word
            for word in re.findall(r"\w+", unicodedata.normalize("NFKC", text))
            if _LATIN.search(word) and _LOOKALIKE_SCRIPT.search(word)
        }
    )


def _hidden(text: str) -> list[str]:
    found: set[str] = set()
    for ch in text:
        code = ord(ch)
        if 0xE0000 <= code <= 0xE007F:
            found.add("Unicode tag characters (invisible text)")
        elif ch in _INVISIBLE:
            found.add(f"invisible character U+{code:04X}")
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
                Finding(name, "hidden_unicode", f"mixes Latin with look-alike letters: {word!r}")
                for word in _mixed_script_words(text)[:5]
            )
            said = {match.group(0) for match in _TO_THE_MODEL.finditer(text)}
            said |= {match.group(0) for match in _TO_THE_MODEL.finditer(_folded(text))}
            out.extend(
                Finding(name, "addressed_to_model", f"contains {phrase!r}")
                for phrase in sorted(said)
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
