"""A log line per event until a flood, then one summary line per window.

Anyone local can open connections to the daemon; each failed handshake must not cost a log
line, or a loop of failed handshakes fills the disk the audit log lives on. The first few
failures in each window are logged in full (they are the interesting ones), the rest are
counted and summarised ("N failed handshakes in the last 60 s") when the window closes.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

__all__ = ["RateLimitedLog"]


class RateLimitedLog:
    def __init__(
        self,
        logger: logging.Logger,
        what: str,
        *,
        window_seconds: float = 60.0,
        burst: int = 5,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._log = logger
        self._what = what
        self._window = window_seconds
        self._burst = burst
        self._clock = clock
        self._window_start: float | None = None
        self._in_window = 0
        self._suppressed = 0
        self.total = 0

    def note(self, detail: str) -> None:
        """Record one event; logs it while under the burst, else only counts it."""
        now = self._clock()
        self.total += 1
        if self._window_start is None or now - self._window_start >= self._window:
            self.flush(now)
            self._window_start = now
        self._in_window += 1
        if self._in_window <= self._burst:
            self._log.warning("%s: %s", self._what, detail)
            if self._in_window == self._burst:
                self._log.warning(
                    "further %s in the next %g s are only counted", self._what, self._window
                )
        else:
            self._suppressed += 1

    def flush(self, now: float | None = None) -> None:
        """Write the summary of the window that just ended (if anything was counted)."""
        now = self._clock() if now is None else now
        if self._window_start is not None and now - self._window_start >= self._window:
            if self._in_window > self._burst:
                self._log.warning(
                    "%d %s in the last %g s", self._in_window, self._what, self._window
                )
            self._window_start = None
            self._in_window = 0
            self._suppressed = 0
