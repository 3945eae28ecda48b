"""ScriptedProvider: a deterministic model for the offline demo, tests and users' own tests.

A script is a list of turns (or a function of the request). Each turn streams its text in small
chunks and then its tool calls, exactly like a real streaming provider, so the agent loop, the
interceptor and the frontends are exercised for real — only the words are predetermined.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio

from astrid_core import ConfigError, JsonObject

from ._pricing import Pricing
from ._types import (
    ModelRequest,
    ProviderEvent,
    Stop,
    TextChunk,
    ToolCall,
    ToolCallReady,
    Usage,
    estimate_tokens,
)

__all__ = ["ScriptedTurn", "ScriptedProvider"]


@dataclass(frozen=True)
class ScriptedTurn:
    text: str = ""
    tool_calls: tuple[tuple[str, JsonObject], ...] = ()
    output_tokens: int | None = None  # default: len(text) / 4 + 20 per call

    @classmethod
    def from_json(cls, raw: Any) -> ScriptedTurn:
        calls = tuple(
            (str(c["tool"]), dict(c.get("arguments", {}))) for c in raw.get("tool_calls", [])
        )
        return cls(str(raw.get("text", "")), calls, raw.get("output_tokens"))


Script = Sequence[ScriptedTurn] | Callable[[ModelRequest], ScriptedTurn]


@dataclass
class ScriptedProvider:
    script: Script
    name: str = "scripted"
    pricing: Pricing = field(default_factory=Pricing)
    chunk_size: int = 12
    delay_seconds: float = 0.0  # between chunks, to make streaming visible in the demo
    _next: int = 0

    @classmethod
    def from_file(cls, path: str | Path, **kwargs: Any) -> ScriptedProvider:
        try:
            data = json.loads(Path(path).read_text())
        except (OSError, ValueError) as exc:
            raise ConfigError(
                f"cannot read the model script {path}: {exc}",
                hint="[model] script must point to a JSON list of turns",
            ) from exc
        turns = data["turns"] if isinstance(data, dict) else data
        return cls([ScriptedTurn.from_json(t) for t in turns], **kwargs)

    def _turn(self, request: ModelRequest) -> ScriptedTurn:
        if callable(self.script):
            return self.script(request)
        if self._next >= len(self.script):
            return ScriptedTurn(text="(the scripted model has nothing more to say)")
        turn = self.script[self._next]
        self._next += 1
        return turn

    async def stream(self, request: ModelRequest) -> AsyncIterator[ProviderEvent]:
        turn = self._turn(request)
        for start in range(0, len(turn.text), self.chunk_size):
            if self.delay_seconds:
                await anyio.sleep(self.delay_seconds)
            yield TextChunk(turn.text[start : start + self.chunk_size])
        for index, (tool, arguments) in enumerate(turn.tool_calls):
            yield ToolCallReady(ToolCall(f"call_{self._next}_{index}", tool, arguments))
        output = (
            turn.output_tokens
            if turn.output_tokens is not None
            else len(turn.text) // 4 + 20 * len(turn.tool_calls) + 1
        )
        yield Usage(estimate_tokens(request), output)
        yield Stop("tool_use" if turn.tool_calls else "end_turn")

    def estimate_cost_micros(self, request: ModelRequest) -> int:
        return self.pricing.cost(Usage(estimate_tokens(request), request.max_tokens // 8))

    def cost_micros(self, model: str, usage: Usage) -> int:
        return self.pricing.cost(usage)
