from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import anyio
import pytest

from astrid_capabilities import (
    ArgEquals,
    ArgMatches,
    CapabilityStore,
    CapabilityToken,
    MaxCalls,
    Permission,
    ResourcePattern,
    TokenScope,
)
from astrid_core import (
    AuditEntryId,
    BadInputError,
    CapabilityDenied,
    FileRead,
    FileWrite,
    JsonObject,
    JsonValue,
    McpToolCall,
    NotFoundError,
    ProofKind,
    SessionId,
    StorageError,
    TokenId,
    VerificationError,
)
from astrid_core.storage import Expect, MemoryStorage, Storage, Write, open_storage
from astrid_crypto import KeyPair

pytestmark = pytest.mark.anyio
AUDIT = AuditEntryId.parse("00000000-0000-4000-8000-000000000001")
READ_NOTES = FileRead(path="/home/me/notes.txt")


class Clock:
    def __init__(self, now: int) -> None:
        self.now = now

    def __call__(self) -> int:
        return self.now


def issue(
    key: KeyPair, clock: Any, pattern: str = "file:///home/me/**", **kw: Any
) -> CapabilityToken:
    kw.setdefault("scope", TokenScope.PERSISTENT)
    permissions = kw.pop("permissions", [Permission.READ])
    return CapabilityToken.issue(
        key, ResourcePattern(pattern), permissions, approval_audit_id=AUDIT, now=clock.now, **kw
    )


async def test_add_find_authorize(store: CapabilityStore, key: KeyPair, clock: Any) -> None:
    token = issue(key, clock)
    await store.add(token)
    assert await store.get(token.id) == token
    assert await store.find_capability(READ_NOTES) == token
    assert await store.has_capability(READ_NOTES)
    proof = await store.authorize(READ_NOTES)
    assert proof is not None
    assert proof.token_id == token.id
    assert proof.chain == (token.id,)
    core_proof = proof.to_authorization_proof()
    assert core_proof.kind is ProofKind.CAPABILITY
    assert core_proof.token_id == token.id
    # wrong permission, wrong resource
    assert await store.authorize(FileWrite(path="/home/me/notes.txt")) is None
    assert await store.authorize(FileRead(path="/home/other/notes.txt")) is None


async def test_most_specific_token_wins(store: CapabilityStore, key: KeyPair, clock: Any) -> None:
    broad = issue(key, clock, "file:///**")
    middle = issue(key, clock, "file:///home/me/**")
    narrow = issue(key, clock, "file:///home/me/*.txt")
    exact = issue(key, clock, ResourcePattern.literal("file:///home/me/notes.txt").pattern)
    for token in (broad, narrow, exact, middle):
        await store.add(token)
    assert (await store.find_capability(READ_NOTES)) == exact
    await store.revoke(exact.id)
    assert (await store.find_capability(READ_NOTES)) == narrow
    await store.revoke(narrow.id)
    assert (await store.find_capability(READ_NOTES)) == middle
    assert (await store.find_capability(FileRead(path="/etc/hosts"))) == broad


async def test_session_tokens_bound_to_their_session(
    store: CapabilityStore, key: KeyPair, clock: Any, storage: Storage
) -> None:
    session = SessionId.new()
    token = issue(key, clock, scope=TokenScope.SESSION, session_id=session)
    await store.add(token)
    assert await storage.scan("cap_tokens") == []  # session tokens stay in memory
    assert await store.authorize(READ_NOTES, session) is not None
    assert await store.authorize(READ_NOTES, SessionId.new()) is None
    assert await store.authorize(READ_NOTES) is None
    explanation = await store.explain(READ_NOTES, SessionId.new())
    assert "bound to session" in explanation.checks[0].problems[0]
    assert store.remove_session(session) == 1
    assert await store.authorize(READ_NOTES, session) is None


async def test_expiry_with_clock_skew(storage: Storage, key: KeyPair) -> None:
    clock = Clock(1_800_000_000)
    store = await CapabilityStore.open(storage, [key.public_key], clock=clock)
    token = issue(key, clock, ttl_seconds=60)
    await store.add(token)
    clock.now += 60 + 10  # expired 10 s ago: inside the default 30 s skew
    assert await store.get(token.id) == token
    clock.now += 21  # 31 s past expiry
    assert await store.get(token.id) is None
    assert await store.authorize(READ_NOTES) is None
    explanation = await store.explain(token.id)
    assert not explanation.allowed
    assert "expired at" in explanation.reason


