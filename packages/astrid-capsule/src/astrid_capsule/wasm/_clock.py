"""The time limit of a WASM call: time spent running WASM, not time spent waiting on the host.

A capsule call can block inside a host function: a gated write waits for a person to approve
it, an HTTP request for a server. Those waits have their own bounds (the approval timeout, the
HTTP timeouts). Charging them to the WASM budget would kill a call while the user is still
reading the approval prompt, possibly after the call already wrote something. So each call
has a ``CallClock`` (wall time minus time inside host functions), and one shared watchdog
thread stops a call through extism's cancel handle once its WASM time reaches the budget.

extism's cancel is a message to its timer thread, which interrupts the plugin if a call is
running when the message is *handled*. A cancel sent near the end of a call can therefore be
handled after that call returned and the next one started, and interrupt the wrong call. So a
clock sends at most one cancel, only while its call runs, and a plugin that was sent a cancel
is rebuilt before its next call (see ``WasmCapsule``).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

__all__ = ["CallClock"]

# A watchdog with nothing to watch lingers this long before its thread exits, so a series of
# calls does not start a thread each.
_IDLE_SECONDS = 5.0
# How often a call whose budget ran out *inside* a host call (the watchdog was late) is looked
# at again: it is stopped once that host call returns.
_RECHECK_SECONDS = 0.01


class _Watchdog:
    """One daemon thread for all running calls; started on demand, exits when idle."""

    def __init__(self) -> None:
        # Guards every CallClock's state too: one lock, so a clock's "in a host call" and the
        # watchdog's decision to cancel can never interleave.
        self.cond = threading.Condition()
        self._clocks: set[CallClock] = set()
        self._thread: threading.Thread | None = None
        self._wakes_at = 0.0  # when the thread wakes up next, on its own

    def add(self, clock: CallClock, deadline: float) -> None:
        self._clocks.add(clock)
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._run, name="astrid-wasm-watchdog", daemon=True
            )
            self._thread.start()
        elif deadline < self._wakes_at:
            # Waking the thread costs a switch per call: only when it would wake too late.
            self.cond.notify_all()

    def discard(self, clock: CallClock) -> None:
        self._clocks.discard(clock)

    def _run(self) -> None:
        with self.cond:
            while True:
                now = time.monotonic()
                wait: float | None = None
                for clock in list(self._clocks):
                    left = clock.remaining(now)
                    if left <= 0 and not clock.in_host:
                        clock.expire()
                        self._clocks.discard(clock)
                        continue
                    # Inside a host call the budget is paused, so it cannot run out before
                    # ``left`` seconds from now either: no need to be told when it resumes.
                    left = max(left, _RECHECK_SECONDS)
                    wait = left if wait is None else min(wait, left)
                if wait is None:
                    self._wakes_at = now + _IDLE_SECONDS
                    if not self.cond.wait(_IDLE_SECONDS) and not self._clocks:
                        self._thread = None
                        return
                else:
                    self._wakes_at = now + wait
                    self.cond.wait(wait)


_WATCHDOG = _Watchdog()


class CallClock:
    """The WASM-time budget of one call. Thread-safe; every method is short."""

    def __init__(self, budget_seconds: float) -> None:
        self.budget_seconds = budget_seconds
        self.expired = False  # the watchdog stopped the call: its WASM time reached the budget
        self.cancelled = False  # the caller went away (or the capsule was closed)
        self.cancel_sent = False
        self._cancel: Callable[[], object] | None = None
        self._started = 0.0
        self._host_since: float | None = None
        self._host_seconds = 0.0
        self._running = False

    def start(self, cancel: Callable[[], object]) -> bool:
        """Start timing the call ``cancel`` can stop; False if it was cancelled already."""
        with _WATCHDOG.cond:
            if self.cancelled:
                return False
            self._cancel = cancel
            self._started = time.monotonic()
            self._running = True
            _WATCHDOG.add(self, self._started + self.budget_seconds)
            return True

    def stop(self) -> None:
        with _WATCHDOG.cond:
            self._close_host_interval(time.monotonic())
            self._running = False
            _WATCHDOG.discard(self)

    def enter_host(self) -> bool:
        """Pause the budget for a host call; False when the call is being stopped (the host
        call must then not run: nothing may happen after the decision to stop)."""
        with _WATCHDOG.cond:
            if self.expired or self.cancelled:
                return False
            self._host_since = time.monotonic()
            return True

    def leave_host(self) -> None:
        with _WATCHDOG.cond:
            self._close_host_interval(time.monotonic())

    def cancel(self) -> None:
        """Stop the call now, wherever it is (a host call in progress finishes first)."""
        with _WATCHDOG.cond:
            self.cancelled = True
            if self._running:
                self._send_cancel()

    def stopping(self) -> bool:
        with _WATCHDOG.cond:
            return self.expired or self.cancelled

    # ------------------------------------------------------------------ watchdog side
    # Called with _WATCHDOG.cond held.

    @property
    def in_host(self) -> bool:
        return self._host_since is not None

    def remaining(self, now: float) -> float:
        return self.budget_seconds - self._wasm_seconds(now)

    def expire(self) -> None:
        self.expired = True
        self._send_cancel()

    def _wasm_seconds(self, now: float) -> float:
        if not self._started:
            return 0.0
        in_host = now - self._host_since if self._host_since is not None else 0.0
        return now - self._started - self._host_seconds - in_host

    def _close_host_interval(self, now: float) -> None:
        if self._host_since is not None:
            self._host_seconds += now - self._host_since
            self._host_since = None

    def _send_cancel(self) -> None:
        if not self.cancel_sent and self._running and self._cancel is not None:
            self.cancel_sent = True
            self._cancel()
