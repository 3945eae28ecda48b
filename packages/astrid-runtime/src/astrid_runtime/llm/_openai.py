"""OpenAIProvider: the Chat Completions streaming API through the official ``openai`` SDK.

OpenAI, Ollama, vLLM, the llama.cpp server, OpenRouter and Z.ai all speak this wire format, so
one provider serves them all through ``base_url``. The SDK's own retries are off: one
:class:`RetryPolicy` governs every provider (see ``_retry``), and every SDK or transport error is
turned into an :class:`LlmError` here, so nothing raw reaches the agent loop.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, cast

import openai
from openai import AsyncOpenAI, AsyncStream, omit
from openai.types.chat import (
    ChatCompletionChunk,
    ChatCompletionFunctionToolParam,
    ChatCompletionMessageParam,
)
from openai.types.chat.chat_completion_chunk import ChoiceDeltaToolCall

from ._pricing import Pricing, price_for
from ._retry import RetryableLlmError, RetryPolicy, stream_with_retries
from ._types import (
    ChatMessage,
    LlmError,
    ModelRequest,
    ProviderEvent,
    Stop,
    TextChunk,
    ToolCall,
    ToolCallReady,
    Usage,
    estimate_tokens,
)

__all__ = ["OpenAIProvider"]

OPENAI_BASE_URL = "https://api.openai.com/v1"
# The SDK refuses an empty key, but local servers need none: send a placeholder. The real API
# answers it with a 401, which becomes the "set OPENAI_API_KEY" hint below.
_PLACEHOLDER_KEY = "astrid-no-key"
_KEY_HINT = "set OPENAI_API_KEY or [model] api_key (local servers accept any key)"
_STOP_REASONS = {"stop": "end_turn", "tool_calls": "tool_use", "length": "max_tokens"}
_RETRYABLE_STATUS = {408, 409, 429}  # plus every 5xx: the statuses the SDK itself would retry


class OpenAIProvider:
    name = "openai"

    def __init__(
        self,
        *,
        api_key: str,
        model: str,
        base_url: str | None = None,
        timeout_seconds: float = 120.0,
        retry: RetryPolicy | None = None,
        pricing: Pricing | None = None,
    ) -> None:
        self.model = model
        self.base_url = (base_url or OPENAI_BASE_URL).rstrip("/")
        self.retry = retry or RetryPolicy()
        self._pricing = pricing
        # OpenAI's newer models refuse ``max_tokens``; compatible servers widely know only it.
        self._official = "api.openai.com" in self.base_url
        self._client = AsyncOpenAI(
            api_key=api_key or _PLACEHOLDER_KEY,
            base_url=self.base_url,
            max_retries=0,
            timeout=timeout_seconds,
        )

    async def aclose(self) -> None:
        await self._client.close()

    # ------------------------------------------------------------------ LlmProvider
    def stream(self, request: ModelRequest) -> AsyncIterator[ProviderEvent]:
        return stream_with_retries(lambda: self._attempt(request), self.retry)

    def estimate_cost_micros(self, request: ModelRequest) -> int:
        # The whole max_tokens allowance: the budget reservation must cover the worst case.
        usage = Usage(estimate_tokens(request), request.max_tokens)
        return self._price(request.model).cost(usage)

    def cost_micros(self, model: str, usage: Usage) -> int:
        return self._price(model).cost(usage)

    def _price(self, model: str) -> Pricing:
        return self._pricing or price_for(model or self.model)

    # ------------------------------------------------------------------ one attempt
    async def _attempt(self, request: ModelRequest) -> AsyncIterator[ProviderEvent]:
        model = request.model or self.model
        max_tokens = request.max_tokens
        try:
            stream = await self._client.chat.completions.create(
                model=model,
                messages=_messages(request),
                tools=[_tool(t.name, t.description, t.input_schema) for t in request.tools] or omit,
                stream=True,
                stream_options={"include_usage": True},
                max_completion_tokens=max_tokens if self._official else omit,
                max_tokens=omit if self._official else max_tokens,
            )
        except openai.APIStatusError as exc:
            raise self._status_error(exc, model) from exc
        except openai.APITimeoutError as exc:
            raise self._timeout_error() from exc
        except openai.APIConnectionError as exc:
            raise RetryableLlmError(
                f"cannot reach the OpenAI-compatible API at {self.base_url}: {_cause(exc)}",
                hint="check [model] base_url and that the server is running",
            ) from exc
        except openai.OpenAIError as exc:
            raise LlmError(f"the OpenAI SDK failed before the request was sent: {exc}") from exc
        turn = _Turn()
        async with stream:
            async for chunk in self._chunks(stream):
                for event in turn.feed(chunk):
                    yield event
        if turn.finish_reason is None:
            # The SDK hides [DONE]; a stream that ends without a finish_reason was cut short.
            raise RetryableLlmError(self._malformed("the stream ended before a finish_reason"))
        for event in turn.finish(request):
            yield event

    async def _chunks(
        self, stream: AsyncStream[ChatCompletionChunk]
    ) -> AsyncIterator[ChatCompletionChunk]:
        """The stream's chunks, with the errors that arrive *inside* the stream translated."""
        chunks = stream.__aiter__()
        while True:
            try:
                chunk = await anext(chunks)
            except StopAsyncIteration:
                return
            except ValueError as exc:  # the SDK json-decodes each data line
                raise LlmError(
                    self._malformed(f"a data line is not JSON ({exc})"),
                    hint="the server or a proxy in between is broken; try again or check it",
                ) from exc
            except openai.APITimeoutError as exc:
                raise self._timeout_error() from exc
            except openai.APIConnectionError as exc:
                raise RetryableLlmError(
                    self._malformed(f"the connection closed before [DONE] ({_cause(exc)})")
                ) from exc
            except openai.APIError as exc:
                # An {"error": ...} data line: the request was accepted and the model then
                # failed upstream (OpenRouter, proxies), which is worth another attempt.
                raise RetryableLlmError(
                    f"the OpenAI-compatible API at {self.base_url} failed mid-stream: "
                    f"{_server_message(exc)}"
                ) from exc
            except openai.OpenAIError as exc:
                raise LlmError(self._malformed(str(exc))) from exc
            yield chunk

    # ------------------------------------------------------------------ error mapping
    def _malformed(self, detail: str) -> str:
        return f"malformed stream from the OpenAI-compatible API at {self.base_url}: {detail}"

    def _timeout_error(self) -> RetryableLlmError:
        return RetryableLlmError(
            f"the OpenAI-compatible API at {self.base_url} did not answer in time",
            hint="try again; a slow local model may need a larger timeout",
        )

    def _status_error(self, exc: openai.APIStatusError, model: str) -> LlmError:
        status = exc.status_code
        said = _server_message(exc)
        where = f"the OpenAI-compatible API at {self.base_url}"
        if status in _RETRYABLE_STATUS or status >= 500:
            return RetryableLlmError(
                f"{where} answered {status}: {said}",
                retry_after=_retry_after(exc),
                hint="wait and try again; on 429, lower the request rate or raise the "
                "account's rate limits",
            )
        if status == 401:
            return LlmError(f"{where} rejected the API key: {said}", hint=_KEY_HINT)
        if status == 403:
            return LlmError(
                f"{where} refused access: {said}",
                hint="the key is valid but lacks access to this model or endpoint",
            )
        if status == 404:
            return LlmError(
                f"{where} does not know the model {model!r} (or the endpoint): {said}",
                hint="check [model] model (a local server lists its names at GET /v1/models) "
                "and that [model] base_url ends in /v1",
            )
        return LlmError(
            f"{where} refused the request ({status}): {said}",
            hint="check [model] model and max_tokens; the server's message names the problem",
        )


