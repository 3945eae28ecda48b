"""``astridd`` for a full install: the gateway daemon plus its companions.

The gateway layer cannot import the frontends above it, so the meta-package composes them:
the embedded Telegram bot runs inside the daemon when ``[telegram] embedded = true`` and a
token is configured.
"""

from __future__ import annotations

import sys

from astrid_gateway.__main__ import main as gateway_main
from astrid_telegram.runner import embedded_companion


def main(argv: list[str] | None = None) -> int:
    return gateway_main(argv, companions=[embedded_companion])


if __name__ == "__main__":
    sys.exit(main())
