"""``python -m astrid_audit verify FILE --key KEY``: verify an exported audit log offline."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from astrid_core import AstridError
from astrid_crypto import PublicKey

from ._verify import verify_export


def _load_key(text: str) -> PublicKey:
    path = Path(text)
    if path.is_file():
        text = path.read_text().strip()
    return PublicKey.from_b64(text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m astrid_audit",
        description="Verify an exported Astrid audit log with only the trusted public key(s).",
        epilog="example: python -m astrid_audit verify audit.jsonl --key runtime.pub",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    verify = sub.add_parser("verify", help="verify an export (exit 0 = verified, 1 = failed)")
    verify.add_argument("file", type=Path)
    verify.add_argument(
        "--key",
        action="append",
        required=True,
        help="trusted Ed25519 public key (base64, or a file containing it); repeatable",
    )
    args = parser.parse_args(argv)
    try:
        keys = [_load_key(k) for k in args.key]
        report = verify_export(args.file, keys)
    except (AstridError, OSError) as exc:
        print(f"FAILED: {exc}", file=sys.stderr)
        return 1
    print(report.summary())
    return 0


if __name__ == "__main__":
    sys.exit(main())
