"""A 1M-entry audit log: daemon start, first inclusion proof, RSS, full verify (issue #26).

    uv run python benchmarks/scale.py                    # 1,000,000 entries (~3-6 min to build)
    uv run python benchmarks/scale.py --entries 100000
    uv run python benchmarks/scale.py --home DIR         # reuse a home built before (or build it)

What it does:

1. **Generate** (fast path, same format): an ``ASTRID_HOME`` with a runtime key, the default
   store (sqlite3) and the witness file, filled through ``AuditLog.enqueue`` + ``flush`` in
   batches of 10,000 — the log's own code writes every entry, tile, index row, checkpoint (every
   1,000 entries, witnessed) and seal, 10,000 entries per transaction instead of one decision's
   worth. 16 sessions, one action each; entries are signed by the home's key.
2. **Measure**, each in a fresh process (cold: nothing of the log in memory; the OS page cache
   is whatever the previous step left, which is what a restarting daemon sees):
   * ``daemon ready``: ``AgentRuntime.open(home)`` — storage, audit log (tiles, witness check),
     capability index and reconcile, sessions: everything the daemon does before it serves.
     Baseline in the same process: opening the bare storage (sqlite3 connect + lock).
   * ``first inclusion proof``: right after open, the proof of a random old entry in the newest
     stored checkpoint (entry found through the id index, tiles read), then the same for another
     entry (warm: tiles cached) — and verified against the checkpoint's root.
   * ``RSS``: the process's peak resident set after open and the proofs (ru_maxrss), with the
     interpreter and imports alone (measured before opening) as the baseline.
   * ``audit verify``: the full offline verification (``verify_offline``: load, parse, every
     hash and signature, chains, checkpoints, the witness, tiles and heads), timed in-process.

Targets (issue #26): daemon ready < 3 s, first inclusion proof < 50 ms, RSS < 200 MiB.
Nothing is asserted: it prints.
"""

from __future__ import annotations

import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ENTRIES = int(sys.argv[sys.argv.index("--entries") + 1]) if "--entries" in sys.argv else 1_000_000
HOME = Path(sys.argv[sys.argv.index("--home") + 1]) if "--home" in sys.argv else None
BATCH = 10_000


def rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


async def generate(home: Path, entries: int) -> None:
    from astrid_audit import AuditLog, Outcome, OutcomeKind
    from astrid_core import FileRead, SessionId
    from astrid_core.storage import open_storage, state_url
    from astrid_crypto import KeyPair
    from astrid_runtime._audit_witness import audit_witness
    from astrid_runtime.config import load_config

    loaded = load_config(home, env={})
    key = KeyPair.load_or_create(home / loaded.config.keys.runtime_key)
    storage = await open_storage(state_url(home / "state", loaded.config.storage.backend))
    try:
        log = await AuditLog.open(
            storage,
            key,
            checkpoint_every=loaded.config.audit.checkpoint_every,
            witness=audit_witness(home, loaded.config),
        )
        sessions = [SessionId.new() for _ in range(16)]
        actions = [FileRead(path=f"/ws/src/file{i}.py") for i in range(16)]
        start = time.perf_counter()
        done = log.size
        while done < entries:
            for i in range(done, min(entries, done + BATCH)):
                log.enqueue(
                    Outcome(kind=OutcomeKind.EXECUTED, success=True, reason=f"step {i}"),
                    session_id=sessions[i % 16],
                    action=actions[i % 16],
                )
            await log.flush()
            done = log.size
            rate = done / (time.perf_counter() - start)
            print(f"\r  generated {done:,} entries ({rate:,.0f}/s)", end="", flush=True)
        await log.checkpoint()
        print()
    finally:
        await storage.aclose()


