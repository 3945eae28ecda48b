"""Events of a session: what the agent loop emits while a turn runs, and the questions the
daemon relays to people (approvals, elicitations), written once.

This module is the event half of the daemon protocol (``astrid_gateway.protocol`` re-exports
it; the gateway sits above the runtime, so the runtime cannot import it from there). The
daemon publishes these objects as ``astrid.event`` notifications (``dump_event``) and a client
reads them back as the same classes (``parse_event``), so every frontend ``match``es on
classes and the wire format is exactly the field list below. The string in each ``type`` field
is the discriminator on the wire and appears nowhere else.

Ordering, per session: events reach a subscriber in the order the session produced them. An
``ApprovalNeeded`` is delivered before the turn goes on (the turn waits for its answer), and
its ``ApprovalResolved`` before the turn's next event (the relay publishes it from the turn's
own task); the same holds for elicitations. ``TurnComplete`` is the turn's last event.
"""

from __future__ import annotations

from typing import Annotated, Literal, TypeAlias

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from astrid_core import (
    ApprovalRequest,
    ElicitationRequest,
    JsonObject,
    SessionId,
    UrlElicitationRequest,
)

__all__ = [
    "TextDelta",
    "ToolCallStarted",
    "ToolCallFinished",
    "ApprovalNeeded",
    "ApprovalResolved",
    "ElicitationNeeded",
    "UrlElicitationNeeded",
    "UsageReport",
    "BudgetWarning",
    "SessionSaved",
    "TurnComplete",
    "AgentError",
    "StatusNote",
    "ModelRetrying",
    "ElicitationResolved",
    "DeferredApprovals",
    "AgentEvent",
    "event_adapter",
    "dump_event",
    "parse_event",
]


class _Event(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    session_id: SessionId | None  # None: the daemon as a whole (a status, a server's error)


class TextDelta(_Event):
    type: Literal["text"] = "text"
    text: str


class ToolCallStarted(_Event):
    type: Literal["tool_call_start"] = "tool_call_start"
    call_id: str
    tool: str
    arguments: JsonObject
    summary: str = ""


class ToolCallFinished(_Event):
    type: Literal["tool_call_result"] = "tool_call_result"
    call_id: str
    tool: str
    ok: bool
    output: str  # already capped by the tool layer
    denied: bool = False  # refused by the interceptor (the tool never ran)


class ApprovalNeeded(_Event):
    type: Literal["approval_needed"] = "approval_needed"
    request: ApprovalRequest


class ApprovalResolved(_Event):
    type: Literal["approval_resolved"] = "approval_resolved"
    request_id: str
    option: str
    resolved_by: str = ""


class ElicitationResolved(_Event):
    type: Literal["elicitation_resolved"] = "elicitation_resolved"
    request_id: str
    option: str  # the action: "accept" | "decline" | "cancel"
    resolved_by: str = ""


class DeferredApprovals(_Event):
    """Sent to a client as it subscribes: the approvals waiting since nobody could answer."""

    type: Literal["deferred_approvals"] = "deferred_approvals"
    items: list[JsonObject]


class ElicitationNeeded(_Event):
    type: Literal["elicitation_needed"] = "elicitation_needed"
    request: ElicitationRequest


class UrlElicitationNeeded(_Event):
    type: Literal["url_elicitation_needed"] = "url_elicitation_needed"
    request: UrlElicitationRequest


class UsageReport(_Event):
    type: Literal["usage"] = "usage"
    model: str
    input_tokens: int
    output_tokens: int
    cost_micros: int
    session_cost_micros: int
    session_budget_micros: int | None = None


class BudgetWarning(_Event):
    type: Literal["budget_warning"] = "budget_warning"
    spent_micros: int
    limit_micros: int
    message: str


class SessionSaved(_Event):
    type: Literal["session_saved"] = "session_saved"


class TurnComplete(_Event):
    type: Literal["turn_complete"] = "turn_complete"
    stop_reason: str  # "end_turn" | "max_turns" | "cancelled" | "error" | "deferred"
    turns: int = 1


class AgentError(_Event):
    type: Literal["error"] = "error"
    code: str
    message: str
    hint: str = ""


class StatusNote(_Event):
    type: Literal["status"] = "status"
    message: str


class ModelRetrying(_Event):
    """The model call failed in a way worth retrying; the next attempt starts after the wait."""

    type: Literal["model_retrying"] = "model_retrying"
    reason: str
    wait_seconds: float
    attempt: int  # the attempt that failed (1-based)
    max_attempts: int


AgentEvent: TypeAlias = Annotated[
    TextDelta
    | ToolCallStarted
    | ToolCallFinished
    | ApprovalNeeded
    | ApprovalResolved
    | ElicitationNeeded
    | UrlElicitationNeeded
    | UsageReport
    | BudgetWarning
    | SessionSaved
    | TurnComplete
    | AgentError
    | StatusNote
    | ModelRetrying
    | ElicitationResolved
    | DeferredApprovals,
    Field(discriminator="type"),
]

event_adapter: TypeAdapter[AgentEvent] = TypeAdapter(AgentEvent)


def dump_event(event: AgentEvent) -> JsonObject:
    """The wire form of an event (the ``event`` of an ``astrid.event`` notification)."""
    return event.model_dump(mode="json")


def parse_event(payload: JsonObject) -> AgentEvent | None:
    """An event from its wire form; None for a type this version does not know (a newer
    daemon's), which a client skips rather than fails on. A known type with bad fields raises
    pydantic's ValidationError."""
    if payload.get("type") not in _TYPES:
        return None
    return event_adapter.validate_python(payload)


_TYPES = frozenset(
    str(model.model_fields["type"].default)
    for model in (
        TextDelta,
        ToolCallStarted,
        ToolCallFinished,
        ApprovalNeeded,
        ApprovalResolved,
        ElicitationNeeded,
        UrlElicitationNeeded,
        UsageReport,
        BudgetWarning,
        SessionSaved,
        TurnComplete,
        AgentError,
        StatusNote,
        ModelRetrying,
        ElicitationResolved,
        DeferredApprovals,
    )
)
