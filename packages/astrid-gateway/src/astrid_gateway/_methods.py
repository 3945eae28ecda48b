"""The ``astrid.*`` methods: JSON-RPC params in, RuntimeService calls, JSON out.

Params are validated by pydantic models (bad params → -32602 naming the field). A turn runs
as a background task of the daemon; its events go to subscribers of the session. One turn at a
time per session (-32005 otherwise).
"""

from __future__ import annotations

import getpass
import logging
from collections.abc import Awaitable, Callable
from typing import Annotated, Any, Literal, TypeVar

from anyio.abc import TaskGroup
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from astrid_core import (
    ApprovalDecision,
    ApprovalOption,
    AstridError,
    ElicitationResponse,
    JsonObject,
    RequestId,
    SessionId,
)
from astrid_runtime.events import event_adapter
from astrid_runtime.service import RuntimeService

from ._jsonrpc import RpcError
from ._relay import RelayFrontend
from .protocol import ErrorCode
from .server import Connection, GatewayServer

__all__ = ["bind_runtime"]

log = logging.getLogger("astrid.gateway")
P = TypeVar("P", bound=BaseModel)


class _Params(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class NoParams(_Params):
    pass


class CreateSession(_Params):
    workspace: str | None = None
    model: str | None = None


class SessionParams(_Params):
    session_id: SessionId


class SendInput(_Params):
    session_id: SessionId
    text: str = Field(min_length=1, max_length=1_000_000)


class ApprovalResponse(_Params):
    request_id: RequestId
    option: ApprovalOption
    reason: str | None = None
    deny_always: bool = False


class ElicitationAnswer(_Params):
    request_id: RequestId
    action: Literal["accept", "decline", "cancel"]
    content: JsonObject | None = None


class TokenRevoke(_Params):
    token_id: str = Field(min_length=1, max_length=100)
    reason: str = Field(default="revoked by the user", max_length=500)


class PolicyApply(_Params):
    text: str = Field(min_length=1, max_length=1_000_000)  # the file's content, parsed here
    path: str = Field(default="policy.toml", max_length=4096)  # named in errors and the audit


class PolicyRevoke(_Params):
    grant: str | None = Field(default=None, max_length=200)  # None: the whole policy
    reason: str = Field(default="policy revoked by the admin", max_length=500)


class AuditVerify(_Params):
    # Signed tree heads the client verified before (its own cache): the log must extend them.
    known_heads: list[dict[str, Any]] = Field(default_factory=list[dict[str, Any]], max_length=16)


class SessionAudit(_Params):
    session_id: SessionId
    limit: int = Field(default=100, ge=1, le=10_000)


class ServerName(_Params):
    name: str = Field(min_length=1, max_length=200)


class ToolRef(_Params):
    server: str = Field(min_length=1, max_length=200)
    tool: str = Field(min_length=1, max_length=200)


class ListTools(_Params):
    session_id: SessionId | None = None


class FrontendEvent(_Params):
    """Something a frontend decided on its own that belongs in the audit log.

    Only refusals so far: a person the frontend turned away before any session existed.
    """

    event: Literal["user_refused"]
    user: str = Field(min_length=1, max_length=200)  # the frontend's id of the person
    chat: str | None = Field(default=None, max_length=200)
    reason: str = Field(default="", max_length=500)
    suppressed: int = Field(default=0, ge=0)  # refusals since the last report, not audited


class CapsuleSource(_Params):
    source: str = Field(min_length=1, max_length=4096)  # absolute path on the daemon's host


class CapsulePlanRef(_Params):
    plan_id: str = Field(min_length=1, max_length=64)


class CapsuleCommit(_Params):
    plan_id: str = Field(min_length=1, max_length=64)
    # How the person acknowledged trust; None only suffices for an update asking nothing new.
    trust: Literal["interactive", "flag"] | None = None
    secrets: dict[
        Annotated[str, Field(max_length=200)], Annotated[str, Field(max_length=65_536)]
    ] = Field(default_factory=dict, max_length=100)


class CapsuleName(_Params):
    name: str = Field(min_length=1, max_length=64)


class CapsuleJob(_Params):
    capsule: str = Field(min_length=1, max_length=64)
    job: str = Field(min_length=1, max_length=64)


def _parse(model: type[P], params: dict[str, Any]) -> P:
    try:
        return model.model_validate(params)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "params"
        raise RpcError(ErrorCode.INVALID_PARAMS, f"{where}: {first['msg']}") from None


def _dump(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, list):
        return [_dump(v) for v in value]  # type: ignore[misc]
    return value


class _Turns:
    """Runs turns in the background and streams their events to subscribers."""

    def __init__(self, server: GatewayServer, runtime: RuntimeService, tg: TaskGroup) -> None:
        self.server = server
        self.runtime = runtime
        self.tg = tg
        self.running: set[str] = set()

    def start(self, session_id: SessionId, text: str) -> None:
        key = str(session_id)
        if key in self.running:
            raise RpcError(
                ErrorCode.TURN_IN_PROGRESS,
                f"session {key} is already running a turn",
                data={"hint": "wait for turn_complete or call astrid.cancelTurn"},
            )
        self.running.add(key)
        self.tg.start_soon(self._run, session_id, text)

    async def _run(self, session_id: SessionId, text: str) -> None:
        key = str(session_id)
        try:
            async for event in self.runtime.run_turn(session_id, text):
                payload = event_adapter.dump_python(event, mode="json")
                if payload.get("type") == "turn_complete":
                    self.running.discard(
                        key
                    )  # the next input may start as soon as clients see this
                await self.server.publish(key, payload)
        except AstridError as exc:
            await self._error(key, exc.code, exc.message, exc.hint)
        except Exception:
            log.exception("turn failed in session %s", key)
            await self._error(
                key, "internal", "the turn failed inside the daemon (see its log)", ""
            )
        finally:
            self.running.discard(key)

    async def _error(self, key: str, code: str, message: str, hint: str) -> None:
        await self.server.publish(
            key,
            {"type": "error", "session_id": key, "code": code, "message": message, "hint": hint},
        )
        await self.server.publish(
            key, {"type": "turn_complete", "session_id": key, "stop_reason": "error", "turns": 0}
        )


def bind_runtime(
    server: GatewayServer, runtime: RuntimeService, relay: RelayFrontend, tg: TaskGroup
) -> None:
    """Register every runtime-backed astrid.* method on ``server``."""
    turns = _Turns(server, runtime, tg)

    def method(
        name: str, model: type[P]
    ) -> Callable[[Callable[[Connection, P], Awaitable[Any]]], None]:
        def register(func: Callable[[Connection, P], Awaitable[Any]]) -> None:
            async def handler(conn: Connection, params: dict[str, Any]) -> Any:
                return _dump(await func(conn, _parse(model, params)))

            server.register(name, handler)

        return register

    @method("astrid.createSession", CreateSession)
    async def _create(conn: Connection, p: CreateSession) -> Any:
        return await runtime.create_session(p.workspace, p.model)

    @method("astrid.resumeSession", SessionParams)
    async def _resume(conn: Connection, p: SessionParams) -> Any:
        return await runtime.resume_session(p.session_id)

    @method("astrid.listSessions", NoParams)
    async def _list(conn: Connection, p: NoParams) -> Any:
        return await runtime.list_sessions()

    @method("astrid.endSession", SessionParams)
    async def _end(conn: Connection, p: SessionParams) -> Any:
        await runtime.end_session(p.session_id)
        return {"ended": str(p.session_id)}

    @method("astrid.saveSession", SessionParams)
    async def _save(conn: Connection, p: SessionParams) -> Any:
        await runtime.save_session(p.session_id)
        await server.publish(
            str(p.session_id), {"type": "session_saved", "session_id": str(p.session_id)}
        )
        return {"saved": str(p.session_id)}

    @method("astrid.deleteSession", SessionParams)
    async def _delete(conn: Connection, p: SessionParams) -> Any:
        await runtime.delete_session(p.session_id)
        return {"deleted": str(p.session_id)}

    @method("astrid.sendInput", SendInput)
    async def _send(conn: Connection, p: SendInput) -> Any:
        turns.start(p.session_id, p.text)
        return {"accepted": True, "session_id": str(p.session_id)}

    @method("astrid.cancelTurn", SessionParams)
    async def _cancel(conn: Connection, p: SessionParams) -> Any:
        return {"cancelled": await runtime.cancel_turn(p.session_id)}

    @method("astrid.approvalResponse", ApprovalResponse)
    async def _approval(conn: Connection, p: ApprovalResponse) -> Any:
        decision = ApprovalDecision(
            request_id=p.request_id,
            option=p.option,
            reason=p.reason,
            deny_always=p.deny_always,
            decided_by=conn.client_name,
        )
        key = str(p.request_id)
        if relay.answer(key, decision, by=conn.client_name):
            return {"accepted": True}
        # Not live: perhaps a deferred request being answered later (replayed by the runtime).
        if await runtime.resolve_approval(decision):
            return {"accepted": True, "deferred": True}
        raise RpcError(
            ErrorCode.ALREADY_RESOLVED,
            f"approval {key} is not pending "
            "(already answered by another client, expired or unknown)",
        )

    @method("astrid.elicitationResponse", ElicitationAnswer)
    async def _elicitation(conn: Connection, p: ElicitationAnswer) -> Any:
        answer = ElicitationResponse(request_id=p.request_id, action=p.action, content=p.content)
        if relay.answer(str(p.request_id), answer, by=conn.client_name):
            return {"accepted": True}
        raise RpcError(ErrorCode.ALREADY_RESOLVED, f"elicitation {p.request_id} is not pending")

    @method("astrid.listDeferred", NoParams)
    async def _deferred(conn: Connection, p: NoParams) -> Any:
        return await runtime.list_deferred()

    @method("astrid.listTokens", NoParams)
    async def _tokens(conn: Connection, p: NoParams) -> Any:
        return await runtime.list_tokens()

    @method("astrid.revokeToken", TokenRevoke)
    async def _revoke_token(conn: Connection, p: TokenRevoke) -> Any:
        return await runtime.revoke_token(p.token_id, p.reason)

    @method("astrid.policyApply", PolicyApply)
    async def _policy_apply(conn: Connection, p: PolicyApply) -> Any:
        return await runtime.apply_policy(p.text, p.path)

    @method("astrid.policyList", NoParams)
    async def _policy_list(conn: Connection, p: NoParams) -> Any:
        return await runtime.list_policy()

    @method("astrid.policyRevoke", PolicyRevoke)
    async def _policy_revoke(conn: Connection, p: PolicyRevoke) -> Any:
        return await runtime.revoke_policy(p.grant, p.reason)

    @method("astrid.rotateKey", NoParams)
    async def _rotate_key(conn: Connection, p: NoParams) -> Any:
        return await runtime.rotate_key()

    @method("astrid.sessionBudget", SessionParams)
    async def _budget(conn: Connection, p: SessionParams) -> Any:
        return await runtime.session_budget(p.session_id)

    @method("astrid.sessionAllowances", SessionParams)
    async def _allowances(conn: Connection, p: SessionParams) -> Any:
        return await runtime.session_allowances(p.session_id)

    @method("astrid.sessionAudit", SessionAudit)
    async def _audit(conn: Connection, p: SessionAudit) -> Any:
        return await runtime.session_audit(p.session_id, p.limit)

    @method("astrid.auditVerify", AuditVerify)
    async def _verify(conn: Connection, p: AuditVerify) -> Any:
        return await runtime.audit_verify(p.known_heads)

    @method("astrid.listServers", NoParams)
    async def _servers(conn: Connection, p: NoParams) -> Any:
        return await runtime.list_servers()

    @method("astrid.startServer", ServerName)
    async def _start(conn: Connection, p: ServerName) -> Any:
        return await runtime.start_server(p.name)

    @method("astrid.stopServer", ServerName)
    async def _stop(conn: Connection, p: ServerName) -> Any:
        return await runtime.stop_server(p.name)

    # OAuth sign-in: loginServer answers once the authorization URL is known (the client
    # prints it, then waits with finishServerLogin); logoutServer deletes the stored tokens.
    @method("astrid.loginServer", ServerName)
    async def _login(conn: Connection, p: ServerName) -> Any:
        return await runtime.login_server(p.name)

    @method("astrid.finishServerLogin", ServerName)
    async def _finish_login(conn: Connection, p: ServerName) -> Any:
        return await runtime.finish_server_login(p.name)

    @method("astrid.logoutServer", ServerName)
    async def _logout(conn: Connection, p: ServerName) -> Any:
        return await runtime.logout_server(p.name)

    @method("astrid.auditStats", NoParams)
    async def _audit_stats(conn: Connection, p: NoParams) -> Any:
        return await runtime.audit_stats()

    @method("astrid.auditExport", NoParams)
    async def _audit_export(conn: Connection, p: NoParams) -> Any:
        return await runtime.audit_export()

    @method("astrid.approveTool", ToolRef)
    async def _approve_tool(conn: Connection, p: ToolRef) -> Any:
        return await runtime.approve_tool(p.server, p.tool)

    @method("astrid.listTools", ListTools)
    async def _tools(conn: Connection, p: ListTools) -> Any:
        return await runtime.list_tools(p.session_id)

    @method("astrid.recordFrontendEvent", FrontendEvent)
    async def _frontend_event(conn: Connection, p: FrontendEvent) -> Any:
        # The frontend is the name the client gave when it connected, not a param.
        detail: JsonObject = {"suppressed": p.suppressed}
        if p.chat is not None:
            detail["chat"] = p.chat
        return await runtime.record_frontend_refusal(
            conn.client_name, p.user, p.reason or "refused by the frontend", detail
        )

    # Capsules: only a client holding the daemon token gets here, never the agent. The actor
    # recorded with a trust acknowledgement is the connecting client and the daemon's OS user
    # (the token file is readable by that user only).
    @method("astrid.capsulePlan", CapsuleSource)
    async def _capsule_plan(conn: Connection, p: CapsuleSource) -> Any:
        return await runtime.capsule_plan(p.source)

    @method("astrid.capsuleCommit", CapsuleCommit)
    async def _capsule_commit(conn: Connection, p: CapsuleCommit) -> Any:
        actor = f"{conn.client_name[:100]}:{getpass.getuser()}"
        return await runtime.capsule_commit(p.plan_id, p.trust, actor, dict(p.secrets))

    @method("astrid.capsuleDiscard", CapsulePlanRef)
    async def _capsule_discard(conn: Connection, p: CapsulePlanRef) -> Any:
        return await runtime.capsule_discard(p.plan_id)

    @method("astrid.listCapsules", NoParams)
    async def _capsule_list(conn: Connection, p: NoParams) -> Any:
        return await runtime.capsule_list()

    @method("astrid.capsuleInfo", CapsuleName)
    async def _capsule_info(conn: Connection, p: CapsuleName) -> Any:
        return await runtime.capsule_info(p.name)

    @method("astrid.capsuleRollback", CapsuleName)
    async def _capsule_rollback(conn: Connection, p: CapsuleName) -> Any:
        return await runtime.capsule_rollback(p.name)

    @method("astrid.runCapsuleJob", CapsuleJob)
    async def _capsule_run_job(conn: Connection, p: CapsuleJob) -> Any:
        return await runtime.capsule_run_job(p.capsule, p.job)

    @method("astrid.removeCapsule", CapsuleName)
    async def _capsule_remove(conn: Connection, p: CapsuleName) -> Any:
        return await runtime.capsule_remove(p.name)

    async def on_subscribe(conn: Connection, subscription: str, session_id: str | None) -> None:
        # A client that arrives late still sees what is waiting for a human: live requests
        # and the deferred queue (deferred ones are answered via astrid.approvalResponse too).
        for payload in relay.live_requests(session_id):
            await conn.notify("astrid.event", {"subscription": subscription, "event": payload})
        deferred = await runtime.list_deferred()
        if deferred:
            await conn.notify(
                "astrid.event",
                {
                    "subscription": subscription,
                    "event": {
                        "type": "deferred_approvals",
                        "session_id": session_id,
                        "items": deferred,
                    },
                },
            )

    server.on_subscribe = on_subscribe
