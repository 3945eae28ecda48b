"""Human output: each formatter on its own, and the approval panel as a person reads it."""

from __future__ import annotations

import io
import json
import time
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from rich.console import Console

from astrid_cli._format import (
    allowance_lines,
    audit_lines,
    budget_lines,
    config_value,
    local_time,
    match_session,
    money,
    plain,
    short_id,
    shorten,
    status_lines,
)
from astrid_cli._ui import OPTION_KEYS, ChatUI
from astrid_core import AstridError
from astrid_gateway.protocol import ApprovalResolved, ModelRetrying

from .test_basic_commands import astrid


@pytest.mark.parametrize(
    ("micros", "text"),
    [
        (0, "$0.00"),
        (5_000_000, "$5.00"),
        (140_000, "$0.14"),
        (3_400, "$0.0034"),
        (1_234_567_890, "$1,234.57"),
        (None, "$0.00"),
    ],
)
def test_money_is_dollars_with_cents(micros: Any, text: str) -> None:
    assert money(micros) == text


def test_local_time_reads_epoch_and_iso_in_the_local_zone() -> None:
    now = int(time.time())
    expected = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(now))
    assert local_time(now) == expected
    iso = time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime(now))
    assert local_time(iso) == expected
    assert local_time(None) == "-"
    assert local_time("not a time") == "not a time"


def test_plain_has_no_python_reprs() -> None:
    assert plain(None) == "(not set)"
    assert plain(True) == "true"
    assert plain(False) == "false"
    assert plain([]) == "[]"
    assert plain(["a", "b"]) == '["a", "b"]'
    assert config_value("budget.session_limit_micros", 5_000_000) == "5000000 ($5.00)"
    assert config_value("security.sandbox_bash", True) == "true"


@pytest.mark.parametrize(
    ("text", "width", "out"),
    [
        ("denied by the user: move it instead", 100, "denied by the user: move it instead"),
        ("denied by the user: move it instead", 22, "denied by the user…"),
        ("supercalifragilistic", 10, "supercali…"),
        ("a  b\n c", 10, "a b c"),
    ],
)
def test_shorten_never_cuts_inside_a_word(text: str, width: int, out: str) -> None:
    assert shorten(text, width) == out
    assert len(shorten(text, width)) <= width


def test_short_ids_and_session_matching() -> None:
    ids = [
        "1f0c9a3e-0000-4000-8000-000000000001",
        "1f0c9a3e-0000-4000-8000-000000000002",
        "7d2b0000-0000-4000-8000-000000000003",
    ]
    assert short_id(ids[2]) == "7d2b0000"
    assert match_session("7d2b", ids) == ids[2]
    assert match_session(ids[0].upper(), ids) == ids[0]
    with pytest.raises(AstridError, match="start of 2 session ids: 1f0c9a3e, 1f0c9a3e"):
        match_session("1f0c9a3e", ids)
    with pytest.raises(AstridError, match="no session id starts with 'abcd'"):
        match_session("abcd", ids)
    with pytest.raises(AstridError, match="'nope' is not a session id") as caught:
        match_session("nope", ids)
    assert "UUID" not in str(caught.value)
    assert "Value error" not in str(caught.value)


def test_budget_lines() -> None:
    lines = budget_lines(
        {
            "spent_micros": 28_000,
            "reserved_micros": 0,
            "session_limit_micros": 140_000,
            "per_action_limit_micros": 60_000,
            "warn_at_percent": 70,
        }
    )
    assert lines == [
        "spent $0.03 of $0.14 for this session",
        "left $0.11 (20% used)",
        "at most $0.06 per action",
        "warns at 70% of the limit",
    ]


