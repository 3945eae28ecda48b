"""FakeOpenAIServer: a local OpenAI Chat Completions API that speaks the real wire format.

Point the official ``openai`` SDK (or any OpenAI-compatible client) at ``server.base_url`` and it
streams real ``chat.completion.chunk`` server-sent events over HTTP/1.1 chunked transfer: text in
small pieces, tool calls whose JSON arguments arrive split across several chunks, a
``finish_reason``, a usage chunk when ``stream_options.include_usage`` asks for one, then
``data: [DONE]``. The script also holds failures a real server produces: error statuses with
OpenAI's error JSON and ``Retry-After``, an error event inside the stream, a garbage data line
and a connection that drops before ``[DONE]``. Every request is recorded for assertions.

It binds 127.0.0.1 on an OS-chosen port and serves from a daemon thread; use it as a context
manager. It ships in the package so that users can test their own agents against it.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal, cast

from astrid_core import JsonObject

from ._scripted_http import ScriptedHandler, ScriptedHttpServer, ScriptState, StateServer

_Json = dict[str, Any]

__all__ = [
    "FakeOpenAIServer",
    "FakeTurn",
    "FakeHttpError",
    "FakeStreamError",
    "FakeMalformedStream",
    "FakeResponse",
    "RecordedRequest",
]


@dataclass(frozen=True)
class FakeTurn:
    """One successful completion.

    ``tool_calls`` holds ``(name, arguments)``; arguments given as a string are sent verbatim
    (to script malformed JSON). ``usage`` is ``(prompt_tokens, completion_tokens)``; left as
    ``None`` it is counted from the request and the output at 4 characters per token. A text
    longer than the request's ``max_tokens`` is cut there with finish_reason "length", as a
    real server does. ``send_usage=False`` imitates local servers that never report usage.
    """

    text: str = ""
    tool_calls: tuple[tuple[str, JsonObject | str], ...] = ()
    usage: tuple[int, int] | None = None
    send_usage: bool = True
    finish_reason: str | None = None  # default: "tool_calls" if there are calls, else "stop"
    text_chunk_size: int = 5
    argument_pieces: int = 3  # each call's JSON arguments are split into this many deltas
    pause_seconds: float = 0.0  # silence after the first chunk: a slow model, a read timeout


@dataclass(frozen=True)
class FakeHttpError:
    """An error status with OpenAI's error body, e.g. 429 with Retry-After, 500, 503."""

    status: int
    message: str = "The server had an error while processing your request."
    error_type: str = "server_error"
    code: str | None = None
    retry_after: float | None = None  # seconds, sent as the Retry-After header

    @classmethod
    def rate_limited(cls, retry_after: float | None = None) -> FakeHttpError:
        return cls(
            429,
            "Rate limit reached for requests. Please try again later.",
            "requests",
            "rate_limit_exceeded",
            retry_after,
        )

    @classmethod
    def overloaded(cls, retry_after: float | None = None) -> FakeHttpError:
        return cls(
            503,
            "The engine is currently overloaded, please try again later.",
            retry_after=retry_after,
        )


@dataclass(frozen=True)
class FakeStreamError:
    """The stream starts (HTTP 200), then carries an ``{"error": ...}`` data line, as
    OpenRouter and some proxies do when the upstream model fails mid-response."""

    message: str = "upstream model error"
    error_type: str = "server_error"
    text_before: str = ""


@dataclass(frozen=True)
class FakeMalformedStream:
    """A stream broken on the wire: ``"garbage"`` sends a data line that is not JSON;
    ``"drop"`` closes the connection in the middle of the chunked body, before ``[DONE]``."""

    fault: Literal["garbage", "drop"]
    text_before: str = ""


FakeResponse = FakeTurn | FakeHttpError | FakeStreamError | FakeMalformedStream


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    headers: dict[str, str]  # names lowercased: clients differ in how they spell them
    body: _Json


@dataclass
class _State(ScriptState[FakeResponse, RecordedRequest]):
    models: tuple[str, ...] | None = None  # when given, other models get a 404


