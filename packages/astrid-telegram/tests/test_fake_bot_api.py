"""The fake Bot API server driven by the real python-telegram-bot client."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from telegram import Bot, InlineKeyboardButton, InlineKeyboardMarkup
from telegram.error import BadRequest

from astrid_telegram.testing import MAX_MESSAGE_LENGTH, FakeBotApi

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def api() -> Iterator[FakeBotApi]:
    with FakeBotApi() as server:
        yield server


async def test_real_bot_sends_edits_and_polls(api: FakeBotApi) -> None:
    async with Bot(api.token, base_url=api.base_url) as bot:
        me = await bot.get_me()
        assert me.username == api.bot_username
        keyboard = InlineKeyboardMarkup([[InlineKeyboardButton("Deny", callback_data="d:1")]])
        sent = await bot.send_message(
            chat_id=42, text="<b>hello</b>", parse_mode="HTML", reply_markup=keyboard
        )
        await bot.edit_message_text(chat_id=42, message_id=sent.message_id, text="hello again")
        api.send_user_message(42, "/start")
        updates = await bot.get_updates(timeout=1)
    assert updates[0].message is not None
    assert updates[0].message.text == "/start"
    [message] = api.bot_messages(42)
    assert message.text == "hello again"
    assert message.edits == 1


@pytest.mark.parametrize(
    "text",
    ["x" * (MAX_MESSAGE_LENGTH + 1), "a & b", "<b>unclosed", "<script>alert(1)</script>", "   "],
)
async def test_bad_messages_are_refused_like_the_real_api(api: FakeBotApi, text: str) -> None:
    async with Bot(api.token, base_url=api.base_url) as bot:
        with pytest.raises(BadRequest):
            await bot.send_message(chat_id=1, text=text, parse_mode="HTML")


async def test_callback_answer_only_once(api: FakeBotApi) -> None:
    async with Bot(api.token, base_url=api.base_url) as bot:
        sent = await bot.send_message(chat_id=7, text="approve?")
        callback_id = api.press_button(7, 7, sent.message_id, "x")
        assert await bot.answer_callback_query(callback_id)
        with pytest.raises(BadRequest, match="query"):
            await bot.answer_callback_query(callback_id)


async def test_wrong_token_is_unauthorized(api: FakeBotApi) -> None:
    from telegram.error import InvalidToken

    bot = Bot("999:wrong", base_url=api.base_url)
    with pytest.raises(InvalidToken):
        await bot.initialize()  # calls getMe, which the fake refuses like the real API
    await bot.shutdown()
