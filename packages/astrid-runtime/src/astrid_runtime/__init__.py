"""Astrid agent runtime: config, LLM providers, built-in tools, agent loop, sessions."""

__all__: list[str] = []
