"""One suite, every backend: memory://, SurrealDB mem:// and SurrealDB surrealkv://dir."""

from __future__ import annotations

import json
from typing import Any

import anyio
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from astrid_core import BadInputError, StorageError
from astrid_core.storage import MAX_KEY_LENGTH, Delete, Expect, Put, Storage

pytestmark = pytest.mark.anyio

VALUES: list[Any] = [
    0,
    1,
    -(2**63),
    2**70,
    1.5,
    1.0,
    True,
    False,
    "",
    "héllo ☃ 😀 \u202e",
    [],
    {},
    [1, [2, [3, {}]]],
    {"a": {"b": [None, 1, "x"]}, "é": 0},
    {"null": None},
]


@pytest.mark.parametrize("value", VALUES, ids=[repr(v)[:30] for v in VALUES])
async def test_values_round_trip_exactly(storage: Storage, value: Any) -> None:
    await storage.put("ns", "k", value)
    got = await storage.get("ns", "k")
    assert got == value
    assert type(got) is type(value)  # 1 stays int, 1.0 stays float, True stays bool
    if isinstance(value, list) and value:
        assert type(got[0]) is type(value[0])  # type: ignore[index]


async def test_get_absent_is_none(storage: Storage) -> None:
    assert await storage.get("ns", "missing") is None


async def test_put_overwrites_and_namespaces_are_separate(storage: Storage) -> None:
    await storage.put("a", "k", 1)
    await storage.put("b", "k", 2)
    await storage.put("a", "k", 3)
    assert await storage.get("a", "k") == 3
    assert await storage.get("b", "k") == 2


async def test_returned_values_are_copies(storage: Storage) -> None:
    value: dict[str, Any] = {"list": [1]}
    await storage.put("ns", "k", value)
    value["list"].append(2)
    got = await storage.get("ns", "k")
    assert got == {"list": [1]}
    got["list"].append(3)  # type: ignore[index]
    assert await storage.get("ns", "k") == {"list": [1]}


async def test_hostile_keys_are_data_not_code(storage: Storage) -> None:
    keys = [
        "'; DELETE kv; --",
        '"]) ; REMOVE TABLE kv; //',
        "$ns",
        "kv:⟨x⟩",
        "a\nb\tc",
        "x" * MAX_KEY_LENGTH,
        "😀",
    ]
    for i, key in enumerate(keys):
        await storage.put("ns", key, i)
    for i, key in enumerate(keys):
        assert await storage.get("ns", key) == i
    assert [k for k, _ in await storage.scan("ns")] == sorted(keys)


async def test_delete(storage: Storage) -> None:
    assert await storage.delete("ns", "k") is False
    await storage.put("ns", "k", 1)
    assert await storage.delete("ns", "k") is True
    assert await storage.get("ns", "k") is None
    assert await storage.delete("ns", "k") is False


async def test_cas_from_absent(storage: Storage) -> None:
    assert await storage.compare_and_set("ns", "k", None, 1) is True
    assert await storage.compare_and_set("ns", "k", None, 2) is False  # no longer absent
    assert await storage.get("ns", "k") == 1


async def test_cas_replace_and_wrong_expectation(storage: Storage) -> None:
    await storage.put("ns", "k", {"n": 1})
    assert await storage.compare_and_set("ns", "k", {"n": 2}, {"n": 3}) is False
    assert await storage.get("ns", "k") == {"n": 1}
    assert await storage.compare_and_set("ns", "k", {"n": 1}, {"n": 2}) is True
    assert await storage.get("ns", "k") == {"n": 2}


async def test_cas_to_delete(storage: Storage) -> None:
    await storage.put("ns", "k", "v")
    assert await storage.compare_and_set("ns", "k", "other", None) is False
    assert await storage.get("ns", "k") == "v"
    assert await storage.compare_and_set("ns", "k", "v", None) is True
    assert await storage.get("ns", "k") is None


async def test_cas_compares_json_not_python_equality(storage: Storage) -> None:
    # In Python True == 1 == 1.0; a token marked used=True must not match "used == 1".
    await storage.put("ns", "k", 1)
    assert await storage.compare_and_set("ns", "k", True, 5) is False
    assert await storage.compare_and_set("ns", "k", 1.0, 5) is False
    assert await storage.get("ns", "k") == 1
    # Object key order is not part of the value.
    await storage.put("ns", "o", {"a": 1, "b": 2})
    assert await storage.compare_and_set("ns", "o", {"b": 2, "a": 1}, "done") is True


async def test_concurrent_cas_has_exactly_one_winner(storage: Storage) -> None:
    import anyio

    await storage.put("ns", "token", "unused")
    wins: list[int] = []

    async def spend(i: int) -> None:
        if await storage.compare_and_set("ns", "token", "unused", f"used-by-{i}"):
            wins.append(i)

    async with anyio.create_task_group() as tg:
        for i in range(20):
            tg.start_soon(spend, i)
    assert len(wins) == 1
    assert await storage.get("ns", "token") == f"used-by-{wins[0]}"


