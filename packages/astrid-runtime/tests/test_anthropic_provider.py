"""AnthropicProvider driven through the real ``anthropic`` SDK against FakeAnthropicServer,
which speaks the Messages API's SSE wire format over real HTTP on 127.0.0.1."""

from __future__ import annotations

import http.client
import json
import socket
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from urllib.parse import urlsplit

import anthropic
import pytest

from astrid_core import ConfigError
from astrid_runtime.llm import (
    ChatMessage,
    LlmError,
    LlmProvider,
    ModelRequest,
    Pricing,
    ProviderEvent,
    RetryableLlmError,
    RetryPolicy,
    Stop,
    TextChunk,
    ToolCall,
    ToolCallReady,
    ToolSpec,
    Usage,
)
from astrid_runtime.llm._anthropic import AnthropicProvider
from astrid_runtime.testing.fake_anthropic import (
    FakeAnthropicServer,
    FakeHttpError,
    FakeMalformedStream,
    FakeStreamError,
    FakeTurn,
)

pytestmark = pytest.mark.anyio

MODEL = "claude-sonnet-4-6"  # not on the SDK's deprecation list, so no DeprecationWarning
FAST_RETRY = RetryPolicy(max_attempts=3, base_delay_seconds=0.001, max_delay_seconds=1.0)
READ_FILE = ToolSpec(
    "read_file",
    "Read a file in the workspace",
    {"type": "object", "properties": {"path": {"type": "string"}}, "required": ["path"]},
)


def ask(
    text: str = "hello", *, tools: Sequence[ToolSpec] = (), max_tokens: int = 512
) -> ModelRequest:
    return ModelRequest(
        MODEL, "You are terse.", (ChatMessage("user", text),), tuple(tools), max_tokens
    )


@asynccontextmanager
async def provider_for(
    server: FakeAnthropicServer, *, api_key: str | None = None, retry: RetryPolicy = FAST_RETRY
) -> AsyncIterator[AnthropicProvider]:
    provider = AnthropicProvider(
        api_key or server.api_key, model=MODEL, base_url=server.base_url, retry=retry
    )
    try:
        yield provider
    finally:
        await provider.aclose()


async def fail(
    server: FakeAnthropicServer, request: ModelRequest, seen: list[ProviderEvent] | None = None
) -> LlmError:
    """The LlmError that streaming ``request`` ends with; the events before it go to ``seen``."""
    events = seen if seen is not None else []
    async with provider_for(server) as provider:

        async def consume() -> None:
            async for event in provider.stream(request):
                events.append(event)

        with pytest.raises(LlmError) as caught:
            await consume()
    return caught.value


# ---------------------------------------------------------------------- success paths
async def test_text_streams_in_chunks_then_usage_then_stop() -> None:
    with FakeAnthropicServer([FakeTurn("Hello from the fake API!", output_tokens=7)]) as server:
        async with provider_for(server) as provider:
            assert isinstance(provider, LlmProvider)
            events = [event async for event in provider.stream(ask("hi there"))]
        body = server.message_bodies[0]

    chunks = [e for e in events if isinstance(e, TextChunk)]
    assert len(chunks) > 1  # streamed, not delivered at the end
    assert "".join(c.text for c in chunks) == "Hello from the fake API!"
    usage = events[-2]
    assert isinstance(usage, Usage)
    assert usage.output_tokens == 7
    assert usage.input_tokens > 0
    assert events[-1] == Stop("end_turn")
    assert body["model"] == MODEL
    assert body["stream"] is True
    assert body["max_tokens"] == 512
    assert body["system"] == "You are terse."
    assert body["messages"] == [{"role": "user", "content": [{"type": "text", "text": "hi there"}]}]
    assert "tools" not in body


