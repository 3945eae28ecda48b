"""The Frontend protocol and the approval/elicitation messages that cross it.

A frontend (CLI, Telegram, a test) is how a human answers the runtime. The daemon relays
these over JSON-RPC; the types here are the wire format.
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Literal, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field

from ._actions import SensitiveAction
from ._ids import RequestId, SessionId
from ._json import JsonObject
from ._risk import RiskLevel

__all__ = [
    "ApprovalOption",
    "ApprovalRequest",
    "ApprovalDecision",
    "ElicitationRequest",
    "ElicitationResponse",
    "UrlElicitationRequest",
    "UserInput",
    "Frontend",
    "ALL_APPROVAL_OPTIONS",
]


class ApprovalOption(StrEnum):
    ALLOW_ONCE = "allow_once"  # this call only, no grant kept
    ALLOW_SESSION = "allow_session"  # signed allowance for the rest of the session
    ALLOW_WORKSPACE = "allow_workspace"  # signed allowance for this workspace
    ALLOW_ALWAYS = "allow_always"  # persistent signed capability token (TTL)
    DENY = "deny"

    @property
    def allows(self) -> bool:
        return self is not ApprovalOption.DENY

    @property
    def label(self) -> str:
        return _LABELS[self]


_LABELS = {
    ApprovalOption.ALLOW_ONCE: "Allow Once",
    ApprovalOption.ALLOW_SESSION: "Allow Session",
    ApprovalOption.ALLOW_WORKSPACE: "Allow Workspace",
    ApprovalOption.ALLOW_ALWAYS: "Allow Always",
    ApprovalOption.DENY: "Deny",
}

ALL_APPROVAL_OPTIONS: tuple[ApprovalOption, ...] = tuple(ApprovalOption)


def _now() -> datetime:
    return datetime.now(UTC)


class _Wire(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ApprovalRequest(_Wire):
    request_id: RequestId = Field(default_factory=RequestId.new)
    session_id: SessionId | None = None
    action: SensitiveAction
    risk: RiskLevel
    reason: str
    summary: str
    options: tuple[ApprovalOption, ...] = ALL_APPROVAL_OPTIONS
    # Extra lines a frontend shows (e.g. "budget: $4.10 of $5.00 used").
    details: tuple[str, ...] = ()
    created_at: datetime = Field(default_factory=_now)
    # Why the policy asks (mode, outside the workspace, untrusted content, budget), one reason
    # per entry; ``reason`` is only what the agent was doing ("tool edit_file").
    ask_reasons: tuple[str, ...] = ()
    # What each offered option grants, in words derived from the grant it would mint.
    grants: dict[ApprovalOption, str] = Field(default_factory=dict[ApprovalOption, str])
    # What will happen: a unified diff, the call's arguments as JSON, the command line and its
    # directory. Secrets are redacted; may be long (a frontend shows the head and offers all).
    preview: str = ""


class ApprovalDecision(_Wire):
    request_id: RequestId
    option: ApprovalOption
    reason: str | None = None
    # With DENY: add a session-scoped policy rule so the same action is not asked again.
    deny_always: bool = False
    decided_by: str | None = None

    @property
    def allowed(self) -> bool:
        return self.option.allows


class ElicitationRequest(_Wire):
    request_id: RequestId = Field(default_factory=RequestId.new)
    session_id: SessionId | None = None
    source: str  # e.g. "mcp:everything" or "capsule:github-agent"
    message: str
    requested_schema: JsonObject


class ElicitationResponse(_Wire):
    request_id: RequestId
    action: Literal["accept", "decline", "cancel"]
    content: JsonObject | None = None


class UrlElicitationRequest(_Wire):
    request_id: RequestId = Field(default_factory=RequestId.new)
    session_id: SessionId | None = None
    source: str
    message: str
    url: str
    elicitation_id: str = ""


class UserInput(_Wire):
    text: str
    session_id: SessionId | None = None
    user_id: str = "local"


@runtime_checkable
class Frontend(Protocol):
    """What a human-facing client must do. All async methods may be cancelled."""

    async def elicit(self, request: ElicitationRequest) -> ElicitationResponse: ...

    async def elicit_url(self, request: UrlElicitationRequest) -> None: ...

    async def request_approval(self, request: ApprovalRequest) -> ApprovalDecision: ...

    def show_status(self, message: str) -> None: ...

    def show_error(self, message: str) -> None: ...

    async def receive_input(self) -> UserInput | None: ...
