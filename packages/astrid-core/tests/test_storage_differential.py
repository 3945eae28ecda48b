"""Differential property test: SurrealDB must behave exactly like the in-memory model."""

from __future__ import annotations

from typing import Any

import anyio
from hypothesis import given, settings
from hypothesis import strategies as st

from astrid_core.storage import Delete, Expect, Put, Storage, open_storage

NAMESPACES = st.sampled_from(["a", "b"])
KEYS = st.sampled_from(["k", "k/1", "k/2", "kk", "é", "\U0010ffff"])
VALUES: st.SearchStrategy[Any] = st.one_of(
    st.integers(-3, 3),
    st.booleans(),
    st.sampled_from([1.0, "1", "", [], {}, [1], {"x": 1}, {"x": True}]),
)
OPTIONAL: st.SearchStrategy[Any] = st.one_of(st.none(), VALUES)

OPS = st.lists(
    st.one_of(
        st.tuples(st.just("put"), NAMESPACES, KEYS, VALUES),
        st.tuples(st.just("delete"), NAMESPACES, KEYS),
        st.tuples(st.just("get"), NAMESPACES, KEYS),
        st.tuples(st.just("cas"), NAMESPACES, KEYS, OPTIONAL, OPTIONAL),
        st.tuples(st.just("scan"), NAMESPACES, st.sampled_from(["", "k", "k/", "\U0010ffff"])),
        st.tuples(
            st.just("txn"),
            st.lists(
                st.tuples(NAMESPACES, KEYS, OPTIONAL).map(
                    lambda t: Delete(t[0], t[1]) if t[2] is None else Put(*t)
                ),
                max_size=3,
            ),
            st.lists(st.tuples(NAMESPACES, KEYS, OPTIONAL).map(lambda t: Expect(*t)), max_size=2),
        ),
    ),
    max_size=25,
)


async def _apply(store: Storage, op: tuple[Any, ...]) -> Any:
    kind = op[0]
    if kind == "put":
        return await store.put(op[1], op[2], op[3])
    if kind == "delete":
        return await store.delete(op[1], op[2])
    if kind == "get":
        return await store.get(op[1], op[2])
    if kind == "cas":
        return await store.compare_and_set(op[1], op[2], op[3], op[4])
    if kind == "scan":
        return await store.scan(op[1], op[2])
    return await store.transaction(op[1], expect=op[2])


async def _run(ops: list[tuple[Any, ...]]) -> None:
    model = await open_storage("memory://")
    real = await open_storage("mem://")
    try:
        for op in ops:
            expected = await _apply(model, op)
            got = await _apply(real, op)
            assert repr(got) == repr(expected), op  # repr: 1 vs 1.0 vs True must match too
        for ns in ("a", "b"):
            assert await real.scan(ns) == await model.scan(ns)
    finally:
        await model.aclose()
        await real.aclose()


@settings(max_examples=150, deadline=None)
@given(ops=OPS)
def test_surreal_matches_memory_model(ops: list[tuple[Any, ...]]) -> None:
    anyio.run(_run, ops)
