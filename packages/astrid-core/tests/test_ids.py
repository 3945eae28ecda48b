from __future__ import annotations

import uuid

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError

from astrid_core import (
    AuditEntryId,
    BadInputError,
    CapsuleId,
    RequestId,
    SessionId,
    TokenId,
    TypedId,
)

KINDS: list[type[TypedId]] = [SessionId, TokenId, AuditEntryId, RequestId, CapsuleId]
CANON = "3f2b8c1e-5d6a-4e7f-9a0b-1c2d3e4f5a6b"


@pytest.mark.parametrize("kind", KINDS)
def test_new_parse_str_repr(kind: type[TypedId]) -> None:
    ident = kind.new()
    assert type(ident) is kind
    assert kind.parse(str(ident)) == ident
    assert str(kind.parse(CANON)) == CANON
    assert repr(kind.parse(CANON)) == f"{kind.__name__}('{CANON}')"
    assert kind.parse(uuid.UUID(CANON)) == uuid.UUID(CANON)


@pytest.mark.parametrize(
    "text",
    [
        CANON.upper(),
        "{" + CANON + "}",
        "urn:uuid:" + CANON,
        CANON.replace("-", ""),
        " " + CANON,
    ],
)
def test_non_canonical_spellings_rejected(text: str) -> None:
    with pytest.raises(BadInputError, match=r"canonical|not a UUID"):
        SessionId.parse(text)


@pytest.mark.parametrize("text", ["", "nope", CANON[:-1], CANON + "0", "g" * 32])
def test_garbage_rejected(text: str) -> None:
    with pytest.raises(BadInputError, match="SessionId") as info:
        SessionId.parse(text)
    assert info.value.hint


def test_kinds_never_mix() -> None:
    token = TokenId.new()
    with pytest.raises(BadInputError, match="TokenId"):
        SessionId.parse(token)

    class Model(BaseModel):
        session: SessionId

    with pytest.raises(ValidationError, match="different kinds"):
        Model(session=token)  # type: ignore[arg-type]


def test_pydantic_round_trip() -> None:
    class Model(BaseModel):
        session: SessionId
        token: TokenId | None = None

    m = Model(session=SessionId.parse(CANON))
    dumped = m.model_dump_json()
    assert dumped == f'{{"session":"{CANON}","token":null}}'
    back = Model.model_validate_json(dumped)
    assert back == m
    assert type(back.session) is SessionId
    assert Model.model_validate({"session": CANON}).session == SessionId.parse(CANON)
    with pytest.raises(ValidationError, match="canonical"):
        Model.model_validate({"session": CANON.upper()})
    with pytest.raises(ValidationError, match="expected a UUID string"):
        Model.model_validate({"session": 42})


@given(st.uuids())
def test_property_canonical_round_trip(u: uuid.UUID) -> None:
    assert str(RequestId.parse(str(u))) == str(u)
