"""The transport's read stream, watched in passing: notices lines that were not JSON-RPC and
the moment the server hangs up, without a task of its own.

A forwarding task (read from the transport, send into a second stream) did the same job but
put two extra event-loop hops on every message from the server; `benchmarks/mcp.py` measured
that as a visible share of the client's per-call overhead. The SDK's dispatcher reads this
stream continuously, so the end of the transport is seen as soon as it happens either way.
"""

from __future__ import annotations

from collections.abc import Callable
from types import TracebackType
from typing import Generic, Protocol, Self, TypeVar

import anyio

__all__ = ["ReceiveStream", "WatchedStream"]

T = TypeVar("T")
T_co = TypeVar("T_co", covariant=True)

_GONE = (anyio.BrokenResourceError, anyio.ClosedResourceError, anyio.EndOfStream)


class ReceiveStream(Protocol[T_co]):
    """What a transport's read stream offers (the SDK's own protocol is private)."""

    async def receive(self) -> T_co: ...
    async def aclose(self) -> None: ...


class WatchedStream(Generic[T]):
    """Passes every item through; ``on_item`` sees each one, ``on_end`` runs when the stream
    ends, fails or is closed (it may run more than once: make it idempotent)."""

    def __init__(
        self,
        inner: ReceiveStream[T],
        on_item: Callable[[T], None],
        on_end: Callable[[], None],
    ) -> None:
        self._inner = inner
        self._on_item = on_item
        self._on_end = on_end

    async def receive(self) -> T:
        try:
            item = await self._inner.receive()
        except _GONE:
            # However the transport ended, the reader sees a plain end of stream (as it did
            # through the forwarding task): the server is gone, and that is all there is to say.
            self._on_end()
            raise anyio.EndOfStream from None
        self._on_item(item)
        return item

    async def aclose(self) -> None:
        try:
            await self._inner.aclose()
        finally:
            self._on_end()

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> T:
        try:
            return await self.receive()
        except anyio.EndOfStream:
            raise StopAsyncIteration from None

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc_val: BaseException | None,
        exc_tb: TracebackType | None,
    ) -> None:
        await self.aclose()
