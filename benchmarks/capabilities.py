"""Capability authorization throughput: authorize()/s with 1, 100 and 10,000 stored tokens.

    uv run python benchmarks/capabilities.py [--n 5000]

Every authorize() re-reads the persistent token from storage (MemoryStorage here), parses it,
checks the signature against the trusted keys (cached by exact signed bytes), expiry,
revocation, single-use and the parent chain, then matches resource, permission and caveats.
The baseline, measured in this process, is one raw PyNaCl Ed25519 verification: a store that
verified every token it looked at without caching could not beat it. Also printed: the cost
split between signature verification (cold and cached), record parsing and pattern matching.
Half the tokens are exact URIs, half are globs, so both index paths are exercised.
Runs in well under a minute.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Awaitable, Callable

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
from astrid_core.storage import MemoryStorage
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


async def bench_store(key: KeyPair, count: int, n: int) -> tuple[float, float, float]:
    storage = MemoryStorage()
    store = CapabilityStore(storage, [key.public_key])
    for i in range(count):
        await store.add(make_token(key, i))
    glob_action = FileRead(path=f"/home/user{count - 1 if count > 1 else 1}/docs/a.txt")
    exact_action = McpToolCall(server="server0", tool="tool0")
    if count == 1:
        glob_action = FileRead(path="/home/user1/a.txt")
        await store.add(make_token(key, 1))
    assert await store.authorize(glob_action) is not None
    assert await store.authorize(exact_action) is not None
    miss = FileRead(path="/etc/passwd")
    exact_rate = await arate(n, lambda: store.authorize(exact_action))
    glob_rate = await arate(n, lambda: store.authorize(glob_action))
    miss_rate = await arate(n, lambda: store.authorize(miss))
    await storage.aclose()
    return exact_rate, glob_rate, miss_rate


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
    parser.add_argument("--n", type=int, default=5000, help="authorize() calls per measurement")
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
    header = ("stored tokens", "exact hit/s", "glob hit/s", "miss/s", "vs baseline")
    print(f"{header[0]:>14} " + " ".join(f"{h:>12}" for h in header[1:]))
    for count in (1, 100, 10_000):
        exact, glob, miss = await bench_store(key, count, args.n)
        worst = min(exact, glob)
        print(
            f"{count:>14,} {exact:>12,.0f} {glob:>12,.0f} {miss:>12,.0f} {worst / baseline:>11.2f}x"
        )


if __name__ == "__main__":
    anyio.run(main)
