"""Caveats: typed restrictions a token adds on top of resource + permission.

Each caveat is evaluated against the SensitiveAction being authorized; a token authorizes an
action only if every caveat holds. Argument values are compared by JSON value: numbers by
numeric value (``1 == 1.0``, ``98.7 == 98.70``, ``-0.0 == 0``, integers beyond 2^53 exactly),
a boolean is not a number (``True != 1``), a string is not a number (``1 != "1"``), lists in
order, objects by member set. NaN and Infinity are refused in a caveat and never match.

Kinds (wire ``type``):

* ``arg_equals`` / ``arg_in`` — the argument is this value / one of these values;
* ``arg_matches`` — a case-sensitive glob (stdlib ``fnmatch``) on a *string* argument;
* ``each_in`` — the argument is a list and every element is one of these values (any order,
  any subset, duplicates allowed);
* ``range`` — the argument is a number with ``lo <= value <= hi`` (either bound may be
  omitted); ints and floats compared exactly by value;
* ``absent`` — the action does not carry the argument at all;
* ``only_args`` — the action carries no top-level argument outside this set;
* ``max_calls`` — counted by the store (it needs state); ``not_after`` — a hard deadline.

An ``arg`` beginning with ``/`` is an RFC 6901 JSON pointer into the arguments (``/to/0``,
``/message/recipients``); any other ``arg`` is a top-level argument name, exactly as before.
Kinds were only added: a token written before keeps its bytes, its signature and its meaning.
A caveat that names a type it cannot compare (a range bound that is not a number, a glob that
is not a string) is refused when it is built, with the fix in the hint.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Any, Final, TypeAlias, cast

from astrid_core import BadInputError, JsonObject, JsonValue

__all__ = [
    "Absent",
    "ArgEquals",
    "ArgIn",
    "ArgMatches",
    "EachIn",
    "MaxCalls",
    "NotAfter",
    "OnlyArgs",
    "Range",
    "Caveat",
    "CaveatRefusal",
    "caveat_from_json",
    "caveat_problem",
    "caveat_refusal",
    "caveat_key",
    "json_value_key",
    "resolve_arg",
]

_KINDS: Final = "arg_equals|arg_in|arg_matches|each_in|range|absent|only_args|max_calls|not_after"
_HINT: Final = f"caveats are {{type: {_KINDS}, ...}}"
_MISSING: Final = object()


def _name(arg: object) -> str:
    if not isinstance(arg, str) or not arg or len(arg) > 256:
        raise BadInputError(
            f"caveat argument name {arg!r} is invalid",
            hint="1-256 characters: a top-level name (`to`) or a JSON pointer (`/message/to`)",
        )
    if arg.startswith("/"):
        for token in arg[1:].split("/"):
            if token.replace("~0", "").replace("~1", "").find("~") != -1:
                raise BadInputError(
                    f"caveat argument {arg!r} is not a valid JSON pointer",
                    hint="in a JSON pointer write `~0` for `~` and `~1` for `/` (RFC 6901)",
                )
    return arg


def resolve_arg(arguments: Mapping[str, object], arg: str) -> object:
    """The value ``arg`` names in ``arguments``, or the module's missing marker.

    A top-level name is a key; an ``arg`` starting with ``/`` is an RFC 6901 pointer: each
    segment is an object member or (digits, no leading zero) an array index."""
    if not arg.startswith("/"):
        return arguments.get(arg, _MISSING)
    current: object = dict(arguments)
    for raw in arg[1:].split("/"):
        token = raw.replace("~1", "/").replace("~0", "~")
        if isinstance(current, dict):
            members = cast(dict[str, object], current)  # pyright: ignore[reportUnnecessaryCast]
            if token not in members:
                return _MISSING
            current = members[token]
        elif isinstance(current, list):
            items = cast(list[object], current)
            if not token.isdigit() or (len(token) > 1 and token[0] == "0"):
                return _MISSING
            index = int(token)
            if index >= len(items):
                return _MISSING
            current = items[index]
        else:
            return _MISSING
    return current


def is_missing(value: object) -> bool:
    return value is _MISSING


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


def _values(values: object, kind: str) -> tuple[JsonValue, ...]:
    if not isinstance(values, tuple) or not values:
        raise BadInputError(
            f"{kind} caveat needs a non-empty tuple of values",
            hint=f'e.g. {kind}("to", ("alice@example.com",))',
        )
    items = cast(tuple[JsonValue, ...], values)
    for value in items:
        _json(value, "value")
    return items


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _type_name(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list | tuple):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return f"a {type(value).__name__}"


def _shown(value: object) -> str:
    text = repr(value) if not isinstance(value, str) else value
    return text if len(text) <= 80 else text[:77] + "..."


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
        _values(self.values, "arg_in")

    def to_json(self) -> JsonObject:
        return {"type": "arg_in", "arg": self.arg, "values": list(self.values)}


@dataclass(frozen=True, slots=True)
class ArgMatches:
    arg: str
    glob: str

    def __post_init__(self) -> None:
        _name(self.arg)
        if not isinstance(self.glob, str) or not self.glob or "\x00" in self.glob:  # pyright: ignore[reportUnnecessaryIsInstance]
            raise BadInputError(
                f"arg_matches glob {self.glob!r} is invalid: it compares strings",
                hint='a non-empty string glob, e.g. arg_matches("to", "*@example.com")',
            )

    def to_json(self) -> JsonObject:
        return {"type": "arg_matches", "arg": self.arg, "glob": self.glob}


@dataclass(frozen=True, slots=True)
class EachIn:
    """The argument is a list whose every element is one of ``values``."""

    arg: str
    values: tuple[JsonValue, ...]

    def __post_init__(self) -> None:
        _name(self.arg)
        _values(self.values, "each_in")

    def to_json(self) -> JsonObject:
        return {"type": "each_in", "arg": self.arg, "values": list(self.values)}


@dataclass(frozen=True, slots=True)
class Range:
    """The argument is a number within ``[lo, hi]`` (inclusive; None = unbounded)."""

    arg: str
    lo: int | float | None = None
    hi: int | float | None = None

    def __post_init__(self) -> None:
        _name(self.arg)
        if self.lo is None and self.hi is None:
            raise BadInputError(
                f"range caveat on {self.arg!r} has no bound", hint="give lo, hi or both"
            )
        for which, bound in (("lo", self.lo), ("hi", self.hi)):
            if bound is None:
                continue
            if not _is_number(bound):
                raise BadInputError(
                    f"range caveat on {self.arg!r}: {which} {bound!r} is {_type_name(bound)}; "
                    "range compares numbers only",
                    hint=f"write {which} as a number (e.g. {which} = 100), or use arg_in / "
                    "arg_matches for strings",
                )
            if isinstance(bound, float) and not math.isfinite(bound):
                raise BadInputError(
                    f"range caveat on {self.arg!r}: {which} {bound!r} is not finite",
                    hint="omit the bound instead of using infinity",
                )
        if self.lo is not None and self.hi is not None and self.lo > self.hi:
            raise BadInputError(
                f"range caveat on {self.arg!r}: lo {self.lo!r} is above hi {self.hi!r}",
                hint="swap the bounds",
            )

    def to_json(self) -> JsonObject:
        data: JsonObject = {"type": "range", "arg": self.arg}
        if self.lo is not None:
            data["lo"] = self.lo
        if self.hi is not None:
            data["hi"] = self.hi
        return data


@dataclass(frozen=True, slots=True)
class Absent:
    """The action does not carry this argument."""

    arg: str

    def __post_init__(self) -> None:
        _name(self.arg)

    def to_json(self) -> JsonObject:
        return {"type": "absent", "arg": self.arg}


@dataclass(frozen=True, slots=True)
class OnlyArgs:
    """No top-level argument outside ``args`` (sorted, unique: one byte form)."""

    args: tuple[str, ...]

    def __post_init__(self) -> None:
        if not isinstance(self.args, tuple):  # pyright: ignore[reportUnnecessaryIsInstance]
            raise BadInputError("only_args needs a tuple of argument names")
        for arg in self.args:
            if _name(arg).startswith("/"):
                raise BadInputError(
                    f"only_args names top-level arguments; {arg!r} is a pointer",
                    hint='list the top-level names, e.g. only_args = ["to", "subject"]',
                )
        if list(self.args) != sorted(set(self.args)):
            object.__setattr__(self, "args", tuple(sorted(set(self.args))))

    def to_json(self) -> JsonObject:
        return {"type": "only_args", "args": list[JsonValue](self.args)}


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


Caveat: TypeAlias = (
    ArgEquals | ArgIn | ArgMatches | EachIn | Range | Absent | OnlyArgs | MaxCalls | NotAfter
)
_ArgCaveat: TypeAlias = ArgEquals | ArgIn | ArgMatches | EachIn | Range | Absent


def _exact_keys(data: Mapping[str, Any], keys: set[str], optional: set[str] = set()) -> None:  # noqa: B006
    present = set(data)
    if not keys <= present or not present <= keys | optional:
        raise BadInputError(
            f"caveat {dict(data)!r} has fields {sorted(data)}, expected {sorted(keys)}"
            + (f" and optionally {sorted(optional)}" if optional else ""),
            hint=_HINT,
        )


def _list_field(obj: Mapping[str, Any], name: str, kind: str) -> list[Any]:
    value = obj[name]
    if not isinstance(value, list):
        raise BadInputError(f"{kind} caveat {name!r} must be a list", hint=_HINT)
    return cast(list[Any], value)


def caveat_from_json(data: object) -> Caveat:
    """Parse the wire form strictly (exact field set, exact types) or raise BadInputError."""
    if not isinstance(data, dict):
        raise BadInputError(f"caveat {data!r} is not an object", hint=_HINT)
    obj = cast(dict[str, Any], data)
    kind = obj.get("type")
    if kind == "arg_equals":
        _exact_keys(obj, {"type", "arg", "value"})
        return ArgEquals(obj["arg"], obj["value"])
    if kind in ("arg_in", "each_in"):
        _exact_keys(obj, {"type", "arg", "values"})
        values = tuple(cast(list[JsonValue], _list_field(obj, "values", kind)))
        return ArgIn(obj["arg"], values) if kind == "arg_in" else EachIn(obj["arg"], values)
    if kind == "arg_matches":
        _exact_keys(obj, {"type", "arg", "glob"})
        return ArgMatches(obj["arg"], obj["glob"])
    if kind == "range":
        _exact_keys(obj, {"type", "arg"}, {"lo", "hi"})
        return Range(obj["arg"], obj.get("lo"), obj.get("hi"))
    if kind == "absent":
        _exact_keys(obj, {"type", "arg"})
        return Absent(obj["arg"])
    if kind == "only_args":
        _exact_keys(obj, {"type", "args"})
        names = _list_field(obj, "args", kind)
        if not all(isinstance(n, str) for n in names):
            raise BadInputError("only_args caveat 'args' must be a list of names", hint=_HINT)
        return OnlyArgs(tuple(cast(list[str], names)))
    if kind == "max_calls":
        _exact_keys(obj, {"type", "limit"})
        return MaxCalls(obj["limit"])
    if kind == "not_after":
        _exact_keys(obj, {"type", "timestamp"})
        return NotAfter(obj["timestamp"])
    raise BadInputError(f"unknown caveat type {kind!r}", hint=_HINT)


@dataclass(frozen=True, slots=True)
class CaveatRefusal:
    """Why one caveat refused an action: which caveat, which argument, which value."""

    caveat: Caveat
    arg: str
    value: JsonValue | None
    reason: str

    @property
    def kind(self) -> str:
        kind = self.caveat.to_json()["type"]
        assert isinstance(kind, str)
        return kind


def _refuse(caveat: Caveat, arg: str, value: object, reason: str) -> CaveatRefusal:
    shown = cast(JsonValue, value) if not is_missing(value) else None
    return CaveatRefusal(caveat, arg, shown, reason)


def caveat_refusal(caveat: Caveat, arguments: JsonObject, now: int) -> CaveatRefusal | None:
    """Why ``caveat`` rejects an action with these arguments at ``now``, or None if it holds.

    ``max_calls`` always holds here: the store checks and counts it atomically.
    """
    if isinstance(caveat, MaxCalls):
        return None
    if isinstance(caveat, NotAfter):
        if now > caveat.timestamp:
            return _refuse(
                caveat, "", _MISSING, f"not_after {caveat.timestamp} has passed (now {now})"
            )
        return None
    if isinstance(caveat, OnlyArgs):
        extra = sorted(set(arguments) - set(caveat.args))
        if extra:
            allowed = ", ".join(f"`{a}`" for a in caveat.args) or "none"
            return _refuse(
                caveat,
                extra[0],
                arguments[extra[0]],
                f"`{extra[0]}` is not one of the allowed arguments ({allowed})",
            )
        return None
    return _arg_refusal(caveat, arguments)


def _arg_refusal(caveat: _ArgCaveat, arguments: JsonObject) -> CaveatRefusal | None:
    arg = caveat.arg
    actual = resolve_arg(arguments, arg)
    if isinstance(caveat, Absent):
        if is_missing(actual):
            return None
        return _refuse(caveat, arg, actual, f"`{arg}` must not be given (it is `{_shown(actual)}`)")
    if is_missing(actual):
        return _refuse(caveat, arg, actual, f"the action has no such argument `{arg}`")
    if isinstance(caveat, ArgMatches):
        if not isinstance(actual, str):
            return _refuse(caveat, arg, actual, f"`{arg}` is {_type_name(actual)}, not a string")
        if not fnmatchcase(actual, caveat.glob):
            return _refuse(
                caveat,
                arg,
                actual,
                f"`{arg}` is `{_shown(actual)}`, outside `{caveat.glob}`",
            )
        return None
    if isinstance(caveat, Range):
        return _range_refusal(caveat, actual)
    try:
        actual_key = json_value_key(actual)
    except BadInputError:  # NaN, Infinity or not JSON: not comparable, so the caveat fails
        return _refuse(caveat, arg, actual, f"`{arg}` is not a comparable JSON value")
    if isinstance(caveat, ArgEquals):
        if actual_key != json_value_key(caveat.value):
            return _refuse(
                caveat,
                arg,
                actual,
                f"`{arg}` is not `{_shown(caveat.value)}` (it is `{_shown(actual)}`)",
            )
        return None
    allowed = {json_value_key(v) for v in caveat.values}
    count = len(caveat.values)
    if isinstance(caveat, ArgIn):
        if actual_key not in allowed:
            return _refuse(
                caveat,
                arg,
                actual,
                f"`{arg}` is `{_shown(actual)}`, outside the {count} allowed",
            )
        return None
    if not isinstance(actual, list):
        return _refuse(caveat, arg, actual, f"`{arg}` is {_type_name(actual)}, not a list")
    elements = cast(list[object], actual)
    for element in elements:
        if json_value_key(element) not in allowed:
            return _refuse(
                caveat,
                arg,
                elements,
                f"`{arg}` contains `{_shown(element)}`, outside the {count} allowed",
            )
    return None


def _range_refusal(caveat: Range, actual: object) -> CaveatRefusal | None:
    arg = caveat.arg
    if not _is_number(actual):
        return _refuse(caveat, arg, actual, f"`{arg}` is {_type_name(actual)}, not a number")
    number = cast(int | float, actual)
    if isinstance(number, float) and not math.isfinite(number):
        return _refuse(caveat, arg, actual, f"`{arg}` is not a finite number")
    # Python compares int and float exactly (no rounding of big integers).
    if (caveat.lo is not None and number < caveat.lo) or (
        caveat.hi is not None and number > caveat.hi
    ):
        lo = "-inf" if caveat.lo is None else repr(caveat.lo)
        hi = "+inf" if caveat.hi is None else repr(caveat.hi)
        return _refuse(caveat, arg, actual, f"`{arg}` is {number!r}, outside [{lo}, {hi}]")
    return None


def caveat_problem(caveat: Caveat, arguments: JsonObject, now: int) -> str | None:
    """Why ``caveat`` rejects an action with these arguments at ``now``, or None if it holds."""
    refusal = caveat_refusal(caveat, arguments, now)
    return None if refusal is None else f"caveat {refusal.kind}: {refusal.reason}"


def caveat_key(caveat: Caveat) -> Hashable:
    """Equal for two caveats that restrict the same way (values compared by JSON value)."""
    if isinstance(caveat, ArgEquals):
        return ("arg_equals", caveat.arg, json_value_key(caveat.value))
    if isinstance(caveat, ArgIn | EachIn):
        kind = "arg_in" if isinstance(caveat, ArgIn) else "each_in"
        return (kind, caveat.arg, tuple(json_value_key(v) for v in caveat.values))
    if isinstance(caveat, ArgMatches):
        return ("arg_matches", caveat.arg, caveat.glob)
    if isinstance(caveat, Range):
        return ("range", caveat.arg, caveat.lo, caveat.hi)
    if isinstance(caveat, Absent):
        return ("absent", caveat.arg)
    if isinstance(caveat, OnlyArgs):
        return ("only_args", caveat.args)
    if isinstance(caveat, MaxCalls):
        return ("max_calls", caveat.limit)
    return ("not_after", caveat.timestamp)
