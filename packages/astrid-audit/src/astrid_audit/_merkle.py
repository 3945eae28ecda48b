"""RFC 6962 / RFC 9162 Merkle tree: roots, inclusion and consistency proofs, verification.

Pure functions over a hash function (BLAKE3 for Astrid; SHA-256 reproduces Certificate
Transparency's test vectors, which is how the tree code is cross-checked). Leaves are hashed
as H(0x00 || data) and interior nodes as H(0x01 || left || right), so a leaf can never be
passed off as a node. Proofs are O(log n) hashes.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence

from astrid_core import VerificationError
from astrid_crypto import content_hash

__all__ = [
    "HashFn",
    "blake3_hash",
    "sha256_hash",
    "leaf_hash",
    "node_hash",
    "MerkleTree",
    "verify_inclusion",
    "verify_consistency",
    "root_from_leaves",
]

HashFn = Callable[[bytes], bytes]


def blake3_hash(data: bytes) -> bytes:
    # astrid-crypto is the one place that hashes (one BLAKE3 dependency, one implementation).
    return content_hash(data).digest


def sha256_hash(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def leaf_hash(data: bytes, h: HashFn = blake3_hash) -> bytes:
    return h(b"\x00" + data)


def node_hash(left: bytes, right: bytes, h: HashFn = blake3_hash) -> bytes:
    return h(b"\x01" + left + right)


def _split(n: int) -> int:
    """Largest power of two strictly smaller than n (n >= 2)."""
    return 1 << ((n - 1).bit_length() - 1)


class MerkleTree:
    """An append-only tree over leaf hashes, caching every complete power-of-two subtree.

    Complete aligned subtrees never change once full, so caching them makes the root and
    proofs O(log n) after the first computation.
    """

    def __init__(self, h: HashFn = blake3_hash) -> None:
        self.h = h
        self.leaves: list[bytes] = []  # leaf hashes (already H(0x00 || data))
        self._complete: dict[tuple[int, int], bytes] = {}

    def __len__(self) -> int:
        return len(self.leaves)

    def append_data(self, data: bytes) -> int:
        self.leaves.append(leaf_hash(data, self.h))
        return len(self.leaves) - 1

    def append_leaf_hash(self, value: bytes) -> int:
        self.leaves.append(value)
        return len(self.leaves) - 1

    def subtree(self, start: int, size: int) -> bytes:
        """MTH(D[start:start+size]) (RFC 6962 §2.1)."""
        if size == 0:
            return self.h(b"")
        if size == 1:
            return self.leaves[start]
        aligned = size & (size - 1) == 0 and start % size == 0
        if aligned and (start, size) in self._complete:
            return self._complete[(start, size)]
        k = _split(size)
        value = node_hash(self.subtree(start, k), self.subtree(start + k, size - k), self.h)
        if aligned and start + size <= len(self.leaves):
            self._complete[(start, size)] = value
        return value

    def root(self, size: int | None = None) -> bytes:
        n = len(self) if size is None else size
        if n > len(self):
            raise VerificationError(f"tree has {len(self)} leaves, not {n}")
        return self.subtree(0, n)

    def inclusion_proof(self, index: int, size: int | None = None) -> list[bytes]:
        """PATH(m, D[n]) (RFC 6962 §2.1.1)."""
        n = len(self) if size is None else size
        if not 0 <= index < n <= len(self):
            raise VerificationError(f"no leaf {index} in a tree of size {n}")
        return self._path(index, 0, n)

    def _path(self, m: int, start: int, n: int) -> list[bytes]:
        if n == 1:
            return []
        k = _split(n)
        if m < k:
            return [*self._path(m, start, k), self.subtree(start + k, n - k)]
        return [*self._path(m - k, start + k, n - k), self.subtree(start, k)]

    def consistency_proof(self, old_size: int, new_size: int | None = None) -> list[bytes]:
        """PROOF(m, D[n]) (RFC 6962 §2.1.2)."""
        n = len(self) if new_size is None else new_size
        if not 0 < old_size <= n <= len(self):
            raise VerificationError(f"no consistency proof from size {old_size} to {n}")
        if old_size == n:
            return []
        return self._subproof(old_size, 0, n, True)

    def _subproof(self, m: int, start: int, n: int, complete: bool) -> list[bytes]:
        if m == n:
            return [] if complete else [self.subtree(start, n)]
        k = _split(n)
        if m <= k:
            return [*self._subproof(m, start, k, complete), self.subtree(start + k, n - k)]
        return [*self._subproof(m - k, start + k, n - k, False), self.subtree(start, k)]


def root_from_leaves(leaf_hashes: Sequence[bytes], h: HashFn = blake3_hash) -> bytes:
    tree = MerkleTree(h)
    tree.leaves = list(leaf_hashes)
    return tree.root()


def verify_inclusion(
    leaf: bytes, index: int, size: int, proof: Sequence[bytes], root: bytes, h: HashFn = blake3_hash
) -> None:
    """RFC 9162 §2.1.3.2. ``leaf`` is the leaf hash. Raises VerificationError."""
    if not 0 <= index < size:
        raise VerificationError(f"inclusion proof: index {index} outside a tree of size {size}")
    fn, sn = index, size - 1
    r = leaf
    for p in proof:
        if sn == 0:
            raise VerificationError("inclusion proof is longer than the tree is deep")
        if fn & 1 or fn == sn:
            r = node_hash(p, r, h)
            if not fn & 1:
                while fn & 1 == 0 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node_hash(r, p, h)
        fn >>= 1
        sn >>= 1
    if sn != 0 or r != root:
        raise VerificationError(
            f"inclusion proof for leaf {index} does not lead to the signed root"
        )


def verify_consistency(
    old_size: int,
    new_size: int,
    old_root: bytes,
    new_root: bytes,
    proof: Sequence[bytes],
    h: HashFn = blake3_hash,
) -> None:
    """RFC 9162 §2.1.4.2. Raises VerificationError if the new tree does not extend the old."""
    if old_size == new_size:
        if proof or old_root != new_root:
            raise VerificationError("consistency: equal sizes need equal roots and an empty proof")
        return
    if not 0 < old_size < new_size:
        raise VerificationError(f"consistency: bad sizes {old_size} -> {new_size}")
    path = list(proof)
    if old_size & (old_size - 1) == 0:  # old tree is a complete subtree: its root starts the path
        path.insert(0, old_root)
    if not path:
        raise VerificationError("consistency proof is empty")
    fn, sn = old_size - 1, new_size - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            raise VerificationError("consistency proof is too long")
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr, h)
            sr = node_hash(c, sr, h)
            if not fn & 1:
                while fn & 1 == 0 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = node_hash(sr, c, h)
        fn >>= 1
        sn >>= 1
    if sn != 0 or fr != old_root or sr != new_root:
        raise VerificationError(
            f"consistency proof does not show that the size-{new_size} tree "
            f"extends the size-{old_size} tree",
            hint="entries were removed or rewritten between the two checkpoints",
        )
