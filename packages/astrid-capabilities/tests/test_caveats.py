"""The caveats people need (absent, each_in, range, JSON pointers, only_args), checked against
a small reference evaluator written independently of the library, and their wire forms."""

from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from astrid_capabilities import (
    Absent,
    ArgEquals,
    ArgIn,
    ArgMatches,
    CapabilityStore,
    CapabilityToken,
    EachIn,
    MaxCalls,
    NotAfter,
    OnlyArgs,
    Range,
    ResourcePattern,
    caveat_from_json,
    caveat_refusal,
)
from astrid_capabilities._caveats import Caveat, caveat_key
from astrid_core import AuditEntryId, BadInputError, JsonObject, JsonValue, McpToolCall
from astrid_core.storage import MemoryStorage
from astrid_crypto import KeyPair

from .conftest import NOW

KEY = KeyPair(bytes(range(32)))
VECTORS = Path(__file__).parent / "vectors"

# ---------------------------------------------------------------- the reference evaluator

_MISSING = object()


def ref_norm(value: Any) -> Any:
    """A JSON value as plain comparable data: numbers as exact fractions, bools tagged."""
    if isinstance(value, bool):
        return ("bool", value)
    if isinstance(value, int | float):
        return ("num", Fraction(value))
    if isinstance(value, list):
        return ("list", tuple(ref_norm(v) for v in value))  # pyright: ignore[reportUnknownVariableType]
    if isinstance(value, dict):
        return ("obj", tuple(sorted((k, ref_norm(v)) for k, v in value.items())))  # pyright: ignore[reportUnknownVariableType, reportUnknownArgumentType]
    return ("other", value)


def ref_lookup(arguments: dict[str, Any], arg: str) -> Any:
    if not arg.startswith("/"):
        return arguments.get(arg, _MISSING)
    node: Any = arguments
    for part in arg.split("/")[1:]:
        part = part.replace("~1", "/").replace("~0", "~")
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and str(int(part)) == part:
            if int(part) >= len(node):  # pyright: ignore[reportUnknownArgumentType]
                return _MISSING
            node = node[int(part)]
        else:
            return _MISSING
    return node


def ref_holds(caveat: Caveat, arguments: dict[str, Any]) -> bool:
    if isinstance(caveat, OnlyArgs):
        return all(name in caveat.args for name in arguments)
    if isinstance(caveat, MaxCalls | NotAfter):
        return True
    value = ref_lookup(arguments, caveat.arg)
    if isinstance(caveat, Absent):
        return value is _MISSING
    if value is _MISSING:
        return False
    if isinstance(caveat, ArgEquals):
        return ref_norm(value) == ref_norm(caveat.value)
    if isinstance(caveat, ArgIn):
        return ref_norm(value) in [ref_norm(v) for v in caveat.values]
    if isinstance(caveat, EachIn):
        allowed = [ref_norm(v) for v in caveat.values]
        return isinstance(value, list) and all(ref_norm(v) in allowed for v in value)  # pyright: ignore[reportUnknownVariableType]
    if isinstance(caveat, Range):
        if isinstance(value, bool) or not isinstance(value, int | float):
            return False
        exact = Fraction(value)
        return (caveat.lo is None or exact >= Fraction(caveat.lo)) and (
            caveat.hi is None or exact <= Fraction(caveat.hi)
        )
    return isinstance(value, str) and _ref_glob(caveat.glob, value)


def _ref_glob(glob: str, text: str) -> bool:
    # Only '*' and literal characters are generated below, so a tiny matcher is enough.
    if not glob:
        return not text
    if glob[0] == "*":
        return any(_ref_glob(glob[1:], text[i:]) for i in range(len(text) + 1))
    return bool(text) and text[0] == glob[0] and _ref_glob(glob[1:], text[1:])


# ---------------------------------------------------------------- strategies

names = st.sampled_from(["to", "cc", "amount", "a~b", "x/y", "msg"])
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-5, 5),
    st.integers(2**53 - 2, 2**53 + 2),
    st.sampled_from([0.5, -0.0, 1.0, 2.5, 9007199254740992.0, 1e300]),
    st.sampled_from(["a", "b", "ab", "eve@evil.test", "1"]),
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(names, inner, max_size=3)),
    max_leaves=6,
)
arguments = st.dictionaries(names, values, max_size=4)


def _pointer(name: str) -> str:
    return "/" + name.replace("~", "~0").replace("/", "~1")


