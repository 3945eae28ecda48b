"""The astridd wire protocol: JSON-RPC 2.0 over WebSocket, versioned.

Connecting: ``ws://127.0.0.1:<port>`` (port in ``$ASTRID_HOME/daemon.port``), then a mutual
challenge-response keyed with the token in ``$ASTRID_HOME/daemon.token`` (mode 0600); the token
itself never crosses the wire, and the client proves nothing to a process that has not proved
itself first:

1. The client sends ``X-Astrid-Nonce: <64 hex>`` with the WebSocket upgrade.
2. The daemon's ``101`` carries ``X-Astrid-Server-Nonce``, ``X-Astrid-Daemon-Pid`` and
   ``X-Astrid-Daemon-Proof = HMAC-SHA256(token, "astrid-gateway-v1|daemon|Nc|Ns|port|pid")``.
   The client checks it (and that pid is the one in ``daemon.port`` holding ``daemon.lock``)
   and hangs up without sending anything if it is wrong.
3. The client's first frame is ``astrid.authenticate`` with ``{"proof": HMAC-SHA256(token,
   "astrid-gateway-v1|client|Nc|Ns|port|pid")}``; the daemon answers ``{"authenticated": true}``
   or closes with code 4401. Nothing else is served before that.

Every frame is one JSON-RPC 2.0 object (batches are not supported: -32600).

Requests: ``{"jsonrpc": "2.0", "id": <int|str>, "method": "astrid.<name>", "params": {...}}``.
Events: notifications ``{"jsonrpc": "2.0", "method": "astrid.event", "params":
{"subscription": <id>, "event": <AgentEvent as JSON>}}`` on connections that called
``astrid.subscribeEvents``.

This module is the protocol, written once: the method names (``METHODS``), the params of
every request (pydantic models, ``extra="forbid"``: a misspelt field is an error naming it),
and the events, which are the runtime's own classes (``astrid_runtime.events``, re-exported
here with their per-session ordering rules). ``GatewayClient.events()`` yields those classes.
"""

from __future__ import annotations

from enum import IntEnum
from typing import Annotated, Final, Literal

from pydantic import BaseModel, ConfigDict, Field

from astrid_core import ApprovalOption, JsonObject, RequestId, SessionId
from astrid_runtime.events import (
    AgentError,
    AgentEvent,
    ApprovalNeeded,
    ApprovalResolved,
    BudgetWarning,
    DeferredApprovals,
    ElicitationNeeded,
    ElicitationResolved,
    ModelRetrying,
    SessionSaved,
    StatusNote,
    TextDelta,
    ToolCallFinished,
    ToolCallStarted,
    TurnComplete,
    UrlElicitationNeeded,
    UsageReport,
    dump_event,
    parse_event,
)

__all__ = [
    "PROTOCOL_VERSION",
    "MAX_FRAME_BYTES",
    "EVENT_METHOD",
    "METHODS",
    "ErrorCode",
    "AUTH_HEADER",
    "NONCE_HEADER",
    "SERVER_NONCE_HEADER",
    "DAEMON_PID_HEADER",
    "DAEMON_PROOF_HEADER",
    "AUTH_METHOD",
    "AUTH_CLOSE_CODE",
    "AUTH_TIMEOUT_SECONDS",
    "valid_nonce",
    "PORT_FILE",
    "TOKEN_FILE",
    "LOCK_FILE",
    "PID_FILE",
    # events (astrid_runtime.events)
    "AgentEvent",
    "AgentError",
    "ApprovalNeeded",
    "ApprovalResolved",
    "BudgetWarning",
    "DeferredApprovals",
    "ElicitationNeeded",
    "ElicitationResolved",
    "ModelRetrying",
    "SessionSaved",
    "StatusNote",
    "TextDelta",
    "ToolCallFinished",
    "ToolCallStarted",
    "TurnComplete",
    "UrlElicitationNeeded",
    "UsageReport",
    "dump_event",
    "parse_event",
    # request params
    "Params",
    "NoParams",
    "CreateSession",
    "SessionParams",
    "SendInput",
    "ApprovalResponse",
    "ElicitationAnswer",
    "TokenRevoke",
    "PolicyApply",
    "PolicyRevoke",
    "AuditVerify",
    "SessionAudit",
    "ServerName",
    "ToolRef",
    "ListTools",
    "FrontendEvent",
    "CapsuleSource",
    "CapsulePlanRef",
    "CapsuleCommit",
    "CapsuleName",
    "CapsuleJob",
]

PROTOCOL_VERSION: Final = 1
MAX_FRAME_BYTES: Final = 4 * 1024 * 1024  # larger frames are refused with -32009, not parsed
EVENT_METHOD: Final = "astrid.event"
AUTH_HEADER: Final = "Authorization"  # no longer used: bearer tokens are not accepted
NONCE_HEADER: Final = "X-Astrid-Nonce"
SERVER_NONCE_HEADER: Final = "X-Astrid-Server-Nonce"
DAEMON_PID_HEADER: Final = "X-Astrid-Daemon-Pid"
DAEMON_PROOF_HEADER: Final = "X-Astrid-Daemon-Proof"
AUTH_METHOD: Final = "astrid.authenticate"
AUTH_CLOSE_CODE: Final = 4401
AUTH_TIMEOUT_SECONDS: Final = 5.0