async def test_zero_skew_is_configurable(storage: Storage, key: KeyPair) -> None:
    clock = Clock(1_800_000_000)
    store = CapabilityStore(storage, [key.public_key], clock_skew_seconds=0, clock=clock)
    token = issue(key, clock, ttl_seconds=60)
    await store.add(token)
    clock.now += 61
    assert await store.get(token.id) is None


async def test_not_yet_valid(store: CapabilityStore, key: KeyPair, clock: Any) -> None:
    future = Clock(clock.now + 3600)
    token = issue(key, future)
    await store.add(token)
    assert await store.get(token.id) is None
    assert "not valid before" in (await store.explain(token.id)).reason
    near = issue(key, Clock(clock.now + 20))  # within skew
    await store.add(near)
    assert await store.get(near.id) == near


async def test_add_refuses_expired_untrusted_and_conflicting(
    store: CapabilityStore, key: KeyPair, clock: Any
) -> None:
    old = issue(key, Clock(clock.now - 1000), ttl_seconds=10)
    with pytest.raises(BadInputError, match="already expired"):
        await store.add(old)
    with pytest.raises(VerificationError, match="not a trusted issuer"):
        await store.add(issue(KeyPair.generate(), clock))
    token = issue(key, clock)
    await store.add(token)
    await store.add(token)  # idempotent


async def test_constructor_validates() -> None:
    with pytest.raises(BadInputError, match="at least one trusted issuer") as info:
        CapabilityStore(MemoryStorage(), [])
    assert "runtime key" in info.value.hint
    with pytest.raises(BadInputError, match="clock_skew_seconds"):
        CapabilityStore(MemoryStorage(), [KeyPair.generate().public_key], clock_skew_seconds=-1)


async def test_single_use_replay_sequential(
    store: CapabilityStore, key: KeyPair, clock: Any
) -> None:
    token = issue(key, clock, single_use=True)
    await store.add(token)
    first = await store.authorize(READ_NOTES)
    assert first is not None
    assert first.single_use
    assert await store.authorize(READ_NOTES) is None
    assert await store.get(token.id) is None
    assert "already used" in (await store.explain(token.id)).reason


async def test_single_use_survives_restart(storage: Storage, key: KeyPair, clock: Any) -> None:
    store = await CapabilityStore.open(storage, [key.public_key], clock=clock)
    token = issue(key, clock, single_use=True)
    await store.add(token)
    assert await store.authorize(READ_NOTES) is not None
    reopened = await CapabilityStore.open(storage, [key.public_key], clock=clock)
    assert await reopened.authorize(READ_NOTES) is None


async def _race(n: int, attempt: Any) -> list[Any]:
    results: list[Any] = []

    async def one() -> None:
        await anyio.sleep(0)
        results.append(await attempt())

    async with anyio.create_task_group() as group:
        for _ in range(n):
            group.start_soon(one)
    return results


async def test_single_use_concurrent_authorize_exactly_one_wins(
    any_storage: Storage, key: KeyPair, clock: Any
) -> None:
    store = await CapabilityStore.open(any_storage, [key.public_key], clock=clock)
    token = issue(key, clock, single_use=True)
    await store.add(token)
    results = await _race(20, lambda: store.authorize(READ_NOTES))
    assert sum(r is not None for r in results) == 1


async def test_mark_used_concurrent_exactly_one_wins_across_store_instances(
    any_storage: Storage, key: KeyPair, clock: Any
) -> None:
    # Two store objects over one storage: only the storage CAS can arbitrate between them.
    a = await CapabilityStore.open(any_storage, [key.public_key], clock=clock)
    token = issue(key, clock, single_use=True)
    await a.add(token)
    b = await CapabilityStore.open(any_storage, [key.public_key], clock=clock)
    stores = [a, b]
    counter = iter(range(1000))
    results = await _race(20, lambda: stores[next(counter) % 2].mark_used(token.id))
    assert results.count(True) == 1


