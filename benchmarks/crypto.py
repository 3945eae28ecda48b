"""astrid_crypto against the raw libraries doing the same work, interleaved in one run.

What it measures (operations per second; target ratio >= 0.9):

* sign/s: ``KeyPair.sign`` of a 256-byte message vs libsodium's ``crypto_sign`` through
  PyNaCl's bindings, cut to the 64-byte signature — the same work (the old baseline used
  ``SigningKey.sign``, which also builds a ``SignedMessage`` object and flattered the ratio).
* verify/s: ``KeyPair.verify`` vs ``VerifyKey.verify`` of the same signature.
* BLAKE3 MB/s: ``hash_file`` vs reading the same file in 1 MiB blocks into ``blake3``.

Each round runs the baseline and ours alternately (A, B, A, B ...) for a fixed time, so a slow
moment of the host hits both; the ratio printed is the median of the per-round ratios.

uv run python benchmarks/crypto.py [--quick]
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import blake3
import nacl.bindings
import nacl.signing

from astrid_crypto import KeyPair, hash_file

QUICK = "--quick" in sys.argv
ROUNDS = 3 if QUICK else 7
SECONDS = 0.2 if QUICK else 0.5
FILE_MB = 32 if QUICK else 256


def per_second(func: Callable[[], object], seconds: float) -> float:
    """Calls per second of ``func``, run for ``seconds`` (at least once)."""
    done = 0
    start = time.perf_counter()
    while True:
        func()
        done += 1
        if time.perf_counter() - start >= seconds:
            return done / (time.perf_counter() - start)


def compare(
    base: Callable[[], object], ours: Callable[[], object], seconds: float
) -> tuple[float, float, float]:
    """Median baseline rate, median our rate and median per-round ratio, interleaved."""
    bases: list[float] = []
    mine: list[float] = []
    for _ in range(ROUNDS):
        bases.append(per_second(base, seconds))
        mine.append(per_second(ours, seconds))
    ratios = [m / b for b, m in zip(bases, mine, strict=True)]
    return statistics.median(bases), statistics.median(mine), statistics.median(ratios)


def main() -> None:
    message = b"x" * 256
    seed = os.urandom(32)
    secret = nacl.bindings.crypto_sign_seed_keypair(seed)[1]
    raw = nacl.signing.SigningKey(seed)
    ours = KeyPair(seed)
    raw_sig = nacl.bindings.crypto_sign(message, secret)[: nacl.bindings.crypto_sign_BYTES]
    our_sig = ours.sign(message)
    assert raw_sig == our_sig  # the same key signs the same bytes the same way
    rows = [
        (
            "sign/s",
            *compare(
                lambda: nacl.bindings.crypto_sign(message, secret)[
                    : nacl.bindings.crypto_sign_BYTES
                ],
                lambda: ours.sign(message),
                SECONDS,
            ),
        ),
        (
            "verify/s",
            *compare(
                lambda: raw.verify_key.verify(message, raw_sig),
                lambda: ours.verify(message, our_sig),
                SECONDS,
            ),
        ),
    ]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "blob"
        with path.open("wb") as out:
            chunk = os.urandom(1 << 20)
            for _ in range(FILE_MB):
                out.write(chunk)

        def direct() -> None:
            hasher = blake3.blake3()
            with path.open("rb") as handle:
                while block := handle.read(1 << 20):
                    hasher.update(block)
            hasher.digest()

        base, mine, ratio = compare(direct, lambda: hash_file(path), 0.0)  # one pass per round
        rows.append((f"BLAKE3 MB/s ({FILE_MB} MiB file)", base * FILE_MB, mine * FILE_MB, ratio))
    print(f"interleaved, median of {ROUNDS} rounds")
    print(f"{'measure':30} {'raw library':>14} {'astrid_crypto':>14} {'ratio':>7}")
    for name, base, mine, ratio in rows:
        print(f"{name:30} {base:14,.0f} {mine:14,.0f} {ratio:7.2f}")


if __name__ == "__main__":
    main()
