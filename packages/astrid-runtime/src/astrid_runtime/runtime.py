"""AgentRuntime: everything the daemon hosts, composed — and the only way actions happen.

It opens the state (storage, runtime key, audit log, capability store), builds one
SecurityInterceptor per session (policy from config, workspace boundary, budget, allowances,
approval manager wired to the daemon's Frontend), and runs turns through the AgentLoop. It
implements ``RuntimeService``, the contract the daemon codes against.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import time
from collections import Counter
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio

from astrid_approval import (
    DEFAULT_BLOCKED_COMMANDS,
    DEFAULT_DENIED_PATHS,
    DEFAULT_PROTECTED_PATHS,
    AllowanceStore,
    ApprovalManager,
    BudgetConfig,
    BudgetTracker,
    DeferredResolutionStore,
    EscapePolicy,
    SecurityInterceptor,
    SecurityPolicy,
    WorkspaceBoundary,
    WorkspaceMode,
)
from astrid_audit import AuditLog, AuditTrail, Outcome, OutcomeKind, verify_storage
from astrid_capabilities import CapabilityStore
from astrid_capsule.admin import CapsuleAdmin
from astrid_core import (
    ApprovalDecision,
    AstridError,
    BadInputError,
    ConfigError,
    DirectoryList,
    FileDelete,
    FileRead,
    Frontend,
    JsonObject,
    JsonValue,
    McpToolCall,
    NotFoundError,
    SensitiveAction,
    SessionId,
    ShellCommand,
    TokenId,
)
from astrid_core.storage import Storage, open_storage, state_url
from astrid_crypto import KeyPair, PublicKey

from ._no_mcp import LazyMcpBridge
from .agent import (
    AgentLoop,
    ApprovalHooks,
    CompactionSettings,
    HookEvent,
    HookHandler,
    HookRunner,
    SubAgentLimits,
    SubAgentSpawner,
)
from .capsules import CapsuleCron, CapsuleHost
from .config import AstridConfig, LoadedConfig, load_config, with_workspace
from .events import AgentEvent, SessionSaved, TurnComplete
from .llm import (
    LlmError,
    LlmProvider,
    ModelRequest,
    Pricing,
    ProviderEvent,
    RetryPolicy,
    ScriptedProvider,
    Usage,
)
from .llm._rate_limit import RateLimitedProvider, RequestRateLimiter
from .service import ConfigReload, RuntimeStatus, SessionInfo
from .sessions import Session, SessionStore
from .tools import ToolContext, ToolRegistry, default_tools
from .tools._bash import bash_sandbox_report

__all__ = ["AgentRuntime", "UnavailableProvider"]

log = logging.getLogger("astrid.runtime")
_RETENTION_INTERVAL_S = 86_400.0  # [sessions] retention_days is applied at start and daily


def _older_than(updated_at: float, days: int) -> bool:
    return updated_at < time.time() - days * 86_400


def _retired_dir(key_path: Path) -> Path:
    return key_path.parent / "retired"


def _retired_keys(key_path: Path) -> list[PublicKey]:
    """Public keys the runtime key replaced (``keys/retired/<key id>.pub``); a malformed one
    is an error, not skipped: it would make the entries it signed look forged."""
    directory = _retired_dir(key_path)
    if not directory.is_dir():
        return []
    keys: list[PublicKey] = []
    for path in sorted(directory.glob("*.pub")):
        try:
            key = PublicKey.from_b64(path.read_text().strip())
        except (OSError, ValueError, AstridError) as exc:
            raise ConfigError(
                f"retired key file {path} is unreadable: {exc}",
                hint="restore it from a backup: the audit entries it signed verify only with it",
            ) from exc
        if key.key_id != path.stem:
            raise ConfigError(
                f"retired key file {path} holds key {key.key_id}, not {path.stem}",
                hint="restore the original file from a backup",
            )
        keys.append(key)
    return keys


def _storage_health(storage: Storage) -> list[str]:
    """What the storage backend reports as wrong (a deleted state directory, a disk that filled
    up, a recovery); backends without a health report have nothing to say."""
    health: Any = getattr(storage, "health", None)
    if health is None:
        return []
    problems: list[Any] = list(health())
    return [str(problem) for problem in problems]


@dataclass
class _Live:
    session: Session
    interceptor: SecurityInterceptor
    loop: AgentLoop
    budget: BudgetTracker


class _HeadlessPort:
    """``AgentRuntime`` as the cron runner's ``HeadlessSessions`` port."""

    def __init__(self, runtime: AgentRuntime) -> None:
        self._runtime = runtime

    @property
    def config(self) -> AstridConfig:
        return self._runtime.config

    @property
    def config_file(self) -> Path:
        return self._runtime.home / "config.toml"

    def default_workspace(self) -> str:
        return self._runtime._workspace(None)

    def config_for(self, workspace: str) -> AstridConfig:
        runtime = self._runtime
        return with_workspace(runtime.loaded, workspace, home=runtime.home).config

    async def open(self, session_id: SessionId) -> _Live:
        return await self._runtime._get(session_id)

    async def create(self, workspace: str, title: str) -> _Live:
        info = await self._runtime.create_session(workspace)
        live = await self._runtime._get(info.session_id)
        live.session.title = title
        await self._runtime.sessions.save(live.session)
        return live

    async def save(self, session: Session) -> None:
        await self._runtime.sessions.save(session)