args = st.one_of(
    names,
    names.map(_pointer),
    st.tuples(names, names).map(lambda p: _pointer(p[0]) + _pointer(p[1])),
    st.tuples(names, st.integers(0, 3)).map(lambda p: f"{_pointer(p[0])}/{p[1]}"),
)
numbers = st.one_of(st.integers(-6, 6), st.sampled_from([0.5, -2.5, 2**53 + 1, 1e300]))


@st.composite
def ranges(draw: st.DrawFn) -> Range:
    lo = draw(st.none() | numbers)
    hi = draw(numbers if lo is None else st.none() | numbers.filter(lambda n: n >= lo))
    return Range(draw(args), lo, hi)


caveats: st.SearchStrategy[Caveat] = st.one_of(
    st.builds(ArgEquals, args, values),
    st.builds(ArgIn, args, st.lists(values, min_size=1, max_size=3).map(tuple)),
    st.builds(EachIn, args, st.lists(scalars, min_size=1, max_size=4).map(tuple)),
    st.builds(ArgMatches, args, st.sampled_from(["*", "a*", "*@evil.test", "ab", "*b*"])),
    ranges(),
    st.builds(Absent, args),
    st.builds(OnlyArgs, st.lists(names, max_size=3).map(tuple)),
)


@settings(max_examples=600, deadline=None)
@given(caveat=caveats, arguments=arguments)
def test_caveats_agree_with_the_reference_evaluator(
    caveat: Caveat, arguments: dict[str, Any]
) -> None:
    refusal = caveat_refusal(caveat, arguments, NOW)
    assert (refusal is None) == ref_holds(caveat, arguments), (caveat, arguments, refusal)


@settings(max_examples=300, deadline=None)
@given(caveat=caveats)
def test_every_caveat_round_trips_its_wire_form(caveat: Caveat) -> None:
    wire = json.loads(json.dumps(caveat.to_json()))
    again = caveat_from_json(wire)
    assert caveat_key(again) == caveat_key(caveat)
    assert json.dumps(again.to_json(), sort_keys=True) == json.dumps(wire, sort_keys=True)


# ---------------------------------------------------------------- the cases of issue 22


def test_absent_allows_a_call_without_the_argument_and_refuses_an_injected_one() -> None:
    caveat = Absent("participants")
    assert caveat_refusal(caveat, {"title": "standup"}, NOW) is None
    refusal = caveat_refusal(caveat, {"title": "x", "participants": ["eve@evil.test"]}, NOW)
    assert refusal is not None
    assert refusal.kind == "absent"
    assert refusal.arg == "participants"
    assert "eve@evil.test" in refusal.reason


def test_each_in_checks_every_element_in_any_order() -> None:
    caveat = EachIn("recipients", ("alice@example.com", "bob@example.com"))
    lists: list[list[JsonValue]] = [
        [],
        ["bob@example.com"],
        ["bob@example.com", "alice@example.com"],
    ]
    for allowed in lists:
        assert caveat_refusal(caveat, {"recipients": allowed}, NOW) is None
    refusal = caveat_refusal(caveat, {"recipients": ["alice@example.com", "eve@evil.test"]}, NOW)
    assert refusal is not None
    assert refusal.reason == "`recipients` contains `eve@evil.test`, outside the 2 allowed"
    assert refusal.value == ["alice@example.com", "eve@evil.test"]
    not_list = caveat_refusal(caveat, {"recipients": "alice@example.com"}, NOW)
    assert not_list is not None
    assert "not a list" in not_list.reason


def test_range_compares_ints_and_floats_by_value() -> None:
    caveat = Range("amount", 0, 100.5)
    assert caveat_refusal(caveat, {"amount": 100}, NOW) is None
    assert caveat_refusal(caveat, {"amount": 100.5}, NOW) is None
    assert caveat_refusal(caveat, {"amount": 0.0}, NOW) is None
    assert caveat_refusal(caveat, {"amount": 100.51}, NOW) is not None
    assert caveat_refusal(caveat, {"amount": -1}, NOW) is not None
    assert caveat_refusal(caveat, {"amount": True}, NOW) is not None  # a bool is no number
    assert caveat_refusal(caveat, {"amount": "50"}, NOW) is not None  # nor is a string
    big = Range("n", hi=2**53)
    assert caveat_refusal(big, {"n": 2**53}, NOW) is None
    assert caveat_refusal(big, {"n": 2**53 + 1}, NOW) is not None  # exact, never rounded


