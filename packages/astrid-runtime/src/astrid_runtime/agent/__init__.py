"""The agent loop: model, tool calls through the interceptor, untrusted results, repeat."""

from ._loop import AgentLoop, TurnCancelled

__all__ = ["AgentLoop", "TurnCancelled"]
