"""OpenAIProvider with the real ``openai`` SDK against FakeOpenAIServer, a local HTTP server that
speaks the Chat Completions streaming wire format (SSE chunks, tool_call deltas, [DONE])."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx2
import openai
import pytest

from astrid_runtime.llm import (
    ChatMessage,
    LlmError,
    LlmProvider,
    ModelRequest,
    ProviderEvent,
    RetryableLlmError,
    Retrying,
    RetryPolicy,
    Stop,
    TextChunk,
    ToolCall,
    ToolCallReady,
    ToolSpec,
    Usage,
    estimate_tokens,
    price_for,
)
from astrid_runtime.llm._openai import OpenAIProvider
from astrid_runtime.testing import FakeOpenAIServer
from astrid_runtime.testing.fake_openai import (
    FakeHttpError,
    FakeMalformedStream,
    FakeStreamError,
    FakeTurn,
)

pytestmark = pytest.mark.anyio

MODEL = "gpt-4o-mini"
FAST_RETRY = RetryPolicy(max_attempts=3, base_delay_seconds=0.001, max_delay_seconds=1.0)
READ_FILE = ToolSpec(
    "read_file",
    "Read a text file from the workspace.",
    {"type": "object", "properties": {"path": {"type": "string"}}, "required": ["path"]},
)


@pytest.fixture
def server() -> Iterator[FakeOpenAIServer]:
    with FakeOpenAIServer(models=[MODEL, "llama3.2"]) as fake:
        yield fake


@pytest.fixture
async def provider(server: FakeOpenAIServer) -> AsyncIterator[OpenAIProvider]:
    llm = _provider(server)
    yield llm
    await llm.aclose()


def _provider(
    server: FakeOpenAIServer, api_key: str | None = None, timeout_seconds: float = 10
) -> OpenAIProvider:
    return OpenAIProvider(
        api_key=server.api_key if api_key is None else api_key,
        model=MODEL,
        base_url=server.base_url,
        timeout_seconds=timeout_seconds,
        retry=FAST_RETRY,
    )


def _request(
    *messages: ChatMessage, tools: tuple[ToolSpec, ...] = (), model: str = MODEL
) -> ModelRequest:
    history = messages or (ChatMessage("user", "Say hello."),)
    return ModelRequest(model, "You are a careful coding agent.", history, tools, 512)


async def _collect(provider: OpenAIProvider, request: ModelRequest) -> list[ProviderEvent]:
    return [event async for event in provider.stream(request)]


async def _failure(provider: OpenAIProvider, request: ModelRequest) -> tuple[LlmError, list[Any]]:
    """The error the stream ends with, and the events that came before it."""
    seen: list[ProviderEvent] = []
    try:
        async for event in provider.stream(request):
            seen.append(event)
    except LlmError as error:
        return error, seen
    pytest.fail(f"the stream ended without an error after {seen}")


def _text(events: list[ProviderEvent]) -> str:
    return "".join(e.text for e in events if isinstance(e, TextChunk))


def _calls(events: list[ProviderEvent]) -> list[ToolCall]:
    return [e.call for e in events if isinstance(e, ToolCallReady)]


# ---------------------------------------------------------------------- successful turns
async def test_text_streams_as_it_arrives_then_usage_then_stop(
    server: FakeOpenAIServer, provider: OpenAIProvider
) -> None:
    text = "Hello! I read the repository and found three modules."
    server.enqueue(FakeTurn(text, usage=(31, 12), text_chunk_size=7))

    events = await _collect(provider, _request())

    chunks = [e for e in events if isinstance(e, TextChunk)]
    assert len(chunks) == -(-len(text) // 7)  # every SSE chunk surfaces as it arrives
    assert _text(events) == text
    assert events[-2:] == [Usage(31, 12), Stop("end_turn")]
    assert isinstance(provider, LlmProvider)
    (body,) = server.completion_bodies
    assert body["model"] == MODEL
    assert body["stream"] is True
    assert body["stream_options"] == {"include_usage": True}
    assert body["max_tokens"] == 512  # a compatible server: the widely understood parameter
    assert "tools" not in body
    assert body["messages"][0] == {"role": "system", "content": "You are a careful coding agent."}
    assert server.requests[0].headers["authorization"] == f"Bearer {server.api_key}"


async def test_tool_call_arguments_arriving_in_pieces_are_assembled(
    server: FakeOpenAIServer, provider: OpenAIProvider
) -> None:
    arguments = {"path": "src/app/main.py", "limit": 40, "note": "naïve ünïcode"}
    server.enqueue(
        FakeTurn("Let me look.", tool_calls=(("read_file", arguments),), argument_pieces=6)
    )

    events = await _collect(provider, _request(tools=(READ_FILE,)))

    assert _calls(events) == [ToolCall("call_fake1_0", "read_file", arguments)]
    assert isinstance(events[-1], Stop)
    assert events[-1].reason == "tool_use"
    # Text first, the call only once complete, then usage and stop (the scripted order).
    kinds = [type(e).__name__ for e in events]
    assert kinds[-3:] == ["ToolCallReady", "Usage", "Stop"]
    assert _text(events) == "Let me look."


async def test_two_parallel_tool_calls_keep_their_own_ids_and_arguments(
    server: FakeOpenAIServer, provider: OpenAIProvider
) -> None:
    server.enqueue(
        FakeTurn(
            tool_calls=(
                ("read_file", {"path": "a.py"}),
                ("read_file", {"path": "b.py"}),
            )
        )
    )

    events = await _collect(provider, _request(tools=(READ_FILE,)))

    assert _calls(events) == [
        ToolCall("call_fake1_0", "read_file", {"path": "a.py"}),
        ToolCall("call_fake1_1", "read_file", {"path": "b.py"}),
    ]
    assert events[-1] == Stop("tool_use")


async def test_history_with_tool_calls_and_results_maps_to_the_chat_format(
    server: FakeOpenAIServer, provider: OpenAIProvider
) -> None:
    server.enqueue(FakeTurn("Both files are short."))
    calls = (
        ToolCall("call_a", "read_file", {"path": "a.py"}),
        ToolCall("call_b", "read_file", {"path": "b.py"}),
    )
    history = (
        ChatMessage("user", "Compare a.py and b.py."),
        ChatMessage("assistant", "", calls),
        ChatMessage("tool", "print('a')", tool_call_id="call_a", untrusted=True),
        ChatMessage("tool", "print('b')", tool_call_id="call_b", untrusted=True),
        ChatMessage("assistant", "Read them."),
        ChatMessage("user", "Which is longer?"),
    )

    events = await _collect(provider, _request(*history, tools=(READ_FILE,)))

    assert _text(events) == "Both files are short."
    (body,) = server.completion_bodies
    assert body["messages"] == [
        {"role": "system", "content": "You are a careful coding agent."},
        {"role": "user", "content": "Compare a.py and b.py."},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_a",
                    "type": "function",
                    "function": {"name": "read_file", "arguments": '{"path": "a.py"}'},
                },
                {
                    "id": "call_b",
                    "type": "function",
                    "function": {"name": "read_file", "arguments": '{"path": "b.py"}'},
                },
            ],
        },
        {"role": "tool", "tool_call_id": "call_a", "content": "print('a')"},
        {"role": "tool", "tool_call_id": "call_b", "content": "print('b')"},
        {"role": "assistant", "content": "Read them."},
        {"role": "user", "content": "Which is longer?"},
    ]
    assert body["tools"] == [
        {
            "type": "function",
            "function": {
                "name": "read_file",
                "description": "Read a text file from the workspace.",
                "parameters": READ_FILE.input_schema,
            },
        }
    ]


async def test_a_server_that_reports_no_usage_gets_an_estimate(
    server: FakeOpenAIServer, provider: OpenAIProvider
) -> None:
    text = "x" * 400
    server.enqueue(FakeTurn(text, send_usage=False))
    request = _request()

    events = await _collect(provider, request)

    usage = [e for e in events if isinstance(e, Usage)]
    assert usage == [Usage(estimate_tokens(request), len(text) // 4 + 1)]
    assert events[-1] == Stop("end_turn")


async def test_tool_arguments_edge_cases(
    server: FakeOpenAIServer, provider: OpenAIProvider
) -> None:
    server.enqueue(
        FakeTurn(tool_calls=(("list_dir", ""),)),  # no arguments at all: an empty object
        FakeTurn(tool_calls=(("write_file", '{"path": "a.py", "content": "x'),)),
    )

    events = await _collect(provider, _request())
    assert _calls(events) == [ToolCall("call_fake1_0", "list_dir", {})]

    error, _ = await _failure(provider, _request())
    assert "write_file" in error.message
    assert "malformed JSON" in error.message
    assert len(server.completion_bodies) == 2  # a model's bad output is not retried


async def test_finish_reason_length_maps_to_max_tokens(
    server: FakeOpenAIServer, provider: OpenAIProvider
) -> None:
    server.enqueue(FakeTurn("The answer is cut", finish_reason="length"))

    events = await _collect(provider, _request())

    assert events[-1] == Stop("max_tokens")


# ---------------------------------------------------------------------- failures
async def test_rate_limit_with_retry_after_is_retried_after_waiting(
    server: FakeOpenAIServer, provider: OpenAIProvider
) -> None:
    server.enqueue(FakeHttpError.rate_limited(retry_after=0.3), FakeTurn("Back again."))

    started = time.monotonic()
    events = await _collect(provider, _request())
    elapsed = time.monotonic() - started

    assert _text(events) == "Back again."
    assert len(server.completion_bodies) == 2
    assert elapsed >= 0.3  # the server's Retry-After is a floor, not shortened by jitter


async def test_repeated_server_errors_give_up_after_the_policy_attempts(
    server: FakeOpenAIServer, provider: OpenAIProvider
) -> None:
    server.enqueue(FakeHttpError(500), FakeHttpError(500), FakeHttpError(500), FakeTurn("late"))

    error, seen = await _failure(provider, _request())

    assert not isinstance(error, RetryableLlmError)
    assert "gave up after 3 attempts" in error.message
    assert "500" in error.message
    assert "The server had an error" in error.message
    # nothing from the model; each wait was announced (two waits between three attempts)
    assert [(type(e), e.attempt) for e in seen if isinstance(e, Retrying)] == [
        (Retrying, 1),
        (Retrying, 2),
    ]
    assert [e for e in seen if not isinstance(e, Retrying)] == []
    assert len(server.completion_bodies) == 3
    assert server.remaining == 1


async def test_overloaded_then_success(server: FakeOpenAIServer, provider: OpenAIProvider) -> None:
    server.enqueue(FakeHttpError.overloaded(), FakeTurn("ok"))

    assert _text(await _collect(provider, _request())) == "ok"
    assert len(server.completion_bodies) == 2


async def test_wrong_api_key_fails_at_once_with_the_key_hint(server: FakeOpenAIServer) -> None:
    server.enqueue(FakeTurn("never sent"))
    llm = _provider(server, api_key="sk-wrong-key-1234")
    try:
        error, _ = await _failure(llm, _request())
    finally:
        await llm.aclose()

    assert "rejected the API key" in error.message
    assert "Incorrect API key provided" in error.message
    assert "OPENAI_API_KEY" in error.hint
    assert "[model] api_key" in error.hint
    assert len(server.completion_bodies) == 1  # not retried


async def test_unknown_model_names_the_model_and_where_to_look(
    server: FakeOpenAIServer, provider: OpenAIProvider
) -> None:
    error, _ = await _failure(provider, _request(model="gpt-nonexistent"))

    assert "gpt-nonexistent" in error.message
    assert "does not exist" in error.message  # the server's own words
    assert "/v1/models" in error.hint
    assert len(server.completion_bodies) == 1


async def test_garbage_data_line_is_a_malformed_stream(
    server: FakeOpenAIServer, provider: OpenAIProvider
) -> None:
    server.enqueue(FakeMalformedStream("garbage", text_before="Partial "), FakeTurn("unused"))

    error, seen = await _failure(provider, _request())

    assert error.message.startswith(
        f"malformed stream from the OpenAI-compatible API at {server.base_url}"
    )
    assert "not JSON" in error.message
    assert _text(seen) == "Partial "  # what arrived before the fault was already shown
    assert len(server.completion_bodies) == 1


async def test_connection_dropped_mid_answer_is_a_malformed_stream(
    server: FakeOpenAIServer, provider: OpenAIProvider
) -> None:
    server.enqueue(FakeMalformedStream("drop", text_before="Half an answ"), FakeTurn("unused"))

    error, seen = await _failure(provider, _request())

    assert error.message.startswith(
        f"malformed stream from the OpenAI-compatible API at {server.base_url}"
    )
    assert "before [DONE]" in error.message
    assert _text(seen) == "Half an answ"
    assert len(server.completion_bodies) == 1  # text was shown: nothing may be retried


async def test_connection_dropped_before_any_output_is_retried(
    server: FakeOpenAIServer, provider: OpenAIProvider
) -> None:
    server.enqueue(FakeMalformedStream("drop"), FakeStreamError(), FakeTurn("Third time."))

    events = await _collect(provider, _request())

    assert _text(events) == "Third time."
    assert len(server.completion_bodies) == 3


async def test_a_stalled_stream_times_out_and_is_retried(server: FakeOpenAIServer) -> None:
    server.enqueue(FakeTurn("too late", pause_seconds=1.5), FakeTurn("On time."))
    llm = _provider(server, timeout_seconds=0.3)
    try:
        started = time.monotonic()
        events = await _collect(llm, _request())
        elapsed = time.monotonic() - started
    finally:
        await llm.aclose()

    assert _text(events) == "On time."
    assert len(server.completion_bodies) == 2
    assert elapsed < 1.5  # the read timeout fired; the stalled answer was not awaited


async def test_unreachable_server_is_an_llm_error_not_a_raw_sdk_error() -> None:
    with FakeOpenAIServer() as gone:
        llm = _provider(gone)
    try:
        error, _ = await _failure(llm, _request())
    finally:
        await llm.aclose()

    assert "cannot reach the OpenAI-compatible API" in error.message
    assert "gave up after 3 attempts" in error.message
    assert "base_url" in error.hint
    assert not isinstance(error.__cause__, openai.OpenAIError)  # wrapped by the retry layer


# ---------------------------------------------------------------------- cost
async def test_cost_estimate_covers_the_committed_cost(
    server: FakeOpenAIServer, provider: OpenAIProvider
) -> None:
    # The fake counts usage from what it received (contents, tool calls, tool definitions and
    # per-message framing), independently of the provider's own estimate.
    server.enqueue(FakeTurn("A long, thorough answer. " * 40))
    request = _request(
        ChatMessage("user", "Explain the module layout. " * 30),
        ChatMessage("assistant", "", (ToolCall("c1", "read_file", {"path": "README.md"}),)),
        ChatMessage("tool", "# Project\n" * 200, tool_call_id="c1", untrusted=True),
        tools=(READ_FILE,),
    )

    estimate = provider.estimate_cost_micros(request)
    events = await _collect(provider, request)
    (usage,) = [e for e in events if isinstance(e, Usage)]
    committed = provider.cost_micros(MODEL, usage)

    assert usage.input_tokens > 0
    assert usage.output_tokens > 0
    assert 0 < committed <= estimate
    expected = price_for(MODEL).cost(Usage(estimate_tokens(request), request.max_tokens))
    assert estimate == expected


# ---------------------------------------------------------------------- the fake itself
async def test_fake_serves_models_and_non_streaming_completions(server: FakeOpenAIServer) -> None:
    server.enqueue(FakeTurn("plain", tool_calls=(("read_file", {"path": "x"}),)))
    async with openai.AsyncOpenAI(
        api_key=server.api_key, base_url=server.base_url, max_retries=0
    ) as client:
        models = await client.models.list()
        completion = await client.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": "hi"}]
        )

    assert [m.id for m in models.data] == [MODEL, "llama3.2"]
    message = completion.choices[0].message
    assert message.content == "plain"
    assert message.tool_calls is not None
    call = message.tool_calls[0]
    assert call.type == "function"
    assert json.loads(call.function.arguments) == {"path": "x"}
    assert completion.usage is not None
    assert completion.usage.prompt_tokens > 0


def test_fake_streams_the_real_wire_format(server: FakeOpenAIServer) -> None:
    server.enqueue(FakeTurn("hi", tool_calls=(("read_file", {"path": "abc.txt"}),), usage=(3, 4)))
    body = {
        "model": MODEL,
        "messages": [{"role": "user", "content": "hi"}],
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    headers = {"Authorization": f"Bearer {server.api_key}"}
    with (
        httpx2.Client(timeout=10) as client,
        client.stream(
            "POST", f"{server.base_url}/chat/completions", json=body, headers=headers
        ) as response,
    ):
        assert response.headers["content-type"].startswith("text/event-stream")
        assert response.headers["transfer-encoding"] == "chunked"
        lines = [line for line in response.iter_lines() if line]

    assert all(line.startswith("data: ") for line in lines)
    assert lines[-1] == "data: [DONE]"
    chunks = [json.loads(line.removeprefix("data: ")) for line in lines[:-1]]
    assert {c["object"] for c in chunks} == {"chat.completion.chunk"}
    argument_pieces = [
        call["function"]["arguments"]
        for c in chunks
        for choice in c["choices"]
        for call in choice["delta"].get("tool_calls", [])
        if call["function"].get("arguments")
    ]
    assert len(argument_pieces) == 3
    assert json.loads("".join(argument_pieces)) == {"path": "abc.txt"}
    assert chunks[-2]["choices"][0]["finish_reason"] == "tool_calls"
    assert chunks[-1]["choices"] == []
    assert chunks[-1]["usage"] == {"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7}


def test_fake_rejects_a_tool_message_that_answers_no_call(server: FakeOpenAIServer) -> None:
    body = {
        "model": MODEL,
        "messages": [
            {"role": "user", "content": "hi"},
            {"role": "tool", "tool_call_id": "call_missing", "content": "x"},
        ],
    }
    headers = {"Authorization": f"Bearer {server.api_key}"}
    response = httpx2.post(
        f"{server.base_url}/chat/completions", json=body, headers=headers, timeout=10
    )

    assert response.status_code == 400
    assert "role 'tool' must be a response" in response.json()["error"]["message"]