def test_mark_used_from_threads_exactly_one_wins(key: KeyPair, clock: Any) -> None:
    """Threads (each its own event loop) racing on one SurrealDB-free storage via CAS."""
    import threading

    class ThreadSafeStorage(MemoryStorage):
        # MemoryStorage's anyio.Lock serialises tasks of one loop; threads need a real lock.
        _guard = threading.Lock()

        async def transaction(
            self, writes: Sequence[Write], *, expect: Sequence[Expect] = ()
        ) -> bool:
            with self._guard:
                return await super().transaction(writes, expect=expect)

    storage = ThreadSafeStorage()
    token = issue(key, clock, single_use=True)

    async def setup() -> None:
        await CapabilityStore(storage, [key.public_key], clock=clock).add(token)

    anyio.run(setup)
    results: list[bool] = []
    barrier = threading.Barrier(8)

    def worker() -> None:
        async def go() -> None:
            store = await CapabilityStore.open(storage, [key.public_key], clock=clock)
            barrier.wait()
            results.append(await store.mark_used(token.id))

        anyio.run(go)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results.count(True) == 1
    assert len(results) == 8


async def test_mark_used_unknown_token(store: CapabilityStore) -> None:
    with pytest.raises(NotFoundError, match="not in this store"):
        await store.mark_used(TokenId.new())


async def test_max_calls(store: CapabilityStore, key: KeyPair, clock: Any) -> None:
    token = issue(key, clock, caveats=[MaxCalls(3)])
    await store.add(token)
    results = await _race(10, lambda: store.authorize(READ_NOTES))
    assert sum(r is not None for r in results) == 3
    assert "used up" in (await store.explain(READ_NOTES)).checks[0].problems[0]


async def test_argument_caveats_checked_on_authorize(
    store: CapabilityStore, key: KeyPair, clock: Any
) -> None:
    token = issue(
        key,
        clock,
        "mcp://mail/send",
        permissions=[Permission.INVOKE],
        caveats=[ArgMatches("to", "*@example.com"), ArgEquals("draft", False)],
    )
    await store.add(token)
    ok = McpToolCall(server="mail", tool="send", args={"to": "bob@example.com", "draft": False})
    assert await store.authorize(ok) is not None
    bad_args: list[JsonObject] = [
        {"to": "eve@evil.com", "draft": False},
        {"to": "bob@example.com", "draft": True},
        {"to": "bob@example.com"},
        {"to": "bob@example.com", "draft": 0},
    ]
    for args in bad_args:
        action = McpToolCall(server="mail", tool="send", args=args)
        assert await store.authorize(action) is None
        assert "caveat" in (await store.explain(action)).checks[0].problems[0]


async def test_traversal_in_action_resource_never_authorized(
    store: CapabilityStore, key: KeyPair, clock: Any
) -> None:
    await store.add(issue(key, clock, "file:///home/me/**"))
    for path in ("/home/me/../../etc/passwd", "/home/me/%2E%2E/x", "/home/me//x", "/home/me/%2f"):
        # model_construct skips astrid_core's own path validation: this layer must hold alone.
        action = FileRead.model_construct(path=path)
        assert await store.authorize(action) is None
        assert not (await store.explain(action)).allowed


async def test_literal_approval_of_glob_named_file(
    store: CapabilityStore, key: KeyPair, clock: Any
) -> None:
    approved = FileRead(path="/tmp/*")
    await store.add(issue(key, clock, ResourcePattern.literal(approved.resource).pattern))
    assert await store.authorize(approved) is not None
    assert await store.authorize(FileRead(path="/tmp/secret")) is None


async def test_revoke_cascades_and_persists(any_storage: Storage, key: KeyPair, clock: Any) -> None:
    storage = any_storage
    store = await CapabilityStore.open(storage, [key.public_key], clock=clock)
    parent = issue(key, clock)
    child = parent.attenuate(
        key, resource=ResourcePattern("file:///home/me/docs/**"), now=clock.now
    )
    grandchild = child.attenuate(key, permissions=[Permission.READ], now=clock.now)
    for token in (parent, child, grandchild):
        await store.add(token)
    action = FileRead(path="/home/me/docs/a.txt")
    assert (await store.authorize(action)) is not None
    revoked = await store.revoke(parent.id)
    assert set(revoked) == {parent.id, child.id, grandchild.id}
    assert await store.authorize(action) is None
    reopened = await CapabilityStore.open(storage, [key.public_key], clock=clock)
    for token in (parent, child, grandchild):
        assert await reopened.get(token.id) is None
    with pytest.raises(CapabilityDenied, match="revoked"):
        await reopened.add(child)