def test_a_json_pointer_reaches_nested_arguments() -> None:
    arguments: JsonObject = {"message": {"to": ["bob@example.com"], "a/b": 1, "m~n": 2}}
    assert caveat_refusal(EachIn("/message/to", ("bob@example.com",)), arguments, NOW) is None
    assert caveat_refusal(ArgEquals("/message/to/0", "bob@example.com"), arguments, NOW) is None
    assert caveat_refusal(ArgEquals("/message/a~1b", 1), arguments, NOW) is None
    assert caveat_refusal(ArgEquals("/message/m~0n", 2), arguments, NOW) is None
    assert caveat_refusal(Absent("/message/cc"), arguments, NOW) is None
    assert caveat_refusal(Absent("/message/to/1"), arguments, NOW) is None
    assert caveat_refusal(ArgEquals("/message/to/00", "bob@example.com"), arguments, NOW)
    with pytest.raises(BadInputError, match="JSON pointer") as caught:
        ArgEquals("/message/~2", 1)
    assert "~1" in (caught.value.hint or "")


def test_only_args_refuses_an_argument_the_task_did_not_use() -> None:
    caveat = OnlyArgs(("to", "subject", "body"))
    assert caveat.args == ("body", "subject", "to")
    assert caveat_refusal(caveat, {"to": "a", "body": "b"}, NOW) is None
    refusal = caveat_refusal(caveat, {"to": "a", "bcc": "eve@evil.test"}, NOW)
    assert refusal is not None
    assert refusal.arg == "bcc"
    assert refusal.value == "eve@evil.test"


def test_a_caveat_naming_a_type_it_cannot_compare_is_a_clear_error() -> None:
    with pytest.raises(BadInputError, match="range compares numbers") as caught:
        Range("amount", "10", None)  # pyright: ignore[reportArgumentType]
    assert "lo = 100" in (caught.value.hint or "")
    with pytest.raises(BadInputError, match="range compares numbers"):
        Range("amount", None, True)
    with pytest.raises(BadInputError, match="lo 5 is above hi 1"):
        Range("amount", 5, 1)
    with pytest.raises(BadInputError, match="no bound"):
        Range("amount")
    with pytest.raises(BadInputError, match="compares strings"):
        ArgMatches("to", 5)  # pyright: ignore[reportArgumentType]
    with pytest.raises(BadInputError, match="not a JSON value"):
        EachIn("to", (float("nan"),))
    with pytest.raises(BadInputError, match="non-empty"):
        EachIn("to", ())
    with pytest.raises(BadInputError, match="unknown caveat type"):
        caveat_from_json({"type": "regex", "arg": "to", "pattern": ".*"})
    with pytest.raises(BadInputError, match="fields"):
        caveat_from_json({"type": "range", "arg": "n", "lo": 1, "max": 2})


@pytest.mark.anyio
async def test_tokens_with_the_new_caveats_sign_verify_and_authorize() -> None:
    token = CapabilityToken.issue(
        KEY,
        ResourcePattern.literal("mcp://mail/send"),
        ["invoke"],
        scope="persistent",
        approval_audit_id=AuditEntryId.new(),
        caveats=[
            EachIn("to", ("bob@example.com",)),
            Range("/options/priority", 1, 3.5),
            Absent("bcc"),
            OnlyArgs(("to", "options", "body")),
        ],
        now=NOW,
    )
    again = CapabilityToken.from_json(json.loads(json.dumps(token.to_json())))
    again.verify([KEY.public_key])
    assert again.signed_bytes == token.signed_bytes
    store = CapabilityStore(MemoryStorage(), [KEY.public_key], clock=lambda: NOW)
    await store.add(again)
    ok = McpToolCall(
        server="mail", tool="send", args={"to": ["bob@example.com"], "options": {"priority": 2}}
    )
    assert await store.authorize(ok) is not None
    for bad in (
        {"to": ["bob@example.com", "eve@evil.test"], "options": {"priority": 2}},
        {"to": ["bob@example.com"], "options": {"priority": 9}},
        {"to": ["bob@example.com"], "options": {"priority": 2}, "bcc": "eve@evil.test"},
        {"to": ["bob@example.com"], "options": {"priority": 2}, "attach": "/etc/passwd"},
    ):
        assert await store.authorize(McpToolCall(server="mail", tool="send", args=bad)) is None


def test_tokens_written_before_keep_their_bytes_and_verify() -> None:
    for name in ("token_v1.json", "token_v2.json"):
        data = json.loads((VECTORS / name).read_text())["token"]
        token = CapabilityToken.from_json(data)
        token.verify([token.issuer])
        assert token.to_json() == data
