"""An interceptor's answer is checked before anyone acts on it: only continue or deny, only
BeforeToolCall may deny, never a rewrite, garbage is an error (which the runtime turns into a
denial), annotations are one bounded line."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from astrid_capsule.errors import CapsuleError
from astrid_capsule.interceptors import (
    MAX_ANNOTATION,
    InterceptorAnswer,
    before_tool_call_answer,
    notify_answer,
)


def test_continue_deny_and_empty_answers() -> None:
    assert before_tool_call_answer("c", b"") == InterceptorAnswer()
    assert before_tool_call_answer("c", b'{"decision": "continue"}') == InterceptorAnswer()
    denied = before_tool_call_answer("c", b'{"decision": "deny", "reason": "no pushes"}')
    assert denied.denied
    assert denied.deny_reason == "capsule c: no pushes"
    assert before_tool_call_answer("c", b'{"decision": "deny"}').deny_reason == (
        "capsule c: no reason given"
    )


@pytest.mark.parametrize(
    "raw",
    [b"not json", b"[]", b'"deny"', b'{"decision": "rewrite", "arguments": {}}', b"null"],
)
def test_garbage_or_a_rewrite_is_an_error_never_a_pass(raw: bytes) -> None:
    with pytest.raises(CapsuleError):
        before_tool_call_answer("c", raw)


def test_a_notify_only_event_cannot_deny() -> None:
    with pytest.raises(CapsuleError, match="cannot decide anything"):
        notify_answer("c", "UserPrompt", b'{"decision": "deny"}')
    assert notify_answer("c", "UserPrompt", b'{"annotation": "seen"}').annotation == "seen"


def test_an_annotation_is_one_bounded_line() -> None:
    raw = json.dumps({"annotation": "a\nb\r\n" + "x" * 5000}).encode()
    note = notify_answer("c", "AfterToolCall", raw).annotation
    assert "\n" not in note
    assert "\r" not in note
    assert len(note) == MAX_ANNOTATION


@given(st.binary(max_size=200))
def test_any_output_is_a_clean_answer_or_an_error(raw: bytes) -> None:
    try:
        answer = before_tool_call_answer("c", raw)
    except CapsuleError:
        return
    assert answer.deny_reason is None or answer.deny_reason.startswith("capsule c: ")