async def test_revoked_parent_with_live_child_is_denied(
    storage: Storage, key: KeyPair, clock: Any
) -> None:
    """Even if the child's own revocation record is lost, the chain check denies it."""
    store = await CapabilityStore.open(storage, [key.public_key], clock=clock)
    parent = issue(key, clock)
    child = parent.attenuate(key, now=clock.now)
    await store.add(parent)
    await store.add(child)
    await store.revoke(parent.id)
    await storage.delete("cap_revoked", str(child.id))  # the child looks live on its own
    reopened = await CapabilityStore.open(storage, [key.public_key], clock=clock)
    assert await reopened.get(child.id) is None
    reason = (await reopened.explain(child.id)).reason
    assert f"parent {parent.id} invalid: revoked" in reason
    assert await reopened.authorize(READ_NOTES) is None


async def test_child_with_missing_parent_is_denied(
    storage: Storage, key: KeyPair, clock: Any
) -> None:
    store = await CapabilityStore.open(storage, [key.public_key], clock=clock)
    parent = issue(key, clock)
    child = parent.attenuate(key, now=clock.now)
    with pytest.raises(CapabilityDenied, match="no such token"):
        await store.add(child)


async def test_child_widening_signed_by_trusted_key_refused(
    store: CapabilityStore, key: KeyPair, clock: Any
) -> None:
    """A 'child' hand-built past attenuate() and signed by the runtime key is still refused."""
    import dataclasses

    parent = issue(key, clock, "file:///home/me/docs/**")
    await store.add(parent)
    forged = dataclasses.replace(
        issue(key, clock, "file:///**"), parent_id=parent.id, signature=""
    ).signed_with(key)
    with pytest.raises(CapabilityDenied, match="widens its parent"):
        await store.add(forged)


class FailingStorage(MemoryStorage):
    """Real MemoryStorage whose writes can be made to fail, like a full disk."""

    fail = False

    async def transaction(self, writes: Sequence[Write], *, expect: Sequence[Expect] = ()) -> bool:
        if self.fail:
            raise StorageError("disk full")
        return await super().transaction(writes, expect=expect)

    async def put(self, namespace: str, key: str, value: JsonValue) -> None:
        await self.transaction([])  # honour `fail`
        await super().put(namespace, key, value)


async def test_revocation_persisted_before_memory(key: KeyPair, clock: Any) -> None:
    storage = FailingStorage()
    store = await CapabilityStore.open(storage, [key.public_key], clock=clock)
    token = issue(key, clock)
    await store.add(token)
    storage.fail = True
    with pytest.raises(StorageError):
        await store.revoke(token.id)
    # Memory did not claim a revocation storage never recorded (no split-brain state).
    assert await store.get(token.id) == token
    storage.fail = False
    await store.revoke(token.id)
    assert await store.get(token.id) is None


async def _tamper(storage: Storage, token_id: TokenId, **changes: Any) -> None:
    record = await storage.get("cap_tokens", str(token_id))
    assert isinstance(record, dict)
    record.update(changes)
    await storage.put("cap_tokens", str(token_id), record)


async def test_tampering_while_open_is_caught_at_the_next_use(
    any_storage: Storage, key: KeyPair, clock: Any, caplog: pytest.LogCaptureFixture
) -> None:
    store = await CapabilityStore.open(any_storage, [key.public_key], clock=clock)
    token = issue(key, clock, "file:///home/me/notes.txt")
    await store.add(token)
    assert await store.authorize(READ_NOTES) is not None  # verified and kept in memory
    await _tamper(any_storage, token.id, permissions=["read", "write"])
    # Every use re-reads the record: the edit grants nothing, and the token stops working.
    assert await store.authorize(FileWrite(path="/home/me/notes.txt")) is None
    assert await store.authorize(READ_NOTES) is None
    assert store.tampered_count == 1
    with caplog.at_level(logging.WARNING, logger="astrid.capabilities"):
        reopened = await CapabilityStore.open(any_storage, [key.public_key], clock=clock)
        assert await reopened.authorize(READ_NOTES) is None
        assert await reopened.authorize(FileWrite(path="/home/me/notes.txt")) is None
        assert await reopened.get(token.id) is None
    assert reopened.tampered_count == 1
    assert "forged or edited" in (await reopened.explain(token.id)).reason
    assert any(str(token.id) in r.getMessage() for r in caplog.records)


