"""Ctrl-C belongs to the person at the terminal."""

from __future__ import annotations

import signal


def take_back_ctrl_c() -> None:
    """Make Ctrl-C raise KeyboardInterrupt even if our parent told us to ignore it.

    A process inherits an *ignored* SIGINT from whatever started it (a shell's background job,
    ``nohup``, an IDE task runner, a test runner started that way), and Python then keeps it
    ignored: Ctrl-C at the chat prompt or at an approval question did nothing. An interactive
    command reads the terminal, so the person at that terminal decides what Ctrl-C does.
    """
    if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)
