"""Secure MCP client for Astrid: server lifecycle, sandbox, guard-checked tool calls."""

__all__: list[str] = []
