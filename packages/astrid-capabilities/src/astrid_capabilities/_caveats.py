"""Caveats: typed restrictions a token adds on top of resource + permission.

Each caveat is evaluated against the SensitiveAction being authorized; a token authorizes an
action only if every caveat holds. Argument values are compared as canonical JSON, so
``True`` never equals ``1`` and ``1`` never equals ``"1"``. ``arg_matches`` is a
case-sensitive glob (stdlib ``fnmatch``) on a *string* argument, e.g. a recipient or URL host.
``max_calls`` is counted by the store (it needs state); ``not_after`` is a hard deadline.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Any, Final, TypeAlias, cast

from astrid_core import BadInputError, JsonObject, JsonValue
from astrid_crypto import canonical_json

__all__ = [
    "ArgEquals",
    "ArgIn",
    "ArgMatches",
    "MaxCalls",
    "NotAfter",
    "Caveat",
    "caveat_from_json",
    "caveat_problem",
]

_HINT: Final = "caveats are {type: arg_equals|arg_in|arg_matches|max_calls|not_after, ...}"


def _name(arg: object) -> str:
    if not isinstance(arg, str) or not arg or len(arg) > 256:
        raise BadInputError(f"caveat argument name {arg!r} is invalid", hint="1-256 characters")
    return arg


def _json(value: object, what: str) -> bytes:
    # Canonical JSON both validates the value (no floats) and gives the comparison form.
    try:
        return canonical_json(value)
    except BadInputError as exc:
        raise BadInputError(f"caveat {what} is not canonical JSON: {exc.message}") from exc


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
            actual_json = canonical_json(actual)
        except BadInputError:  # e.g. a float argument: not comparable, so the caveat fails
            return f"caveat on argument {caveat.arg!r}: the value is not canonical JSON"
    else:
        actual_json = b""
    if isinstance(caveat, ArgEquals):
        if actual_json != canonical_json(caveat.value):
            return f"caveat arg_equals: {caveat.arg!r} is not {caveat.value!r}"
        return None
    if isinstance(caveat, ArgIn):
        allowed = {canonical_json(v) for v in caveat.values}
        if actual_json not in allowed:
            return f"caveat arg_in: {caveat.arg!r} is not one of the allowed values"
        return None
    if not isinstance(actual, str) or not fnmatchcase(actual, caveat.glob):
        return f"caveat arg_matches: {caveat.arg!r} does not match {caveat.glob!r}"
    return None
