"""Canonical JSON format v2 is RFC 8785 (JCS): checked against the RFC's own examples and
against an outside implementation (``rfc8785``, the one sigstore-python uses); format v1 is
unchanged byte for byte."""

from __future__ import annotations

import json
import math
import struct
from pathlib import Path
from typing import Any

import pytest
import rfc8785
from hypothesis import given, settings
from hypothesis import strategies as st

from astrid_core import BadInputError
from astrid_crypto import CANONICAL_V2, canonical_json, canonical_loads, canonical_text

VECTORS = json.loads((Path(__file__).parent / "vectors" / "canonical_v2.json").read_text())
SAFE = 2**53 - 1


def as_doubles(value: Any) -> Any:
    """The value as a JavaScript parser holds it (every number a double): how ``rfc8785``
    must be given an integer beyond 2^53 - 1 that astrid accepts because it is a double."""
    if isinstance(value, dict):
        return {k: as_doubles(v) for k, v in value.items()}  # pyright: ignore[reportUnknownVariableType]
    if isinstance(value, list):
        return [as_doubles(v) for v in value]  # pyright: ignore[reportUnknownVariableType]
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > SAFE:
        return float(value)
    return value


@pytest.mark.parametrize("case", VECTORS["numbers"], ids=lambda c: c["ieee_hex"])
def test_rfc8785_appendix_b_numbers(case: dict[str, str]) -> None:
    number = struct.unpack(">d", bytes.fromhex(case["ieee_hex"]))[0]
    assert canonical_json(number, CANONICAL_V2).decode() == case["canonical"]
    assert rfc8785.dumps(number).decode() == case["canonical"]


@pytest.mark.parametrize("case", VECTORS["values"], ids=lambda c: c["source"])
def test_v2_vectors_match_the_rfc_and_rfc8785(case: dict[str, str]) -> None:
    value = json.loads(case["json"])
    assert canonical_json(value, CANONICAL_V2).decode() == case["canonical"]
    assert canonical_text(value, CANONICAL_V2) == case["canonical"]
    assert rfc8785.dumps(as_doubles(value)).decode() == case["canonical"]
    # Read back and written again: the same bytes (what verifying a stored entry does).
    assert (
        canonical_json(canonical_loads(case["canonical"].encode()), 2).decode()
        == (case["canonical"])
    )


@pytest.mark.parametrize("case", VECTORS["refused"], ids=lambda c: c["json"])
def test_v2_refuses_what_has_no_single_signed_form(case: dict[str, str]) -> None:
    value = json.loads(case["json"])  # Python's json accepts NaN/Infinity: a tool's may too
    with pytest.raises(BadInputError, match=case["error"]) as caught:
        canonical_json(value, CANONICAL_V2)
    if case["error"] == "beyond":
        assert caught.value.hint is not None
        assert "as strings" in caught.value.hint


def test_v2_refuses_huge_integers_without_printing_them() -> None:
    with pytest.raises(BadInputError, match="of 33220 bits"):
        canonical_json({"a": 10**10000}, 2)
    with pytest.raises(BadInputError, match="beyond"):
        canonical_json(-(10**300), 2)  # float() would overflow
    with pytest.raises(BadInputError, match="string keys"):
        canonical_json({1.5: 1, "a": 1.5}, 2)
    with pytest.raises(BadInputError, match="bytes"):
        canonical_json([1.5, b"raw"], 2)


def test_numbers_sign_by_value() -> None:
    assert canonical_json({"a": 98.70}, 2) == canonical_json({"a": 98.7}, 2) == b'{"a":98.7}'
    assert canonical_json([1.0, -0.0, 0], 2) == b"[1,0,0]"
    assert canonical_json([True, 1], 2) == b"[true,1]"  # a boolean is not a number
    assert canonical_json(2**53, 2) == b"9007199254740992"  # 2.0**53 read back
    assert canonical_json(10**20, 2) == b"100000000000000000000"


