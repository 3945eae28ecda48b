from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from astrid_capabilities import (
    ArgEquals,
    ArgIn,
    ArgMatches,
    CapabilityToken,
    MaxCalls,
    NotAfter,
    Permission,
    ResourcePattern,
    TokenScope,
    caveat_from_json,
)
from astrid_capabilities._caveats import caveat_problem
from astrid_core import AuditEntryId, BadInputError, SessionId, TokenId, VerificationError
from astrid_crypto import KeyPair, canonical_json

VECTORS = Path(__file__).parent / "vectors"
AUDIT = AuditEntryId.parse("00000000-0000-4000-8000-000000000001")


def make(key: KeyPair, **overrides: Any) -> CapabilityToken:
    fields: dict[str, Any] = {
        "resource": ResourcePattern("mcp://filesystem/*"),
        "permissions": [Permission.INVOKE],
        "scope": TokenScope.PERSISTENT,
        "approval_audit_id": AUDIT,
        "now": 1_800_000_000,
    }
    fields.update(overrides)
    resource = fields.pop("resource")
    permissions = fields.pop("permissions")
    return CapabilityToken.issue(key, resource, permissions, **fields)


def test_vector_v1_is_stable(key: KeyPair) -> None:
    vector = json.loads((VECTORS / "token_v1.json").read_text())
    token = CapabilityToken.from_json(vector["token"])
    assert token.signed_bytes.decode() == vector["signed_bytes"]
    token.verify([KeyPair(bytes(range(32))).public_key])
    assert token.to_json() == vector["token"]


def test_round_trip_and_verify(key: KeyPair) -> None:
    token = make(
        key,
        ttl_seconds=60,
        caveats=[ArgEquals("to", "a@b.c"), ArgIn("n", (1, 2)), MaxCalls(3), NotAfter(9)],
        single_use=True,
        scope="session",
        session_id=SessionId.new(),
    )
    again = CapabilityToken.from_json(json.loads(json.dumps(token.to_json())))
    assert again == token
    again.verify([key.public_key])
    assert b"." not in canonical_json(token.to_json()["issued_at"])  # ints, never floats


def test_forged_signature_rejected(key: KeyPair) -> None:
    data = make(key).to_json()
    data["signature"] = "A" * 86 + "=="
    with pytest.raises(VerificationError, match="signature does not verify"):
        CapabilityToken.from_json(data).verify([key.public_key])


def test_garbage_signature_rejected(key: KeyPair) -> None:
    data = make(key).to_json()
    data["signature"] = "not base64!"
    with pytest.raises(VerificationError, match="not valid base64"):
        CapabilityToken.from_json(data).verify([key.public_key])


def test_signed_by_untrusted_key_rejected(key: KeyPair) -> None:
    attacker = KeyPair.generate()
    token = make(attacker)  # valid signature, embedded issuer = attacker
    token.verify([attacker.public_key])
    with pytest.raises(VerificationError, match="not a trusted issuer"):
        token.verify([key.public_key])


def test_issuer_swapped_to_trusted_key_rejected(key: KeyPair) -> None:
    attacker = KeyPair.generate()
    data = make(attacker).to_json()
    data["issuer"] = key.public_key.b64  # claim the trusted issuer, keep attacker's signature
    with pytest.raises(VerificationError, match="signature does not verify"):
        CapabilityToken.from_json(data).verify([key.public_key])


EDITS: list[tuple[str, Any]] = [
    ("id", "11111111-1111-4111-8111-111111111111"),
    ("resource", "mcp://**"),
    ("permissions", ["execute", "invoke"]),
    ("issued_at", 1_700_000_000),
    ("expires_at", 1_900_000_000),
    ("scope", "session"),
    ("approval_audit_id", "22222222-2222-4222-8222-222222222222"),
    ("single_use", False),
    ("caveats", []),
    ("parent_id", "33333333-3333-4333-8333-333333333333"),
    ("session_id", "44444444-4444-4444-8444-444444444444"),
]


