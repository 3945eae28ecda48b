"""The client reads its transport through WatchedStream: every item passes through unchanged,
lines that were not JSON-RPC are seen on the way, and however the transport ends, the reader
sees a plain end of stream and the client learns the server is gone."""

from __future__ import annotations

import anyio
import pytest

from astrid_mcp._watched_stream import WatchedStream

pytestmark = pytest.mark.anyio


async def test_items_pass_through_and_the_end_is_noticed() -> None:
    send, receive = anyio.create_memory_object_stream[object](4)
    seen: list[object] = []
    ended: list[bool] = []
    watched = WatchedStream(receive, seen.append, lambda: ended.append(True))
    garbage = ValueError("not json")
    async with send:
        await send.send("a")
        await send.send(garbage)
    async with watched:
        items = [item async for item in watched]
    assert items == ["a", garbage]
    assert seen == ["a", garbage]
    assert ended == [True, True]  # at the end, and again when closed: harmless


async def test_a_transport_closed_under_the_reader_reads_as_an_end_of_stream() -> None:
    send, receive = anyio.create_memory_object_stream[object](1)
    ended: list[bool] = []
    watched = WatchedStream(receive, lambda _: None, lambda: ended.append(True))
    async with send:
        await receive.aclose()  # e.g. the transport tore itself down
        with pytest.raises(anyio.EndOfStream):
            await watched.receive()
    assert ended == [True]


async def test_closing_the_watched_stream_closes_the_transport_side() -> None:
    send, receive = anyio.create_memory_object_stream[object](1)
    ended: list[bool] = []
    async with WatchedStream(receive, lambda _: None, lambda: ended.append(True)):
        pass
    assert ended == [True]
    async with send:
        with pytest.raises(anyio.BrokenResourceError):
            await send.send("late")  # nobody reads any more