def valid_nonce(value: str) -> bool:
    """64 lowercase hex digits (32 random bytes)."""
    return len(value) == 64 and all(c in "0123456789abcdef" for c in value)


# Files under $ASTRID_HOME (default ~/.astrid).
PORT_FILE: Final = "daemon.port"
TOKEN_FILE: Final = "daemon.token"  # noqa: S105 - a file name, not a secret
LOCK_FILE: Final = "daemon.lock"
PID_FILE: Final = "daemon.pid"


class ErrorCode(IntEnum):
    # JSON-RPC 2.0 standard codes
    PARSE_ERROR = -32700
    INVALID_REQUEST = -32600
    METHOD_NOT_FOUND = -32601
    INVALID_PARAMS = -32602
    INTERNAL_ERROR = -32603
    # Astrid application codes (documented in the gateway README)
    UNAUTHORIZED = -32001
    SESSION_NOT_FOUND = -32002
    SECURITY_DENIED = -32003
    BUDGET_EXCEEDED = -32004
    TURN_IN_PROGRESS = -32005
    NOT_AVAILABLE = -32006
    STORAGE_ERROR = -32007
    TIMEOUT = -32008
    MESSAGE_TOO_LARGE = -32009
    CONFIG_ERROR = -32010
    NOT_FOUND = -32011
    ALREADY_RESOLVED = -32012
    VERIFICATION_FAILED = -32013
    SHUTTING_DOWN = -32014


# Method name -> one-line description (params are documented in the gateway README and
# validated by pydantic models in the server).
METHODS: Final[dict[str, str]] = {
    "astrid.configInputs": "what the daemon's configuration was made from, as token-keyed digests "
    "-> {inputs, ephemeral, pid}",
    "astrid.createSession": "start a session {workspace?, model?} -> session info",
    "astrid.resumeSession": "reattach to a saved session {session_id} -> session info",
    "astrid.listSessions": "list sessions {} -> [session info]",
    "astrid.endSession": "end a session, keep its record {session_id}",
    "astrid.saveSession": "persist a session now {session_id}",
    "astrid.deleteSession": "delete a session and its transcript {session_id}",
    "astrid.sendInput": "start a turn {session_id, text} -> {turn_id}; progress arrives as events",
    "astrid.cancelTurn": "cancel the running turn {session_id}",
    "astrid.approvalResponse": "answer an approval {request_id, option, reason?, deny_always?}",
    "astrid.elicitationResponse": "answer an elicitation {request_id, action, content?}",
    "astrid.status": "daemon status {} -> version, pid, uptime, sessions, servers, sandbox",
    "astrid.shutdown": "save everything and stop the daemon {}",
    "astrid.reloadConfig": "re-read the admin configuration files; apply what can be applied "
    "live {} -> {applied, needs_restart, files}",
    "astrid.listServers": "configured MCP servers and their state {}",
    "astrid.startServer": "start an MCP server {name}",
    "astrid.stopServer": "stop an MCP server {name}",
    "astrid.listTools": "tools available to a session {session_id?}",
    "astrid.approveTool": "re-enable an MCP tool that changed since approval {server, tool}",
    "astrid.loginServer": "start an MCP server's OAuth sign-in {name} -> {authorization_url}",
    "astrid.finishServerLogin": "wait for that sign-in to complete {name}",
    "astrid.logoutServer": "stop an MCP server and forget its OAuth tokens {name}",
    "astrid.auditStats": "entry counts by outcome and chain {}",
    "astrid.auditExport": "every entry and checkpoint, for offline verification {}",
    "astrid.recordFrontendEvent": "audit a frontend refusing a user {event, user, chat?, ...}",
    "astrid.sessionBudget": "budget of a session {session_id}",
    "astrid.sessionAllowances": "allowances of a session {session_id}",
    "astrid.sessionAudit": "audit entries of a session {session_id, limit?}",
    "astrid.auditVerify": "verify the whole audit log against the witness and the client's "
    "kept tree heads, then sign a checkpoint {known_heads?} -> report + checkpoint + "
    "consistency proofs",
    "astrid.listDeferred": "pending deferred approvals {}",
    "astrid.listTokens": "persistent capability tokens (Allow Always grants) {} -> [token]",
    "astrid.revokeToken": "revoke a token and its children, audited {token_id, reason?}",
    "astrid.rotateKey": "replace the runtime key; audited, signed by the old key {}",
    "astrid.policyApply": "mint a policy file's grants, replacing the previous policy's tokens "
    "in one transaction; audited {text, path?} -> {audit_id, tokens, revoked}",
    "astrid.policyList": "the applied policy, its settings and tokens {}",
    "astrid.policyRevoke": "revoke the applied policy's tokens (all, or one grant's) {grant?, "
    "reason?}",
    "astrid.listCapsules": "installed capsules {} -> [install record]",
    "astrid.capsulePlan": "stage a capsule {source} -> {plan_id, disclosure}; installs nothing",
    "astrid.capsuleCommit": "install a staged plan {plan_id, trust?, secrets?} -> record",
    "astrid.capsuleDiscard": "drop a staged plan {plan_id}",
    "astrid.capsuleInfo": "an installed capsule {name} -> record, manifest, verified",
    "astrid.capsuleRollback": "return a capsule to its previous revision {name}",
    "astrid.removeCapsule": "uninstall a capsule and its secrets {name}",
    "astrid.runCapsuleJob": "run a capsule's [[cron]] job now {capsule, job} -> the run's result",
    "astrid.loadCapsule": "load an installed capsule {name}",
    "astrid.unloadCapsule": "unload a capsule {name}",
    "astrid.subscribeEvents": "receive astrid.event notifications {session_id?} -> {subscription}",
    "astrid.unsubscribeEvents": "stop receiving events {subscription}",
    "astrid.mcpEndpoint": "start (once) the MCP endpoint for MCP clients {port?} -> "
    "{url, token_file}",
    "astrid.mcpSocket": "start (once) the unix socket that astrid mcp serve relays stdio to "
    "{} -> {path}",
    "astrid.mcpTools": "upstream tools as MCP clients see them, with state and findings {}",
    "astrid.mcpApprove": "accept a server's tools (or one) for MCP clients {server, tool?}",
}


