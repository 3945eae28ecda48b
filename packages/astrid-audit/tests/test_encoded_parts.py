"""The log encodes a repeated outcome or authorization once and reuses the text. A reused text
must never record something other than what the caller passed: a value changed in place, a
secret learned since, or a value equal in Python but not in JSON (True == 1) is encoded anew.
And a value that cannot be encoded fails only the append that carried it."""

from __future__ import annotations

import json
from collections.abc import Sequence

import anyio
import pytest

from astrid_audit import AuditLog, Outcome, OutcomeKind, verify_storage
from astrid_audit._log import NS_ENTRY
from astrid_core import (
    Authorization,
    AuthorizationProof,
    BadInputError,
    JsonObject,
    McpToolCall,
    ProofKind,
    SessionId,
)
from astrid_core.storage import Expect, MemoryStorage, Write
from astrid_crypto import KeyPair

pytestmark = pytest.mark.anyio


def stored_records(storage: MemoryStorage) -> list[dict[str, object]]:
    rows = storage._data[NS_ENTRY]  # pyright: ignore[reportPrivateUsage]
    return [json.loads(text) for _, text in sorted(rows.items())]


async def test_an_outcome_changed_in_place_is_recorded_as_it_is_now(key: KeyPair) -> None:
    storage = MemoryStorage()
    log = await AuditLog.open(storage, key)
    outcome = Outcome(kind=OutcomeKind.ALLOWED, reason="r", detail={"risk": "low"})
    await log.append(outcome)
    outcome.detail["risk"] = "high"  # frozen model, mutable dict: the caller can still do this
    await log.append(outcome)
    first, second = stored_records(storage)
    assert first["outcome"]["detail"] == {"risk": "low"}  # type: ignore[index]
    assert second["outcome"]["detail"] == {"risk": "high"}  # type: ignore[index]
    assert (await verify_storage(storage, [key.public_key])).entries == 2


async def test_true_and_one_are_different_outcomes(key: KeyPair) -> None:
    storage = MemoryStorage()
    log = await AuditLog.open(storage, key)
    await log.append(Outcome(kind=OutcomeKind.EXECUTED, detail={"flag": True}))
    await log.append(Outcome(kind=OutcomeKind.EXECUTED, detail={"flag": 1}))
    await log.append(Outcome(kind=OutcomeKind.EXECUTED, detail={"flag": True}))
    flags = [record["outcome"]["detail"]["flag"] for record in stored_records(storage)]  # type: ignore[index]
    assert [type(flag) for flag in flags] == [bool, int, bool]


async def test_a_secret_learned_after_an_outcome_was_encoded_is_masked_next_time(
    key: KeyPair,
) -> None:
    storage = MemoryStorage()
    log = await AuditLog.open(storage, key)
    outcome = Outcome(kind=OutcomeKind.ALLOWED, reason="uses token tok-8d7f6e5c4b3a")
    await log.append(outcome)
    log.redactor.add_secret("tok-8d7f6e5c4b3a")
    second = await log.append(outcome)
    first_text, second_text = (json.dumps(r) for r in stored_records(storage))
    assert "tok-8d7f6e5c4b3a" in first_text
    assert "tok-8d7f6e5c4b3a" not in second_text
    assert "[redacted:" in second.outcome.reason
    assert (await verify_storage(storage, [key.public_key])).entries == 2


async def test_equal_authorizations_share_a_text_and_different_ones_do_not(key: KeyPair) -> None:
    storage = MemoryStorage()
    log = await AuditLog.open(storage, key)
    proof = AuthorizationProof(kind=ProofKind.POLICY, detail="workspace")
    reasons = ["first", "first", "second"]
    for reason in reasons:
        # A new but equal object each time, as the interceptor builds them.
        await log.append(
            Outcome(kind=OutcomeKind.ALLOWED), authorization=Authorization.allow(proof, reason)
        )
    recorded = [record["authorization"]["reason"] for record in stored_records(storage)]  # type: ignore[index]
    assert recorded == reasons
    assert (await verify_storage(storage, [key.public_key])).entries == 3


class SlowStorage(MemoryStorage):
    """Each write takes a while, so appends arriving meanwhile queue up into one batch."""

    async def transaction(self, writes: Sequence[Write], *, expect: Sequence[Expect] = ()) -> bool:
        await anyio.sleep(0.05)
        return await super().transaction(writes, expect=expect)


async def test_an_action_that_cannot_be_encoded_fails_its_own_append_not_the_batch(
    key: KeyPair,
) -> None:
    storage = SlowStorage()
    log = await AuditLog.open(storage, key)
    session = SessionId.new()
    results: dict[int, object] = {}

    async def append(index: int) -> None:
        # An integer beyond 2^53 has no exact RFC 8785 form, so canonical JSON refuses it.
        # (An action that cannot be encoded is recorded by digest instead: test_record.py.)
        detail: JsonObject = {"n": 2**60} if index == 3 else {"n": index}
        try:
            results[index] = await log.append(
                Outcome(kind=OutcomeKind.ALLOWED, detail=detail),
                session_id=session,
                action=McpToolCall(server="s", tool="t", args={"n": index}),
            )
        except Exception as exc:
            results[index] = exc

    async with anyio.create_task_group() as tg:
        for index in range(8):
            tg.start_soon(append, index)
    assert isinstance(results.pop(3), BadInputError)
    assert all(not isinstance(result, Exception) for result in results.values()), results
    assert log.size == 7
    assert (
        await verify_storage(storage, [KeyPair.generate().public_key, key.public_key])
    ).entries == 7
