"""Astrid: a secure runtime for AI agents (meta-package)."""

__all__: list[str] = []