class FakeOpenAIServer(ScriptedHttpServer[FakeResponse, RecordedRequest]):
    """A scripted OpenAI Chat Completions server; responses are consumed in order."""

    def __init__(
        self,
        script: Iterable[FakeResponse] = (),
        *,
        api_key: str = "test-key",
        models: Sequence[str] | None = None,  # when given, other models get a 404
    ) -> None:
        state = _State(api_key, list(script), models=tuple(models) if models is not None else None)
        super().__init__(state, _Handler, thread_name="fake-openai", url_path="/v1")

    @property
    def completion_bodies(self) -> list[_Json]:
        """The JSON bodies of every POST /v1/chat/completions received, in order."""
        return [r.body for r in self.requests if r.path.endswith("/chat/completions")]


class _Handler(ScriptedHandler):
    server_version = "FakeOpenAI/1"

    @property
    def state(self) -> _State:
        return cast(StateServer[_State], self.server).state

    # ------------------------------------------------------------------ routing
    def do_GET(self) -> None:  # noqa: N802 - http.server dispatches on this name
        self._record({})
        if not self._authorized():
            return
        if self.path.rstrip("/") != "/v1/models":
            self._error(404, f"Invalid URL (GET {self.path})", "invalid_request_error")
            return
        models = [
            {"id": m, "object": "model", "created": 1700000000, "owned_by": "fake"}
            for m in (self.state.models or ())
        ]
        self._json(200, {"object": "list", "data": models})

    def do_POST(self) -> None:  # noqa: N802 - http.server dispatches on this name
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length)
        try:
            body = json.loads(raw or b"{}")
        except ValueError:
            self._record({})
            self._error(
                400, "We could not parse the JSON body of your request.", "invalid_request_error"
            )
            return
        self._record(body if isinstance(body, dict) else {})
        if not self._authorized():
            return
        if self.path.rstrip("/") != "/v1/chat/completions":
            self._error(404, f"Invalid URL (POST {self.path})", "invalid_request_error")
            return
        problem = _request_problem(body, self.state.models)
        if problem is not None:
            status, message, code = problem
            self._error(status, message, "invalid_request_error", code)
            return
        response, number = self.state.next_response()
        if response is None:
            self._error(
                400,
                f"FakeOpenAIServer: the script has no response left for request {number}",
                "invalid_request_error",
                "fake_script_exhausted",
            )
            return
        if isinstance(response, FakeHttpError):
            self._error(
                response.status,
                response.message,
                response.error_type,
                response.code,
                response.retry_after,
            )
            return
        if isinstance(response, FakeTurn):
            response = _within_limit(body, response)
        if not body.get("stream"):
            self._json(200, _completion(body, response, number))
        else:
            self._stream(body, response, number)

    # ------------------------------------------------------------------ responses
    def _record(self, body: _Json) -> None:
        headers = {k.lower(): v for k, v in self.headers.items()}
        self.state.record(RecordedRequest(self.command, self.path, headers, body))

    def _authorized(self) -> bool:
        if self.headers.get("Authorization") == f"Bearer {self.state.api_key}":
            return True
        sent = (self.headers.get("Authorization") or "").removeprefix("Bearer ")
        self._error(
            401,
            f"Incorrect API key provided: {sent[:3]}***{sent[-4:]}. You can find your API key "
            "at https://platform.openai.com/account/api-keys.",
            "invalid_request_error",
            "invalid_api_key",
        )
        return False

    def _json(self, status: int, payload: _Json, headers: dict[str, str] | None = None) -> None:
        self._send_json(status, payload, headers or {})

    def _error(
        self,
        status: int,
        message: str,
        error_type: str,
        code: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        headers = {"Retry-After": f"{retry_after:g}"} if retry_after is not None else {}
        error = {"message": message, "type": error_type, "param": None, "code": code}
        self._json(status, {"error": error}, headers)

    def _stream(self, body: _Json, response: FakeResponse, number: int) -> None:
        self._start_event_stream({})
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        chunks = _Chunks(f"chatcmpl-fake{number}", str(body.get("model")), include_usage)
        if isinstance(response, FakeTurn):
            for payload in _turn_chunks(chunks, body, response, number):
                self._event(json.dumps(payload))
            self._event("[DONE]")
            self._write_chunk(b"")  # the zero-length chunk that ends the body
            return
        assert not isinstance(response, FakeHttpError)
        self._event(json.dumps(chunks.delta({"role": "assistant", "content": ""})))
        for piece in _pieces(response.text_before, 5):
            self._event(json.dumps(chunks.delta({"content": piece})))
        if isinstance(response, FakeStreamError):
            error = {"message": response.message, "type": response.error_type, "code": None}
            self._event(json.dumps({"error": error}))
            self._event("[DONE]")
            self._write_chunk(b"")
        elif response.fault == "garbage":
            self._event('{"id": "chatcmpl-broken", "choices": [{"delta": {"content": "unterminat')
            self._event("[DONE]")
            self._write_chunk(b"")
        else:
            # No terminating chunk and no [DONE]: the client sees the body end mid-stream.
            self.close_connection = True

    def _event(self, data: str) -> None:
        self._write_chunk(f"data: {data}\n\n".encode())


# ---------------------------------------------------------------------- wire helpers
@dataclass(frozen=True)
class _Chunks:
    id: str
    model: str
    include_usage: bool

    def _base(self) -> dict[str, Any]:
        base: dict[str, Any] = {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": self.model,
            "system_fingerprint": "fp_fake",
        }
        if self.include_usage:
            base["usage"] = None  # the real API puts usage: null on every chunk but the last
        return base

    def delta(self, delta: _Json, finish_reason: str | None = None) -> _Json:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
        return {**self._base(), "choices": [choice]}

    def usage(self, prompt_tokens: int, completion_tokens: int) -> _Json:
        usage = {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        }
        return {**self._base(), "choices": [], "usage": usage}


def _turn_chunks(chunks: _Chunks, body: _Json, turn: FakeTurn, number: int) -> Iterator[_Json]:
    yield chunks.delta({"role": "assistant", "content": ""})
    if turn.pause_seconds:
        time.sleep(turn.pause_seconds)  # in the handler's own thread: other requests go on
    for piece in _pieces(turn.text, turn.text_chunk_size):
        yield chunks.delta({"content": piece})
    for index, (name, arguments) in enumerate(turn.tool_calls):
        call_id = _call_id(number, index)
        opening = {"index": index, "id": call_id, "type": "function"}
        yield chunks.delta(
            {"tool_calls": [{**opening, "function": {"name": name, "arguments": ""}}]}
        )
        encoded = _arguments(arguments)
        size = max(1, -(-len(encoded) // max(1, turn.argument_pieces)))
        for piece in _pieces(encoded, size):
            yield chunks.delta({"tool_calls": [{"index": index, "function": {"arguments": piece}}]})
    yield chunks.delta({}, turn.finish_reason or ("tool_calls" if turn.tool_calls else "stop"))
    if chunks.include_usage and turn.send_usage:
        yield chunks.usage(*_usage(body, turn))


def _completion(body: _Json, turn: FakeResponse, number: int) -> _Json:
    """The non-streaming ``chat.completion`` object; a stream fault becomes plain text."""
    if not isinstance(turn, FakeTurn):
        turn = FakeTurn(text=getattr(turn, "text_before", ""))
    message: dict[str, Any] = {"role": "assistant", "content": turn.text or None, "refusal": None}
    if turn.tool_calls:
        message["tool_calls"] = [
            {
                "id": _call_id(number, i),
                "type": "function",
                "function": {"name": name, "arguments": _arguments(arguments)},
            }
            for i, (name, arguments) in enumerate(turn.tool_calls)
        ]
    finish = turn.finish_reason or ("tool_calls" if turn.tool_calls else "stop")
    result: dict[str, Any] = {
        "id": f"chatcmpl-fake{number}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": str(body.get("model")),
        "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": finish}],
    }
    if turn.send_usage:
        prompt, completion = _usage(body, turn)
        result["usage"] = {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
        }
    return result


def _usage(body: _Json, turn: FakeTurn) -> tuple[int, int]:
    """The scripted usage, or a count of what a tokenizer would see at 4 characters per token:
    message contents, tool calls and tool definitions, plus OpenAI's documented framing of
    3 tokens per message and 3 to prime the reply."""
    if turn.usage is not None:
        return turn.usage
    messages: list[Any] = body.get("messages") or []
    prompt_chars = len(json.dumps(body.get("tools") or []))
    for message in messages:
        prompt_chars += len(str(message.get("content") or ""))
        for call in message.get("tool_calls") or []:
            function = call.get("function") or {}
            prompt_chars += len(str(function.get("name"))) + len(str(function.get("arguments")))
    output_chars = len(turn.text) + sum(
        len(name) + len(_arguments(arguments)) for name, arguments in turn.tool_calls
    )
    completion = output_chars // 4 + 1
    limit = _output_limit(body)
    return prompt_chars // 4 + 3 * len(messages) + 3, min(completion, limit or completion)


def _output_limit(body: _Json) -> int | None:
    limit = body.get("max_completion_tokens") or body.get("max_tokens")
    return limit if isinstance(limit, int) and limit > 0 else None


def _within_limit(body: _Json, turn: FakeTurn) -> FakeTurn:
    """A text answer longer than the request's token limit is cut, as a real server does,
    with finish_reason "length"."""
    limit = _output_limit(body)
    if limit is None or turn.tool_calls or len(turn.text) <= limit * 4:
        return turn
    return replace(turn, text=turn.text[: limit * 4], finish_reason="length")


def _request_problem(
    body: Any, models: tuple[str, ...] | None
) -> tuple[int, str, str | None] | None:
    """The 4xx the real API would answer for a body this malformed, so that a provider's
    mapping bugs fail tests instead of passing against a lenient fake."""
    if not isinstance(body, dict):
        return 400, "the request body must be a JSON object", None
    request = cast(dict[str, Any], body)
    model = request.get("model")
    if not isinstance(model, str) or not model:
        return 400, "you must provide a model parameter", None
    if models is not None and model not in models:
        message = f"The model `{model}` does not exist or you do not have access to it."
        return 404, message, "model_not_found"
    messages = request.get("messages")
    if not isinstance(messages, list) or not messages:
        return 400, "'messages' must be a non-empty array", None
    return _conversation_problem(cast(list[Any], messages))


def _conversation_problem(messages: list[Any]) -> tuple[int, str, str | None] | None:
    pending: set[str] = set()  # tool_call ids still waiting for their "tool" message
    for position, message in enumerate(messages):
        if not isinstance(message, dict):
            return 400, f"messages[{position}] must be an object", None
        entry = cast(dict[str, Any], message)
        role = entry.get("role")
        if pending and role != "tool":
            return (
                400,
                "An assistant message with 'tool_calls' must be followed by tool messages "
                f"responding to each 'tool_call_id'. Missing: {sorted(pending)}",
                None,
            )
        if role == "assistant":
            for call in entry.get("tool_calls") or []:
                function = call.get("function") or {}
                if call.get("type") != "function" or not isinstance(function.get("arguments"), str):
                    return 400, f"messages[{position}].tool_calls: bad tool call {call}", None
                pending.add(str(call.get("id")))
        elif role == "tool":
            call_id = entry.get("tool_call_id")
            if call_id not in pending:
                return (
                    400,
                    "Invalid parameter: messages with role 'tool' must be a response to a "
                    "preceeding message with 'tool_calls'.",
                    None,
                )
            pending.discard(call_id)
        elif role not in ("system", "developer", "user"):
            return 400, f"messages[{position}].role: unknown role {role!r}", None
    if pending:
        return 400, f"tool calls without a tool message: {sorted(pending)}", None
    return None


def _call_id(number: int, index: int) -> str:
    return f"call_fake{number}_{index}"


def _arguments(arguments: JsonObject | str) -> str:
    return arguments if isinstance(arguments, str) else json.dumps(arguments)


def _pieces(text: str, size: int) -> Iterator[str]:
    for start in range(0, len(text), max(1, size)):
        yield text[start : start + size]
