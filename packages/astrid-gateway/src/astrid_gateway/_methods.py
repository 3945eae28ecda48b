"""The ``astrid.*`` methods: JSON-RPC params in, RuntimeService calls, JSON out.

``ROUTES`` is the method table: method name -> (params model, ``RuntimeMethods`` method). Params
are validated by the models of ``protocol`` (bad params -> -32602 naming the field). A new
method is one ``RuntimeMethods`` method plus one ``ROUTES`` entry (and its line in
``protocol.METHODS``). A turn runs as a background task of the daemon; its events go to
subscribers of the session. One turn at a time per session (-32005 otherwise).
"""

from __future__ import annotations

import functools
import getpass
import logging
from collections.abc import Awaitable, Callable
from typing import TypeAlias, TypeVar

from anyio.abc import TaskGroup
from pydantic import BaseModel, JsonValue, ValidationError

from astrid_core import (
    ApprovalDecision,
    AstridError,
    ElicitationResponse,
    JsonObject,
    SessionId,
)
from astrid_runtime.events import AgentError, DeferredApprovals, SessionSaved, TurnComplete
from astrid_runtime.service import RuntimeService

from ._jsonrpc import RpcError
from ._relay import RelayFrontend
from .protocol import (
    ApprovalResponse,
    AuditVerify,
    CapsuleCommit,
    CapsuleJob,
    CapsuleName,
    CapsulePlanRef,
    CapsuleSource,
    CreateSession,
    ElicitationAnswer,
    ErrorCode,
    FrontendEvent,
    ListTools,
    NoParams,
    Params,
    PolicyApply,
    PolicyRevoke,
    SendInput,
    ServerName,
    SessionAudit,
    SessionParams,
    TokenRevoke,
    ToolRef,
)
from .server import Connection, GatewayServer

__all__ = ["bind_runtime", "RuntimeMethods", "ROUTES", "Route", "route"]

log = logging.getLogger("astrid.gateway")
P = TypeVar("P", bound=Params)


def _parse(model: type[P], params: JsonObject) -> P:
    try:
        return model.model_validate(params)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "params"
        raise RpcError(ErrorCode.INVALID_PARAMS, f"{where}: {first['msg']}") from None


def _dump(value: object) -> JsonValue:
    if isinstance(value, BaseModel):
        dumped: JsonValue = value.model_dump(mode="json")
        return dumped
    if isinstance(value, list):
        return [_dump(v) for v in value]  # pyright: ignore[reportUnknownVariableType]
    return value  # pyright: ignore[reportReturnType] - the runtime returns JSON-ready values


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
                if isinstance(event, TurnComplete):
                    self.running.discard(key)  # the next input may start once clients see it
                await self.server.publish(key, event)
        except AstridError as exc:
            await self._error(session_id, exc.code, exc.message, exc.hint)
        except Exception:
            log.exception("turn failed in session %s", key)
            await self._error(
                session_id, "internal", "the turn failed inside the daemon (see its log)", ""
            )
        finally:
            self.running.discard(key)

    async def _error(self, session: SessionId, code: str, message: str, hint: str) -> None:
        key = str(session)
        await self.server.publish(
            key, AgentError(session_id=session, code=code, message=message, hint=hint)
        )
        await self.server.publish(
            key, TurnComplete(session_id=session, stop_reason="error", turns=0)
        )