async def test_transaction_applies_all_writes(storage: Storage) -> None:
    await storage.put("ns", "gone", 0)
    ok = await storage.transaction(
        [Put("ns", "a", 1), Put("other", "b", [2]), Delete("ns", "gone"), Put("ns", "a", 3)]
    )
    assert ok is True
    assert await storage.get("ns", "a") == 3  # later writes win
    assert await storage.get("other", "b") == [2]
    assert await storage.get("ns", "gone") is None


async def test_transaction_precondition_failure_writes_nothing(storage: Storage) -> None:
    await storage.put("ns", "balance", 10)
    await storage.put("ns", "keep", "me")
    ok = await storage.transaction(
        [Put("ns", "balance", 0), Put("ns", "new", 1), Delete("ns", "keep")],
        expect=[Expect("ns", "balance", 10), Expect("ns", "absent", "something")],
    )
    assert ok is False
    assert await storage.get("ns", "balance") == 10
    assert await storage.get("ns", "new") is None
    assert await storage.get("ns", "keep") == "me"


async def test_transaction_expect_absent_and_present(storage: Storage) -> None:
    await storage.put("ns", "x", [1])
    ok = await storage.transaction(
        [Put("ns", "y", 1)], expect=[Expect("ns", "x", [1]), Expect("ns", "y", None)]
    )
    assert ok is True
    assert await storage.transaction([Put("ns", "y", 2)], expect=[Expect("ns", "y", None)]) is False
    assert await storage.get("ns", "y") == 1


async def test_empty_transaction(storage: Storage) -> None:
    assert await storage.transaction([]) is True
    assert await storage.transaction([], expect=[Expect("ns", "k", 1)]) is False


async def test_scan_prefix_sorted_and_limited(storage: Storage) -> None:
    keys = ["b/2", "a/1", "b/10", "b/1", "c", "b", "bb/1", "B/1", "b/é", "b/😀"]
    for i, key in enumerate(keys):
        await storage.put("ns", key, i)
    await storage.put("other", "b/zzz", "not mine")
    got = await storage.scan("ns", "b/")
    expected = sorted(k for k in keys if k.startswith("b/"))
    assert [k for k, _ in got] == expected
    assert all(v == keys.index(k) for k, v in got)
    assert [k for k, _ in await storage.scan("ns", "b/", limit=2)] == expected[:2]
    assert await storage.scan("ns", "b/", limit=0) == []
    assert [k for k, _ in await storage.scan("ns")] == sorted(keys)
    assert await storage.scan("ns", "zzz") == []
    assert await storage.scan("empty") == []


async def test_scan_prefix_is_literal(storage: Storage) -> None:
    await storage.put("ns", "a%b", 1)
    await storage.put("ns", "axb", 2)
    await storage.put("ns", "a.b", 3)
    assert await storage.scan("ns", "a%") == [("a%b", 1)]
    assert await storage.scan("ns", "a.") == [("a.b", 3)]


@pytest.mark.parametrize("namespace", ["", "Upper", "1abc", "a-b", "a" * 64, "a b", "é"])
async def test_bad_namespace(storage: Storage, namespace: str) -> None:
    for call in (
        lambda: storage.get(namespace, "k"),
        lambda: storage.put(namespace, "k", 1),
        lambda: storage.delete(namespace, "k"),
        lambda: storage.scan(namespace),
        lambda: storage.compare_and_set(namespace, "k", None, 1),
    ):
        with pytest.raises(BadInputError, match="namespace"):
            await call()


@pytest.mark.parametrize(
    ("key", "problem"),
    [
        ("", "empty"),
        ("x" * (MAX_KEY_LENGTH + 1), "characters long"),
        ("a\x00b", "NUL"),
        ("\ud800", "surrogate"),
    ],
)
async def test_bad_key(storage: Storage, key: str, problem: str) -> None:
    for call in (
        lambda: storage.get("ns", key),
        lambda: storage.put("ns", key, 1),
        lambda: storage.delete("ns", key),
        lambda: storage.compare_and_set("ns", key, None, 1),
    ):
        with pytest.raises(BadInputError, match=problem):
            await call()


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        (float("nan"), "nan"),
        (float("inf"), "inf"),
        ({1: "x"}, "non-string key"),
        ((1, 2), "tuple"),
        ({"a": {1, 2}}, r"\$\.a has type set"),
        (b"bytes", "bytes"),
        ({"s": "\udc80"}, "surrogate"),
        (None, "null"),
    ],
)
async def test_bad_value(storage: Storage, value: Any, problem: str) -> None:
    with pytest.raises(BadInputError, match=problem):
        await storage.put("ns", "k", value)
    with pytest.raises(BadInputError):
        await storage.transaction([Put("ns", "ok", 1), Put("ns", "k", value)])
    assert await storage.get("ns", "ok") is None  # nothing of a rejected transaction landed


