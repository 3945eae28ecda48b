"""Splitting, escaping, access control and callback validation."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from astrid_core import ConfigError
from astrid_telegram._access import AccessPolicy, CallbackRegistry, CallbackRejected, PendingButton
from astrid_telegram._format import TELEGRAM_LIMIT, escape, split_text, utf16_len
from astrid_telegram.settings import TelegramSettings


def test_ten_thousand_characters_split_on_boundaries() -> None:
    paragraph = ("word " * 150).strip()
    text = "\n\n".join([paragraph] * 14)
    assert len(text) > 10_000
    parts = split_text(text)
    assert len(parts) == 3
    assert all(utf16_len(p) <= TELEGRAM_LIMIT for p in parts)
    assert all(not p.endswith("wor") for p in parts)  # never inside a word here
    assert "".join(parts).replace("\n", "").replace(" ", "") == text.replace("\n", "").replace(
        " ", ""
    )


def test_astral_characters_count_as_two_units() -> None:
    text = "😀" * 3000  # 6000 UTF-16 units
    parts = split_text(text)
    assert len(parts) == 2
    assert all(utf16_len(p) <= TELEGRAM_LIMIT for p in parts)
    assert "".join(parts) == text


@given(st.text(min_size=0, max_size=12_000))
def test_split_never_exceeds_limit_and_loses_nothing_but_newlines(text: str) -> None:
    parts = split_text(text, 1000)
    assert all(utf16_len(p) <= 1000 for p in parts)
    assert "".join(parts).replace("\n", "") == text.replace("\n", "")


def test_escape_neutralises_markup() -> None:
    assert escape("<b>x</b> & co") == "&lt;b&gt;x&lt;/b&gt; &amp; co"


def test_empty_allow_list_refuses_to_start() -> None:
    with pytest.raises(ConfigError, match="answer anyone"):
        AccessPolicy([])
    assert AccessPolicy([], allow_any_user=True).permits(12345)
    policy = AccessPolicy([1, 2])
    assert policy.permits(1)
    assert not policy.permits(3)


def test_callbacks_owner_only_single_use() -> None:
    registry = CallbackRegistry()
    nonce = registry.issue(PendingButton("req-1", owner_user_id=7, chat_id=7, session_id="s"))
    with pytest.raises(CallbackRejected, match="only the person"):
        registry.resolve(f"ap:{nonce}:0", user_id=8, options=5)
    button, index = registry.resolve(f"ap:{nonce}:3", user_id=7, options=5)
    assert (button.request_id, index) == ("req-1", 3)
    with pytest.raises(CallbackRejected, match="already answered"):
        registry.resolve(f"ap:{nonce}:3", user_id=7, options=5)  # replay
    for bad in ("", "ap::1", "ap:x:9", "zz:1:1", f"ap:{nonce}"):
        with pytest.raises(CallbackRejected):
            registry.resolve(bad, user_id=7, options=5)


def test_expired_callback() -> None:
    registry = CallbackRegistry(ttl_seconds=0)
    nonce = registry.issue(PendingButton("r", 1, 1, "s"))
    with pytest.raises(CallbackRejected, match="expired"):
        registry.resolve(f"ap:{nonce}:0", user_id=1, options=5)


def test_env_token_preferred_and_validated() -> None:
    settings = TelegramSettings.from_sources(
        {"bot_token": "1:file", "allowed_user_ids": [5]}, {"TELEGRAM_BOT_TOKEN": "2:env"}
    )
    assert settings.bot_token == "2:env"
    assert "env" not in repr(settings)
    with pytest.raises(ConfigError, match="no Telegram bot token"):
        TelegramSettings.from_sources({}, {})
    with pytest.raises(ConfigError, match="malformed"):
        TelegramSettings.from_sources({"bot_token": "nocolon"}, {})
