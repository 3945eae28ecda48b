"""Test doubles that ship with the runtime, for its tests and users' own: local servers that
speak the real LLM APIs' wire formats. Script types live in each fake's module."""

from .fake_anthropic import FakeAnthropicServer
from .fake_openai import FakeOpenAIServer

__all__ = [
    "FakeAnthropicServer",
    "FakeOpenAIServer",
]