def test_fake_splits_tool_json_across_several_deltas() -> None:
    """The wire itself, read without the SDK: the argument JSON really arrives in pieces."""
    arguments = {"path": "src/astrid_runtime/llm/_anthropic.py", "limit": 200}
    with FakeAnthropicServer([FakeTurn(tool_calls=(("read_file", arguments),))]) as server:
        body = {
            "model": MODEL,
            "max_tokens": 64,
            "stream": True,
            "messages": [{"role": "user", "content": "read it"}],
        }
        headers = {"x-api-key": server.api_key, "anthropic-version": "2023-06-01"}
        connection = http.client.HTTPConnection(urlsplit(server.base_url).netloc, timeout=5)
        try:
            connection.request("POST", "/v1/messages", json.dumps(body), headers)
            response = connection.getresponse()
            assert response.getheader("Content-Type", "").startswith("text/event-stream")
            assert response.getheader("Transfer-Encoding") == "chunked"
            wire = response.read().decode()
        finally:
            connection.close()

    events = [
        (block.split("\n")[0].removeprefix("event: "), json.loads(block.split("\n")[1][6:]))
        for block in wire.strip().split("\n\n")
    ]
    names = [name for name, _ in events]
    assert names[0] == "message_start"
    assert names[-2:] == ["message_delta", "message_stop"]
    pieces = [
        data["delta"]["partial_json"]
        for name, data in events
        if name == "content_block_delta" and data["delta"]["type"] == "input_json_delta"
    ]
    assert len([p for p in pieces if p]) >= 3
    assert json.loads("".join(pieces)) == arguments
    assert events[-2][1]["delta"]["stop_reason"] == "tool_use"


async def test_tool_call_split_across_deltas_arrives_whole_after_the_text() -> None:
    arguments = {"path": "docs/a very long file name.md", "offset": 10, "flags": [True, None]}
    turn = FakeTurn("Let me look.", tool_calls=(("read_file", arguments),), json_pieces=5)
    with FakeAnthropicServer([turn]) as server:
        async with provider_for(server) as provider:
            events = [e async for e in provider.stream(ask("read it", tools=[READ_FILE]))]
        body = server.message_bodies[0]

    ready = [e for e in events if isinstance(e, ToolCallReady)]
    assert ready == [ToolCallReady(ToolCall("toolu_fake1_0", "read_file", arguments))]
    assert isinstance(events[0], TextChunk)
    assert events.index(ready[0]) > max(i for i, e in enumerate(events) if isinstance(e, TextChunk))
    assert events[-1] == Stop("tool_use")
    assert body["tools"] == [
        {
            "name": "read_file",
            "description": "Read a file in the workspace",
            "input_schema": READ_FILE.input_schema,
        }
    ]


async def test_history_with_tool_use_and_tool_results_is_mapped_for_the_api() -> None:
    calls = (
        ToolCall("toolu_a", "read_file", {"path": "a.txt"}),
        ToolCall("toolu_b", "read_file", {"path": "b.txt"}),
    )
    history = (
        ChatMessage("user", "compare a and b"),
        ChatMessage("assistant", "Reading both.", calls),
        ChatMessage("tool", "contents of a", tool_call_id="toolu_a", untrusted=True),
        ChatMessage("tool", "contents of b", tool_call_id="toolu_b", untrusted=True),
        ChatMessage("assistant", "", (ToolCall("toolu_c", "read_file", {"path": "c.txt"}),)),
        ChatMessage("tool", "contents of c", tool_call_id="toolu_c", untrusted=True),
    )
    request = ModelRequest(MODEL, "sys", history, (READ_FILE,), 256)
    with FakeAnthropicServer([FakeTurn("They differ.")]) as server:
        async with provider_for(server) as provider:
            events = [e async for e in provider.stream(request)]
        body = server.message_bodies[0]

    assert events[-1] == Stop("end_turn")  # the fake's API-rule checks accepted the mapping
    assert body["messages"] == [
        {"role": "user", "content": [{"type": "text", "text": "compare a and b"}]},
        {
            "role": "assistant",
            "content": [
                {"type": "text", "text": "Reading both."},
                {
                    "type": "tool_use",
                    "id": "toolu_a",
                    "name": "read_file",
                    "input": {"path": "a.txt"},
                },
                {
                    "type": "tool_use",
                    "id": "toolu_b",
                    "name": "read_file",
                    "input": {"path": "b.txt"},
                },
            ],
        },
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": "toolu_a", "content": "contents of a"},
                {"type": "tool_result", "tool_use_id": "toolu_b", "content": "contents of b"},
            ],
        },
        {
            "role": "assistant",  # no empty text block: the API rejects those
            "content": [
                {
                    "type": "tool_use",
                    "id": "toolu_c",
                    "name": "read_file",
                    "input": {"path": "c.txt"},
                }
            ],
        },
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": "toolu_c", "content": "contents of c"}
            ],
        },
    ]