class AgentRuntime:
    def __init__(
        self,
        home: Path,
        loaded: LoadedConfig,
        storage: Storage,
        key: KeyPair,
        audit: AuditLog,
        provider: LlmProvider,
    ) -> None:
        self.home = home
        self.loaded = loaded
        self.config = loaded.config
        self.storage = storage
        self.key = key
        self.audit = audit
        self.provider = provider
        self.capabilities = CapabilityStore(storage, [key.public_key])
        self.trail = AuditTrail(audit)  # the system chain: lifecycle and admin records
        from ._policy_admin import PolicyAdmin

        self.policy = PolicyAdmin(self)  # `astrid policy apply`: admin grants and settings
        # Receives the events of deferred calls replayed outside a turn (None: dropped).
        # Where a replayed call's events go: (session id, event); the daemon publishes them to
        # the session's subscribers like a live turn's.
        self.replay_listener: Callable[[str, AgentEvent], Awaitable[None]] | None = None
        self.capability_repairs: list[str] = []  # rows the audit log proved were deleted
        self.allowances = AllowanceStore(storage, key)
        self.deferred = DeferredResolutionStore(storage)
        self.sessions = SessionStore(storage)
        self.frontend: Frontend | None = None
        self._live: dict[str, _Live] = {}
        self.capsule_admin = CapsuleAdmin(  # clients only: no agent tool
            home, storage, audit, renew_trust=self.config.capsules.renew_trust
        )
        self.hooks = HookRunner.from_config(self.config.hooks)

        def make_mcp_bridge() -> Any:
            # Imported only once a server exists: the mcp SDK costs ~2 s of start-up.
            from ._mcp_bridge import McpBridge, ProviderSampler

            return McpBridge(
                _server_configs(
                    self.config.servers,
                    self.config.timeouts.mcp_call_seconds,
                    self.config.security.sandbox,
                ),
                storage=storage,
                audit=audit,
                home=home,
                frontend=lambda: self.frontend,
                interceptor=self._interceptor_of,
                sampler=ProviderSampler(
                    provider,
                    self.config.model.model,
                    self.config.security.sampling_max_tokens,
                ),
            )

        # Made now for [[servers]], else when a session loads a capsule with an [[mcp_server]].
        self.mcp = LazyMcpBridge(make_mcp_bridge, make_now=bool(self.config.servers))
        # Installed capsules in every session: tools, skills, interceptors, MCP servers.
        self.capsules = CapsuleHost(home, storage, audit=audit, hooks=self.hooks, mcp=self.mcp)
        # Capsules' [[cron]] entries, run by run_background; they see the runtime only
        # through its HeadlessSessions port.
        self.cron = CapsuleCron(
            _HeadlessPort(self),
            self.capsules,
            audit=audit,
            deferred=self.deferred,
            storage=storage,
        )

    def interceptor_of(self, session_id: SessionId) -> SecurityInterceptor | None:
        """The interceptor of an open session (None if it is not open): the one decision point
        a frontend forwarding actions for that session (the MCP endpoint) must go through."""
        return self._interceptor_of(session_id)

    def _interceptor_of(self, session_id: SessionId) -> SecurityInterceptor | None:
        live = self._live.get(str(session_id))
        return live.interceptor if live is not None else None

    async def run_background(self) -> None:
        """Long-lived work of the runtime (MCP servers, capsule cron jobs); run it in the
        host's task group."""
        async with anyio.create_task_group() as tg:
            tg.start_soon(self.mcp.run)
            tg.start_soon(self.cron.run)
            tg.start_soon(self._expire_sessions_daily)

    async def expire_sessions(self) -> int:
        """Delete stored sessions not updated for ``[sessions] retention_days``; how many went.

        A session open in this daemon is kept however old it is. Each deletion goes through
        ``delete_session``, the path ``astrid sessions delete`` takes, so it is recorded the same
        way; the audit log keeps every entry the session wrote.
        """
        days = self.config.sessions.retention_days
        removed = 0
        for session in await self.sessions.list():
            if str(session.id) in self._live or not _older_than(session.updated_at, days):
                continue
            try:
                await self.delete_session(
                    session.id,
                    reason=f"session expired: not used for {days} days ([sessions] retention_days)",
                )
            except NotFoundError:  # deleted meanwhile by a client
                continue
            removed += 1
        if removed:
            log.info(
                "deleted %d session(s) older than %d days ([sessions] retention_days)",
                removed,
                days,
            )
        return removed

    async def _expire_sessions_daily(self) -> None:
        while True:
            try:
                await self.expire_sessions()
            except AstridError as exc:  # e.g. storage unavailable: try again tomorrow
                log.warning("session retention cleanup failed: %s", exc)
            await anyio.sleep(_RETENTION_INTERVAL_S)

    # ------------------------------------------------------------------ lifecycle

    @classmethod
    async def open(
        cls,
        home: Path | str,
        *,
        config: LoadedConfig | None = None,
        provider: LlmProvider | None = None,
        storage_url: str | None = None,
    ) -> AgentRuntime:
        home = Path(home)
        home.mkdir(parents=True, exist_ok=True, mode=0o700)
        loaded = config or load_config(home)
        key = KeyPair.load_or_create(home / loaded.config.keys.runtime_key)
        from ._audit_witness import audit_witness

        url = storage_url or state_url(home / "state", loaded.config.storage.backend)
        # An in-memory store forgets everything at exit: nothing to witness across runs.
        witness = (
            None if url.startswith(("memory:", "mem:")) else audit_witness(home, loaded.config)
        )
        storage = await open_storage(url)
        try:
            audit = await AuditLog.open(
                storage,
                key,
                checkpoint_every=loaded.config.audit.checkpoint_every,
                witness=witness,
                # they signed the log before a rotation, and the rotation entries themselves
                retired_keys=_retired_keys(home / loaded.config.keys.runtime_key),
            )
            runtime = cls(
                home, loaded, storage, key, audit, provider or _provider_from(loaded, home)
            )
            await runtime._reconcile_capabilities()
            await runtime.policy.load()
            return runtime
        except BaseException:
            await storage.aclose()
            raise

    async def _reconcile_capabilities(self) -> None:
        """Rebuild revocations and single-use spends from the audit log: a deleted
        ``cap_revoked`` / ``cap_used`` row must not revive a token."""
        from astrid_audit import capability_history

        revoked, authorized, _ = await capability_history(self.audit)
        self.capability_repairs = await self.capabilities.reconcile(revoked, authorized)

    def set_frontend(self, frontend: Frontend | None) -> None:
        self.frontend = frontend
        for live in self._live.values():
            live.interceptor.approvals.register(frontend)

    def add_hook(self, event: str, handler: HookHandler) -> None:
        """Register a Python hook for ``event`` (see ``astrid_runtime.agent.HookEvent``).

        It applies to every session, the ones already open included. Raises ConfigError for an
        unknown event.
        """
        self.hooks.add(event, handler)

    async def aclose(self) -> None:
        try:
            await self.cron.aclose()  # first: its runs use the sessions and storage closed below
            for live in self._live.values():
                state = live.session.state
                live.session.state = "idle" if state == "running" else state
                await self.sessions.save(live.session)
            try:
                await self.audit.flush()  # outcome records a cancelled turn may still have queued
                await self.audit.checkpoint()  # signed and witnessed: the session's end is covered
            finally:
                close = getattr(self.provider, "aclose", None)
                if close is not None:
                    await close()
        finally:  # a store that failed (deleted, disk full) still releases its lock and files
            await self.storage.aclose()

    async def status(self) -> RuntimeStatus:
        running = sum(1 for live in self._live.values() if live.session.state == "running")
        bash_sandbox, bash_warning = bash_sandbox_report(
            self.config.security.sandbox_bash,
            network=self.config.security.bash_network,
            mode=self.config.security.sandbox,
        )
        cron_warnings = await self.cron.warnings()  # refreshes the jobs shown below
        return RuntimeStatus(
            sessions=len(await self.sessions.list()),
            running_turns=running,
            storage_url=self.storage.url,
            runtime_key_id=self.key.key_id,
            sandbox=f"MCP servers: {self.mcp.sandbox_report()}; bash: {bash_sandbox}",
            servers=await self.list_servers(),
            deferred_approvals=len(await self.deferred.pending()),
            warnings=[
                f"MCP server {s['name']} is {s['state']}: {s['last_error']}"
                for s in self.mcp.status()
                if s["state"] == "failed"
            ]
            + ([bash_warning] if bash_warning else [])
            + self.capsules.warnings
            + cron_warnings
            + _storage_health(self.storage)
            + self.capability_repairs,
            scheduled=[
                {
                    "capsule": job.capsule,
                    "job": job.job,
                    "schedule": job.schedule,
                    "next_due": job.next_due.isoformat(timespec="minutes")
                    if job.next_due
                    else None,
                    "runs": job.runs,
                    "skipped": job.skipped,
                    "last": job.last.status if job.last else None,
                }
                for job in self.cron.jobs()
            ],
        )

    # ------------------------------------------------------------------ sessions

    def _workspace(self, requested: str | None) -> str:
        root = requested or self.config.workspace.root
        if not root:
            raise ConfigError(
                "no workspace given",
                hint="pass a workspace (the CLI sends its current directory) "
                "or set [workspace] root",
            )
        path = Path(root).expanduser()
        if not path.is_dir():
            raise NotFoundError(f"workspace {path} is not a directory")
        return os.path.realpath(path)

    async def create_session(
        self, workspace: str | None = None, model: str | None = None
    ) -> SessionInfo:
        session = Session(
            SessionId.new(), self._workspace(workspace), model or self.config.model.model
        )
        live = self._attach(session)  # first: a workspace config it refuses leaves nothing behind
        # The session's first entry, then its record: a saved session always has its start
        # on the log (a failed write leaves no session behind).
        try:
            await AuditTrail(self.audit, session.id).event(
                Outcome(
                    kind=OutcomeKind.SESSION_START,
                    reason="session created",
                    detail={"workspace": session.workspace, "model": session.model},
                )
            )
        except BaseException:
            self._live.pop(str(session.id), None)
            raise
        await self.sessions.save(session)
        await live.loop.fire_hook(HookEvent.SESSION_START, model=session.model)
        return session.info()

    async def resume_session(self, session_id: SessionId) -> SessionInfo:
        return (await self._get(session_id)).session.info()

    async def list_sessions(self) -> list[SessionInfo]:
        return [s.info() for s in await self.sessions.list()]

    async def end_session(self, session_id: SessionId) -> None:
        live = await self._get(session_id)
        live.session.state = "ended"
        await self.sessions.save(live.session)
        await AuditTrail(self.audit, session_id).event(
            Outcome(kind=OutcomeKind.SESSION_END, reason="session ended")
        )
        self._live.pop(str(session_id), None)
        await live.loop.fire_hook(HookEvent.SESSION_END)

    async def save_session(self, session_id: SessionId) -> None:
        await self.sessions.save((await self._get(session_id)).session)

    async def delete_session(
        self, session_id: SessionId, *, reason: str = "session deleted"
    ) -> None:
        await self.sessions.load(session_id)  # NotFoundError before anything is recorded
        # Recorded on the session's own chain before the record goes (its entries stay).
        await AuditTrail(self.audit, session_id).event(
            Outcome(kind=OutcomeKind.SESSION_DELETED, reason=reason)
        )
        self._live.pop(str(session_id), None)
        if not await self.sessions.delete(session_id):
            raise NotFoundError(f"no session {session_id}")

    # ------------------------------------------------------------------ keys

    async def rotate_key(self) -> JsonObject:
        """Replace the runtime key, audited: the rotation entry (naming the new public key) is
        signed by the OLD key and durable before the new key file takes the old one's place.

        The new key is staged next to the old one first; if the entry cannot be written the
        staged file is removed and nothing changes. Grants signed by the old key keep working
        until the daemon restarts (the store then trusts the key file's key only)."""
        path = self.home / self.config.keys.runtime_key
        new = KeyPair.generate()
        staged = path.with_name(path.name + ".new")
        new.save(staged, overwrite=True)
        old = self.key
        # The old public key stays a root of trust for the entries it signed (the log is
        # never trusted to name its own keys): kept outside state/, read at every start.
        retired = _retired_dir(path)
        retired.mkdir(mode=0o700, parents=True, exist_ok=True)
        (retired / f"{old.key_id}.pub").write_text(old.public_key.b64 + "\n")
        try:
            entry = await self.audit.rotate_key(new)  # signed by the old key, fail closed
        except BaseException:
            staged.unlink(missing_ok=True)
            raise
        os.replace(staged, path)
        self.key = new
        self.capabilities.trust_issuer(new.public_key)
        self.allowances.trusted[new.key_id] = new.public_key
        self.allowances.key = new
        for live in self._live.values():  # grants made from now on are signed by the new key
            live.interceptor.key = new
        return {
            "old_key_id": old.key_id,
            "new_key_id": new.key_id,
            "public_key": new.public_key.b64,
            "audit_entry": str(entry.id),
        }

    # ------------------------------------------------------------------ tokens

    async def list_tokens(self) -> list[JsonObject]:
        """Every persistent capability token ("Allow Always" grants and their children)."""
        listed: list[JsonObject] = []
        for token, token_id, status in await self.capabilities.persistent_tokens():
            item: JsonObject = {"id": str(token_id), "status": status}
            if token is not None:
                permissions: list[JsonValue] = [*sorted(p.value for p in token.permissions)]
                item["resource"] = token.resource.pattern
                item["permissions"] = permissions
                item["issued_at"] = token.issued_at
                item["expires_at"] = token.expires_at
                item["parent_id"] = str(token.parent_id) if token.parent_id else None
                item["single_use"] = token.single_use
            listed.append(item)
        return listed

    async def apply_policy(self, text: str, path: str) -> JsonObject:
        """Mint the grants of a policy file, replacing the previous policy's (see
        ``_policy_admin``); sessions attached from now on use its settings."""
        return await self.policy.apply(text, path)

    async def list_policy(self) -> JsonObject:
        return await self.policy.list()

    async def revoke_policy(self, grant: str | None, reason: str) -> JsonObject:
        return await self.policy.revoke(grant, reason)

    async def revoke_token(self, token_id: str, reason: str = "revoked by the user") -> JsonObject:
        """Revoke a persistent token and every token derived from it.

        Recorded on the audit log first (that record is what keeps it revoked if the
        ``cap_revoked`` row is deleted); if the log cannot record it the token is still
        revoked in the store, and the error says the record is missing."""
        try:
            parsed = TokenId.parse(token_id)
        except (ValueError, BadInputError) as exc:
            raise BadInputError(
                f"{token_id!r} is not a token id", hint="copy an id from `astrid tokens list`"
            ) from exc
        known = {str(t) for _, t, _ in await self.capabilities.persistent_tokens()}
        if str(parsed) not in known:
            raise NotFoundError(
                f"no persistent capability token {token_id}",
                hint="`astrid tokens list` shows the tokens that can be revoked",
            )
        cascade = self.capabilities.cascade(parsed)
        unrecorded: AstridError | None = None
        try:
            entry_id: str | None = str((await self.trail.revocation(cascade, reason)).id)
            # Witnessed at once: between checkpoints, entries could be cut from the store's
            # tail unnoticed, and this one is what keeps the token revoked.
            await self.audit.checkpoint()
        except AstridError as exc:
            unrecorded, entry_id = exc, None
        revoked = await self.capabilities.revoke(parsed)
        if unrecorded is not None:
            raise type(unrecorded)(
                f"revoked {len(revoked)} token(s) in the store, but the audit log could not "
                f"record it: {unrecorded.message}",
                hint="once the audit log works again, run `astrid tokens revoke` again so the "
                "revocation is recorded (a deleted row could otherwise revive the token)",
            )
        return {"revoked": [str(t) for t in revoked], "audit_entry": entry_id}

    async def session_history(self, session_id: SessionId) -> list[JsonObject]:
        return [m.to_json() for m in (await self._get(session_id)).session.messages]

    async def _get(self, session_id: SessionId) -> _Live:
        live = self._live.get(str(session_id))
        if live is None:
            live = self._attach(await self.sessions.load(session_id))
        return live

    def _policy(self, config: AstridConfig) -> SecurityPolicy:
        security = config.security
        return SecurityPolicy(
            blocked_tools=tuple(security.blocked_tools),
            blocked_commands=(*DEFAULT_BLOCKED_COMMANDS, *security.blocked_commands),
            denied_paths=(*DEFAULT_DENIED_PATHS, *security.denied_paths),
            protected_paths=(*DEFAULT_PROTECTED_PATHS, *security.protected_paths),
            denied_hosts=tuple(security.denied_hosts),
            allow_private_networks=security.allow_private_networks,
            approval_required_tools=tuple(security.approval_required_tools),
            max_argument_bytes=security.max_argument_bytes,
            astrid_home=str(self.home),
        )

    def _attach(self, session: Session) -> _Live:
        # The session runs under the admin config plus its workspace's .astrid/config.toml,
        # which may only tighten it (a loosening file refuses the session with the reason).
        config = with_workspace(self.loaded, session.workspace, home=self.home).config
        budget_config = BudgetConfig(
            session_limit_micros=config.budget.session_limit_micros,
            per_action_limit_micros=config.budget.per_action_limit_micros,
            workspace_limit_micros=config.budget.workspace_limit_micros,
            warn_at_percent=config.budget.warn_at_percent,
        )
        budget = BudgetTracker(
            self.storage, budget_config, session=str(session.id), workspace=session.workspace
        )
        hooked = ApprovalHooks(self.hooks)
        approvals = ApprovalManager(
            self.deferred,
            self.frontend,
            timeout_seconds=config.security.approval_timeout_seconds,
            on_asked=hooked.asked,
            on_resolved=hooked.resolved,
        )
        interceptor = SecurityInterceptor(
            policy=self._policy(config),
            capabilities=self.capabilities,
            allowances=self.allowances,
            budget=budget,
            workspace=WorkspaceBoundary(
                session.workspace,
                WorkspaceMode(config.workspace.mode),
                EscapePolicy(config.workspace.escape_policy),
            ),
            approvals=approvals,
            audit=self.audit,
            key=self.key,
            session_id=session.id,
            always_ttl_seconds=config.security.always_token_ttl_seconds,
            settings=self.policy.for_workspace(session.workspace),
            strict=config.security.strict,
            information_flow=config.security.information_flow,
            flow_hints=self.mcp,
            bash_network=config.security.bash_network,
            sampling_max_requests=config.security.sampling_max_requests,
        )
        if session.has_untrusted:  # a resumed session keeps its taint
            interceptor.taint("content from earlier in this session")
        context = ToolContext(
            session.workspace,
            session.id,
            bash_timeout_seconds=config.timeouts.bash_seconds,
            sandbox_bash=config.security.sandbox_bash,
            bash_network=config.security.bash_network,
            path_policy=interceptor.policy,
            sandbox_mode=config.security.sandbox,
            sandbox_home_entries=tuple(config.security.sandbox_home_entries),
            egress=interceptor,  # bash commands reach the network only through its proxy
            egress_allow=tuple(config.security.egress_allow),
        )
        limits = SubAgentLimits(
            max_depth=config.subagents.max_depth,
            max_concurrent=config.subagents.max_concurrent,
            budget_share_percent=config.subagents.budget_share_percent,
            max_turns=config.runtime.max_turns,
        )
        tools: ToolRegistry = default_tools(subagents=limits.max_depth > 0)
        if limits.max_depth > 0:
            context.extra["spawn_subagent"] = SubAgentSpawner(
                session,
                interceptor,
                self.provider,
                lambda depth: default_tools(subagents=depth < limits.max_depth),
                config.runtime.system_prompt,
                limits,
                anyio.Semaphore(limits.max_concurrent),  # per session, shared by its children
                config.model.max_tokens,
                hooks=self.hooks,
            ).run
        loop = AgentLoop(
            session,
            self.provider,
            interceptor,
            tools,
            context,
            config.runtime.system_prompt,
            config.runtime.max_turns,
            config.model.max_tokens,
            config.budget.session_limit_micros,
            hooks=self.hooks,
            compaction=CompactionSettings(
                context_window=config.model.context_window,
                threshold_percent=config.runtime.compact_at_percent,
                keep_recent_messages=config.runtime.keep_recent_messages,
            ),
        )

        async def notice(message: str) -> None:
            loop.notices.append(message)

        interceptor.on_notice = notice
        interceptor.on_replay_call = self._replay_caller(session, loop)
        # Capsule tools join `tools` and capsule skills the system prompt when the first turn
        # starts: loading reads the install records from storage, which this sync method cannot.
        self.capsules.attach(loop, interceptor)
        live = _Live(session, interceptor, loop, budget)
        self._live[str(session.id)] = live
        return live

    # ------------------------------------------------------------------ turns

    async def run_turn(self, session_id: SessionId, text: str) -> AsyncGenerator[AgentEvent, None]:
        live = await self._get(session_id)
        if live.session.state == "ended":
            raise ConfigError(f"session {session_id} has ended", hint="create a new session")
        text = await self.capsules.expand_command(text)  # a capsule's /command: a prompt only
        live.session.state = "running"
        final: AgentEvent | None = None
        await self.mcp.settled()  # servers still starting get a bounded wait, once
        await self.mcp.install(live.loop.tools)
        try:
            # aclosing: a frontend that stops reading closes the loop's generator here and now,
            # so its finally (the flush of queued outcome records) has run before this returns,
            # not later from the garbage collector's finalizer.
            async with contextlib.aclosing(live.loop.run(text)) as events:
                async for event in events:
                    if isinstance(event, TurnComplete):
                        final = event  # sent last, once the session is saved: truly over
                        continue
                    yield event
        finally:
            live.session.state = "idle"
            await self.sessions.save(live.session)
        yield SessionSaved(session_id=session_id)
        if final is not None:
            yield final

    async def cancel_turn(self, session_id: SessionId) -> bool:
        live = self._live.get(str(session_id))
        if live is None or live.session.state != "running":
            return False
        live.loop.cancel()
        return True

    # ------------------------------------------------------------------ approvals

    async def resolve_approval(self, decision: ApprovalDecision) -> bool:
        item = await self.deferred.get(str(decision.request_id))
        if item is None or item.request.session_id is None or item.status != "pending":
            return False  # unknown, or answered already: a second answer changes nothing
        live = await self._get(item.request.session_id)
        await live.interceptor.resolve_deferred(decision)
        after = await self.deferred.get(str(decision.request_id))
        return after is not None and after.status != "pending"

    def _replay_caller(self, session: Session, loop: AgentLoop) -> Any:
        """How an approved deferred action runs: through the agent loop's own tool path
        (``AgentLoop.replay``), exactly like a live call, so ``before_tool_call`` hooks and
        capsule ``BeforeToolCall`` interceptors may still deny it and its events are emitted
        (to ``replay_listener``). An action no tool reproduces exactly is only granted, with
        a note asking the agent to run it again."""

        async def replay(action: SensitiveAction, decision: ApprovalDecision) -> Any:
            call = _replay_call(action, loop.tools, str(decision.request_id))
            if call is None:
                result = await loop.interceptor.intercept(
                    action,
                    f"replay of deferred request {decision.request_id}",
                    _preapproved=decision,
                )
                from .llm import ChatMessage

                note = f"approved later: {action.summary} (ask the agent to run it again)"
                session.messages.append(ChatMessage("tool", note, untrusted=True))
                await self.sessions.save(session)
                return result
            loop.last_result = None
            events = await loop.replay(call, decision)
            await self.sessions.save(session)
            listener = self.replay_listener
            if listener is not None:
                for event in events:
                    await listener(str(session.id), event)
            return loop.last_result

        return replay

    async def list_deferred(self) -> list[JsonObject]:
        return [item.to_json() for item in await self.deferred.pending()]

    # ------------------------------------------------------------------ views

    async def session_budget(self, session_id: SessionId) -> JsonObject:
        return await (await self._get(session_id)).budget.snapshot()

    async def session_allowances(self, session_id: SessionId) -> list[JsonObject]:
        live = await self._get(session_id)
        return [a.to_json() for a in await self.allowances.list(session_id, live.session.workspace)]

    async def session_audit(self, session_id: SessionId, limit: int = 100) -> list[JsonObject]:
        entries = await self.audit.entries(session_id=session_id, limit=limit)
        return [e.model_dump(mode="json") for e in entries]

    async def record_frontend_refusal(
        self, frontend: str, user: str, reason: str, detail: JsonObject
    ) -> JsonObject:
        """Audit a frontend turning someone away (e.g. a Telegram user not on the allow-list).

        The refusal happens before any session exists, so it goes on the system chain. The
        frontend rate-limits these (a flood of strangers must not flood the log); ``detail``
        carries what it knows, such as how many further refusals it did not report one by one.
        """
        entry = await self.trail.event(
            Outcome(
                kind=OutcomeKind.FRONTEND_REFUSED,
                reason=reason,
                detail={**detail, "frontend": frontend, "user": user},
            )
        )
        return {"id": str(entry.id), "seq": entry.seq, "chain": entry.chain}

    async def reload_config(self, loaded: LoadedConfig) -> ConfigReload:
        """Apply a freshly loaded admin configuration as far as a running daemon can.

        Keys read when a session is attached (policy, budget, workspace, limits) take effect for
        sessions attached from now on; keys the daemon used at start (provider, servers, keys,
        audit, gateway, ...) keep their old value and are listed as needing a restart
        (``config._reload``). A change is audited on the system chain before it takes effect,
        naming the keys, never their values.
        """
        from .config._reload import plan_reload

        plan = plan_reload(self.loaded, loaded)
        if plan.applied or plan.needs_restart:
            await self.trail.event(
                Outcome(
                    kind=OutcomeKind.CONFIG_CHANGE,
                    reason="astrid daemon reload",
                    detail={
                        "applied": list(plan.applied),
                        "needs_restart": list(plan.needs_restart),
                        "files": [str(path) for path in loaded.files],
                    },
                )
            )
        self.loaded = plan.in_effect
        self.config = plan.in_effect.config
        return ConfigReload(applied=plan.applied, needs_restart=plan.needs_restart)

    async def audit_verify(self, known_heads: list[JsonObject] | None = None) -> JsonObject:
        """Verify the stored log against its checkpoints, the witness and ``known_heads`` (the
        tree heads a client kept); only then sign a checkpoint over what was verified. The
        answer carries that checkpoint and, for each known head, the RFC 6962 consistency
        proof from it, so the client can check the log grew from what it saw."""
        from astrid_audit import WitnessedHead, parse_checkpoint

        witness = self.audit.witness
        heads = witness.heads() if witness is not None else []
        kept = [
            WitnessedHead(
                parse_checkpoint(json.dumps(h), "the tree head your client kept"),
                "the tree head your client kept",
            )
            for h in known_heads or []
        ]
        written = self.audit.size  # this process is a witness too: it knows what it wrote
        report = await verify_storage(
            self.storage,
            list(self.audit.trusted_keys.values()),
            witnessed=heads + kept,
            written=written,
        )
        checkpoint = await self.audit.checkpoint(size=report.entries, root=report.root)
        consistency: list[JsonValue] = []
        for head in kept:
            old = head.checkpoint.tree_size
            proof = await self.audit.consistency_proof(old, report.entries) if old else []
            consistency.append({"from": old, "proof": list[JsonValue](proof)})
        return {
            "ok": True,
            "entries": report.entries,
            "sessions": report.sessions,
            "checkpoints": report.checkpoints,
            "witnessed": report.witnessed,
            "root": report.root,
            "summary": report.summary(),
            "checkpoint": checkpoint.model_dump(mode="json"),
            "public_key": self.key.public_key.b64,
            # Every key the log itself vouches for: this one, and each earlier key a signed
            # rotation entry handed over from (a stored checkpoint may carry an older one).
            "public_keys": {kid: k.b64 for kid, k in self.audit.trusted_keys.items()},
            "consistency": consistency,
        }

    async def audit_stats(self) -> JsonObject:
        """Entry counts by outcome and by chain (session), over the whole log."""
        entries = await self.audit.entries()
        outcomes = Counter(entry.outcome.kind.value for entry in entries)
        chains = Counter(entry.chain for entry in entries)
        by_outcome: JsonObject = {kind: count for kind, count in outcomes.items()}
        by_chain: JsonObject = {chain: count for chain, count in chains.items()}
        return {"entries": len(entries), "by_outcome": by_outcome, "by_chain": by_chain}

    async def audit_export(self) -> JsonObject:
        """Write an export (entries, checkpoints, inclusion proofs) under the state directory.

        The daemon chooses the path: a client cannot make it write anywhere else. The file is
        verified offline with `python -m astrid_audit verify FILE --key <public key>`.
        """
        from astrid_audit import export_jsonl

        checkpoint = await self.audit.checkpoint()
        directory = self.home / "exports"
        directory.mkdir(mode=0o700, exist_ok=True)
        path = directory / f"audit-{checkpoint.tree_size}-{checkpoint.timestamp_ms}.jsonl"
        witness = self.audit.witness
        entries = await self.audit.entries()
        export_jsonl(
            path,
            entries[: checkpoint.tree_size],
            [cp for cp in await self.audit.checkpoints() if cp.tree_size <= checkpoint.tree_size],
            list(self.audit.trusted_keys.values()),
            witnessed=[
                h.checkpoint
                for h in (witness.heads() if witness is not None else [])
                if h.checkpoint.tree_size <= checkpoint.tree_size
            ],
        )
        return {
            "path": str(path),
            "entries": checkpoint.tree_size,
            "public_key": self.key.public_key.b64,
        }

    async def list_servers(self) -> list[JsonObject]:
        await self.mcp.settled()
        return self.mcp.status()

    async def start_server(self, name: str) -> JsonObject:
        return await self.mcp.start(name)

    async def approve_tool(self, server: str, tool: str) -> JsonObject:
        """Re-pin a tool that changed since it was approved (audited by the client)."""
        return await self.mcp.approve(server, tool)

    async def stop_server(self, name: str) -> JsonObject:
        return await self.mcp.stop(name)

    async def login_server(self, name: str) -> JsonObject:
        """Restart an OAuth server with a fresh sign-in; ``url`` is for the person to open."""
        return await self.mcp.login(name)

    async def finish_server_login(self, name: str) -> JsonObject:
        """Wait for the sign-in ``login_server`` started; the server's status after it."""
        return await self.mcp.finish_login(name)

    async def logout_server(self, name: str) -> JsonObject:
        """Stop an OAuth server and delete its stored tokens."""
        return await self.mcp.logout(name)

    async def list_tools(self, session_id: SessionId | None = None) -> list[JsonObject]:
        registry = default_tools()
        await self.mcp.settled()
        await self.mcp.install(registry)
        return [
            {
                "name": t.name,
                "description": t.description,
                "input_schema": t.input_schema,
                "source": f"mcp:{server}" if (server := getattr(t, "server", None)) else "builtin",
            }
            for t in registry
        ]

    # ------------------------------------------------------------------ capsules
    # Reached only through the daemon's astrid.capsule* methods (a client holding the daemon
    # token); no tool maps to them, so the agent can neither install nor trust a capsule.

    async def capsule_plan(self, source: str) -> JsonObject:
        return await self.capsule_admin.plan(source)

    async def capsule_commit(
        self,
        plan_id: str,
        trust_method: str | None,
        actor: str,
        secrets: dict[str, str] | None = None,
    ) -> JsonObject:
        return await self.capsule_admin.commit(plan_id, trust_method, actor, secrets)

    async def capsule_discard(self, plan_id: str) -> JsonObject:
        return await self.capsule_admin.discard(plan_id)

    async def capsule_list(self) -> list[JsonObject]:
        return await self.capsule_admin.list()

    async def capsule_info(self, name: str) -> JsonObject:
        return await self.capsule_admin.info(name)

    async def capsule_rollback(self, name: str) -> JsonObject:
        return await self.capsule_admin.rollback(name)

    async def capsule_run_job(self, capsule: str, job: str) -> JsonObject:
        run = await self.cron.run_now(capsule, job)
        return {
            "capsule": run.capsule,
            "job": run.job,
            "started": run.scheduled.isoformat(timespec="seconds"),
            "status": run.status,
            "detail": run.detail,
        }

    async def capsule_remove(self, name: str) -> JsonObject:
        return await self.capsule_admin.remove(name)


