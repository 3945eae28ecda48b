"""Audit log costs, each against a baseline measured in the same process, interleaved.

    uv run python benchmarks/audit.py            # ~3-4 min on a busy 2-core box
    uv run python benchmarks/audit.py --quick    # smaller sizes, fewer rounds
    uv run python benchmarks/audit.py --witness  # only the witness ratio

1. **Durable appends as a fraction of the machine's ceiling.** ROUNDS interleaved rounds; each
   round measures, one after the other on the same disk: sqlite3 itself (WAL,
   ``synchronous=FULL``, 900-byte rows) at 1 row per commit and at 16 rows per commit (what a
   perfect group commit reaches), and ``AuditLog.append`` (signed, hashed, chained, fsynced)
   on the sqlite3 backend (the daemon's default) sequentially (1 session) and with 16
   concurrent tasks each appending to its own session; then the same two on SurrealDB
   embedded (surrealkv, fsynced) for comparison. Completed appends per second; the ratio is
   the median over rounds of (audit appends/s) / (sqlite3 rows/s of the same round):
   sequential against batch 1, 16 sessions against batch 16. Target (issue #26): >= 0.5x.
2. **Full verification including load and parse**: ``verify_storage`` over a sqlite3 store of
   N entries (read every row, parse, hashes, signatures, chains, checkpoints, tiles), against
   raw Ed25519 verification of N signatures (PyNaCl bindings, no wrapper objects) in the same
   rounds.
3. **Inclusion proofs, cold and warm**: the first proof after ``AuditLog.open`` (tiles read
   from the store), then a second one (tiles cached), against the same proof from an in-memory
   ``MerkleTree`` holding every leaf, in the same process.
4. **Witness cost**: durable appends with and without the witness file, interleaved blocks.
"""

from __future__ import annotations

import os
import random
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path

import anyio
import nacl.bindings
import nacl.signing

from astrid_audit import (
    AuditLog,
    Checkpoint,
    FileWitness,
    MerkleTree,
    Outcome,
    OutcomeKind,
    verify_storage,
)
from astrid_audit._merkle import leaf_hash
from astrid_core import FileWrite, SessionId
from astrid_core.storage import open_storage
from astrid_crypto import KeyPair

QUICK = "--quick" in sys.argv
WITNESS_ONLY = "--witness" in sys.argv


