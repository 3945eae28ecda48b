"""FakeAnthropicServer: a local Anthropic Messages API that speaks the real wire format.

Point the official ``anthropic`` SDK at ``server.base_url`` and ``POST /v1/messages`` with
``stream=true`` answers with the server-sent events the real API sends, over HTTP/1.1 chunked
transfer: ``message_start``, ``content_block_start`` / ``content_block_delta`` (``text_delta``
in small pieces, ``input_json_delta`` with each tool's JSON split into several
``partial_json`` pieces) / ``content_block_stop``, ``ping``, ``message_delta`` (stop reason,
output tokens) and ``message_stop``. Without ``stream`` it answers with one message JSON.

It checks the API key (``x-api-key``, or ``Authorization: Bearer`` as anthropic>=2 sends it)
and ``anthropic-version``, and rejects the conversation mistakes the real API rejects (a
``tool_use`` not answered by ``tool_result`` blocks in the next message, empty text blocks),
with Anthropic's error JSON. The script also holds failures a real server
produces: error statuses with ``Retry-After`` (429, 500, 529), an ``event: error`` inside the
stream, and broken streams. Every request is recorded for assertions.

It binds 127.0.0.1 on an OS-chosen port and serves from a daemon thread; use it as a context
manager. It ships in the package so that users can test their own agents against it.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, Literal, cast

from astrid_core import JsonObject

from ._scripted_http import ScriptedHandler, ScriptedHttpServer, ScriptState, StateServer

__all__ = [
    "FakeAnthropicServer",
    "FakeTurn",
    "FakeHttpError",
    "FakeStreamError",
    "FakeMalformedStream",
    "FakeStall",
    "FakeResponse",
    "RecordedRequest",
]


@dataclass(frozen=True)
class FakeTurn:
    """One successful message.

    ``tool_calls`` holds ``(name, input)``; an input given as a string is sent verbatim (to
    script malformed JSON). Token counts left as ``None`` are computed at 4 characters per
    token, from the request for input and from the turn for output.
    """

    text: str = ""
    tool_calls: tuple[tuple[str, JsonObject | str], ...] = ()
    input_tokens: int | None = None
    output_tokens: int | None = None
    stop_reason: str | None = None  # default: "tool_use" if there are calls, else "end_turn"
    text_chunk_size: int = 5
    json_pieces: int = 3  # each tool input's JSON is split into this many input_json_deltas


@dataclass(frozen=True)
class FakeHttpError:
    """An error status with Anthropic's error body and, optionally, a Retry-After header."""

    status: int
    error_type: str = "api_error"
    message: str = "Internal server error"
    retry_after: float | None = None  # seconds

    @classmethod
    def rate_limited(cls, retry_after: float | None = None) -> FakeHttpError:
        message = "Number of request tokens has exceeded your per-minute rate limit"
        return cls(429, "rate_limit_error", message, retry_after)

    @classmethod
    def overloaded(cls, retry_after: float | None = None) -> FakeHttpError:
        return cls(529, "overloaded_error", "Overloaded", retry_after)


@dataclass(frozen=True)
class FakeStreamError:
    """The stream starts (HTTP 200, ``message_start``), optionally streams some text, then
    carries an ``event: error``, as the real API does when it is overloaded mid-response."""

    error_type: str = "overloaded_error"
    message: str = "Overloaded"
    text_before: str = ""


@dataclass(frozen=True)
class FakeMalformedStream:
    """A stream broken on the wire, after ``message_start`` and ``text_before``:
    ``"garbage"`` sends a data line that is not JSON; ``"drop"`` closes the connection in the
    middle of the chunked body; ``"truncated"`` ends the body cleanly without ``message_stop``;
    ``"bad_tool_json"`` completes a ``tool_use`` block named ``tool`` whose JSON is cut off."""

    fault: Literal["garbage", "drop", "truncated", "bad_tool_json"]
    text_before: str = ""
    tool: str = "broken_tool"


@dataclass(frozen=True)
class FakeStall:
    """A model that stops talking: the stream starts (HTTP 200, ``message_start``, then
    ``text_before``) and then sends nothing until ``release`` is set or ``max_seconds`` pass,
    after which the body ends without ``message_stop``. Tests of cancellation set ``release``
    when done so the server thread is free at once."""

    text_before: str = ""
    max_seconds: float = 30.0
    release: threading.Event = field(default_factory=threading.Event, compare=False)


