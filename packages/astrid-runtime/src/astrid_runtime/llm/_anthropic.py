"""AnthropicProvider: the Messages API through the official ``anthropic`` SDK, streamed.

The SDK's own retries are off (``max_retries=0``): ``stream_with_retries`` applies the one
``[retry]`` policy, which also covers errors that arrive inside the stream (an ``error`` SSE
event, a dropped connection). Every SDK or transport exception is translated into an
``LlmError`` here, so callers never have to know which HTTP library the SDK uses.
"""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator, AsyncIterator, Iterable
from contextlib import aclosing
from dataclasses import dataclass, field
from typing import Any, Literal, cast

import anthropic
import httpx2  # the transport under anthropic>=2; its errors escape while a body streams
from anthropic.types import (
    InputJSONDelta,
    MessageParam,
    RawContentBlockDeltaEvent,
    RawContentBlockStartEvent,
    RawContentBlockStopEvent,
    RawMessageDeltaEvent,
    RawMessageStartEvent,
    RawMessageStopEvent,
    RawMessageStreamEvent,
    TextDelta,
    ToolUseBlock,
)

from astrid_core import ConfigError, JsonObject

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

__all__ = ["AnthropicProvider"]

MALFORMED = "malformed stream from the Anthropic API"
_API_KEY_HINT = "set ANTHROPIC_API_KEY or [model] api_key to a valid Anthropic API key"
_RETRY_HINT = "the Anthropic API is busy or unreachable: wait and try again, or raise [retry]"
# Mid-stream error types that mean "the server had a bad moment", not "your request is wrong".
_TRANSIENT_STREAM_ERRORS = frozenset({"overloaded_error", "api_error", "rate_limit_error"})


class AnthropicProvider:
    name = "anthropic"

    def __init__(
        self,
        api_key: str,
        *,
        model: str = "claude-sonnet-4-6",
        base_url: str | None = None,
        timeout_seconds: float = 120.0,
        retry: RetryPolicy | None = None,
        pricing: Pricing | None = None,
    ) -> None:
        if not api_key:
            raise ConfigError("the anthropic provider has no API key", hint=_API_KEY_HINT)
        self.model = model
        self.retry = retry or RetryPolicy()
        self._pricing = pricing
        self._timeout_seconds = timeout_seconds
        self._client = anthropic.AsyncAnthropic(
            api_key=api_key, base_url=base_url, max_retries=0, timeout=timeout_seconds
        )

    async def aclose(self) -> None:
        """Release the SDK's connection pool."""
        await self._client.close()

    def stream(self, request: ModelRequest) -> AsyncIterator[ProviderEvent]:
        return stream_with_retries(lambda: self._one_attempt(request), self.retry)

    def estimate_cost_micros(self, request: ModelRequest) -> int:
        # Worst case: the model may write all of max_tokens, and the budget must hold that.
        usage = Usage(estimate_tokens(request), request.max_tokens)
        return self._pricing_for(request.model or self.model).cost(usage)

    def cost_micros(self, model: str, usage: Usage) -> int:
        return self._pricing_for(model).cost(usage)

    def _pricing_for(self, model: str) -> Pricing:
        return self._pricing or price_for(model)

    async def _one_attempt(self, request: ModelRequest) -> AsyncIterator[ProviderEvent]:
        try:
            events = await self._client.messages.create(
                model=request.model or self.model,
                max_tokens=request.max_tokens,
                messages=to_anthropic_messages(request.messages),
                stream=True,
                **_optional_params(request),
            )
        except anthropic.AnthropicError as error:
            raise self._translate(error) from error
        translator = _StreamTranslator()
        async with events, aclosing(self._checked(events)) as checked:
            async for event in checked:
                for produced in translator.feed(event):
                    yield produced
            if not translator.finished:
                raise LlmError(
                    f"{MALFORMED}: it ended before message_stop",
                    hint="retry; if it persists, check [model] base_url points at the real API",
                )

    async def _checked(
        self, events: AsyncIterator[RawMessageStreamEvent]
    ) -> AsyncGenerator[RawMessageStreamEvent, None]:
        """The SDK's events, with everything that can go wrong while reading them translated."""
        try:
            async for event in events:
                yield event
        except anthropic.AnthropicError as error:
            raise self._translate(error) from error
        except httpx2.TransportError as error:
            # A dropped connection or a stalled read: worth another attempt if nothing was shown.
            raise RetryableLlmError(
                f"{MALFORMED}: the connection failed before message_stop "
                f"({type(error).__name__}: {error})",
                hint=_RETRY_HINT,
            ) from error
        except (ValueError, httpx2.HTTPError) as error:  # bad JSON, bad UTF-8, bad SSE
            raise LlmError(
                f"{MALFORMED}: an event could not be read ({type(error).__name__}: {error})",
                hint="check that [model] base_url points at the Anthropic Messages API",
            ) from error

    def _translate(self, error: anthropic.AnthropicError) -> LlmError:
        if isinstance(error, anthropic.APITimeoutError):
            return RetryableLlmError(
                f"the Anthropic API did not answer within {self._timeout_seconds:g} s",
                hint=_RETRY_HINT,
            )
        if isinstance(error, anthropic.APIConnectionError):
            return RetryableLlmError(
                f"cannot reach the Anthropic API at {self._client.base_url}: "
                f"{error.__cause__ or error.message}",
                hint="check the network and [model] base_url",
            )
        if isinstance(error, anthropic.APIStatusError):
            return _translate_status(error)
        if isinstance(error, anthropic.APIResponseValidationError):
            return LlmError(f"{MALFORMED}: {error.message}")
        return LlmError(f"the Anthropic SDK failed: {error}")


