"""Telegram frontend for Astrid."""

__all__: list[str] = []