async def witness_cost() -> None:
    """Two logs open side by side, one with the [audit] witness file and one without, take
    turns in blocks of appends (which goes first alternates), so the machine's load drifts over
    both alike; each side's rate is its appends over its own time."""
    n, block = (600, 20) if QUICK else (1000, 20)
    print("\nwitness cost, durable appends on sqlite3,")
    print(f"{n} sequential appends per log, interleaved in blocks of {block}")
    print(f"{'checkpoint_every':>16} {'no witness/s':>13} {'witness/s':>10} {'ratio':>7}")
    for every in (1000, 100):
        with tempfile.TemporaryDirectory() as tmp:
            root = Path(tmp)
            stores = [await open_storage(f"sqlite://{root / name}/db") for name in "ab"]
            try:
                logs = [
                    await AuditLog.open(stores[0], KeyPair.generate(), checkpoint_every=every),
                    await AuditLog.open(
                        stores[1],
                        KeyPair.generate(),
                        checkpoint_every=every,
                        witness=FileWitness(root / "witness" / "checkpoints"),
                    ),
                ]
                spent = [0.0, 0.0]
                paired: list[float] = []
                session = SessionId.new()
                action = FileWrite(path="/ws/src/main.py")
                for turn in range(n // block):
                    took = [0.0, 0.0]
                    for side in (turn % 2, 1 - turn % 2):
                        start = time.perf_counter()
                        for i in range(block):
                            await logs[side].append(
                                Outcome(kind=OutcomeKind.ALLOWED, reason=f"write {i}"),
                                session_id=session,
                                action=action,
                            )
                        took[side] = time.perf_counter() - start
                        spent[side] += took[side]
                    paired.append(took[0] / took[1])
                assert logs[1].witness is not None
                witnessed = len(logs[1].witness.heads())
            finally:
                for store in stores:
                    await store.aclose()
        bare, with_witness = n / spent[0], n / spent[1]
        print(
            f"{every:>16} {bare:>13,.0f} {with_witness:>10,.0f} {with_witness / bare:>6.2f}x"
            f"   ({witnessed} checkpoints witnessed; median of paired blocks "
            f"{statistics.median(paired):.2f}x)"
        )
    # The same cost without the machine's noise: what one witnessed checkpoint takes (an
    # O_APPEND write and an fsync), spread over the checkpoint_every appends it covers.
    with tempfile.TemporaryDirectory() as tmp:
        witness = FileWitness(Path(tmp) / "witness" / "checkpoints")
        key = KeyPair.generate()
        head = Checkpoint(tree_size=1, root="00" * 32, timestamp_ms=0, key_id=key.key_id)
        head = head.sealed(key)
        times: list[float] = []
        for _ in range(20):
            start = time.perf_counter()
            await witness.append(head)
            times.append(time.perf_counter() - start)
    per_checkpoint = statistics.median(times)
    per_append = 1 / bare
    for every in (1000, 100):
        share = per_checkpoint / every
        print(
            f"one witnessed checkpoint: {per_checkpoint * 1e3:.2f} ms (p50) = {share * 1e6:.1f} us "
            f"per append at checkpoint_every={every}: {1 / (1 + share / per_append):.3f}x"
        )


RECORD = os.urandom(450).hex().encode()  # 900 bytes, like a signed audit entry


def sqlite_rows_per_second(path: Path, batch: int, seconds: float) -> float:
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=FULL")
    db.execute("CREATE TABLE IF NOT EXISTS entries (seq INTEGER PRIMARY KEY, body BLOB)")
    rows = [(RECORD,)] * batch
    done = 0
    start = time.perf_counter()
    while time.perf_counter() - start < seconds:
        db.execute("BEGIN")
        db.executemany("INSERT INTO entries (body) VALUES (?)", rows)
        db.execute("COMMIT")
        done += batch
    took = time.perf_counter() - start
    db.close()
    return done / took


async def appends_on(url: str, n: int, sessions: int) -> float:
    storage = await open_storage(url)
    try:
        log = await AuditLog.open(storage, KeyPair.generate(), checkpoint_every=1000)
        action = FileWrite(path="/ws/src/main.py")
        per_task = n // sessions

        async def worker() -> None:
            session = SessionId.new()  # a session of its own: its own chain
            for i in range(per_task):
                await log.append(
                    Outcome(kind=OutcomeKind.ALLOWED, reason=f"write {i}"),
                    session_id=session,
                    action=action,
                )

        start = time.perf_counter()
        async with anyio.create_task_group() as tg:
            for _ in range(sessions):
                tg.start_soon(worker)
        return per_task * sessions / (time.perf_counter() - start)
    finally:
        await storage.aclose()


async def fractions() -> None:
    rounds = 3 if QUICK else 5
    n = 300 if QUICK else 800
    names = (
        "sqlite3 WAL FULL, batch 1 (rows/s)",
        "sqlite3 WAL FULL, batch 16 (rows/s)",
        "audit append, sqlite3, 1 session",
        "audit append, sqlite3, 16 sessions",
        "audit append, surrealkv, 1 session",
        "audit append, surrealkv, 16 sessions",
    )
    results: dict[str, list[float]] = {name: [] for name in names}
    for r in range(rounds):
        with tempfile.TemporaryDirectory(dir=os.environ.get("ASTRID_BENCH_DIR")) as tmp:
            root = Path(tmp)
            results[names[0]].append(sqlite_rows_per_second(root / "b1.db", 1, 1.0))
            results[names[1]].append(sqlite_rows_per_second(root / "b16.db", 16, 1.0))
            results[names[2]].append(await appends_on(f"sqlite://{root}/s1", n, 1))
            results[names[3]].append(await appends_on(f"sqlite://{root}/s16", n * 2, 16))
            results[names[4]].append(await appends_on(f"surrealkv://{root}/k1", n, 1))
            results[names[5]].append(await appends_on(f"surrealkv://{root}/k16", n * 2, 16))
        print(f"  round {r + 1}/{rounds} done", file=sys.stderr)
    print(f"durable appends, median of {rounds} interleaved rounds (same disk, same run)")
    print(f"{'measure':40} {'median/s':>10} {'min':>8} {'max':>8} {'ratio':>7}")
    base = {2: 0, 3: 1, 4: 0, 5: 1}
    for i, name in enumerate(names):
        values = results[name]
        ratio = ""
        if i in base:
            per_round = [a / b for a, b in zip(values, results[names[base[i]]], strict=True)]
            ratio = f"{statistics.median(per_round):.2f}x"
        print(
            f"{name:40} {statistics.median(values):10,.0f} {min(values):8,.0f} "
            f"{max(values):8,.0f} {ratio:>7}"
        )
    print("(ratio: against batch 1 for 1 session, batch 16 for 16 sessions; target >= 0.5x)")


async def verify_including_load() -> None:
    count = 5_000 if QUICK else 20_000
    rounds = 2 if QUICK else 3
    with tempfile.TemporaryDirectory(dir=os.environ.get("ASTRID_BENCH_DIR")) as tmp:
        storage = await open_storage(f"sqlite://{tmp}/db")
        key = KeyPair.generate()
        log = await AuditLog.open(storage, key, checkpoint_every=1000)
        sessions = [SessionId.new() for _ in range(16)]
        for i in range(count):
            outcome = Outcome(kind=OutcomeKind.EXECUTED, reason=str(i))
            log.enqueue(outcome, session_id=sessions[i % 16])
            if i % 5000 == 4999:
                await log.flush()
        await log.flush()
        await log.checkpoint()
        raw_key = nacl.signing.SigningKey.generate()
        signed = raw_key.sign(b"x" * 32)
        message, signature = signed.message, signed.signature
        public = bytes(raw_key.verify_key)
        full: list[float] = []
        raw: list[float] = []
        report = None
        for _ in range(rounds):
            start = time.perf_counter()
            report = await verify_storage(storage, [key.public_key])
            full.append(time.perf_counter() - start)
            start = time.perf_counter()
            for _ in range(count):
                nacl.bindings.crypto_sign_open(signature + message, public)
            raw.append(time.perf_counter() - start)
        await storage.aclose()
    assert report is not None
    assert report.entries == count
    print(
        f"\nfull verification of {count:,} entries on sqlite3, load and parse included: "
        f"{statistics.median(full):.2f} s ({count / statistics.median(full):,.0f} entries/s); "
        f"raw Ed25519 of {count:,} signatures, same rounds: {statistics.median(raw):.2f} s; "
        f"ratio {statistics.median(full) / statistics.median(raw):.1f}x"
    )


async def proofs_cold_and_warm() -> None:
    count = 5_000 if QUICK else 50_000
    with tempfile.TemporaryDirectory(dir=os.environ.get("ASTRID_BENCH_DIR")) as tmp:
        url = f"sqlite://{tmp}/db"
        storage = await open_storage(url)
        key = KeyPair.generate()
        log = await AuditLog.open(storage, key, checkpoint_every=1000)
        for i in range(count):
            log.enqueue(Outcome(kind=OutcomeKind.EXECUTED, reason=str(i)))
            if i % 5000 == 4999:
                await log.flush()
        await log.flush()
        await storage.aclose()
        memory = MerkleTree()
        cold: list[float] = []
        warm: list[float] = []
        base: list[float] = []
        rng = random.Random(3)
        for _ in range(5):
            storage = await open_storage(url)
            opened = await AuditLog.open(storage, key)
            if not memory.leaves:
                for _, raw in await storage.scan("audit_entry"):
                    memory.append_leaf_hash(leaf_hash(bytes.fromhex(str(raw["hash"]))))  # type: ignore[index, call-overload]
            first, second = rng.randrange(count), rng.randrange(count)
            start = time.perf_counter()
            proof = await opened.inclusion_proof(first, count)
            cold.append(time.perf_counter() - start)
            start = time.perf_counter()
            await opened.inclusion_proof(second, count)
            warm.append(time.perf_counter() - start)
            start = time.perf_counter()
            expected = memory.inclusion_proof(first, count)
            base.append(time.perf_counter() - start)
            assert proof == [p.hex() for p in expected]
            await storage.aclose()
    print(
        f"\ninclusion proof in a {count:,}-entry log on sqlite3: cold (first after open) "
        f"{statistics.median(cold) * 1e3:.2f} ms p50, warm {statistics.median(warm) * 1e3:.2f} ms; "
        f"in-memory MerkleTree with every leaf (baseline) {statistics.median(base) * 1e3:.3f} ms"
    )


async def main() -> None:
    if WITNESS_ONLY:
        await witness_cost()
        return
    await fractions()
    await verify_including_load()
    await proofs_cold_and_warm()
    await witness_cost()


if __name__ == "__main__":
    anyio.run(main)