def test_allowance_lines_use_the_prompt_words_and_local_times() -> None:
    created = int(time.time())
    row = {
        "id": "0b7e4f2a-1111-4111-8111-111111111111",
        "kind": "workspace_relative",
        "resource": "file:///ws/notes.md",
        "permission": "write",
        "scope": "session",
        "session_id": "s",
        "workspace": "/ws",
        "created_at": created,
        "approval_audit_id": None,
        "issuer": "k",
        "signature": "",
    }
    [line] = allowance_lines([row])
    assert line == (
        f"0b7e4f2a  since {local_time(created)}  "
        "Allow for this session and its sub-agents: exactly `file:///ws/notes.md` write"
    )
    assert allowance_lines([]) == [
        "no standing allowances: every action the policy asks about is asked"
    ]


def test_audit_lines_and_an_empty_log() -> None:
    assert audit_lines([]) == ["no audit entries yet"]
    entry = {
        "seq": 3,
        "timestamp": "2026-12-07T10:00:00+00:00",
        "outcome": {"kind": "approval_denied", "reason": "denied by the user: " + "x " * 80},
        "action": {"kind": "file_delete"},
    }
    [line] = audit_lines([entry], width=100)
    assert line.startswith("#3 ")
    assert line.endswith("x…")
    assert len(line) <= 100


def test_status_lines_flatten_without_reprs() -> None:
    lines = status_lines(
        {
            "pid": 7,
            "ephemeral": True,
            "uptime_seconds": 3.25,
            "runtime": {"pending_approvals": 0, "warnings": [], "servers": []},
        }
    )
    text = "\n".join(lines)
    assert "runtime.pending_approvals" in text
    assert "{" not in text
    assert "True" not in text
    assert "3.2 s" in text or "3.3 s" in text


# ---------------------------------------------------------------------- the approval panel


def rendered(request: dict[str, Any], *, full: bool = False) -> str:
    out = io.StringIO()
    ui = ChatUI(Console(file=out, width=120, color_system=None))
    ui.console.print(ui.approval_panel(request, full=full))
    return out.getvalue()


REQUEST: dict[str, Any] = {
    "request_id": "r1",
    "summary": "Write file: /ws/a.py",
    "risk": "medium",
    "reason": "tool edit_file",
    "ask_reasons": ["safe mode asks before every change"],
    "details": ["safe mode asks before every change", "budget: 80% used"],
    "options": ["allow_once", "allow_session", "allow_workspace", "allow_always", "deny"],
    "grants": {
        "allow_session": (
            "Allow for this session and its sub-agents: exactly `file:///ws/a.py` write"
        )
    },
    "preview": "--- a/ws/a.py\n+++ b/ws/a.py\n@@ -1 +1 @@\n-x = 1\n+x = 2\n",
}


def test_the_panel_shows_the_diff_the_reason_once_and_the_grants() -> None:
    text = rendered(REQUEST)
    assert "-x = 1" in text
    assert "+x = 2" in text
    assert text.count("safe mode asks before every change") == 1  # written once
    assert "tool edit_file" not in text  # "why" is the policy's reason, not the tool name
    assert "budget: 80% used" in text
    assert (
        "[s] 2 Allow for this session and its sub-agents: exactly `file:///ws/a.py` write" in text
    )
    assert "[d]   Deny and tell the model" in text


def test_a_long_preview_is_capped_and_v_shows_all() -> None:
    long = dict(REQUEST, preview="\n".join(f"+line {i}" for i in range(100)))
    short = rendered(long)
    assert "+line 39" in short
    assert "+line 40" not in short
    assert "60 more lines: press v to view all" in short
    assert "+line 99" in rendered(long, full=True)


def test_letters_and_digits_answer() -> None:
    assert OPTION_KEYS["y"][0] == OPTION_KEYS["1"][0] == "allow_once"
    assert OPTION_KEYS["s"][0] == "allow_session"
    assert OPTION_KEYS["w"][0] == "allow_workspace"
    assert OPTION_KEYS["a"][0] == "allow_always"
    assert OPTION_KEYS["n"][0] == OPTION_KEYS["5"][0] == "deny"