@pytest.mark.parametrize(("field", "value"), EDITS, ids=[e[0] for e in EDITS])
def test_every_field_is_covered_by_the_signature(key: KeyPair, field: str, value: Any) -> None:
    data = make(key, ttl_seconds=100, single_use=True, caveats=[MaxCalls(2)]).to_json()
    data[field] = value
    if field == "scope":
        data["session_id"] = str(SessionId.new())
    if field == "session_id":
        data["scope"] = "session"
    edited = CapabilityToken.from_json(data)
    with pytest.raises(VerificationError, match="forged or edited"):
        edited.verify([key.public_key])


def test_removing_expiry_breaks_signature(key: KeyPair) -> None:
    data = make(key, ttl_seconds=100).to_json()
    del data["expires_at"]
    with pytest.raises(VerificationError):
        CapabilityToken.from_json(data).verify([key.public_key])


@pytest.mark.parametrize(
    ("mutate", "problem"),
    [
        (lambda d: d.update(extra=1), "unknown ['extra']"),
        (lambda d: d.pop("scope"), "missing ['scope']"),
        (lambda d: d.update(issued_at=1.5), "'issued_at' must be an integer"),
        (lambda d: d.update(issued_at=True), "'issued_at' must be an integer"),
        (lambda d: d.update(single_use="true"), "single_use"),
        (lambda d: d.update(permissions=["read", "invoke"]), "canonical form"),
        (lambda d: d.update(permissions=["invoke", "invoke"]), "canonical form"),
        (lambda d: d.update(permissions=["root"]), "unknown permission"),
        (lambda d: d.update(permissions=[]), "at least one permission"),
        (lambda d: d.update(expires_at=None), "must be an integer"),
        (lambda d: d.update(v=3), "unsupported version"),
        (lambda d: d.update(v=0), "unsupported version"),
        (lambda d: d.update(scope="forever"), "session or persistent"),
        (lambda d: d.update(scope="session"), "needs a session_id"),
        (lambda d: d.update(id="{" + d["id"] + "}"), "canonical UUID"),
        (lambda d: d.update(resource="file:///a/../b"), "'..' segment"),
        (lambda d: d.update(caveats=[{"type": "sudo"}]), "unknown caveat type"),
        (lambda d: d.update(caveats=[{"type": "max_calls", "limit": 0}]), "positive integer"),
    ],
)
def test_malformed_tokens_rejected(key: KeyPair, mutate: Any, problem: str) -> None:
    data = make(key).to_json()
    mutate(data)
    with pytest.raises(BadInputError) as info:
        CapabilityToken.from_json(data)
    assert problem in str(info.value)


def test_issue_refuses_plain_string_resource(key: KeyPair) -> None:
    with pytest.raises(BadInputError, match="must be a ResourcePattern") as info:
        make(key, resource="file:///tmp/*")
    assert "literal" in info.value.hint


def test_issue_validates_ttl_and_scope(key: KeyPair) -> None:
    with pytest.raises(BadInputError, match="ttl_seconds"):
        make(key, ttl_seconds=0)
    with pytest.raises(BadInputError, match="must be 'session' or 'persistent'"):
        make(key, scope="global")
    with pytest.raises(BadInputError, match="must not carry a session_id"):
        make(key, session_id=SessionId.new())


def test_verification_cache_does_not_hide_edits(key: KeyPair) -> None:
    token = make(key)
    token.verify([key.public_key])  # now cached
    data = token.to_json()
    data["resource"] = "mcp://**"
    with pytest.raises(VerificationError):
        CapabilityToken.from_json(data).verify([key.public_key])
    with pytest.raises(VerificationError, match="not a trusted issuer"):
        token.verify([KeyPair.generate().public_key])  # trust is re-checked even when cached


