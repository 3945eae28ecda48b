"""Regenerate the astrid-crypto test vectors (deterministic: fixed seeds and inputs).

    uv run python packages/astrid-crypto/tests/vectors/generate.py

The committed JSON files are the format contract: a change that alters any of them is a
breaking change to signatures, hashes or canonical JSON and needs a new format version.
"""

from __future__ import annotations

import json
from pathlib import Path

from astrid_crypto import KeyPair, canonical_json, content_hash

HERE = Path(__file__).parent

SEEDS = [bytes(32), bytes(range(32)), bytes([0xFF] * 32)]
MESSAGES = [b"", b"astrid", "héllo wörld ✓".encode(), bytes(range(256))]
HASH_INPUTS = [b"", b"abc", b"\x00" * 1024, bytes(range(251)) * 4]
CANONICAL = [
    {"b": 1, "a": [True, None, "é"], "c": {"z": 0, "y": -1}},
    {"nested": {"list": [{"k": "v"}, [], {}]}, "unicode": "\u2028 \U0001f600", "big": 2**63},
    [],
    'plain string with "quotes" and \\ backslash',
]


def main() -> None:
    keys = []
    for seed in SEEDS:
        key = KeyPair(seed)
        keys.append(
            {
                "seed_hex": seed.hex(),
                "public_key_b64": key.public_key.b64,
                "key_id": key.key_id,
                "signatures": [
                    {"message_hex": m.hex(), "signature_b64": key.sign_b64(m)} for m in MESSAGES
                ],
            }
        )
    (HERE / "keys.json").write_text(json.dumps(keys, indent=2) + "\n")
    hashes = [{"input_hex": d.hex(), "blake3_hex": content_hash(d).hex} for d in HASH_INPUTS]
    (HERE / "hashes.json").write_text(json.dumps(hashes, indent=2) + "\n")
    canon = [{"value": v, "canonical_utf8": canonical_json(v).decode()} for v in CANONICAL]
    (HERE / "canonical.json").write_text(json.dumps(canon, indent=2, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main()