def test_v1_is_unchanged_and_unknown_versions_are_refused() -> None:
    assert canonical_json({"big": 2**63}) == b'{"big":9223372036854775808}'
    assert canonical_json({"\uffff": 1, "\U0001f600": 2}) == (
        '{"\uffff":1,"\U0001f600":2}'.encode()  # v1 sorts by code point, v2 by UTF-16
    )
    assert canonical_json({"\uffff": 1, "\U0001f600": 2}, 2) == (
        '{"\U0001f600":2,"\uffff":1}'.encode()
    )
    with pytest.raises(BadInputError, match="float"):
        canonical_json({"a": 1.5}, 1)
    for version in (0, 3, True):
        with pytest.raises(BadInputError, match="format version"):
            canonical_json({}, version)


keys = st.text(st.sampled_from('az\u00e9\u2028\ue000\uffff\U0001f600\U00010000"\\\n'), max_size=4)
leaves = (
    st.none()
    | st.booleans()
    | st.integers(-SAFE, SAFE)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12)
)
values = st.recursive(
    leaves,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.tuples(inner, inner)
        | st.dictionaries(keys | st.text(max_size=6), inner, max_size=5)
    ),
    max_leaves=20,
)


@settings(max_examples=400, deadline=None)
@given(values)
def test_v2_is_rfc8785_byte_for_byte(value: Any) -> None:
    ours = canonical_json(value, CANONICAL_V2)
    assert ours == rfc8785.dumps(value)
    assert canonical_text(value, CANONICAL_V2).encode() == ours
    # Stable under a read back: the stored text re-encodes to itself.
    assert canonical_json(canonical_loads(ours), CANONICAL_V2) == ours


@settings(max_examples=300, deadline=None)
@given(st.floats(allow_nan=False, allow_infinity=False) | st.integers(-(2**80), 2**80))
def test_every_accepted_number_reads_back_as_itself(number: float) -> None:
    try:
        text = canonical_json(number, CANONICAL_V2)
    except BadInputError:
        # Only integers whose digits are not a double's JCS text are refused.
        assert isinstance(number, int)
        assert abs(number) > SAFE
        assert rfc8785.dumps(float(number)).decode() != str(number)
        return
    back = json.loads(text)
    assert back == number or (isinstance(back, int) and float(back) == number)
    assert canonical_json(back, CANONICAL_V2) == text
    if isinstance(number, float) and not math.isnan(number):
        assert rfc8785.dumps(number) == text


def _nested(depth: int, width: int, leaf: Any) -> Any:
    value: Any = [leaf]
    for _ in range(depth):
        value = [*range(width), value]  # the float is last and deepest: the worst case
    return value


def test_a_deep_wide_value_with_a_float_costs_linear_time() -> None:
    """Four times the depth (and so the size) costs about four times as much work, not sixteen:
    a check per subtree made this O(n * depth). Work is counted, not timed (a loaded host made a
    timed ratio flaky): every Python and C-level call made while encoding, by ``sys.setprofile``
    — a deterministic count in which a per-subtree re-check shows up as calls."""
    import sys

    def calls(value: Any) -> int:
        count = 0

        def profile(frame: Any, event: str, arg: Any) -> None:
            nonlocal count
            if event in ("call", "c_call"):
                count += 1

        sys.setprofile(profile)
        try:
            text = canonical_json(value, CANONICAL_V2)
        finally:
            sys.setprofile(None)
        assert text == rfc8785.dumps(value)
        return count

    small, large = _nested(50, 1000, 1.5), _nested(200, 1000, 1.5)
    ratio = calls(large) / calls(small)
    assert ratio < 6.0, f"4x the size made {ratio:.1f}x the calls: not linear"


def test_nesting_too_deep_is_a_bad_input_not_a_crash() -> None:
    for leaf in (1.5, 1):  # the slow and the fast path
        with pytest.raises(BadInputError, match="nested"):
            canonical_json(_nested(5000, 0, leaf), CANONICAL_V2)