def _translate_status(error: anthropic.APIStatusError) -> LlmError:
    status = error.status_code
    detail = error.api_message or error.message
    kind = error.type or ""
    if status == 200:  # an `event: error` inside a stream that had started fine
        if kind in _TRANSIENT_STREAM_ERRORS:
            return RetryableLlmError(f"the Anthropic API stream failed: {kind}: {detail}")
        return LlmError(f"the Anthropic API stream failed: {kind}: {detail}")
    if status == 401:
        return LlmError(f"the Anthropic API rejected the API key: {detail}", hint=_API_KEY_HINT)
    if status == 403:
        return LlmError(
            f"the Anthropic API key may not do this: {detail}",
            hint="check the key's workspace and model access in the Anthropic console",
        )
    if status == 429:
        return RetryableLlmError(
            f"the Anthropic API rate limit was hit: {detail}",
            retry_after=_retry_after(error.response.headers),
            hint="wait, lower the request rate, or raise [retry] max_attempts",
        )
    if status in (408, 409) or status >= 500:  # 529 is "overloaded"
        return RetryableLlmError(
            f"the Anthropic API failed with HTTP {status}: {detail}",
            retry_after=_retry_after(error.response.headers),
            hint=_RETRY_HINT,
        )
    if status == 404:
        return LlmError(
            f"the Anthropic API answered 404: {detail}",
            hint="check [model] model and [model] base_url",
        )
    return LlmError(
        f"the Anthropic API rejected the request (HTTP {status}): {detail}",
        hint="the message above names the problem; check [model] settings and the tool schemas",
    )


def _retry_after(headers: Any) -> float | None:
    """Seconds from ``retry-after-ms`` or ``retry-after`` (HTTP dates are rare here and are
    left to the backoff policy)."""
    for name, scale in (("retry-after-ms", 0.001), ("retry-after", 1.0)):
        raw = headers.get(name)
        if raw is None:
            continue
        try:
            seconds = float(raw) * scale
        except ValueError:
            continue
        if seconds >= 0:
            return seconds
    return None


def _optional_params(request: ModelRequest) -> dict[str, Any]:
    params: dict[str, Any] = {}
    if request.system:
        params["system"] = request.system
    if request.tools:
        params["tools"] = [
            {"name": t.name, "description": t.description, "input_schema": t.input_schema}
            for t in request.tools
        ]
    return params


