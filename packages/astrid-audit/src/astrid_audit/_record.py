"""How an action is written into an audit entry: in full when it can be, else by digest.

Every action gets an entry, whatever JSON it carries. An action whose canonical JSON (format
v2, RFC 8785) is larger than ``MAX_RECORDED_ACTION_BYTES`` (a denied 1.1 MB bash line), or that
cannot be signed at all (an integer beyond ±(2^53 - 1), NaN, a lone surrogate), is recorded as

    {"kind": <the action's kind>,
     "elided": {"reason": why, "encoding": "rfc8785" | "json-ascii",
                "bytes": size of that encoding, "blake3": its BLAKE3 hex,
                "prefix": its first PREFIX_CHARS characters}}

``encoding`` names the text the size, digest and prefix are of: the RFC 8785 text when there
is one, otherwise Python's ``json.dumps(sort_keys=True, ensure_ascii=True,
separators=(",", ":"))`` of the value. No action model has an ``elided`` field, so a record
of this shape is never mistaken for an action recorded in full.
"""

from __future__ import annotations

import json
from typing import Any, Final

from astrid_core import BadInputError, JsonObject
from astrid_crypto import canonical_text, content_hash

from ._entry import FORMAT_VERSION

__all__ = ["MAX_RECORDED_ACTION_BYTES", "PREFIX_CHARS", "action_record", "entry_text"]

MAX_RECORDED_ACTION_BYTES: Final = 64 * 1024
PREFIX_CHARS: Final = 4096
_REASON_CHARS: Final = 500


def entry_text(value: Any) -> str:
    """The canonical JSON text of one member of an entry, in the format entries are written."""
    return canonical_text(value, FORMAT_VERSION)


def action_record(
    action: JsonObject, limit: int = MAX_RECORDED_ACTION_BYTES
) -> tuple[JsonObject, str]:
    """The action as it goes into an entry (itself, or its elided form) and that one's text."""
    try:
        text = entry_text(action)
    except BadInputError as exc:
        reason = f"not signable as RFC 8785 JSON: {exc.message}"
        return _elided(action, _fallback_text(action), "json-ascii", reason)
    if len(text) > limit // 4 and len(text.encode()) > limit:  # 4: the most bytes per char
        return _elided(action, text, "rfc8785", f"larger than {limit} bytes")
    return action, text


def _fallback_text(action: JsonObject) -> str:
    try:
        return json.dumps(
            action, sort_keys=True, ensure_ascii=True, separators=(",", ":"), allow_nan=True
        )
    except (ValueError, TypeError, RecursionError) as exc:  # e.g. past 4300 digits, too deep
        return f"<unencodable action: {type(exc).__name__}>"


def _elided(action: JsonObject, text: str, encoding: str, reason: str) -> tuple[JsonObject, str]:
    data = text.encode("utf-8", "surrogatepass")
    kind = action.get("kind")
    record: JsonObject = {
        "kind": kind if isinstance(kind, str) else "?",
        "elided": {
            "reason": _printable(reason[:_REASON_CHARS]),
            "encoding": encoding,
            "bytes": len(data),
            "blake3": content_hash(data).hex,
            "prefix": _printable(text[:PREFIX_CHARS]),
        },
    }
    return record, entry_text(record)


def _printable(text: str) -> str:
    """``text`` with any lone surrogate escaped, so that it is valid UTF-8."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")