FakeResponse = FakeTurn | FakeHttpError | FakeStreamError | FakeMalformedStream | FakeStall


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    headers: dict[str, str]
    body: JsonObject


_State = ScriptState[FakeResponse, RecordedRequest]


class FakeAnthropicServer(ScriptedHttpServer[FakeResponse, RecordedRequest]):
    """A scripted Anthropic Messages API; responses are consumed in order, one per
    ``POST /v1/messages`` that passes the API key and request checks."""

    def __init__(self, script: Iterable[FakeResponse] = (), *, api_key: str = "test-key") -> None:
        super().__init__(_State(api_key, list(script)), _Handler, thread_name="fake-anthropic")

    @property
    def message_bodies(self) -> list[JsonObject]:
        """The JSON bodies of every POST /v1/messages received, in order."""
        return [r.body for r in self.requests if r.path.split("?")[0] == "/v1/messages"]


class _Handler(ScriptedHandler):
    server_version = "FakeAnthropic/1"
    timeout = 30  # an idle keep-alive connection frees its thread after this long

    @property
    def state(self) -> _State:
        return cast(StateServer[_State], self.server).state

    # ------------------------------------------------------------------ routing
    def do_POST(self) -> None:  # noqa: N802 - http.server dispatches on this name
        length = int(self.headers.get("Content-Length") or 0)
        try:
            body = json.loads(self.rfile.read(length) or b"{}")
        except ValueError:
            self._record({})
            self._error(400, "invalid_request_error", "There was an error parsing the body")
            return
        if not isinstance(body, dict):
            body = {}
        body = cast(JsonObject, body)
        self._record(body)
        if not self._authorized():
            return
        if self.path.split("?")[0] != "/v1/messages":
            self._error(404, "not_found_error", "Not Found")
            return
        problem = _request_problem(body, self.headers.get("anthropic-version"))
        if problem is not None:
            self._error(400, "invalid_request_error", problem)
            return
        response, number = self.state.next_response()
        if response is None:
            message = f"FakeAnthropicServer: the script has no response left for request {number}"
            self._error(400, "invalid_request_error", message)
        elif isinstance(response, FakeHttpError):
            self._error(
                response.status, response.error_type, response.message, response.retry_after
            )
        elif not body.get("stream"):
            self._json(200, _message_json(body, response, number))
        else:
            self._stream(body, response, number)

    def do_GET(self) -> None:  # noqa: N802 - http.server dispatches on this name
        self._record({})
        if self._authorized():
            self._error(404, "not_found_error", "Not Found")

    # ------------------------------------------------------------------ responses
    def _record(self, body: JsonObject) -> None:
        self.state.record(
            RecordedRequest(self.command, self.path, dict(self.headers.items()), body)
        )

    def _authorized(self) -> bool:
        # The API takes the key as ``x-api-key`` or, as anthropic>=2 sends it, a Bearer token.
        bearer = (self.headers.get("Authorization") or "").removeprefix("Bearer ")
        if self.state.api_key in (self.headers.get("x-api-key"), bearer):
            return True
        self._error(401, "authentication_error", "invalid x-api-key")
        return False

    def _json(
        self, status: int, payload: JsonObject, headers: dict[str, str] | None = None
    ) -> None:
        self._send_json(status, payload, {"request-id": "req_fake", **(headers or {})})

    def _error(
        self, status: int, error_type: str, message: str, retry_after: float | None = None
    ) -> None:
        headers = {"retry-after": f"{retry_after:g}"} if retry_after is not None else {}
        self._json(status, _error_body(error_type, message), headers)

    def _stream(self, body: JsonObject, response: FakeResponse, number: int) -> None:
        self._start_event_stream({"request-id": f"req_fake{number}"})
        if isinstance(response, FakeTurn):
            for name, payload in _turn_events(body, response, number):
                self._event(name, json.dumps(payload))
            self._write_chunk(b"")  # the zero-length chunk that ends the body
            return
        assert not isinstance(response, FakeHttpError)
        partial = FakeTurn(response.text_before, input_tokens=_input_tokens(body))
        events = list(_turn_events(body, partial, number))
        for name, payload in events[:-2]:  # every block, but not message_delta/message_stop
            self._event(name, json.dumps(payload))
        if isinstance(response, FakeStall):
            response.release.wait(response.max_seconds)
            self.close_connection = True
        elif isinstance(response, FakeStreamError):
            self._event("error", json.dumps(_error_body(response.error_type, response.message)))
            self._write_chunk(b"")
        elif response.fault == "garbage":
            self._event("content_block_delta", '{"type": "content_block_delta", "index": 0, "de')
            self._write_chunk(b"")
        elif response.fault == "truncated":
            self._write_chunk(b"")
        elif response.fault == "bad_tool_json":
            index = 1 if response.text_before else 0
            start = {"type": "tool_use", "id": f"toolu_fake{number}_0", "name": response.tool}
            for name, payload in (
                ("content_block_start", _block_start(index, {**start, "input": {}})),
                ("content_block_delta", _json_delta(index, '{"path": "/tm')),
                ("content_block_stop", {"type": "content_block_stop", "index": index}),
                *_message_end("tool_use", 10),
            ):
                self._event(name, json.dumps(payload))
            self._write_chunk(b"")
        else:
            # No terminating chunk and no message_stop: the client sees the body end mid-stream.
            self.close_connection = True

    def _event(self, name: str, data: str) -> None:
        self._write_chunk(f"event: {name}\ndata: {data}\n\n".encode())


