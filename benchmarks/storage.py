"""Storage throughput: astrid_core backends beside sqlite3 (WAL) doing the same work.

    uv run python benchmarks/storage.py [--n 2000]

Prints single-key put/s and get/s and the time of one 1,000-write transaction for
MemoryStorage, SurrealDB embedded in memory (mem://), SurrealDB embedded on disk (surrealkv in
a temp dir) and sqlite3 in WAL mode (synchronous=NORMAL, the same "handed to the OS, not
fsynced" durability), with ratios against sqlite. Runs in well under a minute.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import anyio

from astrid_core.storage import Put, Storage, open_storage

TXN_WRITES = 1_000


class SqliteKv:
    """The same namespaced JSON-text KV on sqlite3, as a baseline (blocking, in-thread)."""

    def __init__(self, path: Path) -> None:
        self.db = sqlite3.connect(path, isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.execute("CREATE TABLE kv (ns TEXT, k TEXT, v TEXT, PRIMARY KEY (ns, k))")

    def put(self, ns: str, key: str, value: object) -> None:
        text = json.dumps(value, sort_keys=True, separators=(",", ":"))
        self.db.execute("INSERT OR REPLACE INTO kv VALUES (?, ?, ?)", (ns, key, text))

    def get(self, ns: str, key: str) -> object:
        row = self.db.execute("SELECT v FROM kv WHERE ns = ? AND k = ?", (ns, key)).fetchone()
        return None if row is None else json.loads(row[0])

    def transaction(self, writes: list[tuple[str, str, object]]) -> None:
        self.db.execute("BEGIN IMMEDIATE")
        for ns, key, value in writes:
            self.put(ns, key, value)
        self.db.execute("COMMIT")


async def bench_raw_surreal(n: int) -> tuple[float, float, float]:
    """The SurrealDB SDK called directly (mem://): what our wrapper costs on top of it."""
    from surrealdb import AsyncSurreal

    db: Any = AsyncSurreal("mem://")
    await db.connect()
    await db.use("astrid", "astrid")
    text = json.dumps({"id": 1, "payload": "x" * 100}, sort_keys=True, separators=(",", ":"))
    put = "UPSERT type::thing('kv', [$ns, $k]) CONTENT { ns: $ns, k: $k, v: $v } RETURN NONE;"
    get = "RETURN (type::thing('kv', [$ns, $k])).v;"
    puts = await _rate(n, lambda i: db.query_raw(put, {"ns": "b", "k": f"key{i:08d}", "v": text}))
    gets = await _rate(n, lambda i: db.query_raw(get, {"ns": "b", "k": f"key{i:08d}"}))
    statements = "".join(
        f"UPSERT type::thing('kv', ['t', 'key{i:08d}']) CONTENT {{ ns: 't', v: $v }} RETURN NONE;"
        for i in range(TXN_WRITES)
    )
    start = time.perf_counter()
    await db.query_raw(f"BEGIN TRANSACTION;{statements}COMMIT TRANSACTION;", {"v": text})
    txn_ms = (time.perf_counter() - start) * 1000
    await db.close()
    return puts, gets, txn_ms


async def _rate(n: int, op: Callable[[int], Awaitable[object]]) -> float:
    start = time.perf_counter()
    for i in range(n):
        await op(i)
    return n / (time.perf_counter() - start)


async def bench_storage(store: Storage, n: int) -> tuple[float, float, float]:
    value = {"id": 1, "payload": "x" * 100}
    puts = await _rate(n, lambda i: store.put("bench", f"key{i:08d}", value))
    gets = await _rate(n, lambda i: store.get("bench", f"key{i:08d}"))
    writes = [Put("txn", f"key{i:08d}", value) for i in range(TXN_WRITES)]
    start = time.perf_counter()
    assert await store.transaction(writes)
    txn_ms = (time.perf_counter() - start) * 1000
    assert await store.get("txn", f"key{TXN_WRITES - 1:08d}") == value
    return puts, gets, txn_ms


def bench_sqlite(path: Path, n: int) -> tuple[float, float, float]:
    kv = SqliteKv(path)
    value = {"id": 1, "payload": "x" * 100}
    start = time.perf_counter()
    for i in range(n):
        kv.put("bench", f"key{i:08d}", value)
    puts = n / (time.perf_counter() - start)
    start = time.perf_counter()
    for i in range(n):
        kv.get("bench", f"key{i:08d}")
    gets = n / (time.perf_counter() - start)
    start = time.perf_counter()
    kv.transaction([("txn", f"key{i:08d}", value) for i in range(TXN_WRITES)])
    txn_ms = (time.perf_counter() - start) * 1000
    kv.db.close()
    return puts, gets, txn_ms


async def main(n: int) -> None:
    rows: list[tuple[str, tuple[float, float, float]]] = []
    with tempfile.TemporaryDirectory() as tmp:
        rows.append(("sqlite3 WAL (baseline)", bench_sqlite(Path(tmp) / "kv.sqlite", n)))
        rows.append(("raw surrealdb SDK mem://", await bench_raw_surreal(n)))
        for label, url in (
            ("astrid memory://", "memory://"),
            ("astrid SurrealDB mem://", "mem://"),
            ("astrid SurrealDB surrealkv", f"surrealkv://{tmp}/surreal"),
        ):
            store = await open_storage(url)
            try:
                rows.append((label, await bench_storage(store, n)))
            finally:
                await store.aclose()
    base_put, base_get, base_txn = rows[0][1]
    print(f"n = {n} single-key operations, transaction = {TXN_WRITES} writes")
    header = f"{'backend':<28} {'put/s':>10} {'x sqlite':>9} {'get/s':>10} {'x sqlite':>9}"
    print(header + f" {'txn ms':>9} {'x sqlite':>9}")
    for label, (puts, gets, txn_ms) in rows:
        print(
            f"{label:<28} {puts:>10,.0f} {puts / base_put:>9.2f} {gets:>10,.0f} "
            f"{gets / base_get:>9.2f} {txn_ms:>9.1f} {txn_ms / base_txn:>9.2f}"
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="astrid_core storage benchmark")
    parser.add_argument("--n", type=int, default=5000, help="single-key puts and gets per backend")
    anyio.run(main, parser.parse_args().n)
