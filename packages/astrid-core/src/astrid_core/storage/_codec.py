"""The one JSON encoding every backend stores: canonical text, checked before it is written.

Python's ``json`` quietly turns tuples into lists, int dict keys into strings and accepts lone
surrogates that no UTF-8 store can hold; any of those would make a value come back different
from what was written. We refuse them instead, with a message naming where the problem is.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import cast

from .._errors import BadInputError, StorageError
from .._json import JsonValue

__all__ = ["encode_value", "decode_value", "check_value", "EncodedJson", "MAX_DEPTH"]

MAX_DEPTH = 200


@dataclass(frozen=True, slots=True)
class EncodedJson:
    """A value already in the storage encoding (sorted keys, no whitespace, UTF-8 kept).

    For a caller that produced exactly that text anyway and checked what went into it (the
    audit log serializes each entry to sign it): storing it skips a second walk and dump.
    Make one only from such text; ``decode_value`` still parses it on every read."""

    text: str


def _bad(path: str, problem: str) -> BadInputError:
    return BadInputError(
        f"storage value at {path} {problem}",
        hint="values are JSON: dict with str keys, list, str, int, finite float, bool, null",
    )


def _check_str(text: str, path: str) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise _bad(path, "contains a lone surrogate, which is not valid Unicode text") from exc


def check_value(value: object, path: str = "$", depth: int = 0) -> None:
    """Raise BadInputError unless ``value`` is JSON that round-trips exactly."""
    if depth > MAX_DEPTH:
        raise _bad(path, f"is nested deeper than {MAX_DEPTH} levels")
    if value is None or isinstance(value, bool | int):
        return
    if isinstance(value, float):
        if not math.isfinite(value):
            raise _bad(path, f"is {value!r}, which JSON cannot represent")
        return
    if isinstance(value, str):
        _check_str(value, path)
        return
    if isinstance(value, list):
        for i, item in enumerate(cast(list[object], value)):
            check_value(item, f"{path}[{i}]", depth + 1)
        return
    if isinstance(value, dict):
        for k, item in cast(dict[object, object], value).items():
            if not isinstance(k, str):
                raise _bad(path, f"has a non-string key {k!r}")
            _check_str(k, f"{path} (a key)")
            check_value(item, f"{path}.{k}", depth + 1)
        return
    raise _bad(path, f"has type {type(value).__name__}, which is not JSON")


def _plainly_valid(value: object, depth: int = 0) -> bool:
    """The fast pre-check for the common case: exact JSON types, finite floats, bounded depth.

    It builds no path strings and leaves strings to the one UTF-8 encode of the whole text in
    ``encode_value``. Anything it does not accept (including subclasses such as StrEnum) goes
    through ``check_value``, which either accepts it or names the problem."""
    if depth > MAX_DEPTH:
        return False
    kind = type(value)
    if kind is str or kind is int or kind is bool or value is None:
        return True
    if kind is float:
        return math.isfinite(cast(float, value))
    if kind is list:
        return all(_plainly_valid(item, depth + 1) for item in cast(list[object], value))
    if kind is dict:
        for key, item in cast(dict[object, object], value).items():
            if type(key) is not str or not _plainly_valid(item, depth + 1):
                return False
        return True
    return False


# Built once: json.dumps with options builds a new JSONEncoder per call.
_ENCODER = json.JSONEncoder(ensure_ascii=False, sort_keys=True, separators=(",", ":"))


def encode_value(value: JsonValue | EncodedJson) -> str:
    """Canonical JSON text: sorted keys, no whitespace, UTF-8 characters kept as they are."""
    if isinstance(value, EncodedJson):
        return value.text
    if not _plainly_valid(value):
        check_value(value)
    text = _ENCODER.encode(value)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        check_value(value)  # names where the lone surrogate is
        raise
    return text


def decode_value(text: object) -> JsonValue:
    if not isinstance(text, str):
        raise StorageError(f"stored value is {type(text).__name__}, not JSON text")
    try:
        return cast(JsonValue, json.loads(text))
    except ValueError as exc:
        raise StorageError(f"stored value is not valid JSON: {exc}") from exc