async def test_record_tampered_before_first_use_is_refused_on_lookup(
    any_storage: Storage, key: KeyPair, clock: Any
) -> None:
    store = await CapabilityStore.open(any_storage, [key.public_key], clock=clock)
    token = issue(key, clock, "file:///home/me/notes.txt")
    await store.add(token)
    fresh = await CapabilityStore.open(any_storage, [key.public_key], clock=clock)
    await _tamper(any_storage, token.id, permissions=["read", "write"])  # after load, before use
    assert await fresh.authorize(READ_NOTES) is None
    assert fresh.tampered_count == 1
    assert "forged or edited" in (await fresh.explain(token.id)).reason


async def test_tampered_record_is_caught_at_first_use(
    any_storage: Storage, key: KeyPair, clock: Any, caplog: pytest.LogCaptureFixture
) -> None:
    store = await CapabilityStore.open(any_storage, [key.public_key], clock=clock)
    token = issue(key, clock, "file:///home/me/notes.txt")
    good = issue(key, clock, "file:///home/me/other.txt")
    await store.add(token)
    await store.add(good)
    await _tamper(any_storage, token.id, resource="file:///**")
    await any_storage.put("cap_tokens", "garbage", {"not": "a token"})
    with caplog.at_level(logging.WARNING, logger="astrid.capabilities"):
        reopened = await CapabilityStore.open(any_storage, [key.public_key], clock=clock)
        # Loading parses (the garbage record fails) but verifies no signature: that is done
        # at each token's first use, which the edited one fails.
        assert set(reopened.tampered) == {"garbage"}
        assert await reopened.authorize(FileRead(path="/etc/passwd")) is None
    assert set(reopened.tampered) == {str(token.id), "garbage"}
    assert len([r for r in caplog.records if "failed verification" in r.getMessage()]) == 2
    assert await reopened.get(good.id) == good
    explanation = await reopened.explain(token.id)
    assert "failed verification" in explanation.reason
    assert (await reopened.explain(READ_NOTES)).tampered_ignored == 2


async def test_swapped_and_deleted_records(storage: Storage, key: KeyPair, clock: Any) -> None:
    store = await CapabilityStore.open(storage, [key.public_key], clock=clock)
    narrow = issue(key, clock, "file:///home/me/notes.txt")
    broad = issue(key, clock, "file:///**", ttl_seconds=5)
    await store.add(narrow)
    await store.add(broad)
    # Put the (validly signed) broad token under the narrow token's id.
    await storage.put("cap_tokens", str(narrow.id), broad.to_json())
    assert await store.get(narrow.id) is None
    assert "holds token" in (await store.explain(narrow.id)).reason
    await storage.delete("cap_tokens", str(broad.id))
    assert await store.get(broad.id) is None
    assert "missing" in (await store.explain(broad.id)).reason


async def test_explain_unknown_and_uncovered(store: CapabilityStore) -> None:
    unknown = await store.explain(TokenId.new())
    assert not unknown.allowed
    assert "no such token" in unknown.reason
    uncovered = await store.explain(READ_NOTES)
    assert not uncovered.allowed
    assert "no token grants read" in uncovered.reason


async def test_trust_is_rechecked_on_every_lookup(
    storage: Storage, key: KeyPair, clock: Any
) -> None:
    store = await CapabilityStore.open(storage, [key.public_key], clock=clock)
    token = issue(key, clock)
    await store.add(token)
    other = await CapabilityStore.open(storage, [KeyPair.generate().public_key], clock=clock)
    assert await other.get(token.id) is None  # rotated trust: old tokens stop working
    assert "not a trusted issuer" in (await other.explain(token.id)).reason
    assert other.tampered_count == 0  # untrusted is not the same as tampered


