"""The event half of the protocol: one wire form per class, read back as the same class; a type
this version does not know is skipped (None), a known type with bad fields is an error."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from astrid_core import SessionId
from astrid_gateway.protocol import (
    ApprovalResolved,
    DeferredApprovals,
    TurnComplete,
    dump_event,
    parse_event,
)


def test_events_round_trip_as_their_classes() -> None:
    session = SessionId.new()
    for event in (
        TurnComplete(session_id=session, stop_reason="end_turn"),
        ApprovalResolved(session_id=None, request_id="r", option="deny", resolved_by="cli"),
        DeferredApprovals(session_id=session, items=[{"request": {"summary": "x"}}]),
    ):
        assert parse_event(dump_event(event)) == event


def test_an_unknown_type_is_skipped_and_a_bad_known_one_refused() -> None:
    assert parse_event({"type": "from_a_newer_daemon", "session_id": None}) is None
    with pytest.raises(ValidationError):
        parse_event({"type": "turn_complete", "session_id": "not-a-uuid", "stop_reason": "x"})
