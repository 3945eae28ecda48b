"""A server's startup timeout, with its clock stopped while a person is at work.

``SecureMcpClient`` bounds ``initialize`` by ``startup_timeout_s`` because a server that does
not answer should fail fast. An OAuth sign-in happens inside that first request, though, and it
waits on a human in a browser, which a server's timeout must not measure (the sign-in has its
own bound). The clock travels in a ContextVar: the SDK sends each HTTP request in its sender's
context, so the sign-in code deep inside the transport finds the clock of the initialize it
serves.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

import anyio

__all__ = ["startup_clock", "waiting_on_a_person"]


class _Clock:
    def __init__(self, scope: anyio.CancelScope, budget: float) -> None:
        self._scope = scope
        self._budget = budget
        self._pauses = 0

    def pause(self) -> None:
        if self._pauses == 0:
            self._budget = self._scope.deadline - anyio.current_time()
            self._scope.deadline = math.inf
        self._pauses += 1

    def resume(self) -> None:
        self._pauses -= 1
        if self._pauses == 0:
            self._scope.deadline = anyio.current_time() + self._budget


_current: ContextVar[_Clock | None] = ContextVar("astrid_startup_clock", default=None)


@contextmanager
def startup_clock(timeout: float) -> Iterator[None]:
    """Like ``anyio.fail_after(timeout)``, except while ``waiting_on_a_person`` is open."""
    with anyio.CancelScope(deadline=anyio.current_time() + timeout) as scope:
        token = _current.set(_Clock(scope, timeout))
        try:
            yield
        finally:
            _current.reset(token)
    if scope.cancelled_caught:
        raise TimeoutError


@contextmanager
def waiting_on_a_person() -> Iterator[None]:
    """Stop the startup clock of the server being started, if any, while the block runs."""
    clock = _current.get()
    if clock is None:
        yield
        return
    clock.pause()
    try:
        yield
    finally:
        clock.resume()
