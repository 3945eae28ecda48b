"""Caveats: typed restrictions a token adds on top of resource + permission.

Each caveat is evaluated against the SensitiveAction being authorized; a token authorizes an
action only if every caveat holds. Argument values are compared by JSON value: numbers by
numeric value (``1 == 1.0``, ``98.7 == 98.70``, ``-0.0 == 0``, integers beyond 2^53 exactly),
a boolean is not a number (``True != 1``), a string is not a number (``1 != "1"``), lists in
order, objects by member set. NaN and Infinity are refused in a caveat and never match.
``arg_matches`` is a case-sensitive glob (stdlib ``fnmatch``) on a *string* argument, e.g. a
recipient or URL host.
``max_calls`` is counted by the store (it needs state); ``not_after`` is a hard deadline.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Any, Final, TypeAlias, cast

from astrid_core import BadInputError, JsonObject, JsonValue

__all__ = [
    "ArgEquals",
    "ArgIn",
    "ArgMatches",
    "MaxCalls",
    "NotAfter",
    "Caveat",
    "caveat_from_json",
    "caveat_problem",
    "caveat_key",
    "json_value_key",
]

_HINT: Final = "caveats are {type: arg_equals|arg_in|arg_matches|max_calls|not_after, ...}"


def _name(arg: object) -> str:
    if not isinstance(arg, str) or not arg or len(arg) > 256:
        raise BadInputError(f"caveat argument name {arg!r} is invalid", hint="1-256 characters")
    return arg


def json_value_key(value: object, path: str = "$") -> Hashable:
    """A hashable key equal for two JSON values exactly when they are the same JSON value.

    Tagged by JSON type, so Python's ``True == 1`` does not leak in; a number's key is the
    number itself, so ``1``, ``1.0`` and ``-0.0``/``0`` compare (and hash) by value, and an
    integer beyond 2^53 is compared exactly (never rounded to a double). Raises BadInputError
    for what is not JSON (NaN, Infinity, non-string keys, other types)."""
    if value is None:
        return ("null",)
    if isinstance(value, bool):
        return ("bool", value)
    if isinstance(value, int):
        return ("number", int(value))
    if isinstance(value, float):
        if math.isnan(value) or math.isinf(value):
            raise BadInputError(
                f"{value!r} at {path} is not a JSON number", hint="use a finite number"
            )
        return ("number", float(value))
    if isinstance(value, str):
        return ("string", str(value))
    if isinstance(value, list | tuple):
        items = cast(Sequence[object], value)
        return ("array", tuple(json_value_key(v, f"{path}[{i}]") for i, v in enumerate(items)))
    if isinstance(value, dict):
        members: list[tuple[str, Hashable]] = []
        for key, item in cast(dict[object, object], value).items():
            if not isinstance(key, str):
                raise BadInputError(f"JSON object keys are strings; got {key!r} at {path}")
            members.append((key, json_value_key(item, f"{path}.{key}")))
        return ("object", frozenset(members))
    raise BadInputError(
        f"{type(value).__name__} at {path} is not a JSON value",
        hint="use str, int, float, bool, None, list or dict",
    )


def _json(value: object, what: str) -> Hashable:
    # Validates the value (JSON, finite numbers) and gives its comparison key.
    try:
        return json_value_key(value)
    except BadInputError as exc:
        raise BadInputError(f"caveat {what} is not a JSON value: {exc.message}") from exc


@dataclass(frozen=True, slots=True)
class ArgEquals:
    arg: str
    value: JsonValue

    def __post_init__(self) -> None:
        _name(self.arg)
        _json(self.value, "value")

    def to_json(self) -> JsonObject:
        return {"type": "arg_equals", "arg": self.arg, "value": self.value}


@dataclass(frozen=True, slots=True)
class ArgIn:
    arg: str
    values: tuple[JsonValue, ...]

    def __post_init__(self) -> None:
        _name(self.arg)
        if not isinstance(self.values, tuple) or not self.values:  # pyright: ignore[reportUnnecessaryIsInstance]
            raise BadInputError("arg_in caveat needs a non-empty tuple of values")
        for value in self.values:
            _json(value, "value")

    def to_json(self) -> JsonObject:
        return {"type": "arg_in", "arg": self.arg, "values": list(self.values)}


@dataclass(frozen=True, slots=True)
class ArgMatches:
    arg: str
    glob: str

    def __post_init__(self) -> None:
        _name(self.arg)
        if not isinstance(self.glob, str) or not self.glob or "\x00" in self.glob:  # pyright: ignore[reportUnnecessaryIsInstance]
            raise BadInputError(f"arg_matches glob {self.glob!r} is invalid", hint=_HINT)

    def to_json(self) -> JsonObject:
        return {"type": "arg_matches", "arg": self.arg, "glob": self.glob}


@dataclass(frozen=True, slots=True)
class MaxCalls:
    limit: int

    def __post_init__(self) -> None:
        if isinstance(self.limit, bool) or not isinstance(self.limit, int) or self.limit < 1:  # pyright: ignore[reportUnnecessaryIsInstance]
            raise BadInputError(f"max_calls limit {self.limit!r} must be a positive integer")

    def to_json(self) -> JsonObject:
        return {"type": "max_calls", "limit": self.limit}


@dataclass(frozen=True, slots=True)
class NotAfter:
    timestamp: int
    """Unix seconds; the token authorizes nothing after this instant."""

    def __post_init__(self) -> None:
        if isinstance(self.timestamp, bool) or not isinstance(self.timestamp, int):  # pyright: ignore[reportUnnecessaryIsInstance]
            raise BadInputError(f"not_after timestamp {self.timestamp!r} must be integer seconds")

    def to_json(self) -> JsonObject:
        return {"type": "not_after", "timestamp": self.timestamp}


Caveat: TypeAlias = ArgEquals | ArgIn | ArgMatches | MaxCalls | NotAfter


def _exact_keys(data: Mapping[str, Any], keys: set[str]) -> None:
    if set(data) != keys:
        raise BadInputError(
            f"caveat {dict(data)!r} has fields {sorted(data)}, expected {sorted(keys)}", hint=_HINT
        )


def caveat_from_json(data: object) -> Caveat:
    """Parse the wire form strictly (exact field set, exact types) or raise BadInputError."""
    if not isinstance(data, dict):
        raise BadInputError(f"caveat {data!r} is not an object", hint=_HINT)
    obj = cast(dict[str, Any], data)
    kind = obj.get("type")
    if kind == "arg_equals":
        _exact_keys(obj, {"type", "arg", "value"})
        return ArgEquals(obj["arg"], obj["value"])
    if kind == "arg_in":
        _exact_keys(obj, {"type", "arg", "values"})
        values = obj["values"]
        if not isinstance(values, list):
            raise BadInputError("arg_in caveat 'values' must be a list", hint=_HINT)
        return ArgIn(obj["arg"], tuple(cast(list[JsonValue], values)))
    if kind == "arg_matches":
        _exact_keys(obj, {"type", "arg", "glob"})
        return ArgMatches(obj["arg"], obj["glob"])
    if kind == "max_calls":
        _exact_keys(obj, {"type", "limit"})
        return MaxCalls(obj["limit"])
    if kind == "not_after":
        _exact_keys(obj, {"type", "timestamp"})
        return NotAfter(obj["timestamp"])
    raise BadInputError(f"unknown caveat type {kind!r}", hint=_HINT)


def caveat_problem(caveat: Caveat, arguments: JsonObject, now: int) -> str | None:
    """Why ``caveat`` rejects an action with these arguments at ``now``, or None if it holds.

    ``max_calls`` always holds here: the store checks and counts it atomically.
    """
    if isinstance(caveat, MaxCalls):
        return None
    if isinstance(caveat, NotAfter):
        if now > caveat.timestamp:
            return f"caveat not_after {caveat.timestamp} has passed (now {now})"
        return None
    if caveat.arg not in arguments:
        return f"caveat on argument {caveat.arg!r}: the action has no such argument"
    actual = arguments[caveat.arg]
    if isinstance(caveat, ArgEquals | ArgIn):
        try:
            actual_key = json_value_key(actual)
        except BadInputError:  # NaN, Infinity or not JSON: not comparable, so the caveat fails
            return f"caveat on argument {caveat.arg!r}: the value is not a comparable JSON value"
        if isinstance(caveat, ArgEquals):
            if actual_key != json_value_key(caveat.value):
                return f"caveat arg_equals: {caveat.arg!r} is not {caveat.value!r}"
            return None
        if actual_key not in {json_value_key(v) for v in caveat.values}:
            return f"caveat arg_in: {caveat.arg!r} is not one of the allowed values"
        return None
    if not isinstance(actual, str) or not fnmatchcase(actual, caveat.glob):
        return f"caveat arg_matches: {caveat.arg!r} does not match {caveat.glob!r}"
    return None


def caveat_key(caveat: Caveat) -> Hashable:
    """Equal for two caveats that restrict the same way (values compared by JSON value)."""
    if isinstance(caveat, ArgEquals):
        return ("arg_equals", caveat.arg, json_value_key(caveat.value))
    if isinstance(caveat, ArgIn):
        return ("arg_in", caveat.arg, tuple(json_value_key(v) for v in caveat.values))
    if isinstance(caveat, ArgMatches):
        return ("arg_matches", caveat.arg, caveat.glob)
    if isinstance(caveat, MaxCalls):
        return ("max_calls", caveat.limit)
    return ("not_after", caveat.timestamp)