# ---------------------------------------------------------------------- wire helpers
Event = tuple[str, JsonObject]


def _error_body(error_type: str, message: str) -> JsonObject:
    return {"type": "error", "error": {"type": error_type, "message": message}}


def _block_start(index: int, block: JsonObject) -> JsonObject:
    return {"type": "content_block_start", "index": index, "content_block": block}


def _json_delta(index: int, partial: str) -> JsonObject:
    delta: JsonObject = {"type": "input_json_delta", "partial_json": partial}
    return {"type": "content_block_delta", "index": index, "delta": delta}


def _message_end(stop_reason: str, output_tokens: int) -> list[Event]:
    delta: JsonObject = {"stop_reason": stop_reason, "stop_sequence": None}
    return [
        (
            "message_delta",
            {"type": "message_delta", "delta": delta, "usage": {"output_tokens": output_tokens}},
        ),
        ("message_stop", {"type": "message_stop"}),
    ]


def _turn_events(body: JsonObject, turn: FakeTurn, number: int) -> Iterator[Event]:
    message = _message_json(body, turn, number)
    usage = cast(dict[str, Any], message["usage"])
    start = {**message, "content": [], "stop_reason": None, "usage": {**usage, "output_tokens": 1}}
    yield "message_start", {"type": "message_start", "message": start}
    if not message["content"]:
        yield "ping", {"type": "ping"}
    for index, block in enumerate(cast(list[JsonObject], message["content"])):
        if block["type"] == "text":
            yield "content_block_start", _block_start(index, {"type": "text", "text": ""})
            if index == 0:
                yield "ping", {"type": "ping"}  # the real API pings after the first block starts
            for piece in _pieces(turn.text, turn.text_chunk_size):
                delta: JsonObject = {"type": "text_delta", "text": piece}
                yield (
                    "content_block_delta",
                    {"type": "content_block_delta", "index": index, "delta": delta},
                )
        else:
            raw = turn.tool_calls[index - (1 if turn.text else 0)][1]
            arguments = raw if isinstance(raw, str) else json.dumps(raw)
            yield "content_block_start", _block_start(index, {**block, "input": {}})
            if index == 0:
                yield "ping", {"type": "ping"}
            yield "content_block_delta", _json_delta(index, "")  # the real API starts with ""
            size = max(1, -(-len(arguments) // max(1, turn.json_pieces)))
            for piece in _pieces(arguments, size):
                yield "content_block_delta", _json_delta(index, piece)
        yield "content_block_stop", {"type": "content_block_stop", "index": index}
    yield from _message_end(str(message["stop_reason"]), cast(int, usage["output_tokens"]))


def _message_json(body: JsonObject, turn: FakeResponse, number: int) -> JsonObject:
    if not isinstance(turn, FakeTurn):
        turn = FakeTurn()  # failures are for streams; non-streamed they answer empty
    content: list[JsonObject] = [{"type": "text", "text": turn.text}] if turn.text else []
    for index, (name, raw) in enumerate(turn.tool_calls):
        tool_input = raw if not isinstance(raw, str) else _loads_or_empty(raw)
        content.append(
            {
                "type": "tool_use",
                "id": f"toolu_fake{number}_{index}",
                "name": name,
                "input": tool_input,
            }
        )
    output = turn.output_tokens
    if output is None:
        output = len(turn.text) // 4 + 20 * len(turn.tool_calls) + 1
    input_tokens = turn.input_tokens if turn.input_tokens is not None else _input_tokens(body)
    return {
        "id": f"msg_fake{number:04d}",
        "type": "message",
        "role": "assistant",
        "model": str(body.get("model")),
        "content": cast(Any, content),
        "stop_reason": turn.stop_reason or ("tool_use" if turn.tool_calls else "end_turn"),
        "stop_sequence": None,
        "usage": {
            "input_tokens": input_tokens,
            "output_tokens": output,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0,
        },
    }


def _loads_or_empty(raw: str) -> JsonObject:
    try:
        loaded = json.loads(raw)
    except ValueError:
        return {}
    return cast(JsonObject, loaded) if isinstance(loaded, dict) else {}


def _input_tokens(body: JsonObject) -> int:
    """A stand-in for the tokenizer: 4 characters of the request's text per token."""
    chars = sum(len(text) for text in _texts(body.get("system")))
    for message in cast(list[Any], body.get("messages") or []):
        chars += sum(len(text) for text in _texts(message.get("content")))
    for tool in cast(list[Any], body.get("tools") or []):
        chars += len(str(tool.get("description", ""))) + len(json.dumps(tool.get("input_schema")))
    return chars // 4 + 1


def _texts(content: Any) -> Iterator[str]:
    if isinstance(content, str):
        yield content
    elif isinstance(content, list):
        for block in cast(list[Any], content):
            if not isinstance(block, dict):
                continue
            block = cast(dict[str, Any], block)
            if block.get("type") == "tool_use":
                yield json.dumps(block.get("input"))
            else:
                yield from _texts(block.get("text"))
                yield from _texts(block.get("content"))


def _request_problem(body: JsonObject, version: str | None) -> str | None:
    """The first reason the real API would reject this request with a 400, if any."""
    if not version:
        return "anthropic-version: header is required"
    for name in ("model", "max_tokens", "messages"):
        if name not in body:
            return f"{name}: Field required"
    max_tokens = body["max_tokens"]
    if not isinstance(max_tokens, int) or max_tokens < 1:
        return "max_tokens: Input should be greater than or equal to 1"
    messages = body["messages"]
    if not isinstance(messages, list) or not messages:
        return "messages: at least one message is required"
    for index, tool in enumerate(cast(list[Any], body.get("tools") or [])):
        schema = tool.get("input_schema") if isinstance(tool, dict) else None
        if not isinstance(schema, dict) or cast(dict[str, Any], schema).get("type") != "object":
            return f"tools.{index}.custom.input_schema.type: Input should be 'object'"
    return _conversation_problem(cast(list[Any], messages))


def _conversation_problem(messages: list[Any]) -> str | None:
    previous_tool_uses: list[str] = []
    for index, message in enumerate(messages):
        role = message.get("role") if isinstance(message, dict) else None
        if role not in ("user", "assistant"):
            return f"messages.{index}.role: Input should be 'user' or 'assistant'"
        raw = message["content"]
        blocks: list[Any] = [{"type": "text", "text": raw}] if isinstance(raw, str) else raw
        if any(b.get("type") == "text" and not b.get("text") for b in blocks):
            return f"messages.{index}: text content blocks must be non-empty"
        results = [str(b.get("tool_use_id")) for b in blocks if b.get("type") == "tool_result"]
        if role == "assistant" and results:
            return f"messages.{index}: `tool_result` blocks are only allowed in user messages"
        unexpected = [r for r in results if r not in previous_tool_uses]
        if unexpected:
            return (
                f"messages.{index}: unexpected `tool_use_id` found in `tool_result` blocks: "
                f"{unexpected[0]}. Each `tool_result` block must have a corresponding "
                "`tool_use` block in the previous message."
            )
        missing = [u for u in previous_tool_uses if u not in results]
        if missing:
            return (
                f"messages.{index}: `tool_use` ids were found without `tool_result` blocks "
                f"immediately after: {', '.join(missing)}. Each `tool_use` block must have a "
                "corresponding `tool_result` block in the next message."
            )
        previous_tool_uses = [str(b.get("id")) for b in blocks if b.get("type") == "tool_use"]
    if previous_tool_uses:
        return (
            f"messages.{len(messages) - 1}: the conversation ends with `tool_use` blocks "
            f"that have no `tool_result`: {', '.join(previous_tool_uses)}"
        )
    return None


def _pieces(text: str, size: int) -> Iterator[str]:
    for start in range(0, len(text), size):
        yield text[start : start + size]
