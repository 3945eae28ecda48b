"""``astridd`` for a full install: the gateway daemon with every installed companion.

The gateway layer cannot import the frontends above it; a frontend that runs inside the daemon
declares itself under the ``astrid.daemon_companions`` entry-point group instead (the Telegram
bot does, and runs when ``[telegram] embedded = true`` and a token is configured), so it runs
wherever a daemon starts — here, under ``astrid daemon run`` and when the CLI auto-starts one.
"""

from __future__ import annotations

import sys

from astrid_gateway.__main__ import main as gateway_main


def main(argv: list[str] | None = None) -> int:
    return gateway_main(argv)


if __name__ == "__main__":
    sys.exit(main())
