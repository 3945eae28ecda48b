"""The Telegram approval message carries what the CLI prompt shows: what will happen, why the
policy asks and what each option grants; only offered options get a button; one message."""

from __future__ import annotations

import html
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from astrid_gateway.protocol import ToolCallFinished
from astrid_telegram._format import (
    APPROVAL_OPTIONS,
    TELEGRAM_LIMIT,
    approval_text,
    offered_options,
    utf16_len,
)

REQUEST: dict[str, Any] = {
    "request_id": "r1",
    "summary": "Write file: /ws/a.py",
    "risk": "medium",
    "reason": "tool edit_file",
    "ask_reasons": ["safe mode asks before every change"],
    "details": ["safe mode asks before every change"],
    "options": ["allow_once", "allow_session", "allow_workspace", "allow_always", "deny"],
    "grants": {
        "allow_once": "Allow once: this call only; nothing is kept",
        "allow_session": "Allow for this session: exactly `file:///ws/a.py` write",
        "allow_always": (
            "Always (1 h, every session and workspace): exactly `file:///ws/a.py` write"
        ),
    },
    "preview": "--- a/ws/a.py\n+++ b/ws/a.py\n@@ -1 +1 @@\n-x = <1>\n+x = 2\n",
}


def test_the_message_shows_the_diff_the_reason_and_the_grants() -> None:
    text = approval_text(REQUEST)
    plain = html.unescape(text)
    assert "-x = <1>" in plain
    assert "&lt;1&gt;" in text  # diff text cannot inject markup
    assert plain.count("safe mode asks before every change") == 1
    assert "tool edit_file" not in plain
    assert "<b>Allow Session</b>: Allow for this session: exactly `file:///ws/a.py` write" in plain
    assert "<b>Allow Always</b>: Always (1 h" in plain


def test_only_offered_options_get_buttons() -> None:
    budget = dict(REQUEST, options=["allow_once", "deny"])
    assert [APPROVAL_OPTIONS[i][0] for i in offered_options(budget)] == ["allow_once", "deny"]
    assert "Allow Session" not in html.unescape(approval_text(budget))


@settings(max_examples=30, deadline=None)
@given(lines=st.integers(min_value=0, max_value=3000), width=st.integers(min_value=1, max_value=90))
def test_the_message_always_fits_one_telegram_message(lines: int, width: int) -> None:
    preview = "\n".join("+" + "<" * width for _ in range(lines))
    text = approval_text(dict(REQUEST, preview=preview))
    assert utf16_len(text) <= TELEGRAM_LIMIT
    if lines >= 1000:  # at least 6 units a line: never fits
        assert "more lines not shown (Telegram's message limit)" in html.unescape(text)


def test_tool_lines_cut_between_words_and_escape_after() -> None:
    from astrid_telegram._format import tool_line

    reason = "DENIED: denied by the user: " + "move & rename " * 30
    line = tool_line(
        ToolCallFinished(
            session_id=None, call_id="c", tool="bash", ok=False, output=reason, denied=True
        )
    )
    text = html.unescape(line)
    assert text.endswith("rename…") or text.endswith("move…") or text.endswith("&…")
    assert "&amp" not in text  # no entity cut in half
    assert len(text) < 220