# ---------------------------------------------------------------------- request params


class Params(BaseModel):
    """Base of every request's params: frozen, and an unknown field is an error."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class NoParams(Params):
    pass


class CreateSession(Params):
    workspace: str | None = None
    model: str | None = None


class SessionParams(Params):
    session_id: SessionId


class SendInput(Params):
    session_id: SessionId
    text: str = Field(min_length=1, max_length=1_000_000)


class ApprovalResponse(Params):
    request_id: RequestId
    option: ApprovalOption
    reason: str | None = None
    deny_always: bool = False


class ElicitationAnswer(Params):
    request_id: RequestId
    action: Literal["accept", "decline", "cancel"]
    content: JsonObject | None = None


class TokenRevoke(Params):
    token_id: str = Field(min_length=1, max_length=100)
    reason: str = Field(default="revoked by the user", max_length=500)


class PolicyApply(Params):
    text: str = Field(min_length=1, max_length=1_000_000)  # the file's content, parsed here
    path: str = Field(default="policy.toml", max_length=4096)  # named in errors and the audit


class PolicyRevoke(Params):
    grant: str | None = Field(default=None, max_length=200)  # None: the whole policy
    reason: str = Field(default="policy revoked by the admin", max_length=500)


class AuditVerify(Params):
    # Signed tree heads the client verified before (its own cache): the log must extend them.
    known_heads: list[JsonObject] = Field(default_factory=list[JsonObject], max_length=16)


class SessionAudit(Params):
    session_id: SessionId
    limit: int = Field(default=100, ge=1, le=10_000)


class ServerName(Params):
    name: str = Field(min_length=1, max_length=200)


class ToolRef(Params):
    server: str = Field(min_length=1, max_length=200)
    tool: str = Field(min_length=1, max_length=200)


class ListTools(Params):
    session_id: SessionId | None = None


class FrontendEvent(Params):
    """Something a frontend decided on its own that belongs in the audit log.

    Only refusals so far: a person the frontend turned away before any session existed.
    """

    event: Literal["user_refused"]
    user: str = Field(min_length=1, max_length=200)  # the frontend's id of the person
    chat: str | None = Field(default=None, max_length=200)
    reason: str = Field(default="", max_length=500)
    suppressed: int = Field(default=0, ge=0)  # refusals since the last report, not audited


class CapsuleSource(Params):
    source: str = Field(min_length=1, max_length=4096)  # absolute path on the daemon's host


class CapsulePlanRef(Params):
    plan_id: str = Field(min_length=1, max_length=64)


class CapsuleCommit(Params):
    plan_id: str = Field(min_length=1, max_length=64)
    # How the person acknowledged trust; None only suffices for an update asking nothing new.
    trust: Literal["interactive", "flag"] | None = None
    secrets: dict[
        Annotated[str, Field(max_length=200)], Annotated[str, Field(max_length=65_536)]
    ] = Field(default_factory=dict[str, str], max_length=100)


class CapsuleName(Params):
    name: str = Field(min_length=1, max_length=64)


class CapsuleJob(Params):
    capsule: str = Field(min_length=1, max_length=64)
    job: str = Field(min_length=1, max_length=64)
