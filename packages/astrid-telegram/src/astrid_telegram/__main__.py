"""``python -m astrid_telegram``: run the Telegram frontend as its own process."""

from __future__ import annotations

import argparse
import logging
import sys

import anyio

from astrid_core import AstridError
from astrid_gateway.paths import state_dir

from .runner import run_standalone


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="astrid-telegram",
        description="Telegram frontend for Astrid (standalone mode).",
        epilog="example: TELEGRAM_BOT_TOKEN=123:abc astrid-telegram --home ~/.astrid",
    )
    parser.add_argument(
        "--home", help="the daemon's state directory (default $ASTRID_HOME or ~/.astrid)"
    )
    parser.add_argument(
        "--no-autostart", action="store_true", help="do not start a daemon if none runs"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        anyio.run(
            lambda: run_standalone(state_dir(args.home), autostart_daemon=not args.no_autostart)
        )
    except AstridError as exc:
        print(f"astrid-telegram: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
