"""LLM providers: one streaming protocol, a scripted provider, and the real SDKs."""

from ._scripted import Pricing, ScriptedProvider, ScriptedTurn
from ._types import (
    ChatMessage,
    LlmError,
    LlmProvider,
    ModelRequest,
    ProviderEvent,
    Stop,
    TextChunk,
    ToolCall,
    ToolCallReady,
    ToolSpec,
    Usage,
    estimate_tokens,
)

__all__ = [
    "LlmProvider",
    "LlmError",
    "ModelRequest",
    "ChatMessage",
    "ToolSpec",
    "ToolCall",
    "ProviderEvent",
    "TextChunk",
    "ToolCallReady",
    "Usage",
    "Stop",
    "estimate_tokens",
    "ScriptedProvider",
    "ScriptedTurn",
    "Pricing",
]
