"""Retries with exponential backoff and full jitter for provider streams.

The SDKs' own retry loops are switched off (``max_retries=0``) so that one policy, from the
``[retry]`` config section, governs every provider, and so that an error which arrives inside
the stream *before any event was produced* (Anthropic's ``overloaded_error``, a dropped
connection) is retried too. Once an event has reached the agent loop nothing is retried: text
already shown to the user cannot be taken back, so the error surfaces instead.
"""

from __future__ import annotations

import random
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

import anyio

from ._types import LlmError, ProviderEvent, Retrying

__all__ = ["RetryPolicy", "RetryableLlmError", "stream_with_retries"]


class RetryableLlmError(LlmError):
    """A provider error worth retrying: rate limited, overloaded, 5xx, connection lost."""

    code = "llm.retryable"

    def __init__(self, message: str, *, retry_after: float | None = None, hint: str | None = None):
        super().__init__(message, hint=hint)
        self.retry_after = retry_after  # seconds, from the server's Retry-After header


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 3
    base_delay_seconds: float = 0.5
    max_delay_seconds: float = 30.0

    def delay(self, failed_attempts: int, retry_after: float | None = None) -> float:
        """Full jitter (uniform in [0, base·2^n]) so that many clients do not retry in step;
        a server's Retry-After is a floor, never shortened by jitter."""
        ceiling = min(self.max_delay_seconds, self.base_delay_seconds * 2**failed_attempts)
        jittered = random.uniform(0, ceiling)  # noqa: S311 - jitter, not a secret
        if retry_after is not None:
            return min(self.max_delay_seconds, max(retry_after, jittered))
        return jittered


Sleep = Callable[[float], Awaitable[None]]


async def stream_with_retries(
    open_stream: Callable[[], AsyncIterator[ProviderEvent]],
    policy: RetryPolicy,
    *,
    sleep: Sleep = anyio.sleep,
) -> AsyncIterator[ProviderEvent]:
    """Yield the events of ``open_stream()``, re-opening it after a retryable error that
    happened before its first event, at most ``policy.max_attempts`` times in all. Each wait
    is announced by a :class:`Retrying` event first."""
    failed = 0
    while True:
        produced = False
        try:
            async for event in open_stream():
                produced = True
                yield event
            return
        except RetryableLlmError as error:
            failed += 1
            if produced or failed >= policy.max_attempts:
                raise LlmError(
                    f"{error.message} (gave up after {failed} attempt{'s' * (failed > 1)})",
                    hint=error.hint or "wait and try again, or raise [retry] max_attempts",
                ) from error
            wait = policy.delay(failed - 1, error.retry_after)
            # Said before the wait (and not counted as produced: nothing reached the user),
            # so a frontend can show why nothing happens and for how long.
            yield Retrying(error.message, wait, failed, policy.max_attempts)
            await sleep(wait)
