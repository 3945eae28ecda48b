"""Standalone (``python -m astrid_telegram`` / ``astrid telegram run``) and embedded modes.

Both run the same bot against the daemon's authenticated WebSocket. Embedded mode is a
companion task inside astridd's process (composed by the ``astrid`` meta-package, since the
gateway layer cannot import this one); standalone mode is its own process and can run on
another machine with a copy of the daemon token.
"""

from __future__ import annotations

import logging
import os
import signal
import tomllib
from pathlib import Path
from typing import Any

import anyio

from astrid_core import ConfigError
from astrid_gateway.paths import StatePaths

from .bot import AstridTelegramBot
from .settings import TelegramSettings

__all__ = ["telegram_section", "run_standalone", "embedded_companion"]

log = logging.getLogger("astrid.telegram")


def telegram_section(home: Path) -> dict[str, Any]:
    """The merged ``[telegram]`` table of the layered configuration (system and user files).

    With the runtime installed its loader merges the layers (the bot token unwrapped from its
    secret type); without it, the user file alone is read.
    """
    try:
        from astrid_runtime.config import load_config
    except ImportError:
        return _user_file_section(home)
    section = load_config(home).config.telegram
    dumped = section.model_dump()
    if section.bot_token is not None:
        dumped["bot_token"] = section.bot_token.get_secret_value()
    return dumped


def _user_file_section(home: Path) -> dict[str, Any]:
    path = home / "config.toml"
    try:
        data = tomllib.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}") from exc
    section = data.get("telegram", {})
    return dict(section) if isinstance(section, dict) else {}


async def run_standalone(home: Path, *, autostart_daemon: bool = True) -> None:
    settings = TelegramSettings.from_sources(
        telegram_section(home), os.environ, home=str(home), autostart_daemon=autostart_daemon
    )
    bot = AstridTelegramBot(settings)

    async def stop_on_signal() -> None:
        with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            async for _ in signals:
                bot.stop()
                return

    async with anyio.create_task_group() as tg:
        tg.start_soon(stop_on_signal)
        await bot.run()  # returns after stop(), once the Telegram application has shut down
        tg.cancel_scope.cancel()


async def embedded_companion(paths: StatePaths) -> None:
    """Run the bot inside astridd when ``[telegram] embedded = true`` and a token exists."""
    section = telegram_section(paths.root)
    token = os.environ.get("TELEGRAM_BOT_TOKEN") or section.get("bot_token")
    if not section.get("embedded", True) or not token:
        return
    settings = TelegramSettings.from_sources(
        section, os.environ, home=str(paths.root), autostart_daemon=False
    )
    log.info("starting the embedded Telegram bot")
    await AstridTelegramBot(settings).run()