async def test_state_survives_closing_and_reopening_surrealkv(
    tmp_path: Path, key: KeyPair, clock: Any
) -> None:
    pytest.importorskip("surrealdb", reason="needs astrid-core[surrealdb]")
    url = f"surrealkv://{tmp_path / 'db'}"
    storage = await open_storage(url)
    store = await CapabilityStore.open(storage, [key.public_key], clock=clock)
    kept = issue(key, clock, "file:///home/me/notes.txt")
    once = issue(key, clock, "file:///home/me/once.txt", single_use=True)
    gone = issue(key, clock, "file:///home/me/gone.txt")
    for token in (kept, once, gone):
        await store.add(token)
    assert await store.authorize(FileRead(path="/home/me/once.txt")) is not None
    await store.revoke(gone.id)
    await storage.aclose()

    storage = await open_storage(url)
    try:
        reopened = await CapabilityStore.open(storage, [key.public_key], clock=clock)
        assert await reopened.authorize(READ_NOTES) is not None
        assert await reopened.authorize(FileRead(path="/home/me/once.txt")) is None
        assert await reopened.authorize(FileRead(path="/home/me/gone.txt")) is None
        assert "revoked" in (await reopened.explain(gone.id)).reason
        assert "already used" in (await reopened.explain(once.id)).reason
    finally:
        await storage.aclose()


async def test_reconcile_restores_deleted_rows(
    any_storage: Storage, key: KeyPair, clock: Any
) -> None:
    """The audit log's word wins over a missing row: revoked stays revoked, spent stays spent."""
    storage = any_storage
    store = await CapabilityStore.open(storage, [key.public_key], clock=clock)
    revoked = issue(key, clock)
    once = issue(key, clock, pattern="file:///home/me/once.txt", single_use=True)
    reusable = issue(key, clock, pattern="file:///home/me/many.txt")
    for token in (revoked, once, reusable):
        await store.add(token)
    await store.revoke(revoked.id)
    assert await store.authorize(FileRead(path="/home/me/once.txt")) is not None
    assert await storage.delete("cap_revoked", str(revoked.id))
    assert await storage.delete("cap_used", str(once.id))
    naive = await CapabilityStore.open(storage, [key.public_key], clock=clock)
    assert await naive.get(revoked.id) is not None  # what a deleted row did before reconcile
    fresh = await CapabilityStore.open(storage, [key.public_key], clock=clock)
    problems = await fresh.reconcile(
        [str(revoked.id), "not-an-id"], [str(once.id), str(reusable.id)]
    )
    assert len(problems) == 2
    assert any("cap_revoked" in p and str(revoked.id) in p for p in problems)
    assert any("cap_used" in p and str(once.id) in p for p in problems)
    assert await fresh.get(revoked.id) is None
    assert await fresh.get(once.id) is None
    assert await fresh.get(reusable.id) is not None  # not single-use: authorizing is not spending
    again = await CapabilityStore.open(storage, [key.public_key], clock=clock)
    assert await again.get(revoked.id) is None  # the rows are back in storage
    assert await again.reconcile([str(revoked.id)], [str(once.id)]) == []


async def test_a_record_deleted_while_open_stops_authorizing_at_once(
    any_storage: Storage, key: KeyPair, clock: Any
) -> None:
    store = await CapabilityStore.open(any_storage, [key.public_key], clock=clock)
    token = issue(key, clock, "file:///home/me/notes.txt")
    await store.add(token)
    assert await store.authorize(READ_NOTES) is not None
    await any_storage.delete("cap_tokens", str(token.id))
    assert await store.authorize(READ_NOTES) is None
    assert "missing" in (await store.explain(token.id)).reason


async def test_loading_verifies_no_signature(
    any_storage: Storage, key: KeyPair, clock: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = await CapabilityStore.open(any_storage, [key.public_key], clock=clock)
    tokens = [issue(key, clock, f"file:///home/me/n{i}.txt") for i in range(5)]
    for token in tokens:
        await store.add(token)
    verified: list[str] = []
    original = CapabilityToken.verify

    def counting(self: CapabilityToken, trusted: Any) -> None:
        verified.append(str(self.id))
        original(self, trusted)

    monkeypatch.setattr(CapabilityToken, "verify", counting)
    reopened = await CapabilityStore.open(any_storage, [key.public_key], clock=clock)
    assert verified == []  # start-up does not grow with the tokens' signatures
    assert await reopened.authorize(FileRead(path="/home/me/n3.txt")) is not None
    assert str(tokens[3].id) in verified
