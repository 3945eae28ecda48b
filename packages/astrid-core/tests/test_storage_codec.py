"""The storage codec's fast path must accept and refuse exactly what the detailed check does."""

from __future__ import annotations

import enum
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from astrid_core import BadInputError
from astrid_core.storage._codec import MAX_DEPTH, check_value, decode_value, encode_value


class Colour(enum.StrEnum):
    RED = "red"


scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(),  # includes NaN and infinities, which must be refused
    st.text(),
    st.text(alphabet=st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF), min_size=1),
    st.just(Colour.RED),
    st.just(b"bytes"),
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.tuples(inner),
        st.dictionaries(st.one_of(st.text(), st.integers()), inner, max_size=4),
    ),
    max_leaves=12,
)


def _outcome(func: object, value: object) -> str:
    try:
        func(value)  # type: ignore[operator]
    except BadInputError as exc:
        return "refused: " + exc.message
    return "accepted"


@given(values)
def test_encode_refuses_exactly_what_check_refuses(value: object) -> None:
    checked = _outcome(check_value, value)
    encoded = _outcome(encode_value, value)
    assert encoded == checked  # same verdict and the same message naming the place


@given(values)
def test_accepted_values_round_trip(value: object) -> None:
    if _outcome(check_value, value) != "accepted":
        return
    assert decode_value(encode_value(value)) == json_view(value)  # type: ignore[arg-type]


def json_view(value: object) -> object:
    """What JSON can say about ``value`` (a StrEnum is its string)."""
    if isinstance(value, str):
        return str(value)
    if isinstance(value, float) and math.isfinite(value):
        return value
    if isinstance(value, list):
        return [json_view(v) for v in value]
    if isinstance(value, dict):
        return {k: json_view(v) for k, v in value.items()}
    return value


def test_depth_limit_is_the_same_on_both_paths() -> None:
    deep: object = 1
    for _ in range(MAX_DEPTH + 1):
        deep = [deep]
    with pytest.raises(BadInputError, match="nested deeper"):
        encode_value(deep)  # type: ignore[arg-type]
    ok: object = 1
    for _ in range(MAX_DEPTH):
        ok = [ok]
    assert decode_value(encode_value(ok)) == ok  # type: ignore[arg-type]


def test_lone_surrogate_message_names_the_place() -> None:
    with pytest.raises(BadInputError, match=r"\$\.note contains a lone surrogate"):
        encode_value({"note": "ok \ud800"})
