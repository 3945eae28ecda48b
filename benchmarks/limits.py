"""The machine's own ceilings for durable signed appends, measured in this run.

What it measures, each as completed operations per second, in ROUNDS interleaved rounds (one
round runs every measure once, so a slow moment of the host hits all of them alike); the
figure printed is the median round:

* ``write+fsync 900 B``: append one 900-byte record to a file opened O_APPEND and fsync it —
  the most a durable log that fsyncs every entry can do on this disk.
* ``sqlite3 WAL FULL, batch 1`` / ``batch 16``: INSERT rows of 900 bytes into a sqlite3
  database in WAL mode with ``synchronous=FULL`` (an fsync per commit), one row per transaction
  and 16 rows per transaction (what a group commit can reach). Rows/s.
* ``Ed25519 sign (libsodium)``: ``crypto_sign`` on a 32-byte hash through PyNaCl's bindings,
  with no wrapper objects — the signing ceiling.
* ``BLAKE3 of 900 B``: hashing one entry's bytes.
* ``entry CPU (hash + sign)``: the CPU an audit entry needs at the least (BLAKE3 of 900 bytes,
  then sign the 32-byte digest), no storage.

These are the baselines that the audit and interceptor benchmarks compare against (issue #26:
"the project uses 0.1 to 0.26 of what the machine allows"); run them in the same session to read
a fraction. Nothing here is asserted: it prints.

uv run python benchmarks/limits.py [--quick]
"""

from __future__ import annotations

import os
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import blake3
import nacl.bindings

QUICK = "--quick" in sys.argv
ROUNDS = 3 if QUICK else 5
SECONDS = 0.3 if QUICK else 1.0  # time budget of one measure in one round
RECORD = os.urandom(450).hex().encode()  # 900 bytes, like a signed audit entry


def per_second(step: Callable[[], int], seconds: float) -> float:
    """Run ``step`` (which returns how many operations it completed) for about ``seconds``."""
    done = 0
    start = time.perf_counter()
    deadline = start + seconds
    while time.perf_counter() < deadline:
        done += step()
    return done / (time.perf_counter() - start)


def main() -> None:
    seed = os.urandom(32)
    secret = nacl.bindings.crypto_sign_seed_keypair(seed)[1]
    digest = blake3.blake3(RECORD).digest()

    with tempfile.TemporaryDirectory(dir=os.environ.get("ASTRID_BENCH_DIR")) as tmp:
        log_fd = os.open(Path(tmp) / "log", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        db = sqlite3.connect(Path(tmp) / "wal.db", isolation_level=None)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=FULL")
        db.execute("CREATE TABLE entries (seq INTEGER PRIMARY KEY, body BLOB)")

        def fsync_append() -> int:
            os.write(log_fd, RECORD + b"\n")
            os.fsync(log_fd)
            return 1

        def sqlite_batch(n: int) -> Callable[[], int]:
            rows = [(RECORD,)] * n

            def step() -> int:
                db.execute("BEGIN")
                db.executemany("INSERT INTO entries (body) VALUES (?)", rows)
                db.execute("COMMIT")
                return n

            return step

        def sign() -> int:
            for _ in range(100):
                nacl.bindings.crypto_sign(digest, secret)
            return 100

        def hash_only() -> int:
            for _ in range(100):
                blake3.blake3(RECORD).digest()
            return 100

        def entry_cpu() -> int:
            for _ in range(100):
                nacl.bindings.crypto_sign(blake3.blake3(RECORD).digest(), secret)
            return 100

        measures: dict[str, Callable[[], int]] = {
            "write+fsync 900 B (appends/s)": fsync_append,
            "sqlite3 WAL FULL, batch 1 (rows/s)": sqlite_batch(1),
            "sqlite3 WAL FULL, batch 16 (rows/s)": sqlite_batch(16),
            "Ed25519 sign, libsodium (/s)": sign,
            "BLAKE3 of 900 B (/s)": hash_only,
            "entry CPU, hash + sign (/s)": entry_cpu,
        }
        results: dict[str, list[float]] = {name: [] for name in measures}
        for _ in range(ROUNDS):
            for name, step in measures.items():
                results[name].append(per_second(step, SECONDS))
        os.close(log_fd)
        db.close()

    print(f"machine ceilings, median of {ROUNDS} interleaved rounds ({SECONDS:.1f} s each)")
    print(f"{'measure':40} {'median':>12} {'min':>12} {'max':>12}")
    for name, values in results.items():
        print(
            f"{name:40} {statistics.median(values):12,.0f} {min(values):12,.0f} "
            f"{max(values):12,.0f}"
        )
    cpu = statistics.median(results["entry CPU, hash + sign (/s)"])
    print(f"one entry's CPU at the least: {1e6 / cpu:.1f} µs")


if __name__ == "__main__":
    main()