async def test_cost_estimate_covers_the_committed_cost_of_a_worst_case_turn() -> None:
    request = ask("write a long essay " * 20, tools=[READ_FILE], max_tokens=300)
    turn = FakeTurn("essay " * 50, output_tokens=300, stop_reason="max_tokens")
    with FakeAnthropicServer([turn]) as server:
        async with provider_for(server) as provider:
            events = [e async for e in provider.stream(request)]
            usage = next(e for e in events if isinstance(e, Usage))
            committed = provider.cost_micros(MODEL, usage)
            estimate = provider.estimate_cost_micros(request)

    assert events[-1] == Stop("max_tokens")
    assert usage.output_tokens == 300
    assert usage.input_tokens > 50
    assert 0 < committed <= estimate


def test_costs_use_the_models_price_or_the_configured_one() -> None:
    default = AnthropicProvider("k", model=MODEL)
    assert default.cost_micros("claude-haiku-4-5", Usage(1_000_000, 0)) == 1_000_000
    assert default.cost_micros(MODEL, Usage(0, 1_000_000)) == 15_000_000
    custom = AnthropicProvider("k", model=MODEL, pricing=Pricing(1, 2))
    assert custom.cost_micros(MODEL, Usage(1_000_000, 1_000_000)) == 3
    with pytest.raises(ConfigError, match="no API key"):
        AnthropicProvider("", model=MODEL)


async def test_sdk_non_streaming_call_gets_a_message_from_the_fake() -> None:
    turn = FakeTurn("Done.", tool_calls=(("read_file", {"path": "x"}),), output_tokens=9)
    with FakeAnthropicServer([turn]) as server:
        async with anthropic.AsyncAnthropic(
            api_key=server.api_key, base_url=server.base_url, max_retries=0
        ) as client:
            message = await client.messages.create(
                model=MODEL, max_tokens=64, messages=[{"role": "user", "content": "go"}]
            )
    assert [block.type for block in message.content] == ["text", "tool_use"]
    assert message.stop_reason == "tool_use"
    assert message.usage.output_tokens == 9


# ---------------------------------------------------------------------- HTTP errors
@pytest.mark.parametrize(
    "failure",
    [
        FakeHttpError.rate_limited(0.2),
        FakeHttpError.overloaded(0.2),
        FakeHttpError(500, retry_after=0.2),
    ],
    ids=["429", "529", "500"],
)
async def test_retryable_status_honours_retry_after_then_succeeds(failure: FakeHttpError) -> None:
    with FakeAnthropicServer([failure, FakeTurn("second time lucky")]) as server:
        async with provider_for(server) as provider:
            started = time.monotonic()
            events = [e async for e in provider.stream(ask())]
            waited = time.monotonic() - started
        assert len(server.message_bodies) == 2

    assert "".join(e.text for e in events if isinstance(e, TextChunk)) == "second time lucky"
    assert waited >= 0.2  # the policy's own delay is ~1 ms: only Retry-After explains this


async def test_server_errors_beyond_max_attempts_give_up_naming_the_attempts() -> None:
    with FakeAnthropicServer([FakeHttpError(500)] * 4) as server:
        error = await fail(server, ask())
        assert len(server.message_bodies) == 3
    assert "HTTP 500" in error.message
    assert "gave up after 3 attempts" in error.message