def test_attribution_is_truthful() -> None:
    out = io.StringIO()
    ui = ChatUI(Console(file=out, width=120, color_system=None))
    ui.answered_by["r1"] = "the --auto flag"
    ui.render(
        ApprovalResolved(session_id=None, request_id="r1", option="allow_once", resolved_by="cli")
    )
    ui.render(
        ApprovalResolved(session_id=None, request_id="r2", option="deny", resolved_by="telegram")
    )
    text = out.getvalue()
    assert "approval: allowed once (by the --auto flag)" in text
    assert "approval: denied (by another client (telegram))" in text


def test_a_retry_is_shown_with_reason_and_wait() -> None:
    out = io.StringIO()
    ui = ChatUI(Console(file=out, width=200, color_system=None))
    ui.render(
        ModelRetrying(
            session_id=None,
            reason="rate limited (429)",
            wait_seconds=2.5,
            attempt=1,
            max_attempts=3,
        )
    )
    assert "retrying in 2.5 s (attempt 2 of 3)" in out.getvalue()
    assert "rate limited (429)" in out.getvalue()


# ---------------------------------------------------------------------- commands


def test_config_show_prints_no_python_values(tmp_path: Path) -> None:
    shown = astrid(tmp_path, "config", "show")
    assert shown.returncode == 0, shown.stderr
    for word in (" None ", " True ", " False "):
        assert word not in shown.stdout
    assert "(not set)" in shown.stdout
    assert "5000000 ($5.00)" in shown.stdout
    as_json = json.loads(astrid(tmp_path, "config", "show", "--json").stdout)
    assert as_json["model.api_key"]["value"] is None  # --json keeps the raw value
    assert as_json["budget.session_limit_micros"]["value"] == 5_000_000


def test_sessions_by_short_id_and_a_bad_id_in_plain_words(tmp_path: Path) -> None:
    from astrid_gateway.testing import write_scripted_config

    home, workspace = tmp_path / "home", tmp_path / "ws"
    workspace.mkdir()
    write_scripted_config(home, workspace, [{"text": "hello"}])
    try:
        ran = astrid(home, "run", "hi", "--workspace", str(workspace), "--json")
        assert ran.returncode == 0, ran.stderr
        sid = json.loads(ran.stdout)["session_id"]

        shown = astrid(home, "sessions", "show", sid[:8])
        assert shown.returncode == 0, shown.stderr
        assert f"session {sid}" in shown.stdout
        assert "spent $0.0" in shown.stdout
        assert "{'" not in shown.stdout  # no dict reprs
        assert "session_start" in shown.stdout

        bad = astrid(home, "sessions", "show", "nope")
        assert bad.returncode == 1
        assert "'nope' is not a session id" in bad.stderr
        assert "Value error" not in bad.stderr
        assert "UUID" not in bad.stderr

        deleted = astrid(home, "sessions", "delete", sid[:8], "--yes")
        assert deleted.returncode == 0, deleted.stderr
        assert f"deleted session {sid}" in deleted.stdout
    finally:
        astrid(home, "daemon", "stop")


@settings(max_examples=500)
@given(
    words=st.lists(st.text(alphabet="abcxyz", min_size=1, max_size=12), min_size=1, max_size=40),
    width=st.integers(min_value=2, max_value=120),
)
def test_shorten_cuts_only_between_words(words: list[str], width: int) -> None:
    text = " ".join(words)
    out = shorten(text, width)
    assert len(out) <= width
    if out == text:
        return
    assert out.endswith("…")
    kept = out[:-1].split(" ")
    if len(kept) == 1 and kept[0] != words[0]:
        # the first word alone is longer than the width: the only case cut inside a word
        assert words[0].startswith(kept[0])
        assert len(words[0]) >= width - 1
    else:
        assert kept == words[: len(kept)]  # whole words, the text's first ones