def _server_configs(
    servers: list[Any], call_timeout_s: float, sandbox_mode: str = "bwrap"
) -> list[Any]:
    from pydantic import ValidationError

    from astrid_mcp import McpServerConfig

    configs: list[McpServerConfig] = []
    for server in servers:
        # Unset and empty keys are left out: the other transport's (args/env of a url server,
        # headers of a command server) would otherwise be refused as misplaced.
        raw = {
            k: v for k, v in server.model_dump().items() if v is not None and v != [] and v != {}
        }
        # astrid.toml writes both flat; astrid-mcp keeps them in the sandbox settings.
        raw["sandbox"] = {
            "enabled": raw.pop("sandbox", True),
            "network": raw.pop("network", None),
            "net": raw.pop("net", []),
            "mode": sandbox_mode,
        }
        raw["call_timeout_s"] = call_timeout_s
        try:
            configs.append(McpServerConfig.model_validate(raw))
        except ValidationError as exc:
            # Locations and messages only: the input holds env and header values (secrets).
            problems = "; ".join(
                f"{'.'.join(map(str, error['loc'])) or 'entry'}: {error['msg']}"
                for error in exc.errors(include_url=False)
            )
            raise ConfigError(
                f"[[servers]] entry {raw.get('name')!r} is invalid: {problems}",
                hint="fix the server entry in astrid.toml (astrid config validate shows where)",
            ) from None
    return configs


