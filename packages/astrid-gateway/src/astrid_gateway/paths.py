"""Where the daemon's state lives, for frontends and tools: the public face of ``_state``.

``state_dir()`` is ``$ASTRID_HOME`` (or ``~/.astrid``); ``StatePaths`` names the files in it
(``daemon.port``, ``daemon.token``, ``logs/astridd.log``, ...). ``check_private_dir`` refuses a
home that others could write to or that another user owns, with the ``chmod`` in its hint;
``read_token`` reads the daemon token (0600) without following links. The handshake and lock
internals stay private.
"""

from __future__ import annotations

from ._state import StatePaths, check_private_dir, read_token, state_dir

__all__ = ["StatePaths", "state_dir", "check_private_dir", "read_token"]
