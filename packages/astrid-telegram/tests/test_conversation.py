"""Whole conversations: real python-telegram-bot, the fake Bot API and a daemon with a script.

The daemon runs the scripted model in ``safe`` mode, so every tool call waits for an inline
keyboard answer; the tests press those buttons through the fake API exactly as Telegram would
deliver them (a ``callback_query`` update) and check the workspace, not just the chat.
"""

from __future__ import annotations

import html
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import pytest

from astrid_telegram.testing import FakeBotApi

from .conftest import (
    OTHER_ALLOWED,
    OWNER,
    STRANGER,
    approval_message,
    button_data,
    chat_text,
    press,
    press_data,
    running_bot,
    wait_until,
)

pytestmark = pytest.mark.anyio

DELETE_VICTIM = {"tool": "delete_file", "arguments": {"path": "victim.txt"}}
CLOSING_TEXT = "All tidy now, the conversation is over."


def _utf16_len(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


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
        assert labels == [
            "Allow Once",
            "Allow Session",
            "Allow Workspace",
            "Allow Always",
            "Deny",
            "Deny with a message",
        ]
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


async def test_a_command_the_bot_does_not_know_goes_to_the_agent_as_a_turn(
    api: FakeBotApi, workspace: Path, start_daemon: Callable[[list[Any]], Path]
) -> None:
    # A capsule's [[command]] (e.g. /review) is expanded by the runtime; the bot only passes
    # the line on instead of dropping it (astrid-runtime tests/test_capsule_static.py).
    home = start_daemon([{"text": "Reviewed app.py."}])
    async with running_bot(api, home, (OWNER,)):
        api.send_user_message(OWNER, "/review app.py")
        await wait_until(api, lambda: "Reviewed app.py." in chat_text(api, OWNER), "reply")
