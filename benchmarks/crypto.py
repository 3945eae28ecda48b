"""astrid_crypto vs raw PyNaCl / blake3 in the same run (targets: ratio >= 0.9).

uv run python benchmarks/crypto.py [--quick]
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

import blake3
import nacl.signing

from astrid_crypto import KeyPair, hash_file

QUICK = "--quick" in sys.argv
N = 3000 if QUICK else 20000
FILE_MB = 32 if QUICK else 256


def rate(func, n: int) -> float:  # type: ignore[no-untyped-def]
    start = time.perf_counter()
    for _ in range(n):
        func()
    return n / (time.perf_counter() - start)


def main() -> None:
    message = b"x" * 256
    raw = nacl.signing.SigningKey(os.urandom(32))
    ours = KeyPair(bytes(raw))
    raw_sig = raw.sign(message).signature
    our_sig = ours.sign(message)
    rows = [
        ("sign/s", rate(lambda: raw.sign(message), N), rate(lambda: ours.sign(message), N)),
        (
            "verify/s",
            rate(lambda: raw.verify_key.verify(message, raw_sig), N),
            rate(lambda: ours.verify(message, our_sig), N),
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

        direct_t = 1 / rate(direct, 2)
        ours_t = 1 / rate(lambda: hash_file(path), 2)
        rows.append((f"BLAKE3 MB/s ({FILE_MB} MiB file)", FILE_MB / direct_t, FILE_MB / ours_t))
    print(f"{'measure':30} {'raw library':>14} {'astrid_crypto':>14} {'ratio':>7}")
    for name, base, mine in rows:
        print(f"{name:30} {base:14,.0f} {mine:14,.0f} {mine / base:7.2f}")


if __name__ == "__main__":
    main()