class RuntimeMethods:
    """One method per ``astrid.*`` call backed by the runtime: typed params in, a value the
    table dumps to JSON out. ``conn`` is the calling client (its name is what approvals and
    audit entries attribute answers to)."""

    def __init__(
        self, server: GatewayServer, runtime: RuntimeService, relay: RelayFrontend, tg: TaskGroup
    ) -> None:
        self.server = server
        self.runtime = runtime
        self.relay = relay
        self.turns = _Turns(server, runtime, tg)

    # sessions and turns
    async def create_session(self, conn: Connection, p: CreateSession) -> object:
        return await self.runtime.create_session(p.workspace, p.model)

    async def resume_session(self, conn: Connection, p: SessionParams) -> object:
        return await self.runtime.resume_session(p.session_id)

    async def list_sessions(self, conn: Connection, p: NoParams) -> object:
        return await self.runtime.list_sessions()

    async def end_session(self, conn: Connection, p: SessionParams) -> object:
        await self.runtime.end_session(p.session_id)
        return {"ended": str(p.session_id)}

    async def save_session(self, conn: Connection, p: SessionParams) -> object:
        await self.runtime.save_session(p.session_id)
        await self.server.publish(str(p.session_id), SessionSaved(session_id=p.session_id))
        return {"saved": str(p.session_id)}

    async def delete_session(self, conn: Connection, p: SessionParams) -> object:
        await self.runtime.delete_session(p.session_id)
        return {"deleted": str(p.session_id)}

    async def send_input(self, conn: Connection, p: SendInput) -> object:
        self.turns.start(p.session_id, p.text)
        return {"accepted": True, "session_id": str(p.session_id)}

    async def cancel_turn(self, conn: Connection, p: SessionParams) -> object:
        return {"cancelled": await self.runtime.cancel_turn(p.session_id)}

    # answers from people
    async def approval_response(self, conn: Connection, p: ApprovalResponse) -> object:
        decision = ApprovalDecision(
            request_id=p.request_id,
            option=p.option,
            reason=p.reason,
            deny_always=p.deny_always,
            decided_by=conn.client_name,
        )
        key = str(p.request_id)
        if self.relay.answer(key, decision, by=conn.client_name):
            return {"accepted": True}
        # Not live: perhaps a deferred request being answered later (replayed by the runtime).
        if await self.runtime.resolve_approval(decision):
            return {"accepted": True, "deferred": True}
        raise RpcError(
            ErrorCode.ALREADY_RESOLVED,
            f"approval {key} is not pending "
            "(already answered by another client, expired or unknown)",
        )

    async def elicitation_response(self, conn: Connection, p: ElicitationAnswer) -> object:
        answer = ElicitationResponse(request_id=p.request_id, action=p.action, content=p.content)
        if self.relay.answer(str(p.request_id), answer, by=conn.client_name):
            return {"accepted": True}
        raise RpcError(ErrorCode.ALREADY_RESOLVED, f"elicitation {p.request_id} is not pending")

    async def list_deferred(self, conn: Connection, p: NoParams) -> object:
        return await self.runtime.list_deferred()

    # tokens, keys, budget, audit
    async def list_tokens(self, conn: Connection, p: NoParams) -> object:
        return await self.runtime.list_tokens()

    async def revoke_token(self, conn: Connection, p: TokenRevoke) -> object:
        return await self.runtime.revoke_token(p.token_id, p.reason)

    async def policy_apply(self, conn: Connection, p: PolicyApply) -> object:
        return await self.runtime.apply_policy(p.text, p.path)

    async def policy_list(self, conn: Connection, p: NoParams) -> object:
        return await self.runtime.list_policy()

    async def policy_revoke(self, conn: Connection, p: PolicyRevoke) -> object:
        return await self.runtime.revoke_policy(p.grant, p.reason)

    async def rotate_key(self, conn: Connection, p: NoParams) -> object:
        return await self.runtime.rotate_key()

    async def session_budget(self, conn: Connection, p: SessionParams) -> object:
        return await self.runtime.session_budget(p.session_id)

    async def session_allowances(self, conn: Connection, p: SessionParams) -> object:
        return await self.runtime.session_allowances(p.session_id)

    async def session_audit(self, conn: Connection, p: SessionAudit) -> object:
        return await self.runtime.session_audit(p.session_id, p.limit)

    async def audit_verify(self, conn: Connection, p: AuditVerify) -> object:
        return await self.runtime.audit_verify(p.known_heads)

    async def audit_stats(self, conn: Connection, p: NoParams) -> object:
        return await self.runtime.audit_stats()

    async def audit_export(self, conn: Connection, p: NoParams) -> object:
        return await self.runtime.audit_export()

    async def record_frontend_event(self, conn: Connection, p: FrontendEvent) -> object:
        # The frontend is the name the client gave when it connected, not a param.
        detail: JsonObject = {"suppressed": p.suppressed}
        if p.chat is not None:
            detail["chat"] = p.chat
        return await self.runtime.record_frontend_refusal(
            conn.client_name, p.user, p.reason or "refused by the frontend", detail
        )

    # MCP servers and tools. OAuth sign-in: loginServer answers once the authorization URL
    # is known (the client prints it, then waits with finishServerLogin); logoutServer deletes
    # the stored tokens.
    async def list_servers(self, conn: Connection, p: NoParams) -> object:
        return await self.runtime.list_servers()

    async def start_server(self, conn: Connection, p: ServerName) -> object:
        return await self.runtime.start_server(p.name)

    async def stop_server(self, conn: Connection, p: ServerName) -> object:
        return await self.runtime.stop_server(p.name)

    async def login_server(self, conn: Connection, p: ServerName) -> object:
        return await self.runtime.login_server(p.name)

    async def finish_server_login(self, conn: Connection, p: ServerName) -> object:
        return await self.runtime.finish_server_login(p.name)

    async def logout_server(self, conn: Connection, p: ServerName) -> object:
        return await self.runtime.logout_server(p.name)

    async def approve_tool(self, conn: Connection, p: ToolRef) -> object:
        return await self.runtime.approve_tool(p.server, p.tool)

    async def list_tools(self, conn: Connection, p: ListTools) -> object:
        return await self.runtime.list_tools(p.session_id)

    # Capsules: only a client holding the daemon token gets here, never the agent. The actor
    # recorded with a trust acknowledgement is the connecting client and the daemon's OS user
    # (the token file is readable by that user only).
    async def capsule_plan(self, conn: Connection, p: CapsuleSource) -> object:
        return await self.runtime.capsule_plan(p.source)

    async def capsule_commit(self, conn: Connection, p: CapsuleCommit) -> object:
        actor = f"{conn.client_name[:100]}:{getpass.getuser()}"
        return await self.runtime.capsule_commit(p.plan_id, p.trust, actor, dict(p.secrets))

    async def capsule_discard(self, conn: Connection, p: CapsulePlanRef) -> object:
        return await self.runtime.capsule_discard(p.plan_id)

    async def capsule_list(self, conn: Connection, p: NoParams) -> object:
        return await self.runtime.capsule_list()

    async def capsule_info(self, conn: Connection, p: CapsuleName) -> object:
        return await self.runtime.capsule_info(p.name)

    async def capsule_rollback(self, conn: Connection, p: CapsuleName) -> object:
        return await self.runtime.capsule_rollback(p.name)

    async def capsule_run_job(self, conn: Connection, p: CapsuleJob) -> object:
        return await self.runtime.capsule_run_job(p.capsule, p.job)

    async def capsule_remove(self, conn: Connection, p: CapsuleName) -> object:
        return await self.runtime.capsule_remove(p.name)

    # subscriptions
    async def on_subscribe(
        self, conn: Connection, subscription: str, session_id: str | None
    ) -> None:
        """A client that arrives late still sees what is waiting for a human: live requests
        and the deferred queue (deferred ones are answered via astrid.approvalResponse too)."""
        for event in self.relay.live_requests(session_id):
            await conn.notify_event(subscription, event)
        deferred = await self.runtime.list_deferred()
        if deferred:
            await conn.notify_event(
                subscription, DeferredApprovals(session_id=_session(session_id), items=deferred)
            )


