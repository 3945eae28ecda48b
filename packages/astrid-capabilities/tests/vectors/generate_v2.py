"""Write token_v2.json: a format-v2 (RFC 8785) capability token with float, big-integer,
unicode and nested caveat values, signed by KeyPair(bytes(range(32))).

    uv run python packages/astrid-capabilities/tests/vectors/generate_v2.py

The committed file is the format contract: test_formats.py checks that astrid still parses,
re-signs and verifies it, and that rfc8785 and plain PyNaCl agree without astrid's code.
"""

from __future__ import annotations

import json
from pathlib import Path

from astrid_capabilities import (
    ArgEquals,
    ArgIn,
    ArgMatches,
    CapabilityToken,
    MaxCalls,
    ResourcePattern,
    TokenScope,
)
from astrid_core import AuditEntryId, Permission, TokenId
from astrid_crypto import KeyPair


def token() -> CapabilityToken:
    key = KeyPair(bytes(range(32)))
    unsigned = CapabilityToken(
        id=TokenId.parse("00000000-0000-4000-8000-0000000000bb"),
        resource=ResourcePattern("mcp://bank/pay"),
        permissions=frozenset({Permission.INVOKE}),
        issued_at=1_800_000_000,
        expires_at=1_800_003_600,
        scope=TokenScope.PERSISTENT,
        session_id=None,
        issuer=key.public_key,
        approval_audit_id=AuditEntryId.parse("00000000-0000-4000-8000-000000000002"),
        single_use=False,
        caveats=(
            ArgIn("amount", (98.7, 0.1, 1e21, 5e-324)),
            ArgEquals("memo", "Zoë 😀 \u2028 \u0000"),
            ArgEquals("opts", {"\uffff": 1, "\U0001f600": [1.5, None, True, -0.0], "n": 2**53}),
            ArgMatches("to", "acct-*"),
            MaxCalls(3),
        ),
        parent_id=None,
        signature="",
    )
    return unsigned.signed_with(key)


def main() -> None:
    tok = token()
    out = {
        "description": "CapabilityToken v2 (RFC 8785 signed bytes) signed with "
        "KeyPair(bytes(range(32))); caveats hold floats, 2^53, unicode and nested values",
        "signed_bytes": tok.signed_bytes.decode(),
        "token": tok.to_json(),
    }
    path = Path(__file__).parent / "token_v2.json"
    path.write_text(json.dumps(out, indent=2, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main()
