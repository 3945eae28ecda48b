"""The Merkle tree against RFC 6962 vectors, and proofs as properties."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from astrid_audit import MerkleTree, sha256_hash, verify_consistency, verify_inclusion
from astrid_core import VerificationError

# Certificate Transparency's reference leaves and roots (RFC 6962, SHA-256).
CT_LEAVES = [
    b"",
    b"\x00",
    b"\x10",
    b"\x20\x21",
    b"\x30\x31",
    b"\x40\x41\x42\x43",
    b"\x50\x51\x52\x53\x54\x55\x56\x57",
    bytes(range(0x60, 0x70)),
]
CT_ROOTS = [
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
]
CT_PATH_LEAF0_SIZE8 = [
    "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
    "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
    "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
]


def test_rfc6962_roots() -> None:
    tree = MerkleTree(sha256_hash)
    assert tree.root().hex() == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    for size, (leaf, root) in enumerate(zip(CT_LEAVES, CT_ROOTS, strict=True), 1):
        tree.append_data(leaf)
        assert tree.root().hex() == root, f"size {size}"
    assert [p.hex() for p in tree.inclusion_proof(0)] == CT_PATH_LEAF0_SIZE8


def _tree(n: int) -> MerkleTree:
    tree = MerkleTree()
    for i in range(n):
        tree.append_data(i.to_bytes(4, "big"))
    return tree


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 300).flatmap(lambda n: st.tuples(st.just(n), st.integers(0, n - 1))))
def test_inclusion_proofs_verify(case: tuple[int, int]) -> None:
    n, i = case
    tree = _tree(n)
    verify_inclusion(tree.leaves[i], i, n, tree.inclusion_proof(i), tree.root())


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 300).flatmap(lambda n: st.tuples(st.integers(1, n), st.just(n))))
def test_consistency_proofs_verify(case: tuple[int, int]) -> None:
    m, n = case
    tree = _tree(n)
    verify_consistency(m, n, tree.root(m), tree.root(), tree.consistency_proof(m, n))


@settings(max_examples=60, deadline=None)
@given(
    st.integers(2, 200).flatmap(
        lambda n: st.tuples(st.just(n), st.integers(0, n - 1), st.integers(0, n - 1))
    )
)
def test_a_modified_leaf_never_verifies(case: tuple[int, int, int]) -> None:
    n, i, j = case
    tree = _tree(n)
    forged = bytearray(tree.leaves[j])
    forged[0] ^= 1
    with pytest.raises(VerificationError):
        verify_inclusion(bytes(forged), i, n, tree.inclusion_proof(i), tree.root())


def test_consistency_detects_rewritten_history() -> None:
    old = _tree(10)
    new = _tree(20)
    new.leaves[3] = bytes(32)
    new._complete.clear()  # pyright: ignore[reportPrivateUsage]
    with pytest.raises(VerificationError, match="extends"):
        verify_consistency(10, 20, old.root(), new.root(), new.consistency_proof(10, 20))


def test_proof_size_is_logarithmic() -> None:
    tree = _tree(5000)
    assert len(tree.inclusion_proof(1234)) <= 13
    assert len(tree.consistency_proof(1000)) <= 2 * 13