def to_anthropic_messages(messages: Iterable[ChatMessage]) -> list[MessageParam]:
    """Our conversation as Messages API turns. Tool results travel as ``tool_result`` blocks
    in a user turn, and adjacent turns of one role are merged, because the API wants each
    assistant ``tool_use`` answered by the very next (user) message."""
    turns: list[MessageParam] = []
    for message in messages:
        role, blocks = _blocks(message)
        if not blocks:
            continue  # an empty text block is rejected by the API; an empty turn says nothing
        if turns and turns[-1]["role"] == role:
            cast(list[Any], turns[-1]["content"]).extend(blocks)
        else:
            turns.append(cast(MessageParam, {"role": role, "content": blocks}))
    return turns


def _blocks(message: ChatMessage) -> tuple[Literal["user", "assistant"], list[Any]]:
    if message.role == "tool":
        result = {"type": "tool_result", "tool_use_id": message.tool_call_id or ""}
        return "user", [{**result, "content": message.content}]
    blocks: list[Any] = [{"type": "text", "text": message.content}] if message.content else []
    blocks += [
        {"type": "tool_use", "id": call.id, "name": call.name, "input": call.arguments}
        for call in message.tool_calls
    ]
    return message.role, blocks


@dataclass
class _ToolBlock:
    id: str
    name: str
    json_parts: list[str] = field(default_factory=list)

    def call(self) -> ToolCall:
        raw = "".join(self.json_parts) or "{}"
        try:
            arguments = json.loads(raw)
        except ValueError as error:
            raise LlmError(
                f"{MALFORMED}: the arguments of tool {self.name!r} are not valid JSON ({error})",
                hint="retry the turn; the model's tool call was cut or corrupted",
            ) from error
        if not isinstance(arguments, dict):
            raise LlmError(f"{MALFORMED}: the arguments of tool {self.name!r} are not an object")
        return ToolCall(self.id, self.name, cast(JsonObject, arguments))


@dataclass
class _StreamTranslator:
    """Turns the SDK's raw stream events into ours; Usage and Stop wait for message_stop."""

    input_tokens: int = 0
    output_tokens: int = 0
    stop_reason: str = "end_turn"
    finished: bool = False
    tools: dict[int, _ToolBlock] = field(default_factory=dict[int, _ToolBlock])

    def feed(self, event: RawMessageStreamEvent) -> list[ProviderEvent]:
        if isinstance(event, RawMessageStartEvent):
            usage = event.message.usage
            # Cached input is billed at other rates; counting it as plain input over-charges
            # the budget slightly rather than letting cached tokens go unaccounted.
            self.input_tokens = (
                usage.input_tokens
                + (usage.cache_creation_input_tokens or 0)
                + (usage.cache_read_input_tokens or 0)
            )
            self.output_tokens = usage.output_tokens
        elif isinstance(event, RawContentBlockStartEvent):
            block = event.content_block
            if isinstance(block, ToolUseBlock):
                self.tools[event.index] = _ToolBlock(block.id, block.name)
        elif isinstance(event, RawContentBlockDeltaEvent):
            delta = event.delta
            if isinstance(delta, TextDelta) and delta.text:
                return [TextChunk(delta.text)]
            if isinstance(delta, InputJSONDelta) and event.index in self.tools:
                self.tools[event.index].json_parts.append(delta.partial_json)
        elif isinstance(event, RawContentBlockStopEvent):
            tool = self.tools.pop(event.index, None)
            if tool is not None:
                return [ToolCallReady(tool.call())]
        elif isinstance(event, RawMessageDeltaEvent):
            self.output_tokens = event.usage.output_tokens  # cumulative: the last one counts
            if event.delta.stop_reason is not None:
                self.stop_reason = event.delta.stop_reason
        elif isinstance(event, RawMessageStopEvent):
            self.finished = True
            return [Usage(self.input_tokens, self.output_tokens), Stop(self.stop_reason)]
        return []
