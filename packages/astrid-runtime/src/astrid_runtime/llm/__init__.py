"""LLM providers: one streaming protocol, a scripted provider, and the real SDKs."""

from ._pricing import MODEL_PRICES, Pricing, price_for
from ._retry import RetryableLlmError, RetryPolicy, stream_with_retries
from ._scripted import ScriptedProvider, ScriptedTurn
from ._types import (
    ChatMessage,
    LlmError,
    LlmProvider,
    ModelRequest,
    ProviderEvent,
    Retrying,
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
    "Retrying",
    "TextChunk",
    "ToolCallReady",
    "Usage",
    "Stop",
    "estimate_tokens",
    "ScriptedProvider",
    "ScriptedTurn",
    "Pricing",
    "price_for",
    "MODEL_PRICES",
    "RetryPolicy",
    "RetryableLlmError",
    "stream_with_retries",
]
