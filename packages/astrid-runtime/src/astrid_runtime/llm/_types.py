"""Provider-neutral conversation types and the streamed events every provider yields."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from functools import cached_property
from typing import Any, Literal, Protocol, runtime_checkable

from astrid_core import AstridError, JsonObject

__all__ = [
    "ToolSpec",
    "ToolCall",
    "ChatMessage",
    "ModelRequest",
    "TextChunk",
    "ToolCallReady",
    "Usage",
    "Stop",
    "ProviderEvent",
    "Retrying",
    "LlmProvider",
    "LlmError",
    "estimate_tokens",
]


class LlmError(AstridError):
    code = "llm.error"
    default_hint = "check the [model] configuration and the provider's status"


@dataclass(frozen=True)
class ToolSpec:
    name: str
    description: str
    input_schema: JsonObject

    @cached_property
    def size_chars(self) -> int:
        """What the spec costs in the request, in characters (for ``estimate_tokens``)."""
        return len(self.name) + len(self.description) + len(json.dumps(self.input_schema)) + 40


@dataclass(frozen=True)
class ToolCall:
    id: str
    name: str
    arguments: JsonObject


@dataclass(frozen=True)
class ChatMessage:
    role: Literal["user", "assistant", "tool"]
    content: str
    tool_calls: tuple[ToolCall, ...] = ()
    tool_call_id: str | None = None
    untrusted: bool = False  # tool output and fetched content: data, never instructions

    @cached_property
    def size_chars(self) -> int:
        """What the message costs in the request, in characters (for ``estimate_tokens``);
        computed once, since every call of a long conversation re-sends every message."""
        calls = sum(len(json.dumps(c.arguments)) + len(c.name) + 40 for c in self.tool_calls)
        return len(self.content) + calls

    def to_json(self) -> JsonObject:
        return {
            "role": self.role,
            "content": self.content,
            "tool_calls": [
                {"id": c.id, "name": c.name, "arguments": c.arguments} for c in self.tool_calls
            ],
            "tool_call_id": self.tool_call_id,
            "untrusted": self.untrusted,
        }

    @classmethod
    def from_json(cls, raw: Any) -> ChatMessage:
        calls = tuple(
            ToolCall(str(c["id"]), str(c["name"]), dict(c["arguments"]))
            for c in raw.get("tool_calls", [])
        )
        return cls(
            raw["role"],
            str(raw["content"]),
            calls,
            raw.get("tool_call_id"),
            bool(raw.get("untrusted")),
        )


@dataclass(frozen=True)
class ModelRequest:
    model: str
    system: str
    messages: tuple[ChatMessage, ...]
    tools: tuple[ToolSpec, ...] = ()
    max_tokens: int = 4096

    @cached_property
    def estimated_input_tokens(self) -> int:
        """``estimate_tokens(self)``, summed once per request: the budget estimate, the
        provider's usage fallback and the stream all ask, and a long conversation is long."""
        chars = len(self.system) + _messages_chars(self.messages)
        chars += sum(t.size_chars for t in self.tools)
        return chars // 4 + 8 * (len(self.messages) + 1) + 1


# Per conversation (keyed by its first message), the last message tuple whose sizes were summed,
# and the sum. A conversation's next request is its last one plus a few messages, so only those
# are summed: summing all of them made every round of a long conversation slower than the
# one before (a 300-round conversation summed ~300 messages per round, ~0.2 ms here).
_SUMMED: dict[int, tuple[tuple[ChatMessage, ...], int]] = {}
_SUMMED_CONVERSATIONS = 64


def _messages_chars(messages: tuple[ChatMessage, ...]) -> int:
    if not messages:
        return 0
    key = id(messages[0])  # held alive by the entry below, so the id cannot be reused meanwhile
    last = _SUMMED.get(key)
    if last is not None and len(messages) >= len(last[0]) and messages[: len(last[0])] == last[0]:
        # Compared in C, element by element, identity first: the unchanged prefix is cheap.
        total = last[1] + sum(m.size_chars for m in messages[len(last[0]) :])
    else:  # a new conversation, or its history was replaced (compaction)
        total = sum(m.size_chars for m in messages)
        if len(_SUMMED) >= _SUMMED_CONVERSATIONS:
            _SUMMED.clear()
    _SUMMED[key] = (messages, total)
    return total


@dataclass(frozen=True)
class TextChunk:
    text: str


@dataclass(frozen=True)
class ToolCallReady:
    call: ToolCall


@dataclass(frozen=True)
class Usage:
    input_tokens: int
    output_tokens: int


@dataclass(frozen=True)
class Stop:
    reason: str  # "end_turn" | "tool_use" | "max_tokens"


@dataclass(frozen=True)
class Retrying:
    """Not from the model: the provider will try again after a retryable error (rate limited,
    overloaded, connection lost) once ``wait_seconds`` have passed. Consumers that only want
    the model's output ignore it; the agent loop shows it, so a wait is never silent."""

    reason: str
    wait_seconds: float
    attempt: int  # the attempt that failed (1-based)
    max_attempts: int


ProviderEvent = TextChunk | ToolCallReady | Usage | Stop | Retrying


def estimate_tokens(request: ModelRequest) -> int:
    """Input size, rounded up, that the budget reserves before a call: 4 characters per token,
    plus the per-message framing the APIs add (measured against the fakes' real counting), and
    tool schemas as the JSON they are sent as. Overestimating only reserves a little more."""
    return request.estimated_input_tokens


@runtime_checkable
class LlmProvider(Protocol):
    name: str

    def stream(self, request: ModelRequest) -> AsyncIterator[ProviderEvent]: ...

    def estimate_cost_micros(self, request: ModelRequest) -> int: ...

    def cost_micros(self, model: str, usage: Usage) -> int: ...
