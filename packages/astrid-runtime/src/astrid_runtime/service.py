"""The contract between the agent runtime and the daemon that hosts it.

``astrid_gateway`` codes against ``RuntimeService`` only; ``AgentRuntime`` implements it.
Everything crossing this boundary is JSON-ready (pydantic models dumped with mode="json"), so
the daemon maps methods 1:1 to ``astrid.*`` JSON-RPC calls without knowing runtime internals.

Human interaction goes the other way through ``astrid_core.Frontend``: the daemon gives the
runtime a Frontend (``set_frontend``) that relays approvals and elicitations to subscribed
clients; when none is connected, the runtime's ApprovalManager defers the request.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime
from typing import Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict

from astrid_core import ApprovalDecision, Frontend, JsonObject, SessionId

from .config import LoadedConfig
from .events import AgentEvent

__all__ = ["SessionInfo", "RuntimeStatus", "ConfigReload", "RuntimeService"]


class SessionInfo(BaseModel):
    model_config = ConfigDict(frozen=True)

    session_id: SessionId
    workspace: str
    model: str
    created_at: datetime
    updated_at: datetime
    turns: int = 0
    cost_micros: int = 0
    state: str = "idle"  # "idle" | "running" | "ended"
    title: str = ""


class RuntimeStatus(BaseModel):
    model_config = ConfigDict(frozen=True)

    sessions: int
    running_turns: int
    storage_url: str
    runtime_key_id: str
    sandbox: str  # e.g. "landlock abi 7" or "unavailable: <reason>"
    servers: list[JsonObject] = []
    pending_approvals: int = 0
    deferred_approvals: int = 0
    warnings: list[str] = []
    # Capsules' [[cron]] jobs: capsule, job, schedule, next_due (ISO, local time), runs,
    # skipped, last (status of the last run, or null).
    scheduled: list[JsonObject] = []


class ConfigReload(BaseModel):
    """What a configuration reload changed: key names ("section.key"), never values."""

    model_config = ConfigDict(frozen=True)

    applied: tuple[str, ...] = ()  # in effect for sessions attached from now on
    needs_restart: tuple[str, ...] = ()  # changed, but used only at start: kept as they were


@runtime_checkable
class RuntimeService(Protocol):
    # lifecycle
    def set_frontend(self, frontend: Frontend | None) -> None: ...
    async def status(self) -> RuntimeStatus: ...
    async def aclose(self) -> None: ...
    # apply a re-read admin configuration as far as a running daemon can
    async def reload_config(self, loaded: LoadedConfig) -> ConfigReload: ...

    # sessions
    async def create_session(
        self, workspace: str | None = None, model: str | None = None
    ) -> SessionInfo: ...
    async def resume_session(self, session_id: SessionId) -> SessionInfo: ...
    async def list_sessions(self) -> list[SessionInfo]: ...
    async def end_session(self, session_id: SessionId) -> None: ...
    async def save_session(self, session_id: SessionId) -> None: ...
    async def delete_session(self, session_id: SessionId) -> None: ...
    async def session_history(self, session_id: SessionId) -> list[JsonObject]: ...

    # turns: events stream until TurnComplete; cancel_turn ends a running turn
    def run_turn(self, session_id: SessionId, text: str) -> AsyncIterator[AgentEvent]: ...
    async def cancel_turn(self, session_id: SessionId) -> bool: ...

    # human answers arriving from a frontend (the daemon's relay calls these)
    async def resolve_approval(self, decision: ApprovalDecision) -> bool: ...
    async def list_deferred(self) -> list[JsonObject]: ...

    # tokens: persistent capability grants
    async def list_tokens(self) -> list[JsonObject]: ...
    async def revoke_token(self, token_id: str, reason: str = ...) -> JsonObject: ...
    async def rotate_key(self) -> JsonObject: ...

    # security views
    async def session_budget(self, session_id: SessionId) -> JsonObject: ...
    async def session_allowances(self, session_id: SessionId) -> list[JsonObject]: ...
    async def session_audit(self, session_id: SessionId, limit: int = 100) -> list[JsonObject]: ...
    async def audit_verify(self, known_heads: list[JsonObject] | None = None) -> JsonObject: ...

    # MCP servers and tools
    async def list_servers(self) -> list[JsonObject]: ...
    async def start_server(self, name: str) -> JsonObject: ...
    async def stop_server(self, name: str) -> JsonObject: ...
    # OAuth servers: login restarts with a fresh sign-in and returns {..status, "url"} (the
    # authorization URL for a person to open; None if none was needed), finish_server_login
    # waits for that sign-in to end, logout deletes the stored tokens.
    async def login_server(self, name: str) -> JsonObject: ...
    async def finish_server_login(self, name: str) -> JsonObject: ...
    async def logout_server(self, name: str) -> JsonObject: ...
    async def approve_tool(self, server: str, tool: str) -> JsonObject: ...
    async def audit_stats(self) -> JsonObject: ...
    async def audit_export(self) -> JsonObject: ...
    async def list_tools(self, session_id: SessionId | None = None) -> list[JsonObject]: ...
    async def record_frontend_refusal(
        self, frontend: str, user: str, reason: str, detail: JsonObject
    ) -> JsonObject: ...

    # capsules: clients only (no agent tool maps to these). A plan stages the source and
    # returns {plan_id, disclosure}; commit installs exactly that staged copy, and needs a
    # trust method ("interactive" | "flag") unless it is an update asking for nothing new.
    async def capsule_plan(self, source: str) -> JsonObject: ...
    async def capsule_commit(
        self,
        plan_id: str,
        trust_method: str | None,
        actor: str,
        secrets: dict[str, str] | None = None,
    ) -> JsonObject: ...
    async def capsule_discard(self, plan_id: str) -> JsonObject: ...
    async def capsule_list(self) -> list[JsonObject]: ...
    async def capsule_info(self, name: str) -> JsonObject: ...
    async def capsule_rollback(self, name: str) -> JsonObject: ...
    async def capsule_remove(self, name: str) -> JsonObject: ...
    async def capsule_run_job(self, capsule: str, job: str) -> JsonObject: ...
