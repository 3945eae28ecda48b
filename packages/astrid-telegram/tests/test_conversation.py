"""Whole conversations: real python-telegram-bot, the fake Bot API and a daemon with a script.

The daemon runs the scripted model in ``safe`` mode, so every tool call waits for an inline
keyboard answer; the tests press those buttons through the fake API exactly as Telegram would
deliver them (a ``callback_query`` update) and check the workspace, not just the chat.
"""

from __future__ import annotations

import html
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import pytest

from astrid_telegram.bot import AstridTelegramBot
from astrid_telegram.settings import TelegramSettings
from astrid_telegram.testing import ChatMessage, FakeBotApi

pytestmark = pytest.mark.anyio

OWNER = 1001
OTHER_ALLOWED = 1002  # on the allow-list, but did not start the session
STRANGER = 2002  # not on the allow-list at all
DELETE_VICTIM = {"tool": "delete_file", "arguments": {"path": "victim.txt"}}
CLOSING_TEXT = "All tidy now, the conversation is over."


def _utf16_len(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


# ---------------------------------------------------------------------- fixtures and helpers


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
        home.mkdir()
        (home / "script.json").write_text(json.dumps({"turns": turns}))
        (home / "config.toml").write_text(
            f'[model]\nprovider = "scripted"\nscript = "{home / "script.json"}"\n'
            f'[workspace]\nroot = "{workspace}"\nmode = "safe"\n'
        )
        log = (tmp_path / "daemon.log").open("wb")
        proc = subprocess.Popen(
            [sys.executable, "-m", "astrid_gateway", "--state-dir", str(home)],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        procs.append(proc)
        deadline = time.monotonic() + 30
        while not (home / "daemon.port").exists():
            assert proc.poll() is None, (tmp_path / "daemon.log").read_text()
            assert time.monotonic() < deadline, "daemon did not start"
            time.sleep(0.05)
        return home

    yield start
    for proc in procs:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


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


# ---------------------------------------------------------------------- tests


async def test_owner_allows_a_delete_and_sees_the_closing_reply(
    api: FakeBotApi, workspace: Path, start_daemon: Callable[[list[Any]], Path]
) -> None:
    home = start_daemon(
        [
            {"text": "I will delete victim.txt for you.", "tool_calls": [DELETE_VICTIM]},
            {"text": CLOSING_TEXT},
        ]
    )
    victim = workspace / "victim.txt"
    async with running_bot(api, home, (OWNER,)):
        api.send_user_message(OWNER, "please delete victim.txt")
        await wait_until(api, lambda: approval_message(api, OWNER) is not None, "approval")
        approval = approval_message(api, OWNER)
        assert approval is not None
        labels = [label for label, _ in api.buttons(approval)]
        assert labels == ["Allow Once", "Allow Session", "Allow Workspace", "Allow Always", "Deny"]
        assert "delete" in html.unescape(approval.text).lower()
        assert "I will delete victim.txt" in chat_text(api, OWNER)
        assert victim.exists(), "nothing may happen before the owner answers"

        answer = await press(api, OWNER, OWNER, approval, "Allow Once")
        assert answer == "Allow Once"
        await wait_until(api, lambda: CLOSING_TEXT in chat_text(api, OWNER), "closing reply")
        assert not victim.exists()
        # The answered keyboard is marked with the decision.
        assert "Allow Once" in html.unescape(approval.text).split("→")[-1]


async def test_only_the_requester_can_answer_an_approval(
    api: FakeBotApi, workspace: Path, start_daemon: Callable[[list[Any]], Path]
) -> None:
    home = start_daemon(
        [
            {"text": "Deleting victim.txt.", "tool_calls": [DELETE_VICTIM]},
            {"text": CLOSING_TEXT},
        ]
    )
    victim = workspace / "victim.txt"
    async with running_bot(api, home, (OWNER, OTHER_ALLOWED)):
        api.send_user_message(OWNER, "please delete victim.txt")
        await wait_until(api, lambda: approval_message(api, OWNER) is not None, "approval")
        approval = approval_message(api, OWNER)
        assert approval is not None
        allow_once = button_data(api, approval, "Allow Once")

        for intruder in (OTHER_ALLOWED, STRANGER):
            answer = await press(api, intruder, OWNER, approval, "Allow Always")
            assert "only the person who started this session" in answer
        await anyio.sleep(1.0)  # give a wrongly accepted press time to reach the tool
        assert victim.exists()
        assert CLOSING_TEXT not in chat_text(api, OWNER)
        assert "→" not in approval.text, "a refused press must not mark the approval answered"

        # The approval is still open: its owner can still answer it, exactly once.
        answer = await press(api, OWNER, OWNER, approval, "Deny")
        assert answer == "Deny"
        await wait_until(api, lambda: CLOSING_TEXT in chat_text(api, OWNER), "closing reply")
        assert victim.read_text() == "precious"
        assert "denied" in chat_text(api, OWNER)
        # Replaying a button of the answered keyboard does nothing.
        replay = await press_data(api, OWNER, OWNER, approval, allow_once)
        assert "already answered or has expired" in replay
        await anyio.sleep(0.5)
        assert victim.exists()


async def test_a_long_reply_is_split_into_messages_within_the_limit(
    api: FakeBotApi, start_daemon: Callable[[list[Any]], Path]
) -> None:
    # Emoji are two UTF-16 units each: a splitter counting code points would overflow.
    words = " ".join(f"w{i:04d}🙂" for i in range(2000))
    long_text = words[:10_000]
    assert len(long_text) == 10_000
    assert _utf16_len(long_text) > 11_000
    home = start_daemon([{"text": long_text}])
    expected = "".join(long_text.split())

    def delivered() -> str:
        return "".join(chat_text(api, OWNER).split())

    async with running_bot(api, home, (OWNER,)):
        api.send_user_message(OWNER, "tell me everything")
        await wait_until(api, lambda: delivered() == expected, "the whole long reply", 60)
        await anyio.sleep(0.5)  # a late flush must not change or duplicate anything
        assert delivered() == expected
        messages = api.bot_messages(OWNER)
        assert len(messages) >= 3
        for message in messages:
            assert _utf16_len(html.unescape(message.text)) <= 4096, message.message_id
