"""Token format v2 (RFC 8785) next to v1: vectors, an outside implementation (rfc8785 and
plain PyNaCl, no astrid code) and old tokens that keep verifying in the store."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import nacl.signing
import pytest
import rfc8785
from hypothesis import given, settings
from hypothesis import strategies as st

from astrid_capabilities import (
    ArgEquals,
    ArgIn,
    CapabilityStore,
    CapabilityToken,
    ResourcePattern,
    attenuation_problem,
)
from astrid_capabilities._caveats import caveat_problem
from astrid_capabilities._store import NS_TOKENS
from astrid_core import AuditEntryId, BadInputError, McpToolCall, VerificationError
from astrid_core.storage import Storage
from astrid_crypto import KeyPair, canonical_json

from .conftest import NOW, FakeClock

VECTORS = Path(__file__).parent / "vectors"
KEY = KeyPair(bytes(range(32)))
SAFE = 2**53 - 1


def as_doubles(value: Any) -> Any:
    """Numbers as a JavaScript parser holds them (rfc8785 refuses Python ints beyond 2^53-1)."""
    if isinstance(value, dict):
        return {k: as_doubles(v) for k, v in value.items()}  # pyright: ignore[reportUnknownVariableType]
    if isinstance(value, list):
        return [as_doubles(v) for v in value]  # pyright: ignore[reportUnknownVariableType]
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > SAFE:
        return float(value)
    return value


def outside_verify(token_json: dict[str, Any]) -> bytes:
    """Verify a token the way another implementation would: JCS of every field but the
    signature, Ed25519 over it with the issuer key (v2 only)."""
    payload = {k: v for k, v in token_json.items() if k != "signature"}
    signed = rfc8785.dumps(as_doubles(payload))
    issuer = nacl.signing.VerifyKey(base64.b64decode(token_json["issuer"]))
    issuer.verify(signed, base64.b64decode(token_json["signature"]))
    return signed


@pytest.mark.parametrize("name", ["token_v1.json", "token_v2.json"])
def test_vectors_parse_resign_and_verify(name: str) -> None:
    vector = json.loads((VECTORS / name).read_text())
    token = CapabilityToken.from_json(vector["token"])
    assert token.signed_bytes.decode() == vector["signed_bytes"]
    token.verify([KEY.public_key])
    assert token.signed_with(KEY).signature == vector["token"]["signature"]  # deterministic


def test_v2_vector_verifies_without_astrid() -> None:
    vector = json.loads((VECTORS / "token_v2.json").read_text())
    assert vector["token"]["v"] == 2
    assert outside_verify(vector["token"]).decode() == vector["signed_bytes"]


def test_new_tokens_are_v2_and_sign_floats() -> None:
    token = CapabilityToken.issue(
        KEY,
        ResourcePattern.literal("mcp://bank/pay"),
        ["invoke"],
        scope="persistent",
        approval_audit_id=AuditEntryId.new(),
        caveats=(ArgIn("amount", (98.7,)), ArgEquals("rate", 0.25)),
    )
    assert token.v == 2
    wire = json.loads(json.dumps(token.to_json()))  # through text, as storage does
    again = CapabilityToken.from_json(wire)
    again.verify([KEY.public_key])
    assert outside_verify(wire) == again.signed_bytes
    # Tampering with a float caveat is caught.
    wire["caveats"][0]["values"] = [98.8]
    with pytest.raises(VerificationError):
        CapabilityToken.from_json(wire).verify([KEY.public_key])


def test_a_token_cannot_be_relabelled_to_the_other_format() -> None:
    vector = json.loads((VECTORS / "token_v1.json").read_text())
    relabelled = {**vector["token"], "v": 2}
    with pytest.raises(VerificationError):
        CapabilityToken.from_json(relabelled).verify([KEY.public_key])
    v2 = json.loads((VECTORS / "token_v2.json").read_text())["token"]
    with pytest.raises(BadInputError, match="float"):  # v1 has no floats at all
        CapabilityToken.from_json({**v2, "v": 1})


def test_an_integer_no_double_holds_cannot_be_signed_in_v2() -> None:
    with pytest.raises(BadInputError) as caught:
        CapabilityToken.issue(
            KEY,
            ResourcePattern.literal("mcp://bank/pay"),
            ["invoke"],
            scope="persistent",
            approval_audit_id=AuditEntryId.new(),
            caveats=(ArgEquals("id", 2**53 + 1),),
        )
    assert caught.value.hint is not None
    assert "as strings" in caught.value.hint


@pytest.mark.anyio
async def test_old_and_new_tokens_authorize_through_the_store(any_storage: Storage) -> None:
    """A v1 token stored before this change still loads, verifies and authorizes (memory and
    SurrealDB embedded); a v2 child derived from it with a float caveat matches by value."""
    v1 = json.loads((VECTORS / "token_v1.json").read_text())["token"]
    await any_storage.put(NS_TOKENS, v1["id"], v1)
    store = await CapabilityStore.open(any_storage, [KEY.public_key], clock=FakeClock(NOW))
    assert store.tampered_count == 0
    call = McpToolCall(server="filesystem", tool="read", args={"path": "/home/x", "n": 1.5})
    proof = await store.authorize(call)
    assert proof is not None
    assert str(proof.token_id) == v1["id"]

    parent = CapabilityToken.from_json(v1)
    child = parent.attenuate(KEY, caveats=(ArgIn("n", (1.5, 2)),), now=NOW)
    assert child.v == 2
    await store.add(child)
    reopened = await CapabilityStore.open(any_storage, [KEY.public_key], clock=FakeClock(NOW))
    assert reopened.tampered_count == 0
    checked = await reopened.get(child.id)
    assert checked is not None
    assert checked.signed_bytes == child.signed_bytes
    assert attenuation_problem(parent, checked) is None
    # A child that drops the parent's caveats is still refused (caveats compared by value).
    bare = CapabilityToken(**{**_fields(child), "caveats": ()}).signed_with(KEY)
    assert attenuation_problem(child, bare.__class__(**{**_fields(bare), "parent_id": child.id}))


def _fields(token: CapabilityToken) -> dict[str, Any]:
    return {
        f: getattr(token, f)
        for f in CapabilityToken.__dataclass_fields__
        if f not in {"signed_bytes", "signature"}
    } | {"signature": ""}


_SAFE_LEAVES = (
    st.none()
    | st.booleans()
    | st.integers(-SAFE, SAFE)
    | st.sampled_from([0, 1, -1, 0.0, -0.0, 1.0, 98.7, 98.70, 0.1, 1e21])
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=4)
)
_VALUES = st.recursive(
    _SAFE_LEAVES,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=3)
    ),
    max_leaves=8,
)


@settings(max_examples=400, deadline=None)
@given(_VALUES, _VALUES)
def test_caveats_compare_exactly_as_the_signed_form_does(a: Any, b: Any) -> None:
    """Two argument values are equal to a caveat exactly when their RFC 8785 forms are equal:
    what a token signs is what it matches (1 == 1.0, -0.0 == 0, True != 1, key order free)."""
    same = canonical_json(a, 2) == canonical_json(b, 2)
    assert (caveat_problem(ArgEquals("x", a), {"x": b}, 0) is None) == same
    assert (caveat_problem(ArgIn("x", (a,)), {"x": b}, 0) is None) == same
