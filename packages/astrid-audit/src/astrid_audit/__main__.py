"""``python -m astrid_audit verify FILE --key KEY``: verify an exported audit log offline.

Exit 0 and one "OK: …" line when it verifies; exit 1 and exactly one "FAILED: …" line on
stderr otherwise — for any input, however malformed (never a traceback).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from astrid_core import AstridError, BadInputError
from astrid_crypto import PublicKey

from ._entry import Checkpoint
from ._verify import verify_export
from ._witness import parse_checkpoint


def _load_key(text: str) -> PublicKey:
    path = Path(text)
    if path.is_file():
        text = path.read_text().strip()
    return PublicKey.from_b64(text)


def _load_checkpoint(text: str) -> Checkpoint:
    """A tree head you kept: a checkpoint's JSON, a witness line, or a client's cache file
    (``{"checkpoint": {...}}``)."""
    raw = Path(text).read_text().strip()
    lines = raw.splitlines()
    if not lines:
        raise BadInputError(f"--checkpoint {text} is empty")
    try:
        document = json.loads(lines[-1] if len(lines) > 1 else raw)
    except (ValueError, RecursionError):
        raise BadInputError(f"--checkpoint {text} is not JSON") from None
    if isinstance(document, dict) and "checkpoint" in document:
        document = document["checkpoint"]  # pyright: ignore[reportUnknownVariableType]
    return parse_checkpoint(json.dumps(document), f"--checkpoint {text}")


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m astrid_audit",
        description="Verify an exported Astrid audit log with only the trusted public key(s).",
        epilog="example: python -m astrid_audit verify audit.jsonl --key runtime.pub "
        "--checkpoint kept-head.json",
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
    verify.add_argument(
        "--checkpoint",
        help="a signed tree head you kept (checkpoint JSON, a witness file's last line, or "
        "$ASTRID_HOME/witness/client-cli.json): the export must extend it",
    )
    verify.add_argument(
        "--min-size",
        type=int,
        default=None,
        help="fail unless the export holds at least this many entries",
    )
    args = parser.parse_args(argv)
    try:
        keys = [_load_key(k) for k in args.key]
        kept = _load_checkpoint(args.checkpoint) if args.checkpoint else None
        report = verify_export(args.file, keys, saved_checkpoint=kept, min_size=args.min_size)
    except (AstridError, OSError) as exc:
        print(f"FAILED: {_one_line(exc)}", file=sys.stderr)
        return 1
    except Exception as exc:  # a malformed input we did not foresee: still one line, exit 1
        print(f"FAILED: malformed input ({type(exc).__name__}: {_one_line(exc)})", file=sys.stderr)
        return 1
    print(report.summary())
    return 0


if __name__ == "__main__":
    sys.exit(main())