# ---------------------------------------------------------------------- request mapping
def _messages(request: ModelRequest) -> list[ChatCompletionMessageParam]:
    mapped: list[ChatCompletionMessageParam] = []
    if request.system:
        mapped.append({"role": "system", "content": request.system})
    mapped.extend(_message(m) for m in request.messages)
    return mapped


def _message(message: ChatMessage) -> ChatCompletionMessageParam:
    if message.role == "tool":
        if message.tool_call_id is None:
            raise LlmError(
                "a tool result in the conversation has no tool_call_id",
                hint="this is a bug in the caller: every tool message answers one tool call",
            )
        return {"role": "tool", "tool_call_id": message.tool_call_id, "content": message.content}
    if message.role == "assistant" and message.tool_calls:
        return {
            "role": "assistant",
            # null, not "", when the model only called tools: what the API itself returns.
            "content": message.content or None,
            "tool_calls": [
                {
                    "id": call.id,
                    "type": "function",
                    "function": {"name": call.name, "arguments": json.dumps(call.arguments)},
                }
                for call in message.tool_calls
            ],
        }
    if message.role == "assistant":
        return {"role": "assistant", "content": message.content}
    return {"role": "user", "content": message.content}


def _tool(name: str, description: str, schema: dict[str, Any]) -> ChatCompletionFunctionToolParam:
    return {
        "type": "function",
        "function": {"name": name, "description": description, "parameters": schema},
    }


# ---------------------------------------------------------------------- stream assembly
@dataclass
class _PendingCall:
    id: str
    name: str = ""
    argument_parts: list[str] = field(default_factory=lambda: list[str]())