async def test_wrong_api_key_is_not_retried_and_hints_at_the_key() -> None:
    with FakeAnthropicServer([FakeTurn("never")]) as server:
        async with provider_for(server, api_key="sk-wrong") as provider:
            with pytest.raises(LlmError) as caught:
                [e async for e in provider.stream(ask())]
        assert len(server.requests) == 1
    assert not isinstance(caught.value, RetryableLlmError)
    assert "invalid x-api-key" in caught.value.message
    assert "ANTHROPIC_API_KEY" in caught.value.hint
    assert "[model] api_key" in caught.value.hint


async def test_bad_request_carries_the_servers_message_and_is_not_retried() -> None:
    orphan = ModelRequest(
        MODEL, "", (ChatMessage("user", "hi"), ChatMessage("tool", "out", tool_call_id="toolu_x"))
    )
    with FakeAnthropicServer([FakeTurn("never")]) as server:
        error = await fail(server, orphan)
        assert len(server.requests) == 1
    assert "HTTP 400" in error.message
    assert "unexpected `tool_use_id`" in error.message


async def test_unreachable_api_is_retried_then_reported() -> None:
    with socket.socket() as probe:  # a port nobody listens on once the probe closes
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    provider = AnthropicProvider(
        "k", model=MODEL, base_url=f"http://127.0.0.1:{port}", retry=FAST_RETRY
    )
    try:
        with pytest.raises(LlmError, match="cannot reach the Anthropic API") as caught:
            [e async for e in provider.stream(ask())]
    finally:
        await provider.aclose()
    assert "gave up after 3 attempts" in caught.value.message


# ---------------------------------------------------------------------- errors inside the stream
async def test_overloaded_event_before_any_text_is_retried() -> None:
    script = [FakeStreamError("overloaded_error", "Overloaded"), FakeTurn("recovered")]
    with FakeAnthropicServer(script) as server:
        async with provider_for(server) as provider:
            events = [e async for e in provider.stream(ask())]
        assert len(server.message_bodies) == 2
    assert next(e for e in events if isinstance(e, TextChunk)) == TextChunk("recov")
    assert events[-1] == Stop("end_turn")


async def test_error_event_after_text_is_not_retried() -> None:
    script = [FakeStreamError(text_before="partial answer"), FakeTurn("never")]
    seen: list[ProviderEvent] = []
    with FakeAnthropicServer(script) as server:
        error = await fail(server, ask(), seen)
        assert len(server.message_bodies) == 1
    assert "".join(e.text for e in seen if isinstance(e, TextChunk)) == "partial answer"
    assert "overloaded_error" in error.message
    assert "gave up after 1 attempt" in error.message


async def test_non_transient_error_event_is_not_retried() -> None:
    script = [FakeStreamError("invalid_request_error", "prompt is too long"), FakeTurn("never")]
    with FakeAnthropicServer(script) as server:
        error = await fail(server, ask())
        assert len(server.message_bodies) == 1
    assert not isinstance(error, RetryableLlmError)
    assert "prompt is too long" in error.message


@pytest.mark.parametrize(
    "broken",
    [
        FakeMalformedStream("garbage"),
        FakeMalformedStream("truncated", text_before="cut short"),
        FakeMalformedStream("drop", text_before="cut short"),
    ],
    ids=lambda b: b.fault,
)
async def test_malformed_streams_raise_llm_error(broken: FakeMalformedStream) -> None:
    with FakeAnthropicServer([broken, FakeTurn("never")]) as server:
        error = await fail(server, ask())
        assert len(server.message_bodies) == 1
    assert error.message.startswith("malformed stream from the Anthropic API")


async def test_connection_dropped_before_any_text_is_retried() -> None:
    script = [FakeMalformedStream("drop"), FakeTurn("second stream")]
    with FakeAnthropicServer(script) as server:
        async with provider_for(server) as provider:
            events = [e async for e in provider.stream(ask())]
        assert len(server.message_bodies) == 2
    assert events[-1] == Stop("end_turn")


async def test_malformed_tool_arguments_name_the_tool() -> None:
    script = [FakeMalformedStream("bad_tool_json", tool="write_file")]
    with FakeAnthropicServer(script) as server:
        error = await fail(server, ask(tools=[READ_FILE]))
    assert "'write_file'" in error.message
    assert "not valid JSON" in error.message
