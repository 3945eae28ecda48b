"""Events the agent loop emits while a turn runs.

Frontends never see these Python objects directly: the daemon serializes them into
``astrid.event`` notifications (see astrid_gateway.protocol). They are plain pydantic models so
that serialization is one call and the wire format is exactly the field list below.
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
    "AgentEvent",
    "event_adapter",
]


class _Event(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    session_id: SessionId


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
    | ModelRetrying,
    Field(discriminator="type"),
]

event_adapter: TypeAdapter[AgentEvent] = TypeAdapter(AgentEvent)