async def test_too_deep_value(storage: Storage) -> None:
    value: Any = 1
    for _ in range(300):
        value = [value]
    with pytest.raises(BadInputError, match="nested deeper"):
        await storage.put("ns", "k", value)


async def test_scan_prefix_edges(storage: Storage) -> None:
    top = "\U0010ffff"
    keys = ["a", "a" + top, "a" + top + top, "b", top, top + "x", "\ud7ff", "\ue000"]
    for key in keys:
        await storage.put("ns", key, 1)
    await storage.put("nt", "a", 1)  # a neighbouring namespace never leaks in
    for prefix in ["", "a", "a" + top, top, "\ud7ff", "\ue000", "zz"]:
        got = [k for k, _ in await storage.scan("ns", prefix)]
        assert got == sorted(k for k in keys if k.startswith(prefix)), prefix


@pytest.mark.parametrize(
    ("prefix", "problem"), [("a\x00", "NUL"), ("\udc00", "surrogate"), (b"a", "not a string")]
)
async def test_bad_prefix(storage: Storage, prefix: Any, problem: str) -> None:
    with pytest.raises(BadInputError, match=problem):
        await storage.scan("ns", prefix)


@pytest.mark.parametrize("limit", [-1, 1.5, True, "3"])
async def test_bad_limit(storage: Storage, limit: Any) -> None:
    with pytest.raises(BadInputError, match="limit"):
        await storage.scan("ns", limit=limit)


async def test_closed_storage_refuses_everything(storage: Storage) -> None:
    await storage.put("ns", "k", 1)
    await storage.aclose()
    await storage.aclose()  # idempotent
    for call in (
        lambda: storage.get("ns", "k"),
        lambda: storage.put("ns", "k", 1),
        lambda: storage.delete("ns", "k"),
        lambda: storage.scan("ns"),
        lambda: storage.compare_and_set("ns", "k", 1, 2),
        lambda: storage.transaction([Put("ns", "k", 2)]),
        lambda: storage.transaction([]),
    ):
        with pytest.raises(StorageError, match="closed"):
            await call()


async def test_satisfies_protocol(storage: Storage) -> None:
    assert isinstance(storage, Storage)
    assert "://" in storage.url


def _encodable(text: str) -> bool:
    return all(not 0xD800 <= ord(c) <= 0xDFFF for c in text)


_text = st.text(st.characters(exclude_categories=["Cs"]))
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(st.characters(exclude_categories=["Cs"])),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(
            st.text(st.characters(exclude_categories=["Cs"]), max_size=8), children, max_size=4
        )
    ),
    max_leaves=12,
).filter(lambda v: v is not None)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    value=json_values,
    key=st.text(
        st.characters(exclude_categories=["Cs"], exclude_characters="\x00"), min_size=1, max_size=40
    ),
)
async def test_property_round_trip(storage: Storage, value: Any, key: str) -> None:
    await storage.put("prop", key, value)
    got = await storage.get("prop", key)
    assert got == value
    # Types survive, not just Python equality: 1 vs 1.0 vs True differ in JSON text.
    assert json.dumps(got, sort_keys=True) == json.dumps(value, sort_keys=True)
    assert await storage.compare_and_set("prop", key, value, value) is True
    assert (key, value) in await storage.scan("prop", key)


async def test_scan_from_a_start_key(storage: Storage) -> None:
    for i in range(12):
        await storage.put("ns", f"{i:04d}", i)
    await storage.put("ns", "x", 99)
    got = await storage.scan("ns", start="0009")
    assert [k for k, _ in got] == ["0009", "0010", "0011", "x"]
    assert [k for k, _ in await storage.scan("ns", "00", start="0010", limit=1)] == ["0010"]
    assert [k for k, _ in await storage.scan("ns", "001", start="0000")] == ["0010", "0011"]
    assert await storage.scan("ns", "00", start="1") == []


async def test_concurrent_transactions_fail_alone(storage: Storage) -> None:
    # Group commit (sqlite3) puts concurrent transactions in one COMMIT: one whose expectation
    # fails must not take the others with it, nor write anything itself.
    await storage.put("ns", "budget", 10)
    results: dict[int, bool] = {}

    async def one(i: int) -> None:
        expect = [Expect("ns", "budget", 10 if i % 2 == 0 else 11)]
        results[i] = await storage.transaction([Put("ns", f"entry{i:02d}", i)], expect=expect)

    async with anyio.create_task_group() as tg:
        for i in range(16):
            tg.start_soon(one, i)
    assert results == {i: i % 2 == 0 for i in range(16)}
    keys = [k for k, _ in await storage.scan("ns", "entry")]
    assert keys == [f"entry{i:02d}" for i in range(0, 16, 2)]
