"""Capability authorization: authorize()/s with 1, 100 and 10,000 stored persistent tokens.

    uv run python benchmarks/capabilities.py [--n 3000]

The store is sqlite3 (the daemon's default; tokens written in one transaction, the format
``add`` writes). What each column measures, for one authorize() call:

* ``hit``: the matching token was used before: its record is re-read from storage (one read:
  a record deleted or edited since stops authorizing) and compared with the one verified; the
  signature check is the cached one; then expiry, revocation, single-use, the parent chain and
  resource/permission/caveat matching. ``exact`` (a literal URI, dict lookup) and ``glob``.
* ``miss``: the same, but the token was never used in this process (as after a restart): the
  record is read, parsed and its signature verified cold (both caches emptied before each call).
* ``no match``: nothing covers the action (no storage read: no candidate).

Baseline, interleaved with the measures (each round runs all of them once): one raw PyNaCl
Ed25519 verification, what a store that verified every token it looked at could not beat.
Also printed: opening a store of N tokens (parses every record to index it, verifies none).
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import anyio
import nacl.signing

from astrid_capabilities import (
    CapabilityStore,
    CapabilityToken,
    Permission,
    ResourcePattern,
    TokenScope,
    check_resource_uri,
)
from astrid_capabilities import _token as token_module
from astrid_core import AuditEntryId, FileRead, McpToolCall
from astrid_core.storage import Put, open_storage
from astrid_crypto import KeyPair

AUDIT = AuditEntryId.new()


def make_token(key: KeyPair, i: int) -> CapabilityToken:
    if i % 2:
        pattern = ResourcePattern(f"file:///home/user{i}/**")
        perms = [Permission.READ]
    else:
        pattern = ResourcePattern.literal(f"mcp://server{i % 100}/tool{i}")
        perms = [Permission.INVOKE]
    return CapabilityToken.issue(
        key, pattern, perms, scope=TokenScope.PERSISTENT, approval_audit_id=AUDIT, ttl_seconds=3600
    )


def rate(n: int, fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    for _ in range(n):
        fn()
    return n / (time.perf_counter() - start)


async def arate(n: int, fn: Callable[[], Awaitable[object]]) -> float:
    start = time.perf_counter()
    for _ in range(n):
        await fn()
    return n / (time.perf_counter() - start)


async def bench_store(
    key: KeyPair, count: int, n: int, baseline: Callable[[], object], root: Path
) -> dict[str, float]:
    storage = await open_storage(f"sqlite://{root / f'caps{count}'}")
    tokens = [make_token(key, i) for i in range(max(count, 2))]
    await storage.transaction([Put("cap_tokens", str(t.id), t.to_json()) for t in tokens])
    start = time.perf_counter()
    store = await CapabilityStore.open(storage, [key.public_key])
    opened = time.perf_counter() - start
    last = count - 1 if count > 1 and (count - 1) % 2 else 1
    glob_action = FileRead(path=f"/home/user{last}/docs/a.txt")
    exact_action = McpToolCall(server="server0", tool="tool0")
    assert await store.authorize(glob_action) is not None
    assert await store.authorize(exact_action) is not None
    no_match = FileRead(path="/etc/passwd")

    async def cold() -> object:
        store._verified.clear()  # pyright: ignore[reportPrivateUsage]
        token_module._verified.clear()  # pyright: ignore[reportPrivateUsage]
        return await store.authorize(exact_action)

    measures: dict[str, Callable[[], Awaitable[object]]] = {
        "exact hit": lambda: store.authorize(exact_action),
        "glob hit": lambda: store.authorize(glob_action),
        "miss": cold,
        "no match": lambda: store.authorize(no_match),
    }
    results: dict[str, list[float]] = {name: [] for name in [*measures, "baseline"]}
    for _ in range(3):
        results["baseline"].append(rate(n, baseline))
        for name, fn in measures.items():
            results[name].append(await arate(n, fn))
    await storage.aclose()
    medians = {name: statistics.median(values) for name, values in results.items()}
    medians["open ms"] = opened * 1000
    return medians


def split_costs(key: KeyPair, n: int) -> dict[str, float]:
    token = make_token(key, 3)
    record = token.to_json()
    trusted = [key.public_key]
    uri = "file:///home/user3/docs/a.txt"

    def cold_verify() -> None:
        token_module._verified.clear()  # pyright: ignore[reportPrivateUsage]
        token.verify(trusted)

    def match() -> None:
        token.resource.matches_checked(check_resource_uri(uri))

    return {
        "signature verify, cold (no cache)": rate(n, cold_verify),
        "signature verify, cached": rate(n, lambda: token.verify(trusted)),
        "parse stored record (from_json)": rate(n, lambda: CapabilityToken.from_json(record)),
        "URI check + pattern match": rate(n, match),
    }


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=3000, help="authorize() calls per measurement")
    args = parser.parse_args()
    key = KeyPair.generate()

    message = b"x" * 300
    signature = key.sign(message)
    verify_key = nacl.signing.VerifyKey(key.public_key.raw)
    baseline = rate(args.n, lambda: verify_key.verify(message, signature))
    print(f"baseline: raw Ed25519 verify (PyNaCl)      {baseline:>10,.0f} /s")
    print()
    print("cost split (per operation, one core):")
    for name, value in split_costs(key, args.n).items():
        print(f"  {name:<38} {value:>10,.0f} /s  ({1e6 / value:6.1f} µs)")
    print()
    header = ("stored tokens", "exact hit/s", "glob hit/s", "miss/s", "no match/s", "open ms")
    print(f"{header[0]:>14} " + " ".join(f"{h:>12}" for h in header[1:]) + "   hit/baseline")
    with tempfile.TemporaryDirectory(dir=os.environ.get("ASTRID_BENCH_DIR")) as tmp:
        for count in (1, 100, 10_000):
            r = await bench_store(
                key, count, args.n, lambda: verify_key.verify(message, signature), Path(tmp)
            )
            print(
                f"{count:>14,} {r['exact hit']:>12,.0f} {r['glob hit']:>12,.0f} "
                f"{r['miss']:>12,.0f} {r['no match']:>12,.0f} {r['open ms']:>12,.1f}   "
                f"{min(r['exact hit'], r['glob hit']) / r['baseline']:.2f}x "
                f"(baseline {r['baseline']:,.0f}/s, same rounds)"
            )


if __name__ == "__main__":
    anyio.run(main)