def _provider_from(loaded: LoadedConfig, home: Path) -> LlmProvider:
    """The configured model behind the rate limiter. The SDKs are imported only here, and only
    for the provider in use (``import anthropic`` alone costs about a second)."""
    config = loaded.config
    model = config.model
    if model.provider == "scripted":
        if not model.script:
            raise ConfigError(
                '[model] provider = "scripted" needs [model] script = "path/to/turns.json"'
            )
        script = Path(model.script) if os.path.isabs(model.script) else home / model.script
        return ScriptedProvider.from_file(script, delay_seconds=model.stream_delay_ms / 1000)
    key = model.api_key.get_secret_value() if model.api_key is not None else ""
    retry = RetryPolicy(
        max_attempts=config.retry.max_attempts,
        base_delay_seconds=config.retry.base_delay_ms / 1000,
    )
    pricing = (
        Pricing(model.input_price_micros_per_million, model.output_price_micros_per_million)
        if model.input_price_micros_per_million is not None
        and model.output_price_micros_per_million is not None
        else None
    )
    timeout = config.timeouts.llm_request_seconds
    provider: LlmProvider
    if model.provider == "anthropic":
        if not key:
            return UnavailableProvider(
                "no Anthropic API key is configured",
                "set ANTHROPIC_API_KEY (or [model] api_key in ~/.astrid/config.toml); "
                "`astrid demo` shows Astrid without one",
            )
        from .llm._anthropic import AnthropicProvider

        provider = AnthropicProvider(
            key,
            model=model.model,
            base_url=model.base_url,
            timeout_seconds=timeout,
            retry=retry,
            pricing=pricing,
        )
    else:
        if not key and not model.base_url:
            return UnavailableProvider(
                "no OpenAI API key is configured",
                "set OPENAI_API_KEY, or [model] base_url for a local server (Ollama, vLLM, "
                "llama.cpp) that needs no key",
            )
        from .llm._openai import OpenAIProvider

        provider = OpenAIProvider(
            api_key=key,
            model=model.model,
            base_url=model.base_url,
            timeout_seconds=timeout,
            retry=retry,
            pricing=pricing,
        )
    return RateLimitedProvider(
        provider, RequestRateLimiter(config.rate_limits.llm_requests_per_minute)
    )


