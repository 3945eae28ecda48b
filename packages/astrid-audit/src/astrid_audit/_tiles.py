"""The Merkle tree of a stored log without holding it: tiles, as in C2SP tlog-tiles (Tessera).

Why: rebuilding the tree at start-up re-read and re-parsed every entry (6.3 s at 100k entries)
and kept every node in memory (241 MiB at 1M). Here the tree is stored as it grows, in the same
transaction as the entries, and start-up reads O(log n) records.

Layout (namespace ``audit_tile``, key ``LL/IIIIIIIIIIII``): the tile at level ``L`` and index
``i`` holds up to 256 consecutive node hashes of height ``8L`` — level 0 holds leaf hashes, level
1 the roots of full level-0 tiles, and so on — as one string of 64-hex-digit hashes. A full tile
never changes. For each level above 0 the partial tile on the right edge is rewritten when a tile
below it fills (once every 256^L entries); the partial tile of level 0 is not stored: start-up
takes its at most 255 leaves from the newest entries (one scan).

Any complete subtree of height ``h = 8L + r`` is ``2^r`` consecutive hashes of one tile of level
``L``, hashed up ``r`` times: a root, an inclusion or a consistency proof needs at most a few tiles
per level, i.e. O(log n) reads (each tile is read once and kept in a small cache).

The proof algorithms are ``MerkleTree``'s own (RFC 6962): they run twice, once to learn which
subtrees they ask for, then, once those are computed from tiles, for real.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeVar

from astrid_core import VerificationError
from astrid_core.storage import Put, Storage

from ._merkle import MerkleTree, blake3_hash, node_hash

__all__ = ["TiledTree", "NS_TILE", "TILE_WIDTH", "tile_key", "tile_text", "parse_tile"]

NS_TILE = "audit_tile"
TILE_HEIGHT = 8
TILE_WIDTH = 1 << TILE_HEIGHT  # 256 hashes
_HEX = 64
_CACHE_TILES = 64
_CACHE_SUBTREES = 4096

T = TypeVar("T")


def tile_key(level: int, index: int) -> str:
    return f"{level:02d}/{index:012d}"


def tile_text(hashes: Sequence[bytes]) -> str:
    return b"".join(hashes).hex()


def parse_tile(raw: object, level: int, index: int, count: int) -> list[bytes]:
    """The hashes of a stored tile that must hold ``count`` of them; VerificationError if not."""
    where = f"audit log: Merkle tile {tile_key(level, index)}"
    if not isinstance(raw, str) or len(raw) != count * _HEX:
        shown = "missing" if raw is None else f"{len(str(raw)) // _HEX} hashes"
        raise VerificationError(
            f"{where} should hold {count} hashes, it is {shown}",
            hint="the store was changed behind the daemon's back; run "
            "`astrid audit verify --offline` (it rebuilds the tree from the entries)",
        )
    try:
        data = bytes.fromhex(raw)
    except ValueError:
        raise VerificationError(f"{where} is not hex", hint="run `astrid audit verify`") from None
    return [data[i : i + 32] for i in range(0, len(data), 32)]


def _reduce(hashes: list[bytes]) -> bytes:
    """The root of a complete subtree over ``hashes`` (a power of two of them)."""
    while len(hashes) > 1:
        hashes = [node_hash(hashes[i], hashes[i + 1]) for i in range(0, len(hashes), 2)]
    return hashes[0]


class TiledTree(MerkleTree):
    """A ``MerkleTree`` whose nodes live in storage tiles; only the right edge is in memory.

    ``append_leaf_hash`` stays synchronous; ``pending_writes`` hands the tile rows that changed
    since the last call to the transaction that stores the entries. Roots and proofs are async:
    ``await tree.run(lambda t: t.inclusion_proof(m, n))``."""

    def __init__(self, storage: Storage) -> None:
        super().__init__(blake3_hash)
        self.storage = storage
        self._size = 0
        self.edge: list[list[bytes]] = [[]]  # edge[L]: the partial tile of level L
        self._changed: set[tuple[int, int]] = set()
        self._full: dict[tuple[int, int], list[bytes]] = {}  # tiles read or filled here
        self._ready: dict[tuple[int, int], bytes] = {}  # MTH(D[start:start+size]), immutable
        self._recording: list[tuple[int, int]] | None = None
        self.reads = 0  # storage reads made by this tree (tests count them)

    def __len__(self) -> int:
        return self._size

    # ------------------------------------------------------------------ growing

    def append_leaf_hash(self, value: bytes) -> int:
        index = self._size
        self._size += 1
        level, node = 0, value
        while True:
            if len(self.edge) <= level:
                self.edge.append([])
            row = self.edge[level]
            row.append(node)
            position = (self._size >> (TILE_HEIGHT * level)) - 1  # this node's index
            tile = position >> TILE_HEIGHT
            if level > 0:
                self._changed.add((level, tile))
            if len(row) < TILE_WIDTH:
                break
            self._full[(level, tile)] = row
            self._changed.add((level, tile))
            self.edge[level] = []
            level, node = level + 1, _reduce(row)
        return index

    def pending_writes(self) -> list[Put]:
        """Rows for every tile that filled, and every partial tile above level 0 that changed,
        since the last call; they go in the transaction that stores the same entries."""
        writes: list[Put] = []
        for level, index in sorted(self._changed):
            hashes = self._full.get((level, index))
            if hashes is None:
                hashes = self.edge[level]
            writes.append(Put(NS_TILE, tile_key(level, index), tile_text(hashes)))
        self._changed.clear()
        return writes

    def trim(self) -> None:
        """Drop cached full tiles beyond the cache size (they are stored)."""
        if len(self._full) > _CACHE_TILES:
            self._full.clear()

    def snapshot(self) -> tuple[int, list[list[bytes]], set[tuple[int, int]]]:
        """The state to restore if the transaction carrying the next writes fails."""
        return self._size, [list(row) for row in self.edge], set(self._changed)

    def restore(self, state: tuple[int, list[list[bytes]], set[tuple[int, int]]]) -> None:
        self._size, self.edge, self._changed = state[0], state[1], state[2]
        for key in [k for k in self._full if (k[1] + 1) << (TILE_HEIGHT * (k[0] + 1)) > self._size]:
            del self._full[key]  # a tile "filled" by the failed batch is not stored

    async def load(self, size: int, level0: Sequence[bytes]) -> None:
        """The right edge of a stored tree of ``size`` leaves: the partial tile of each level
        above 0 is read (one read per level), level 0's is ``level0`` (the newest leaves)."""
        self._size = size
        self.edge = []
        level = 0
        while True:
            count = (size >> (TILE_HEIGHT * level)) & (TILE_WIDTH - 1)
            if level == 0:
                if len(level0) != count:
                    raise VerificationError(
                        f"audit log: {len(level0)} of the newest {count} entries are stored",
                        hint="the store was changed behind the daemon's back; run "
                        "`astrid audit verify --offline`",
                    )
                self.edge.append(list(level0))
            elif count:
                index = size >> (TILE_HEIGHT * (level + 1))
                raw = await self.storage.get(NS_TILE, tile_key(level, index))
                self.reads += 1
                self.edge.append(parse_tile(raw, level, index, count))
            else:
                self.edge.append([])
            if size >> (TILE_HEIGHT * (level + 1)) == 0:
                break
            level += 1

    # ------------------------------------------------------------------ reading

    async def _tile(self, level: int, index: int) -> list[bytes]:
        if index == self._size >> (TILE_HEIGHT * (level + 1)):
            return self.edge[level]  # the partial tile on the right edge
        hashes = self._full.get((level, index))
        if hashes is None:
            raw = await self.storage.get(NS_TILE, tile_key(level, index))
            self.reads += 1
            hashes = parse_tile(raw, level, index, TILE_WIDTH)
            if len(self._full) >= _CACHE_TILES:
                self._full.clear()
            self._full[(level, index)] = hashes
        return hashes

    async def _node(self, height: int, index: int) -> bytes:
        level, rest = divmod(height, TILE_HEIGHT)
        first = index << rest  # the first node of height 8*level under it
        hashes = await self._tile(level, first >> TILE_HEIGHT)
        offset = first & (TILE_WIDTH - 1)
        return _reduce(hashes[offset : offset + (1 << rest)])

    async def _subtree(self, start: int, size: int) -> bytes:
        if size == 0:
            return self.h(b"")
        if size & (size - 1) == 0 and start % size == 0:
            return await self._node(size.bit_length() - 1, start // size)
        k = 1 << ((size - 1).bit_length() - 1)
        return node_hash(await self._subtree(start, k), await self._subtree(start + k, size - k))

    def subtree(self, start: int, size: int) -> bytes:
        if self._recording is not None:
            self._recording.append((start, size))
            return b"\0" * 32
        value = self._ready.get((start, size))
        if value is None:
            raise AssertionError(f"subtree {start}+{size} was not prepared (use TiledTree.run)")
        return value

    async def run(self, compute: Callable[[MerkleTree], T]) -> T:
        """``compute(self)`` (a root, a proof) with every subtree it asks for read first."""
        self._recording = []
        try:
            compute(self)
        except VerificationError:
            pass  # the real run raises it again
        finally:
            wanted, self._recording = self._recording, None
        if len(self._ready) + len(wanted) > _CACHE_SUBTREES:
            self._ready.clear()
        for start, size in wanted:
            if (start, size) not in self._ready:
                self._ready[(start, size)] = await self._subtree(start, size)
        return compute(self)

    async def aroot(self, size: int | None = None) -> bytes:
        return await self.run(lambda t: t.root(size))
