"""Settings of the Telegram frontend ([telegram] config section + environment)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from astrid_core import ConfigError

__all__ = ["TelegramSettings"]


@dataclass(frozen=True)
class TelegramSettings:
    bot_token: str
    allowed_user_ids: tuple[int, ...] = ()
    allow_any_user: bool = False
    workspace_path: str | None = None
    base_url: str = "https://api.telegram.org/bot"
    edit_interval_seconds: float = 1.0
    home: str | None = None  # the daemon's ASTRID_HOME
    autostart_daemon: bool = True

    def __repr__(self) -> str:  # never print the token
        return f"TelegramSettings(users={list(self.allowed_user_ids)}, any={self.allow_any_user})"

    @classmethod
    def from_sources(
        cls,
        section: Mapping[str, Any] | None = None,
        env: Mapping[str, str] | None = None,
        **overrides: Any,
    ) -> TelegramSettings:
        """``TELEGRAM_BOT_TOKEN`` wins over ``[telegram] bot_token`` (keeps it out of files)."""
        section = dict(section or {})
        env = os.environ if env is None else env
        token = env.get("TELEGRAM_BOT_TOKEN") or section.get("bot_token") or ""
        if not token:
            raise ConfigError(
                "no Telegram bot token configured",
                hint="export TELEGRAM_BOT_TOKEN=... (preferred) or set [telegram] bot_token",
            )
        if ":" not in str(token):
            raise ConfigError("the Telegram bot token is malformed (expected <id>:<secret>)")
        values: dict[str, Any] = {
            "bot_token": str(token),
            "allowed_user_ids": tuple(int(u) for u in section.get("allowed_user_ids", ())),
            "allow_any_user": bool(section.get("allow_any_user", False)),
            "workspace_path": section.get("workspace_path"),
        }
        if section.get("base_url"):
            values["base_url"] = str(section["base_url"])
        values.update(overrides)
        return cls(**values)
