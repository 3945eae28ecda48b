"""The real python-telegram-bot, our bot, the fake Bot API server and a real daemon."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from pathlib import Path

import anyio
import pytest

from astrid_gateway import testing as daemon
from astrid_telegram.bot import HELP_TEXT, AstridTelegramBot
from astrid_telegram.settings import TelegramSettings
from astrid_telegram.testing import FakeBotApi

from .conftest import OWNER, STRANGER, running_bot

pytestmark = pytest.mark.anyio


@pytest.fixture
def daemon_home(tmp_path: Path) -> Iterator[Path]:
    home = tmp_path / "home"
    proc = daemon.start_daemon(home)
    yield home
    assert daemon.stop_daemon(proc), "astridd did not stop within 20 s of SIGTERM"


async def test_commands_access_control_and_stale_callbacks(
    api: FakeBotApi, daemon_home: Path
) -> None:
    async with running_bot(api, daemon_home, (OWNER,)) as bot:
        api.send_user_message(OWNER, "/help")
        await anyio.to_thread.run_sync(
            lambda: api.wait_for(
                lambda: any(HELP_TEXT[:20] in m.text for m in api.bot_messages(OWNER)),
                what="help text",
            )
        )
        api.send_user_message(STRANGER, "hello, run rm -rf /")
        await anyio.to_thread.run_sync(
            lambda: api.wait_for(
                lambda: any("private" in m.text for m in api.bot_messages(STRANGER)), what="refusal"
            )
        )
        assert bot.refused_users == [STRANGER]
        # A button press that matches no live approval is refused, not acted on.
        sent = api.bot_messages(OWNER)[-1]
        callback = api.press_button(OWNER, OWNER, sent.message_id, "ap:forged-nonce:0")
        await anyio.to_thread.run_sync(
            lambda: api.wait_for(
                lambda: any(
                    c.params.get("callback_query_id") == callback
                    for c in api.calls_to("answerCallbackQuery")
                ),
                what="callback answer",
            )
        )
        answer = next(
            c
            for c in api.calls_to("answerCallbackQuery")
            if c.params.get("callback_query_id") == callback
        )
        assert "already answered or has expired" in str(answer.params.get("text"))


async def test_bot_reconnects_after_daemon_restart(api: FakeBotApi, tmp_path: Path) -> None:
    home = tmp_path / "home"
    settings = TelegramSettings(
        bot_token=api.token,
        allowed_user_ids=(OWNER,),
        base_url=api.base_url,
        home=str(home),
        autostart_daemon=True,
    )
    bot = AstridTelegramBot(settings)
    second_pid = 0
    async with anyio.create_task_group() as tg:
        tg.start_soon(bot.run)
        with anyio.fail_after(30):
            await bot.connected.wait()
        first_pid = int((home / "daemon.pid").read_text())
        os.kill(first_pid, signal.SIGKILL)
        with anyio.fail_after(5):
            while bot.connected.is_set():
                await anyio.sleep(0.05)
        (home / "daemon.port").unlink(missing_ok=True)  # a killed daemon cannot clean up
        with anyio.fail_after(30):
            await bot.connected.wait()
        second_pid = int((home / "daemon.pid").read_text())
        assert second_pid != first_pid
        bot.stop()
    os.kill(second_pid, signal.SIGTERM)
