"""The stored text of an entry is spliced from the hashed text (one serialization for both):
it must be exactly the canonical serialization of the whole sealed record."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from astrid_audit import AuditEntry, Outcome, OutcomeKind
from astrid_audit._entry import seal_body
from astrid_core import AuditEntryId
from astrid_crypto import KeyPair, canonical_json, content_hash

KEY = KeyPair.generate()

json_leaf = st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.text(max_size=20)
json_value = st.recursive(
    json_leaf,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)


@settings(max_examples=150, deadline=None)
@given(
    action=st.none() | st.dictionaries(st.text(max_size=10), json_value, max_size=5),
    detail=st.dictionaries(st.text(max_size=10), json_value, max_size=5),
    reason=st.text(max_size=40),
    chain=st.text(min_size=1, max_size=12),
)
def test_the_spliced_text_is_the_canonical_record(
    action: dict[str, Any] | None, detail: dict[str, Any], reason: str, chain: str
) -> None:
    entry = AuditEntry(
        id=AuditEntryId.new(),
        seq=7,
        chain=chain,
        chain_seq=3,
        timestamp_ms=1_700_000_000_000,
        action=action,
        outcome=Outcome(kind=OutcomeKind.ALLOWED, reason=reason, detail=detail),
        prev_hash="0" * 64,
        key_id=KEY.key_id,
    )
    body = entry.body()
    digest, signature, text = seal_body(body, KEY)

    assert digest == content_hash(canonical_json(body)).hex
    record = {**body, "hash": digest, "signature": signature}
    assert text.encode() == canonical_json(record)
    assert json.loads(text) == record
    sealed = AuditEntry.model_validate_json(text)
    sealed.check({KEY.key_id: KEY.public_key})


def test_a_body_with_missing_or_extra_keys_is_refused() -> None:
    entry = AuditEntry(
        id=AuditEntryId.new(),
        seq=0,
        chain="system",
        chain_seq=0,
        timestamp_ms=0,
        outcome=Outcome(kind=OutcomeKind.ALLOWED),
        prev_hash="0" * 64,
        key_id=KEY.key_id,
    )
    body = entry.body()
    for broken in ({k: v for k, v in body.items() if k != "chain"}, {**body, "extra": 1}):
        with pytest.raises(ValueError, match="keys"):
            seal_body(broken, KEY)
