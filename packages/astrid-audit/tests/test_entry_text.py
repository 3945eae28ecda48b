"""The stored text of an entry is spliced from the hashed text (one serialization for both):
it must be exactly the canonical serialization of the whole sealed record."""

from __future__ import annotations

import json
from typing import Any

import anyio
import pytest
import rfc8785
from hypothesis import given, settings
from hypothesis import strategies as st

from astrid_audit import AuditEntry, AuditLog, Outcome, OutcomeKind
from astrid_audit._entry import seal_body
from astrid_audit._log import NS_ENTRY
from astrid_core import AuditEntryId, McpToolCall
from astrid_core.storage import MemoryStorage
from astrid_crypto import KeyPair, canonical_json, content_hash

KEY = KeyPair.generate()

SAFE = 2**53 - 1
# Format v1 (no floats, integers of any size) and v2 (RFC 8785: floats, safe integers, keys
# that sort differently by UTF-16 than by code point).
v1_leaf = st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.text(max_size=20)
v2_leaf = (
    st.none()
    | st.booleans()
    | st.integers(-SAFE, SAFE)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20)
)
v2_key = st.text(st.sampled_from('a\u00e9\ue000\uffff\U0001f600\n"'), max_size=4) | st.text(
    max_size=8
)


def _json(leaf: st.SearchStrategy[Any], key: st.SearchStrategy[str]) -> st.SearchStrategy[Any]:
    return st.recursive(
        leaf,
        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(key, inner, max_size=4),
        max_leaves=12,
    )


def _entry(action: Any, detail: dict[str, Any], reason: str, chain: str, v: int) -> AuditEntry:
    return AuditEntry(
        v=v,
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


def _check_splice(entry: AuditEntry) -> str:
    body = entry.body()
    digest, signature, text = seal_body(body, KEY)
    assert digest == content_hash(canonical_json(body, entry.v)).hex
    record = {**body, "hash": digest, "signature": signature}
    assert text.encode() == canonical_json(record, entry.v)
    # Read back (as storage does) and written again, the text is the same bytes.
    assert as_doubles(json.loads(text)) == as_doubles(record)
    assert canonical_json(json.loads(text), entry.v) == text.encode()
    sealed = AuditEntry.model_validate_json(text)
    sealed.check({KEY.key_id: KEY.public_key})
    return text


@settings(max_examples=150, deadline=None)
@given(
    action=st.none() | st.dictionaries(st.text(max_size=10), _json(v1_leaf, st.text(max_size=8))),
    detail=st.dictionaries(st.text(max_size=10), _json(v1_leaf, st.text(max_size=8)), max_size=5),
    reason=st.text(max_size=40),
    chain=st.text(min_size=1, max_size=12),
)
def test_the_spliced_text_is_the_canonical_record_v1(
    action: dict[str, Any] | None, detail: dict[str, Any], reason: str, chain: str
) -> None:
    _check_splice(_entry(action, detail, reason, chain, 1))


@settings(max_examples=200, deadline=None)
@given(
    action=st.none() | st.dictionaries(v2_key, _json(v2_leaf, v2_key), max_size=5),
    detail=st.dictionaries(v2_key, _json(v2_leaf, v2_key), max_size=5),
    reason=st.text(max_size=40),
    chain=st.text(min_size=1, max_size=12),
)
def test_the_spliced_text_is_the_rfc8785_record_v2(
    action: dict[str, Any] | None, detail: dict[str, Any], reason: str, chain: str
) -> None:
    entry = _entry(action, detail, reason, chain, 2)
    text = _check_splice(entry)
    # An outside implementation computes the same hashed and stored bytes from the values.
    body = entry.body()
    assert rfc8785.dumps(body) == canonical_json(body, 2)
    assert rfc8785.dumps(as_doubles(json.loads(text))) == text.encode()


def as_doubles(value: Any) -> Any:
    """What a JavaScript parser holds: every number a double. (Python reads the JCS text of a
    float such as 2.0**53 back as an int, which ``rfc8785`` refuses beyond 2^53 - 1.)"""
    if isinstance(value, dict):
        return {k: as_doubles(v) for k, v in value.items()}  # pyright: ignore[reportUnknownVariableType]
    if isinstance(value, list):
        return [as_doubles(v) for v in value]  # pyright: ignore[reportUnknownVariableType]
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > SAFE:
        return float(value)
    return value


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


@settings(max_examples=60, deadline=None)
@given(
    args=st.dictionaries(v2_key, _json(v2_leaf, v2_key), max_size=4),
    detail=st.dictionaries(st.text(max_size=6), v2_leaf, max_size=3),
)
def test_the_log_stores_what_rfc8785_hashes(args: dict[str, Any], detail: dict[str, Any]) -> None:
    """Through AuditLog (member texts encoded once, cached and spliced): the stored text is the
    RFC 8785 record and its hash is BLAKE3 of the RFC 8785 body, for any JSON arguments."""

    async def run() -> list[tuple[str, Any]]:
        storage = MemoryStorage()
        log = await AuditLog.open(storage, KEY)
        action = McpToolCall(server="s", tool="t", args=args)
        for _ in range(2):  # the second append reuses the cached action and outcome texts
            await log.append(Outcome(kind=OutcomeKind.ALLOWED, detail=detail), action=action)
        return list(await storage.scan(NS_ENTRY))

    for _, raw in anyio.run(run):
        assert isinstance(raw, dict)
        record = as_doubles(raw)
        body = {k: v for k, v in record.items() if k not in {"hash", "signature"}}
        assert content_hash(rfc8785.dumps(body)).hex == raw["hash"]
        assert AuditEntry.model_validate(raw).compute_hash() == raw["hash"]
