"""The fake Bot API server driven by the real python-telegram-bot client."""

from __future__ import annotations

import pytest
from telegram import Bot, InlineKeyboardButton, InlineKeyboardMarkup
from telegram.error import BadRequest

from astrid_telegram._format import escape, split_text
from astrid_telegram.testing import MAX_MESSAGE_LENGTH, FakeBotApi

pytestmark = pytest.mark.anyio


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


@pytest.mark.parametrize("parse_mode", ["HTML", None])
async def test_length_is_counted_in_utf16_units_like_telegram(
    api: FakeBotApi, parse_mode: str | None
) -> None:
    emoji = "\N{GRINNING FACE}"  # outside the BMP: one code point, two UTF-16 units
    async with Bot(api.token, base_url=api.base_url) as bot:
        # Exactly at the limit in UTF-16 units is fine, one unit more is not.
        await bot.send_message(chat_id=3, text=emoji * 2048, parse_mode=parse_mode)
        with pytest.raises(BadRequest, match="too long"):
            await bot.send_message(chat_id=3, text=emoji * 2048 + "x", parse_mode=parse_mode)
        # 4,096 code points fit a limit counted in code points, yet are 8,192 units.
        with pytest.raises(BadRequest, match="too long"):
            await bot.send_message(
                chat_id=3, text=emoji * MAX_MESSAGE_LENGTH, parse_mode=parse_mode
            )


async def test_astral_character_references_count_as_two_units(api: FakeBotApi) -> None:
    async with Bot(api.token, base_url=api.base_url) as bot:
        await bot.send_message(chat_id=4, text="&#128512;" * 2048, parse_mode="HTML")
        with pytest.raises(BadRequest, match="too long"):
            await bot.send_message(chat_id=4, text="&#x1F600;" * 2049, parse_mode="HTML")


async def test_the_bots_splitter_makes_parts_the_api_accepts(api: FakeBotApi) -> None:
    # Emoji between words and an escaped "&": the splitter works on raw text, then each part
    # is escaped, exactly as the bot sends it.
    text = " ".join(f"\N{GRINNING FACE}{i}&" for i in range(MAX_MESSAGE_LENGTH))
    assert len(text) > MAX_MESSAGE_LENGTH
    parts = split_text(text)
    assert len(parts) > 1
    async with Bot(api.token, base_url=api.base_url) as bot:
        for part in parts:
            await bot.send_message(chat_id=5, text=escape(part), parse_mode="HTML")
    delivered = [message.text for message in api.bot_messages(5)]
    assert delivered == [escape(part) for part in parts]
    assert "".join(parts).replace(" ", "") == text.replace(" ", "")


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