@dataclass
class _Turn:
    """Accumulates one streamed response: text passes straight through, tool calls are
    assembled from their deltas and released once the finish_reason says they are complete."""

    calls: list[_PendingCall] = field(default_factory=lambda: list[_PendingCall]())
    by_index: dict[int, _PendingCall] = field(default_factory=lambda: dict[int, _PendingCall]())
    finish_reason: str | None = None
    usage: Usage | None = None
    output_chars: int = 0

    def feed(self, chunk: ChatCompletionChunk) -> list[ProviderEvent]:
        if chunk.usage is not None:
            self.usage = Usage(chunk.usage.prompt_tokens, chunk.usage.completion_tokens)
        if not chunk.choices or self.finish_reason is not None:
            return []
        choice = chunk.choices[0]
        events: list[ProviderEvent] = []
        delta = cast(Any, choice).delta  # some servers omit the delta on the last chunk
        if delta is not None:
            if delta.content:
                self.output_chars += len(delta.content)
                events.append(TextChunk(delta.content))
            for part in delta.tool_calls or ():
                self._add(part)
        if choice.finish_reason is not None:
            self.finish_reason = choice.finish_reason
            events.extend(ToolCallReady(self._complete(i, c)) for i, c in enumerate(self.calls))
        return events

    def _add(self, part: ChoiceDeltaToolCall) -> None:
        index = cast(Any, part).index  # absent on a few servers
        current = self.by_index.get(index) if isinstance(index, int) else None
        if current is None and not isinstance(index, int) and self.calls and not part.id:
            current = self.calls[-1]
        # Some servers (older Ollama) number every call 0: a new id means a new call.
        if current is None or (part.id and current.id and part.id != current.id):
            current = _PendingCall(part.id or "")
            self.calls.append(current)
            if isinstance(index, int):
                self.by_index[index] = current
        if part.id and not current.id:
            current.id = part.id
        function = part.function
        if function is not None:
            if function.name and function.name != current.name:
                current.name += function.name
            if function.arguments:
                current.argument_parts.append(function.arguments)
            self.output_chars += len(function.name or "") + len(function.arguments or "")

    def _complete(self, position: int, call: _PendingCall) -> ToolCall:
        text = "".join(call.argument_parts).strip()
        name = call.name or "(unnamed tool)"
        try:
            arguments = json.loads(text) if text else {}
        except ValueError as exc:
            if self.finish_reason == "length":
                raise LlmError(
                    f"the model ran out of tokens while writing the arguments of {name}",
                    hint="raise [model] max_tokens",
                ) from exc
            raise LlmError(
                f"the model sent malformed JSON arguments for the tool {name}: {exc}",
                hint="try again; a small local model may not follow tool schemas reliably",
            ) from exc
        if not isinstance(arguments, dict):
            raise LlmError(
                f"the model sent arguments for the tool {name} that are not a JSON object",
                hint="try again; a small local model may not follow tool schemas reliably",
            )
        return ToolCall(call.id or f"call_{position}", name, cast(dict[str, Any], arguments))

    def finish(self, request: ModelRequest) -> list[ProviderEvent]:
        # Some local servers never report usage: estimate it (4 characters per token) rather
        # than commit a zero cost to the budget.
        usage = self.usage or Usage(estimate_tokens(request), self.output_chars // 4 + 1)
        if self.calls:
            reason = "tool_use"  # even if a server said "stop" (older Ollama does)
        else:
            reason = _STOP_REASONS.get(self.finish_reason or "stop", "end_turn")
        return [usage, Stop(reason)]


# ---------------------------------------------------------------------- small helpers
def _server_message(exc: openai.APIError) -> str:
    body = exc.body
    if isinstance(body, dict):
        message = cast(dict[str, Any], body).get("message")
        if isinstance(message, str) and message:
            return message
    return exc.message


def _cause(exc: BaseException) -> str:
    cause = exc.__cause__ or exc.__context__
    return f"{type(cause).__name__}: {cause}" if cause is not None else str(exc)


def _retry_after(exc: openai.APIStatusError) -> float | None:
    """Seconds from ``retry-after-ms`` (OpenAI's own) or ``Retry-After`` (seconds or an
    HTTP date), or None when absent or unreadable."""
    headers = exc.response.headers
    try:
        if (millis := headers.get("retry-after-ms")) is not None:
            return max(0.0, float(millis) / 1000)
        if (value := headers.get("retry-after")) is None:
            return None
        try:
            return max(0.0, float(value))
        except ValueError:
            when = parsedate_to_datetime(value)
            return max(0.0, (when - datetime.now(UTC)).total_seconds())
    except (ValueError, TypeError):
        return None
