"""``python -m astrid_gateway`` / ``astridd``: run the daemon in the foreground."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

import anyio

from astrid_core import AstridError

from ._state import StatePaths, state_dir

if TYPE_CHECKING:
    from .daemon import Companion


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="astridd",
        description="The Astrid daemon: hosts the agent runtime and serves frontends over "
        "JSON-RPC 2.0 / WebSocket on 127.0.0.1.",
        epilog="example: astridd --ephemeral   (exits 30 s after the last client leaves)",
    )
    parser.add_argument("--state-dir", help="state directory (default: $ASTRID_HOME or ~/.astrid)")
    parser.add_argument("--port", type=int, default=0, help="port (default: OS-chosen)")
    parser.add_argument(
        "--ephemeral",
        action="store_true",
        help="exit when no client has been connected for a while",
    )
    parser.add_argument(
        "--idle-grace", type=float, default=30.0, help="ephemeral idle time in seconds (default 30)"
    )
    parser.add_argument("--log-level", default="INFO")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None, companions: Sequence[Companion] = ()) -> int:
    args = _parse(argv)
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    paths = StatePaths(state_dir(args.state_dir))
    from .daemon import run_daemon  # heavy imports only once we are really starting

    try:
        anyio.run(run_daemon, paths, args.port, args.ephemeral, args.idle_grace, companions)
    except AstridError as exc:
        print(f"astridd: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
