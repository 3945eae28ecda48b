"""Write entry_v2.json: a format-v2 (RFC 8785) audit entry and checkpoint, signed by
KeyPair(bytes(range(32))), whose action holds floats, 2^53, unicode and nested values.

    uv run python packages/astrid-audit/tests/vectors/generate_v2.py

The committed file is the format contract: test_formats.py checks that astrid reproduces it
and that rfc8785 + blake3 + plain PyNaCl verify it without astrid's code.
"""

from __future__ import annotations

import json
from pathlib import Path

from astrid_audit import AuditEntry, Checkpoint, Outcome, OutcomeKind
from astrid_audit._entry import GENESIS, seal_body
from astrid_core import AuditEntryId, McpToolCall, action_to_json
from astrid_crypto import KeyPair

KEY = KeyPair(bytes(range(32)))


def entry() -> AuditEntry:
    action = McpToolCall(
        server="bank",
        tool="pay",
        args={
            "amount": 98.70,
            "rate": 1e-7,
            "whole": 1.0,
            "big": 1e21,
            "two53": 2**53,
            "memo": "Zoë 😀 \u2028",
            "\uffff": {"\U0001f600": [1.5, None, True, -0.0]},
        },
    )
    return AuditEntry(
        v=2,
        id=AuditEntryId.parse("00000000-0000-4000-8000-0000000000cc"),
        seq=0,
        chain="system",
        chain_seq=0,
        timestamp_ms=1_800_000_000_000,
        action=action_to_json(action),
        outcome=Outcome(kind=OutcomeKind.ALLOWED, reason="granted", detail={"score": 0.5}),
        prev_hash=GENESIS,
        key_id=KEY.key_id,
    )


def main() -> None:
    body = entry().body()
    digest, signature, text = seal_body(body, KEY)
    checkpoint = Checkpoint(
        tree_size=1, root="ab" * 32, timestamp_ms=1_800_000_000_000, key_id=KEY.key_id
    ).sealed(KEY)
    out = {
        "description": "Audit entry and checkpoint, format v2: hash = BLAKE3(RFC 8785 of the "
        "body), signature = Ed25519(hash bytes); checkpoint signature = Ed25519(RFC 8785 of "
        "everything but the signature). Key: KeyPair(bytes(range(32))).",
        "public_key": KEY.public_key.b64,
        "body": body,
        "hashed_text": _hashed(text, digest, signature),
        "hash": digest,
        "signature": signature,
        "stored_text": text,
        "checkpoint": checkpoint.model_dump(mode="json"),
    }
    path = Path(__file__).parent / "entry_v2.json"
    path.write_text(json.dumps(out, indent=1, ensure_ascii=False) + "\n")


def _hashed(text: str, digest: str, signature: str) -> str:
    return text.replace(f',"hash":"{digest}"', "").replace(f',"signature":"{signature}"', "")


if __name__ == "__main__":
    main()