@dataclass
class UnavailableProvider:
    """Stands in when no usable model is configured: the daemon still runs (status, audit,
    sessions), and every turn fails with a message that says what to configure."""

    reason: str
    hint: str
    name: str = "unavailable"

    async def stream(self, request: ModelRequest) -> AsyncIterator[ProviderEvent]:
        raise LlmError(self.reason, hint=self.hint)
        yield  # pragma: no cover - makes this an async generator

    def estimate_cost_micros(self, request: ModelRequest) -> int:
        return 0

    def cost_micros(self, model: str, usage: Usage) -> int:
        return 0


def _replay_call(action: SensitiveAction, tools: ToolRegistry, request_id: str) -> Any:
    """The tool call that reproduces ``action`` exactly, or None when no tool does."""
    from ._mcp_bridge import McpToolAdapter
    from .llm import ToolCall

    simple: dict[type[Any], tuple[str, Any]] = {
        FileDelete: ("delete_file", lambda a: {"path": a.path}),
        FileRead: ("read_file", lambda a: {"path": a.path}),
        DirectoryList: ("list_directory", lambda a: {"path": a.path}),
        ShellCommand: ("bash", lambda a: {"command": a.command}),
    }
    call_id = f"replay-{request_id}"
    entry = simple.get(type(action))
    if entry is not None and tools.get(entry[0]) is not None:
        return ToolCall(call_id, entry[0], entry[1](action))
    if isinstance(action, McpToolCall):
        for name in tools.names():
            tool = tools.get(name)
            if isinstance(tool, McpToolAdapter) and (tool.server, tool.tool) == (
                action.server,
                action.tool,
            ):
                return ToolCall(call_id, name, dict(action.args))
    return None