def test_caveats_evaluate_arguments() -> None:
    args = {"to": "bob@example.com", "n": 1, "flag": True, "host": "api.example.com"}
    assert caveat_problem(ArgEquals("to", "bob@example.com"), args, 0) is None
    assert "is not" in (caveat_problem(ArgEquals("to", "eve@example.com"), args, 0) or "")
    assert caveat_problem(ArgEquals("flag", 1), args, 0) is not None  # True is not 1
    assert caveat_problem(ArgIn("n", (1, 2)), args, 0) is None
    assert caveat_problem(ArgIn("n", (True,)), args, 0) is not None
    assert caveat_problem(ArgMatches("host", "*.example.com"), args, 0) is None
    assert caveat_problem(ArgMatches("host", "*.example.org"), args, 0) is not None
    assert caveat_problem(ArgMatches("n", "*"), args, 0) is not None  # not a string
    assert "no such argument" in (caveat_problem(ArgEquals("cc", "x"), args, 0) or "")
    assert caveat_problem(NotAfter(10), args, 10) is None
    assert "has passed" in (caveat_problem(NotAfter(10), args, 11) or "")
    # Numbers compare by value (format v2 signs floats): 1 == 1.0, 98.7 == 98.70, -0.0 == 0.
    assert caveat_problem(ArgEquals("x", 1), {"x": 1.0}, 0) is None
    assert caveat_problem(ArgIn("x", (98.7,)), {"x": 98.70}, 0) is None
    assert caveat_problem(ArgEquals("x", 0), {"x": -0.0}, 0) is None
    assert caveat_problem(ArgEquals("x", 98.7), {"x": 98.71}, 0) is not None
    assert caveat_problem(ArgEquals("x", 1.0), {"x": True}, 0) is not None  # bool: no number
    assert caveat_problem(ArgEquals("x", 1), {"x": "1"}, 0) is not None
    assert caveat_problem(ArgEquals("x", 2**53 + 1), {"x": float(2**53 + 1)}, 0) is not None
    assert caveat_problem(ArgEquals("x", {"a": [1]}), {"x": {"a": [1.0]}}, 0) is None
    assert caveat_problem(ArgEquals("x", {"a": [1]}), {"x": {"a": [True]}}, 0) is not None
    assert caveat_problem(ArgIn("x", (1.5,)), {"x": math.nan}, 0) is not None


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        ({"type": "arg_equals", "arg": "x"}, "expected ['arg', 'type', 'value']"),
        ({"type": "arg_in", "arg": "x", "values": "ab"}, "must be a list"),
        ({"type": "arg_in", "arg": "x", "values": []}, "non-empty"),
        ({"type": "arg_equals", "arg": "", "value": 1}, "argument name"),
        ({"type": "arg_equals", "arg": "x", "value": math.nan}, "not a JSON value"),
        ({"type": "arg_in", "arg": "x", "values": [1, math.inf]}, "not a JSON value"),
        ({"type": "not_after", "timestamp": "soon"}, "integer seconds"),
        ("max_calls", "not an object"),
    ],
)
def test_bad_caveats(data: object, problem: str) -> None:
    with pytest.raises(BadInputError) as info:
        caveat_from_json(data)
    assert problem in info.value.message


def test_token_ids_are_typed(key: KeyPair) -> None:
    token = make(key)
    assert isinstance(token.id, TokenId)
    assert isinstance(token.approval_audit_id, AuditEntryId)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=6,
)


@settings(max_examples=300, deadline=None)
@given(
    field=st.sampled_from([*sorted(make(KeyPair(bytes(32))).to_json()), "expires_at"]),
    value=json_values,
)
def test_fuzzed_records_fail_only_with_astrid_errors(field: str, value: Any) -> None:
    """Whatever an attacker writes into a stored field, parsing fails cleanly or verify fails."""
    key = KeyPair(bytes(range(32)))
    data = make(key).to_json()
    data[field] = value
    try:
        CapabilityToken.from_json(data).verify([key.public_key])
    except (BadInputError, VerificationError):
        return
    assert data == make_like(data)  # only reachable if the edit changed nothing


def make_like(data: dict[str, Any]) -> dict[str, Any]:
    return CapabilityToken.from_json(data).to_json()