def _session(session_id: str | None) -> SessionId | None:
    """A subscription's session filter as an id (a filter that is no id matches no session)."""
    try:
        return SessionId.parse(session_id) if session_id is not None else None
    except AstridError:
        return None


Route: TypeAlias = Callable[[RuntimeMethods, Connection, JsonObject], Awaitable[JsonValue]]


def route(
    model: type[P], method: Callable[[RuntimeMethods, Connection, P], Awaitable[object]]
) -> Route:
    """A table entry: validate the params with ``model``, call ``method``, dump the result."""

    async def handle(methods: RuntimeMethods, conn: Connection, params: JsonObject) -> JsonValue:
        return _dump(await method(methods, conn, _parse(model, params)))

    return handle


M = RuntimeMethods
ROUTES: dict[str, Route] = {
    "astrid.createSession": route(CreateSession, M.create_session),
    "astrid.resumeSession": route(SessionParams, M.resume_session),
    "astrid.listSessions": route(NoParams, M.list_sessions),
    "astrid.endSession": route(SessionParams, M.end_session),
    "astrid.saveSession": route(SessionParams, M.save_session),
    "astrid.deleteSession": route(SessionParams, M.delete_session),
    "astrid.sendInput": route(SendInput, M.send_input),
    "astrid.cancelTurn": route(SessionParams, M.cancel_turn),
    "astrid.approvalResponse": route(ApprovalResponse, M.approval_response),
    "astrid.elicitationResponse": route(ElicitationAnswer, M.elicitation_response),
    "astrid.listDeferred": route(NoParams, M.list_deferred),
    "astrid.listTokens": route(NoParams, M.list_tokens),
    "astrid.revokeToken": route(TokenRevoke, M.revoke_token),
    "astrid.policyApply": route(PolicyApply, M.policy_apply),
    "astrid.policyList": route(NoParams, M.policy_list),
    "astrid.policyRevoke": route(PolicyRevoke, M.policy_revoke),
    "astrid.rotateKey": route(NoParams, M.rotate_key),
    "astrid.sessionBudget": route(SessionParams, M.session_budget),
    "astrid.sessionAllowances": route(SessionParams, M.session_allowances),
    "astrid.sessionAudit": route(SessionAudit, M.session_audit),
    "astrid.auditVerify": route(AuditVerify, M.audit_verify),
    "astrid.auditStats": route(NoParams, M.audit_stats),
    "astrid.auditExport": route(NoParams, M.audit_export),
    "astrid.recordFrontendEvent": route(FrontendEvent, M.record_frontend_event),
    "astrid.listServers": route(NoParams, M.list_servers),
    "astrid.startServer": route(ServerName, M.start_server),
    "astrid.stopServer": route(ServerName, M.stop_server),
    "astrid.loginServer": route(ServerName, M.login_server),
    "astrid.finishServerLogin": route(ServerName, M.finish_server_login),
    "astrid.logoutServer": route(ServerName, M.logout_server),
    "astrid.approveTool": route(ToolRef, M.approve_tool),
    "astrid.listTools": route(ListTools, M.list_tools),
    "astrid.capsulePlan": route(CapsuleSource, M.capsule_plan),
    "astrid.capsuleCommit": route(CapsuleCommit, M.capsule_commit),
    "astrid.capsuleDiscard": route(CapsulePlanRef, M.capsule_discard),
    "astrid.listCapsules": route(NoParams, M.capsule_list),
    "astrid.capsuleInfo": route(CapsuleName, M.capsule_info),
    "astrid.capsuleRollback": route(CapsuleName, M.capsule_rollback),
    "astrid.runCapsuleJob": route(CapsuleJob, M.capsule_run_job),
    "astrid.removeCapsule": route(CapsuleName, M.capsule_remove),
}


def bind_runtime(
    server: GatewayServer, runtime: RuntimeService, relay: RelayFrontend, tg: TaskGroup
) -> RuntimeMethods:
    """Register every ``ROUTES`` method on ``server``, served by one ``RuntimeMethods``."""
    methods = RuntimeMethods(server, runtime, relay, tg)
    for name, handle in ROUTES.items():
        server.register(name, functools.partial(handle, methods))
    server.on_subscribe = methods.on_subscribe
    return methods
