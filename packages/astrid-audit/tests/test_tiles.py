"""Start-up does not grow with the log: the tree lives in tiles, opening reads O(log n) records.

The tiled tree must answer exactly what the in-memory ``MerkleTree`` answers (roots, inclusion
and consistency proofs) for any sizes, across tile and level boundaries; opening a log reads a
bounded number of records however long it is (counted on a real store); a tampered tile or
capability index is refused; a store written before (layout 1) is read in full once, then opens
in O(log n).
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from astrid_audit import AuditLog, FileWitness, Outcome, OutcomeKind, verify_inclusion
from astrid_audit._log import LAYOUT, NS_CAP, NS_HEAD, NS_ID, NS_META
from astrid_audit._merkle import MerkleTree, leaf_hash
from astrid_audit._tiles import NS_TILE, TILE_WIDTH, TiledTree, tile_key
from astrid_core import (
    Authorization,
    AuthorizationProof,
    JsonValue,
    ProofKind,
    SessionId,
    TokenId,
    VerificationError,
)
from astrid_core.storage import MemoryStorage, Storage
from astrid_crypto import KeyPair

pytestmark = pytest.mark.anyio


class CountingStorage(MemoryStorage):
    """The memory backend, counting the records each read returns (instrumentation only)."""

    def __init__(self) -> None:
        super().__init__()
        self.records = 0
        self.calls = 0

    async def get(self, namespace: str, key: str) -> JsonValue | None:
        self.calls += 1
        self.records += 1
        return await super().get(namespace, key)

    async def scan(
        self,
        namespace: str,
        prefix: str = "",
        *,
        limit: int | None = None,
        start: str | None = None,
    ) -> list[tuple[str, JsonValue]]:
        rows = await super().scan(namespace, prefix, limit=limit, start=start)
        self.calls += 1
        self.records += len(rows)
        return rows


def _leaves(n: int, seed: int = 0) -> list[bytes]:
    rng = random.Random(seed)
    return [leaf_hash(rng.randbytes(32)) for _ in range(n)]


async def _stored_tree(storage: Storage, leaves: Sequence[bytes], every: int) -> TiledTree:
    """Append ``leaves`` to a tiled tree, storing its tile rows every ``every`` leaves."""
    tree = TiledTree(storage)
    for i, leaf in enumerate(leaves):
        tree.append_leaf_hash(leaf)
        if (i + 1) % every == 0 or i + 1 == len(leaves):
            assert await storage.transaction(tree.pending_writes())
    reopened = TiledTree(storage)
    await reopened.load(len(leaves), leaves[len(leaves) - len(leaves) % TILE_WIDTH :])
    return reopened


async def test_tiled_tree_answers_like_the_merkle_tree_across_two_tile_levels() -> None:
    n = TILE_WIDTH * TILE_WIDTH + 3 * TILE_WIDTH + 7  # level 2 exists, partial tiles everywhere
    leaves = _leaves(n)
    full = MerkleTree()
    for leaf in leaves:
        full.append_leaf_hash(leaf)
    tree = await _stored_tree(MemoryStorage(), leaves, every=997)
    rng = random.Random(1)
    sizes = [1, 2, 255, 256, 257, 65535, 65536, 65537, n - 1, n]
    sizes += [rng.randrange(1, n + 1) for _ in range(20)]
    for size in sizes:
        assert await tree.aroot(size) == full.root(size), size
        m = rng.randrange(size)
        proof = await tree.run(lambda t, m=m, size=size: t.inclusion_proof(m, size))
        assert proof == full.inclusion_proof(m, size)
        verify_inclusion(leaves[m], m, size, proof, full.root(size))
        old = rng.randrange(1, size + 1)
        got = await tree.run(lambda t, old=old, size=size: t.consistency_proof(old, size))
        assert got == full.consistency_proof(old, size)


@settings(max_examples=30, deadline=None)
@given(n=st.integers(1, 1200), every=st.integers(1, 300), data=st.data())
def test_any_size_any_batching_same_answers(n: int, every: int, data: st.DataObject) -> None:
    import anyio

    leaves = _leaves(n, seed=n)
    full = MerkleTree()
    for leaf in leaves:
        full.append_leaf_hash(leaf)
    m = data.draw(st.integers(0, n - 1))

    async def check() -> None:
        tree = await _stored_tree(MemoryStorage(), leaves, every)
        assert await tree.aroot() == full.root()
        assert await tree.run(lambda t: t.inclusion_proof(m)) == full.inclusion_proof(m)

    anyio.run(check)


ALLOW = Authorization.allow(AuthorizationProof(kind=ProofKind.POLICY, detail="test"))


async def _fill(log: AuditLog, n: int, sessions: int = 16) -> list[SessionId]:
    ids = [SessionId.new() for _ in range(sessions)]
    for i in range(n):
        await log.append(
            Outcome(kind=OutcomeKind.DENIED, reason=f"step {i}"), session_id=ids[i % sessions]
        )
    return ids


async def test_opening_a_5000_entry_log_reads_o_log_n_records(tmp_path: Path) -> None:
    storage = CountingStorage()
    key = KeyPair.generate()
    witness = FileWitness(tmp_path / "witness")
    log = await AuditLog.open(storage, key, checkpoint_every=1000, witness=witness)
    sessions = await _fill(log, 5000)
    size, root = log.size, await log.tree.aroot()
    storage.records = storage.calls = 0
    reopened = await AuditLog.open(storage, key, checkpoint_every=1000, witness=witness)
    # salt, size, layout, rotations, one level-1 tile, and 5000 % 256 = 136 newest entries for
    # level 0; the witness check needs a few tiles more. Rebuilding read all 5,000 entries.
    assert storage.calls <= 12, storage.calls
    assert storage.records <= 5000 % TILE_WIDTH + 12, storage.records
    assert reopened.size == size
    assert await reopened.tree.aroot() == root
    # An inclusion proof of an old entry: O(log n) tile reads.
    storage.records = storage.calls = 0
    proof = await reopened.inclusion_proof(3, size)
    assert storage.calls <= 4, storage.calls
    third = (await reopened.entries())[3]
    verify_inclusion(
        leaf_hash(bytes.fromhex(third.hash)), 3, size, [bytes.fromhex(p) for p in proof], root
    )
    # A session's chain goes on where it was: its head is one read at its first append.
    storage.records = storage.calls = 0
    entry = await reopened.append(
        Outcome(kind=OutcomeKind.DENIED, reason="after"), session_id=sessions[3]
    )
    assert entry.chain_seq == len(range(3, 5000, 16))  # 313 entries before it in its chain
    # its head, and (first write after open) the capability index: rows, seal, entries after it
    assert storage.calls <= 4, storage.calls


async def test_chains_continue_after_reopen_and_verify(key: KeyPair) -> None:
    from astrid_audit import verify_storage

    storage = MemoryStorage()
    log = await AuditLog.open(storage, key, checkpoint_every=100)
    sessions = await _fill(log, 300, sessions=3)
    reopened = await AuditLog.open(storage, key, checkpoint_every=100)
    for session in sessions:
        await reopened.append(Outcome(kind=OutcomeKind.DENIED, reason="more"), session_id=session)
    await reopened.checkpoint()
    report = await verify_storage(storage, [key.public_key])
    assert report.entries == 303


async def test_a_tampered_tile_is_refused_at_open_or_by_its_proof_and_verify(
    tmp_path: Path, key: KeyPair
) -> None:
    from astrid_audit import verify_storage

    storage = MemoryStorage()
    witness = FileWitness(tmp_path / "witness")
    log = await AuditLog.open(storage, key, checkpoint_every=300, witness=witness)
    await _fill(log, 600)
    signed = await log.checkpoint()
    upper = await storage.get(NS_TILE, tile_key(1, 0))  # on the path of every root
    lower = await storage.get(NS_TILE, tile_key(0, 0))  # only under proofs of leaves 0..255
    assert isinstance(upper, str)
    assert isinstance(lower, str)
    await storage.put(NS_TILE, tile_key(1, 0), "00" * 32 + upper[64:])
    with pytest.raises(VerificationError, match="do not have the Merkle root"):
        await AuditLog.open(storage, key, checkpoint_every=300, witness=witness)
    await storage.put(NS_TILE, tile_key(1, 0), upper)
    await storage.put(NS_TILE, tile_key(0, 0), lower[:64] + "00" * 32 + lower[128:])
    reopened = await AuditLog.open(storage, key, checkpoint_every=300, witness=witness)
    proof = await reopened.inclusion_proof(0, signed.tree_size)  # a client checks it: fails
    first = (await reopened.entries())[0]
    with pytest.raises(VerificationError, match="does not lead to the signed root"):
        verify_inclusion(
            leaf_hash(bytes.fromhex(first.hash)),
            0,
            signed.tree_size,
            [bytes.fromhex(p) for p in proof],
            bytes.fromhex(signed.root),
        )
    with pytest.raises(VerificationError, match=r"Merkle tile 00/000000000000 is wrong"):
        await verify_storage(storage, [key.public_key])


async def test_a_cut_tail_with_its_tiles_is_refused(tmp_path: Path, key: KeyPair) -> None:
    storage = MemoryStorage()
    log = await AuditLog.open(storage, key, checkpoint_every=1000)
    await _fill(log, 300)
    await storage.put(NS_META, "size", 250)  # the size moved back, the entries are still there
    with pytest.raises(VerificationError, match="past the size record"):
        await AuditLog.open(storage, key)


async def test_deleting_a_revocation_from_the_index_is_refused(key: KeyPair) -> None:
    from astrid_audit import capability_history

    storage = MemoryStorage()
    log = await AuditLog.open(storage, key, checkpoint_every=1000)
    token = TokenId.new()
    token_proof = AuthorizationProof(kind=ProofKind.CAPABILITY, token_id=token)
    await log.append(
        Outcome(kind=OutcomeKind.ALLOWED, reason="used"),
        authorization=Authorization.allow(token_proof),
    )
    await log.append(
        Outcome(
            kind=OutcomeKind.CAPABILITY_REVOKED, reason="r", detail={"capability_ids": ["cap-b"]}
        )
    )
    await log.checkpoint()  # seals the capability index
    revoked, used, _ = await capability_history(await AuditLog.open(storage, key))
    assert revoked == {"cap-b"}
    assert used == {str(token)}
    for row in ("r/cap-b", f"u/{token}"):
        saved = await storage.get(NS_CAP, row)
        assert await storage.delete(NS_CAP, row)  # an attacker of the store revives a token
        with pytest.raises(VerificationError, match="differs from its signed seal"):
            await capability_history(await AuditLog.open(storage, key))
        assert saved is not None
        await storage.put(NS_CAP, row, saved)
    # After the seal, the entries themselves are read: a row deleted there is found again.
    await log.append(
        Outcome(
            kind=OutcomeKind.CAPABILITY_REVOKED, reason="r", detail={"capability_ids": ["cap-c"]}
        )
    )
    assert await storage.delete(NS_CAP, "r/cap-c")
    revoked, _, _ = await capability_history(await AuditLog.open(storage, key))
    assert revoked == {"cap-b", "cap-c"}


async def test_a_layout_1_store_is_read_once_then_opens_in_o_log_n(key: KeyPair) -> None:
    storage = CountingStorage()
    log = await AuditLog.open(storage, key, checkpoint_every=1000)
    sessions = await _fill(log, 700, sessions=2)
    root = await log.tree.aroot()
    for namespace in (NS_TILE, NS_HEAD, NS_ID, NS_CAP):  # what layout 1 did not have
        for row, _ in await storage.scan(namespace):
            await storage.delete(namespace, row)
    for row in ("layout", "rotations", "cap_seal"):
        await storage.delete(NS_META, row)
    migrated = await AuditLog.open(storage, key)
    assert await storage.get(NS_META, "layout") == LAYOUT
    assert await migrated.tree.aroot() == root
    storage.records = 0
    again = await AuditLog.open(storage, key)
    assert storage.records <= 700 % TILE_WIDTH + 12
    entry = await again.append(Outcome(kind=OutcomeKind.DENIED, reason="x"), session_id=sessions[0])
    assert entry.chain_seq == 350
    assert (await again.get(entry.id)) == entry
