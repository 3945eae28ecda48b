"""Canonical JSON format v2: RFC 8785, the JSON Canonicalization Scheme (JCS).

Any JSON value a tool or MCP server produces can be signed in this form, floats included, and
an outside implementation (``rfc8785`` in Python, cyberphone's json-canonicalization in Go,
Java, JS, ...) reproduces the exact bytes from the parsed value. The rules:

- Object members sorted by the UTF-16 code units of their names (not code points: the two
  orders differ only between characters at or above U+E000 and ones beyond U+FFFF).
- Strings as in ECMAScript ``JSON.stringify``: ``"`` and ``\\`` escaped, U+0000-U+001F as
  ``\\b \\t \\n \\f \\r`` or ``\\u00xx``, everything else literal UTF-8.
- Numbers are IEEE 754 doubles written as ECMAScript ``Number.prototype.toString`` writes
  them: the shortest digits that round-trip (``98.70`` and ``98.7`` are the same ``98.7``;
  ``1.0`` is ``1``; ``1e21`` is ``1e+21``; ``-0.0`` is ``0``).

What this module refuses, with a BadInputError that names the path and the fix:

- **NaN and Infinity**: JSON has no such values, and no two implementations agree on them.
- **Integers beyond ±(2^53 - 1) that are not exactly a double's JCS digits**. A JCS number
  *is* a double: 2^53 + 1 would be written as 9007199254740992, so two different integers
  would sign as the same bytes, and an implementation that parsed the integer exactly would
  write digits the others do not. Neither a lossy nor a private lossless spelling keeps a
  signature unambiguous and outside-verifiable, so such integers are refused; the fix is a
  string ("12345678901234567890"), the I-JSON (RFC 7493) advice. An integer whose decimal
  digits are exactly the JCS text of a double (2^53 itself, 10^20: what the JCS text of the
  floats 2.0**53 and 1e20 reads back as in Python) *is* that double and is written as it, so a
  stored v2 text always reads back and re-encodes to the same bytes. (``rfc8785`` refuses
  every integer beyond the safe range; on such a value it agrees once the integer is a float.)
- Lone surrogates (not UTF-8), non-string keys, and anything that is not JSON.

Speed: a value made only of strings, safe integers, booleans, null, lists and objects whose
keys sort the same way under both orders is written by the C encoder of v1 (its output is the
JCS text then; a Hypothesis test checks it against ``rfc8785.dumps``). Anything else (floats,
keys at or above U+E000) takes the pure-Python writer below, which visits each value once.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from typing import Any, Final

from astrid_core import BadInputError

__all__ = ["jcs_text", "MAX_SAFE_INTEGER"]

MAX_SAFE_INTEGER: Final = 2**53 - 1
_MIN_SAFE_INTEGER: Final = -MAX_SAFE_INTEGER
_ORDER_SAFE: Final = "\ue000"  # keys below this sort the same by code point and by UTF-16
_BIG_INT_HINT: Final = (
    "JSON numbers are IEEE doubles (RFC 8785, I-JSON RFC 7493): send integers beyond "
    '±9007199254740991 as strings, e.g. "12345678901234567890"'
)
_encode_string: Final = json.encoder.encode_basestring  # ensure_ascii=False escaping


def _fast(value: Any) -> bool:
    """True if ``value`` has no float, no unsafe integer and no key whose order differs."""
    kind: type[Any] = type(value)  # pyright: ignore[reportUnknownVariableType]
    if kind is str or kind is bool or value is None:
        return True
    if kind is int:
        return _MIN_SAFE_INTEGER <= value <= MAX_SAFE_INTEGER
    if kind is dict:
        for key, item in value.items():
            if type(key) is not str or not (key.isascii() or max(key) < _ORDER_SAFE):
                return False
            if not _fast(item):
                return False
        return True
    if kind is list or kind is tuple:
        return all(_fast(item) for item in value)
    return False


def _utf16_key(item: tuple[str, Any]) -> bytes:
    return item[0].encode("utf-16-be", "surrogatepass")


def es_number(value: float) -> str:
    """ECMAScript Number::toString of a finite double (RFC 8785 §3.2.2.3)."""
    if value == 0:
        return "0"  # -0.0 included
    if value < 0:
        return "-" + es_number(-value)
    mantissa, _, exponent = repr(value).partition("e")
    whole, _, fraction = mantissa.partition(".")
    digits = whole + fraction
    point = len(whole) + (int(exponent) if exponent else 0)  # value = 0.digits * 10^point
    stripped = digits.lstrip("0")
    point -= len(digits) - len(stripped)
    digits = stripped.rstrip("0")
    count = len(digits)
    if count <= point <= 21:
        return digits + "0" * (point - count)
    if 0 < point <= 21:
        return f"{digits[:point]}.{digits[point:]}"
    if -6 < point <= 0:
        return "0." + "0" * -point + digits
    power = point - 1
    sign = "+" if power >= 0 else "-"
    head = digits[0] if count == 1 else f"{digits[0]}.{digits[1:]}"
    return f"{head}e{sign}{abs(power)}"


def _double_text(number: int) -> str | None:
    """The JCS text of an integer beyond ±(2^53 - 1) if its digits are exactly the JCS text of
    a double (what a float such as 1e20 or 2.0**53 reads back as), else None. Those integers
    are the doubles themselves, so signing them is unambiguous; any other would be rounded."""
    if number.bit_length() > 1024:
        return None
    try:
        text = es_number(float(number))
    except OverflowError:
        return None
    return text if text == str(number) else None


def _short(number: int) -> str:
    """The integer, or its size when printing it would be long (or refused past 4300 digits)."""
    return str(number) if number.bit_length() <= 256 else f"of {number.bit_length()} bits"


def _write(value: Any, path: str, out: list[str]) -> None:
    """Every value once (O(n)): no per-subtree fast check, which would cost O(n * depth)."""
    if value is None:
        out.append("null")
    elif isinstance(value, bool):
        out.append("true" if value else "false")
    elif isinstance(value, int):
        number = int(value)
        if _MIN_SAFE_INTEGER <= number <= MAX_SAFE_INTEGER:
            out.append(str(number))
            return
        text = _double_text(number)
        if text is None:
            raise BadInputError(
                f"canonical JSON (RFC 8785) cannot sign the integer {_short(number)} at {path} "
                "exactly: it is beyond ±(2^53 - 1) and not a double's exact digits",
                hint=_BIG_INT_HINT,
            )
        out.append(text)
    elif isinstance(value, float):
        number = float(value)
        if math.isnan(number) or math.isinf(number):
            raise BadInputError(
                f"canonical JSON refuses {number!r} at {path}: JSON has no NaN or Infinity",
                hint='send null or a string instead (e.g. "NaN", "Infinity")',
            )
        out.append(es_number(number))
    elif isinstance(value, str):
        out.append(_encode_string(value))
    elif isinstance(value, dict):
        items: list[tuple[Any, Any]] = list(value.items())  # type: ignore[reportUnknownArgumentType]
        for key, _ in items:
            if not isinstance(key, str):
                raise BadInputError(
                    f"canonical JSON needs string keys; got {type(key).__name__} at {path}"
                )
        out.append("{")
        for index, (key, item) in enumerate(sorted(items, key=_utf16_key)):
            if index:
                out.append(",")
            out.append(_encode_string(key))
            out.append(":")
            _write(item, f"{path}.{key}", out)
        out.append("}")
    elif isinstance(value, list | tuple):
        out.append("[")
        for index, item in enumerate(value):  # type: ignore[reportUnknownVariableType]
            if index:
                out.append(",")
            _write(item, f"{path}[{index}]", out)
        out.append("]")
    else:
        raise BadInputError(
            f"canonical JSON cannot encode {type(value).__name__} at {path}",
            hint="convert it to str, int, float, bool, None, list or dict first",
        )


def jcs_text(value: Any, fast_encode: Callable[[Any], str]) -> str:
    """The RFC 8785 text of ``value`` (not yet checked for lone surrogates: the caller's UTF-8
    encoding does that). ``fast_encode`` is the v1 C encoder, used where its output is JCS."""
    try:
        if _fast(value):
            return fast_encode(value)
        out: list[str] = []
        _write(value, "$", out)
    except RecursionError as exc:
        raise BadInputError(
            "canonical JSON cannot encode a value nested this deeply",
            hint="JSON for a signed record must nest less than a few hundred levels",
        ) from exc
    return "".join(out)
