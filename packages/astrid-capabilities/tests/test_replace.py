"""``CapabilityStore.replace``: a policy apply adds its tokens and revokes the previous ones in
one storage transaction — whole, or not at all."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from astrid_capabilities import CapabilityStore, CapabilityToken, ResourcePattern
from astrid_core import AuditEntryId, CapabilityDenied, FileRead
from astrid_core.storage import Expect, MemoryStorage, Put, Write
from astrid_crypto import KeyPair

from .conftest import NOW

pytestmark = pytest.mark.anyio
KEY = KeyPair(bytes(range(32)))


def grant(path: str) -> CapabilityToken:
    return CapabilityToken.issue(
        KEY,
        ResourcePattern.literal(f"file://{path}"),
        ["read"],
        scope="persistent",
        approval_audit_id=AuditEntryId.new(),
        now=NOW,
    )


class Refusing(MemoryStorage):
    refuse = False

    async def transaction(self, writes: Sequence[Write], *, expect: Sequence[Expect] = ()) -> bool:
        if self.refuse:
            return False
        return await super().transaction(writes, expect=expect)


async def test_replace_adds_and_revokes_in_one_transaction() -> None:
    store = CapabilityStore(MemoryStorage(), [KEY.public_key], clock=lambda: NOW)
    old = grant("/a")
    await store.add(old)
    new = grant("/b")
    revoked = await store.replace([new], [old.id], [Put("policy_state", "current", {"x": 1})])
    assert revoked == (old.id,)
    assert await store.authorize(FileRead(path="/a")) is None
    assert await store.authorize(FileRead(path="/b")) is not None
    reopened = CapabilityStore(store._storage, [KEY.public_key], clock=lambda: NOW)  # pyright: ignore[reportPrivateUsage]
    assert await reopened.authorize(FileRead(path="/a")) is None
    assert await reopened.authorize(FileRead(path="/b")) is not None


async def test_a_replace_that_does_not_commit_changes_nothing() -> None:
    storage = Refusing()
    store = CapabilityStore(storage, [KEY.public_key], clock=lambda: NOW)
    old = grant("/a")
    await store.add(old)
    storage.refuse = True
    with pytest.raises(CapabilityDenied, match="nothing was changed"):
        await store.replace([grant("/b")], [old.id])
    storage.refuse = False
    assert await store.authorize(FileRead(path="/a")) is not None
    assert await store.authorize(FileRead(path="/b")) is None