OPEN = r"""
import json, random, resource, sys, time
t0 = time.perf_counter()
import anyio
from pathlib import Path
from astrid_audit import verify_inclusion
from astrid_audit._merkle import leaf_hash
from astrid_core.storage import open_storage, state_url
from astrid_runtime.runtime import AgentRuntime
imported = time.perf_counter() - t0
rss_base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

async def main(home: Path) -> None:
    t = time.perf_counter()
    bare = await open_storage(state_url(home / "state"))
    await bare.aclose()
    bare_s = time.perf_counter() - t
    t = time.perf_counter()
    runtime = await AgentRuntime.open(home)
    ready_s = time.perf_counter() - t
    try:
        audit = runtime.audit
        checkpoint = (await audit.checkpoints())[-1]
        rng = random.Random(7)
        proofs = []
        for _ in range(2):
            seq = rng.randrange(checkpoint.tree_size)
            raw = await runtime.storage.get("audit_entry", f"{seq:012d}")
            entry_id = raw["id"]
            t = time.perf_counter()
            entry, proof = await audit.inclusion_proof_for(entry_id, checkpoint)
            proofs.append(time.perf_counter() - t)
            verify_inclusion(leaf_hash(bytes.fromhex(entry.hash)), entry.seq,
                             checkpoint.tree_size, [bytes.fromhex(p) for p in proof],
                             bytes.fromhex(checkpoint.root))
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(json.dumps({"imports_s": imported, "bare_open_s": bare_s, "ready_s": ready_s,
                          "proof_cold_s": proofs[0], "proof_warm_s": proofs[1],
                          "rss_base_mib": rss_base, "rss_mib": rss, "size": audit.size}))
    finally:
        await runtime.aclose()

anyio.run(main, Path(sys.argv[1]))
"""

VERIFY = r"""
import json, resource, sys, time
import anyio
from pathlib import Path
from astrid_runtime._audit_witness import verify_offline

async def main(home: Path) -> None:
    t = time.perf_counter()
    result = await verify_offline(home)
    took = time.perf_counter() - t
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"verify_s": took, "entries": result.report.entries, "rss_mib": rss}))

anyio.run(main, Path(sys.argv[1]))
"""


def child(script: str, home: Path) -> dict[str, float]:
    run = subprocess.run(
        [sys.executable, "-c", script, str(home)],
        capture_output=True,
        text=True,
        timeout=3600,
        check=False,
        env={**os.environ, "ASTRID_HOME": str(home)},
    )
    if run.returncode != 0:
        raise SystemExit(f"child failed:\n{run.stderr[-3000:]}")
    return json.loads(run.stdout.strip().splitlines()[-1])


def main() -> None:
    import anyio

    with tempfile.TemporaryDirectory(dir=os.environ.get("ASTRID_BENCH_DIR")) as tmp:
        home = HOME or Path(tmp) / "home"
        home.mkdir(parents=True, exist_ok=True, mode=0o700)
        t = time.perf_counter()
        anyio.run(generate, home, ENTRIES)
        print(f"generated in {time.perf_counter() - t:.1f} s (store: {_size(home / 'state')})")
        opened = child(OPEN, home)
        print(f"entries                         {opened['size']:>12,.0f}")
        print(
            f"daemon ready (AgentRuntime.open) {opened['ready_s'] * 1000:>11,.0f} ms   "
            f"(bare storage open {opened['bare_open_s'] * 1000:,.1f} ms; imports "
            f"{opened['imports_s'] * 1000:,.0f} ms, not counted)   target < 3,000 ms"
        )
        print(
            f"first inclusion proof (cold)    {opened['proof_cold_s'] * 1000:>11,.2f} ms   "
            f"warm {opened['proof_warm_s'] * 1000:,.2f} ms   target < 50 ms"
        )
        print(
            f"RSS after open + proofs         {opened['rss_mib']:>11,.0f} MiB  "
            f"(interpreter + imports alone {opened['rss_base_mib']:,.0f} MiB)   target < 200 MiB"
        )
        verified = child(VERIFY, home)
        print(
            f"audit verify --offline (full)   {verified['verify_s']:>11,.1f} s    "
            f"{verified['entries'] / verified['verify_s']:,.0f} entries/s, "
            f"RSS {verified['rss_mib']:,.0f} MiB"
        )


def _size(path: Path) -> str:
    total = sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    return f"{total / 2**20:,.0f} MiB"


if __name__ == "__main__":
    random.seed(0)
    main()
