"""Shared fixtures: the fake Bot API, a daemon running a scripted model, and our bot.

The daemon runs the scripted model in ``safe`` mode, so every tool call waits for an inline
keyboard answer; the helpers press those buttons through the fake API exactly as Telegram would
deliver them (a ``callback_query`` update).
"""

from __future__ import annotations

import html
import subprocess
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import pytest

from astrid_gateway import testing as daemon
from astrid_telegram.bot import AstridTelegramBot
from astrid_telegram.settings import TelegramSettings
from astrid_telegram.testing import ChatMessage, FakeBotApi

OWNER = 1001
OTHER_ALLOWED = 1002  # on the allow-list, but did not start the session
STRANGER = 2002  # not on the allow-list at all


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def api() -> Iterator[FakeBotApi]:
    with FakeBotApi() as server:
        yield server


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    ws = tmp_path / "ws"
    ws.mkdir()
    (ws / "victim.txt").write_text("precious")
    return ws.resolve()


@pytest.fixture
def start_daemon(tmp_path: Path, workspace: Path) -> Iterator[Callable[[list[Any]], Path]]:
    """Start astridd with the scripted model (safe mode) and return its home."""
    procs: list[subprocess.Popen[bytes]] = []

    def start(turns: list[Any]) -> Path:
        home = tmp_path / "home"
        daemon.write_scripted_config(home, workspace, turns, mode="safe")
        procs.append(daemon.start_daemon(home))
        return home

    yield start
    for proc in procs:
        daemon.stop_daemon(proc)


@asynccontextmanager
async def running_bot(
    api: FakeBotApi, home: Path, allowed: tuple[int, ...]
) -> AsyncIterator[AstridTelegramBot]:
    settings = TelegramSettings(
        bot_token=api.token,
        allowed_user_ids=allowed,
        base_url=api.base_url,
        home=str(home),
        autostart_daemon=False,
        edit_interval_seconds=0.2,
    )
    bot = AstridTelegramBot(settings)
    async with anyio.create_task_group() as tg:
        tg.start_soon(bot.run)
        with anyio.fail_after(30):
            await bot.connected.wait()
        try:
            yield bot
        finally:
            bot.stop()


async def wait_until(
    api: FakeBotApi, predicate: Callable[[], bool], what: str, timeout: float = 30.0
) -> None:
    await anyio.to_thread.run_sync(lambda: api.wait_for(predicate, timeout=timeout, what=what))


def approval_message(api: FakeBotApi, chat: int) -> ChatMessage | None:
    for message in api.bot_messages(chat):
        if any(label == "Allow Once" for label, _ in api.buttons(message)):
            return message
    return None


def button_data(api: FakeBotApi, message: ChatMessage, label: str) -> str:
    return next(data for text, data in api.buttons(message) if text == label)


async def press(api: FakeBotApi, user: int, chat: int, message: ChatMessage, label: str) -> str:
    """Press a button and return the text the bot answered the callback query with."""
    return await press_data(api, user, chat, message, button_data(api, message, label))


async def press_data(api: FakeBotApi, user: int, chat: int, message: ChatMessage, data: str) -> str:
    """Deliver a callback_query with ``data``, as Telegram would, and return the answer text."""
    callback = api.press_button(user, chat, message.message_id, data)

    def answer() -> dict[str, Any] | None:
        for call in api.calls_to("answerCallbackQuery"):
            if call.params.get("callback_query_id") == callback:
                return call.params
        return None

    await wait_until(api, lambda: answer() is not None, f"answer to {data} by {user}")
    params = answer()
    assert params is not None
    return str(params.get("text", ""))


def chat_text(api: FakeBotApi, chat: int) -> str:
    return "\n".join(html.unescape(m.text) for m in api.bot_messages(chat))
