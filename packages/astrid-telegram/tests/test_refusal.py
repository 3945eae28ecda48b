"""Strangers get a short refusal, the daemon's audit log records it, and a flood stays small."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import pytest
from hypothesis import given
from hypothesis import strategies as st

from astrid_gateway.client import GatewayClient
from astrid_telegram.bot import REFUSAL_TEXT, RefusalLimiter
from astrid_telegram.testing import FakeBotApi

from .conftest import OWNER, STRANGER, chat_text, running_bot, wait_until

ANOTHER_STRANGER = 3003
FLOOD = ["hello", "/start", "run rm -rf / please", "/cancel", "/status", "are you there?"]


async def _audit_entries(home: Path) -> list[dict[str, Any]]:
    """Every entry of the daemon's log, read through ``astrid audit export``'s method."""
    async with await GatewayClient.open(home, autostart=False, client_name="test") as client:
        export = await client.call("auditExport")
    lines = Path(export["path"]).read_text().splitlines()
    records = [json.loads(line) for line in lines]
    return [record["entry"] for record in records if record["type"] == "entry"]


def _refusals(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [e for e in entries if e["outcome"]["kind"] == "frontend_refused"]


@pytest.mark.anyio
async def test_a_flood_from_strangers_is_refused_and_audited_once_each(
    api: FakeBotApi, start_daemon: Callable[[list[Any]], Path]
) -> None:
    home = start_daemon([{"text": "a stranger's words must never reach the model"}])
    async with running_bot(api, home, (OWNER,)) as bot:
        for text in FLOOD:
            api.send_user_message(STRANGER, text)
        api.send_user_message(ANOTHER_STRANGER, "me too")
        expected = len(FLOOD) + 1
        await wait_until(api, lambda: len(bot.refused_users) == expected, "every refusal")

        async def audited() -> list[dict[str, Any]]:
            with anyio.fail_after(15):
                while len(found := _refusals(await _audit_entries(home))) < 2:
                    await anyio.sleep(0.1)
            return found

        refusals = await audited()
        await anyio.sleep(0.5)  # a late, unwanted reply or entry would show up by now
        assert [m.text for m in api.bot_messages(STRANGER)] == [REFUSAL_TEXT]
        assert [m.text for m in api.bot_messages(ANOTHER_STRANGER)] == [REFUSAL_TEXT]
        entries = await _audit_entries(home)

    assert _refusals(entries) == refusals, "the flood added entries after the first ones"
    by_user = {e["outcome"]["detail"]["user"]: e for e in refusals}
    assert set(by_user) == {str(STRANGER), str(ANOTHER_STRANGER)}
    entry = by_user[str(STRANGER)]
    assert entry["chain"] == "system"
    assert entry["outcome"]["detail"] == {
        "frontend": "telegram",
        "user": str(STRANGER),
        "chat": str(STRANGER),
        "suppressed": 0,
    }
    assert "allowed_user_ids" in entry["outcome"]["reason"]
    assert entry["signature"], "a refusal is a signed entry like any other"
    # Nothing a stranger wrote started a session or reached the model.
    assert not [e for e in entries if e["outcome"]["kind"] == "session_start"]
    assert "never reach the model" not in chat_text(api, STRANGER)


def test_one_report_per_stranger_per_window_then_the_silent_count() -> None:
    limiter = RefusalLimiter(window_seconds=60, max_per_window=3)
    assert limiter.admit(1, now=0) == 0
    assert limiter.admit(1, now=1) is None
    assert limiter.admit(1, now=59.9) is None
    assert limiter.admit(2, now=30) == 0  # each stranger has a window of their own
    assert limiter.admit(1, now=60) == 2  # the next report says how many went unreported
    assert limiter.admit(1, now=61) is None
    assert limiter.admit(1, now=120) == 1


def test_all_strangers_together_are_capped() -> None:
    limiter = RefusalLimiter(window_seconds=60, max_per_window=3)
    assert [limiter.admit(user, now=0) for user in (1, 2, 3, 4, 5)] == [0, 0, 0, None, None]
    assert limiter.admit(1, now=10) is None
    assert limiter.admit(4, now=60) == 0  # the window moved on: room again


def test_memory_stays_bounded() -> None:
    limiter = RefusalLimiter(window_seconds=10, max_per_window=5, max_tracked=5)
    for second in range(100):
        for user in range(second * 5, second * 5 + 5):
            limiter.admit(user, now=second * 11)
        assert len(limiter) <= 5


@given(
    st.lists(
        st.tuples(st.integers(0, 5), st.floats(0, 30, allow_nan=False)), min_size=1, max_size=200
    )
)
def test_never_more_reports_than_the_limits_allow(events: list[tuple[int, float]]) -> None:
    window, cap = 10.0, 4
    limiter = RefusalLimiter(window_seconds=window, max_per_window=cap)
    reports: list[tuple[int, float]] = []
    silenced: dict[int, int] = {}
    for user, now in sorted(events, key=lambda e: e[1]):
        suppressed = limiter.admit(user, now)
        if suppressed is None:
            silenced[user] = silenced.get(user, 0) + 1
            continue
        assert suppressed <= silenced.get(user, 0)
        silenced[user] = 0
        reports.append((user, now))
    for _, start in reports:
        inside = [(u, t) for u, t in reports if start <= t < start + window]
        assert len(inside) <= cap
        assert len({u for u, _ in inside}) == len(inside), "a stranger reported twice in a window"
