"""``[rate_limits] llm_requests_per_minute``: a sliding one-minute window over request starts.

A turn that would go over the limit waits for the oldest request to leave the window rather
than failing: the provider would only answer 429 and the retry loop would wait anyway, but
blindly and after spending a request.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

import anyio

from ._types import LlmProvider, ModelRequest, ProviderEvent, Usage

__all__ = ["RequestRateLimiter", "RateLimitedProvider"]

WINDOW_SECONDS = 60.0


@dataclass
class RequestRateLimiter:
    per_minute: int
    clock: Callable[[], float] = time.monotonic
    sleep: Callable[[float], Awaitable[None]] = anyio.sleep
    _starts: deque[float] = field(default_factory=deque[float])
    _lock: anyio.Lock = field(default_factory=anyio.Lock)

    async def acquire(self) -> float:
        """Wait for a free slot; returns how long it waited (seconds)."""
        waited = 0.0
        async with self._lock:  # one waiter at a time keeps the order fair
            while True:
                now = self.clock()
                while self._starts and now - self._starts[0] >= WINDOW_SECONDS:
                    self._starts.popleft()
                if len(self._starts) < self.per_minute:
                    self._starts.append(now)
                    return waited
                pause = WINDOW_SECONDS - (now - self._starts[0])
                await self.sleep(pause)
                waited += pause


@dataclass
class RateLimitedProvider:
    """Any provider, with request starts limited by a RequestRateLimiter."""

    inner: LlmProvider
    limiter: RequestRateLimiter
    name: str = field(init=False)

    def __post_init__(self) -> None:
        self.name = self.inner.name

    async def stream(self, request: ModelRequest) -> AsyncIterator[ProviderEvent]:
        await self.limiter.acquire()
        async for event in self.inner.stream(request):
            yield event

    def estimate_cost_micros(self, request: ModelRequest) -> int:
        return self.inner.estimate_cost_micros(request)

    def cost_micros(self, model: str, usage: Usage) -> int:
        return self.inner.cost_micros(model, usage)

    async def aclose(self) -> None:
        close = getattr(self.inner, "aclose", None)
        if close is not None:
            await close()
