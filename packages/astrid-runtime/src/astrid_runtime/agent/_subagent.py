"""Sub-agents: the ``task`` tool runs a child agent that can never do more than its parent.

What the child gets, and why it cannot widen anything:

- **Capabilities**: persistent tokens count for every session anyway; for each session token
  its parent could use right now, a child token for the child's session (astrid-capabilities
  attenuation: same or narrower resource and permissions, expiring no later, dead once its
  parent is revoked). The parent's "Allow Session" answers count for the child too; what the
  child is allowed for its own session stays with the child.
- **Policy**: the parent's, including the parent session's "deny always" rules; the same
  workspace boundary and mode, the same audit log (the child has its own chain).
- **Budget**: a slice of what the parent has left (``subagents.budget_share_percent``, at most
  the per-action limit), reserved on the parent's budget before the child starts and settled
  with what the child really spent. The child's own tracker stops it at the slice.
- **Approvals**: asked of whoever answers the parent session, labelled as a sub-agent's, and
  never deferred: a child cannot wait a day, and a replay later would run with the parent's
  wider rights. No answer means no.
- **Limits**: depth (``subagents.max_depth``) and how many run at once
  (``subagents.max_concurrent``) are checked before anything is reserved.
- **Trust**: a parent that has read untrusted content passes that taint on.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field

import anyio

from astrid_approval import (
    Allowance,
    AllowanceStore,
    ApprovalManager,
    BudgetConfig,
    BudgetTracker,
    Deferred,
    SecurityInterceptor,
)
from astrid_capabilities import TokenScope
from astrid_core import (
    ApprovalDecision,
    ApprovalOption,
    ApprovalRequest,
    BadInputError,
    FrontendUnavailable,
    SessionId,
    SubAgentSpawn,
)

from ..events import AgentError, TextDelta, ToolCallFinished, TurnComplete
from ..llm import LlmProvider
from ..sessions import Session
from ..tools import ToolContext, ToolRegistry
from ._hooks import HookRunner
from ._loop import AgentLoop

__all__ = [
    "SubAgentLimits",
    "SubAgentSpawner",
    "SubAgentApprovals",
    "SUBAGENT_PROMPT",
    "SUBAGENT_PROMPT_MARK",
]

log = logging.getLogger("astrid.runtime")

SUBAGENT_PROMPT_MARK = "You are a sub-agent"
SUBAGENT_PROMPT = (
    f"\n\n{SUBAGENT_PROMPT_MARK} started by another agent for one task. Do the task, then answer "
    "with a short report of what you did and found: that report is all your parent sees."
)


@dataclass(frozen=True)
class SubAgentLimits:
    max_depth: int = 2
    max_concurrent: int = 3
    budget_share_percent: int = 25
    max_turns: int = 25


class SubAgentApprovals(ApprovalManager):
    """A sub-agent's approval questions, routed to the root session's frontend, never deferred."""

    def __init__(self, parent: ApprovalManager, root_session: SessionId) -> None:
        super().__init__(parent.deferred, timeout_seconds=parent.timeout_seconds)
        self._parent = parent
        self._root = root_session

    async def request(
        self, request: ApprovalRequest, *, priority: int = 0
    ) -> ApprovalDecision | Deferred:
        routed = request.model_copy(
            update={"session_id": self._root, "summary": f"[sub-agent] {request.summary}"}
        )
        handler = self._parent.handler  # read now: a frontend may have connected since
        if handler is None:
            return _no(request, "no frontend is connected to answer a sub-agent's question")
        try:
            with anyio.fail_after(self.timeout_seconds):
                decision = await handler.request_approval(routed)
        except FrontendUnavailable as exc:
            return _no(request, f"sub-agent approvals are not deferred: {exc.message}")
        except TimeoutError:
            return _no(request, f"nobody answered within {self.timeout_seconds:g} s")
        if str(decision.request_id) != str(request.request_id):
            return _no(request, "the answer did not match the request")
        return decision


class InheritedAllowances(AllowanceStore):
    """The child's allowances: its own, plus its parent's session allowances (never wider than
    the parent: they are the parent's, read-only). New grants go to the child's session."""

    def __init__(self, parent_store: AllowanceStore, parent_session: SessionId) -> None:
        super().__init__(
            parent_store.storage, parent_store.key, list(parent_store.trusted.values())
        )
        self._parent_store = parent_store
        self._parent_session = parent_session

    async def list(self, session_id: SessionId, workspace: str) -> list[Allowance]:
        own = await super().list(session_id, workspace)
        inherited = await self._parent_store.list(self._parent_session, workspace)
        return own + [a for a in inherited if a.scope == "session"]


def _money(micros: int | None) -> str:
    return "unlimited" if micros is None else f"${micros / 1e6:.4f}"


def _no(request: ApprovalRequest, reason: str) -> ApprovalDecision:
    return ApprovalDecision(
        request_id=request.request_id, option=ApprovalOption.DENY, reason=reason
    )


@dataclass
class _Report:
    text: str = ""
    tool_calls: int = 0
    errors: list[str] = field(default_factory=list[str])
    stop_reason: str = "unknown"


@dataclass
class SubAgentSpawner:
    """Runs one session's ``task`` tool calls. One instance per (session, depth)."""

    session: Session
    interceptor: SecurityInterceptor
    provider: LlmProvider
    tools_for: Callable[[int], ToolRegistry]  # depth -> the child's tools
    system_prompt: str
    limits: SubAgentLimits
    # Shared by a session and all its sub-agents. Not a CapacityLimiter: nested sub-agents run
    # in the same task, which a limiter would refuse as a double borrow.
    slots: anyio.Semaphore
    max_tokens: int = 4096
    root_session: SessionId | None = None
    hooks: HookRunner | None = None  # the parent's: hooks see a sub-agent's tool calls too

    async def run(self, action: SubAgentSpawn, parent: ToolContext) -> str:
        if action.depth > self.limits.max_depth:
            raise BadInputError(
                f"sub-agents may nest {self.limits.max_depth} deep; this one would be "
                f"at depth {action.depth}",
                hint="do the task yourself, or raise [subagents] max_depth",
            )
        try:
            self.slots.acquire_nowait()
        except anyio.WouldBlock:
            raise BadInputError(
                f"{self.limits.max_concurrent} sub-agents are already running",
                hint="wait for one to finish, or raise [subagents] max_concurrent",
            ) from None
        try:
            return await self._run_with_slot(action, parent)
        finally:
            self.slots.release()

    async def _slice(self) -> int | None:
        """The child's budget: a share of what the parent has left, capped per action; None
        when the parent itself has no limit at all."""
        budget = self.interceptor.budget
        config = budget.config
        snapshot = await budget.snapshot()
        caps: list[int] = []
        if config.session_limit_micros is not None:
            spent = int(snapshot.get("spent_micros", 0) or 0)  # type: ignore[arg-type]
            reserved = int(snapshot.get("reserved_micros", 0) or 0)  # type: ignore[arg-type]
            left = max(0, config.session_limit_micros - spent - reserved)
            caps.append(left * self.limits.budget_share_percent // 100)
        if config.per_action_limit_micros is not None:
            caps.append(config.per_action_limit_micros)
        return min(caps) if caps else None

    async def _run_with_slot(self, action: SubAgentSpawn, parent: ToolContext) -> str:
        share = await self._slice()
        if share is not None and share <= 0:
            raise BadInputError(
                "no budget is left for a sub-agent",
                hint="raise [budget] session_limit_micros or [subagents] budget_share_percent",
            )
        reserved = await self.interceptor.budget.check_and_reserve(share or 0)
        if reserved.reservation is None:
            raise BadInputError(f"no budget for a sub-agent: {reserved.message}")
        child = Session(
            SessionId.new(),
            self.session.workspace,
            self.session.model,
            title=f"sub-agent of {self.session.id}: {action.task.strip()[:60]}",
            has_untrusted=self.session.has_untrusted,
        )
        try:
            report = await self._run_child(child, action, parent, share)
        finally:
            await self.interceptor.budget.commit(reserved.reservation, child.cost_micros)
            self.interceptor.capabilities.remove_session(child.id)
        errors = "".join(f"\n(error: {e})" for e in report.errors)
        return (
            f"sub-agent {child.id} finished ({report.stop_reason}; {report.tool_calls} tool "
            f"calls; ${child.cost_micros / 1e6:.4f} of its {_money(share)} budget){errors}\n\n"
            + (report.text.strip() or "(the sub-agent gave no report)")
        )

    async def _delegate_capabilities(self, child: SessionId) -> int:
        store = self.interceptor.capabilities
        delegated = 0
        for token in await store.usable_by(self.session.id):
            if token.scope is not TokenScope.SESSION:
                continue  # persistent tokens already hold for every session
            derived = token.attenuate(
                self.interceptor.key, session_id=child, scope=TokenScope.SESSION
            )
            await store.add(derived)
            delegated += 1
        return delegated

    async def _run_child(
        self, child: Session, action: SubAgentSpawn, parent: ToolContext, share: int | None
    ) -> _Report:
        tracker = BudgetTracker(
            self.interceptor.budget.storage,
            BudgetConfig(
                session_limit_micros=share,
                per_action_limit_micros=self.interceptor.budget.config.per_action_limit_micros,
                warn_at_percent=self.interceptor.budget.config.warn_at_percent,
            ),
            session=str(child.id),  # no workspace key: the parent's reservation counts there
        )
        root = self.root_session or self.session.id
        interceptor = self.interceptor.derive(
            session_id=child.id,
            budget=tracker,
            approvals=SubAgentApprovals(self.interceptor.approvals, root),
            allowances=InheritedAllowances(self.interceptor.allowances, self.session.id),
        )
        delegated = await self._delegate_capabilities(child.id)
        log.info("sub-agent %s of %s: %d capabilities delegated", child.id, root, delegated)
        tools = self.tools_for(action.depth)
        context = ToolContext(
            child.workspace,
            child.id,
            bash_timeout_seconds=parent.bash_timeout_seconds,
            sandbox_bash=parent.sandbox_bash,
            bash_network=parent.bash_network,
            env_allow=parent.env_allow,
            path_policy=interceptor.policy,
            sandbox_paths=parent.sandbox_paths,
            sandbox_mode=parent.sandbox_mode,
            sandbox_home_entries=parent.sandbox_home_entries,
            egress=interceptor if parent.egress is not None else None,  # the child's own
            egress_allow=parent.egress_allow,
        )
        context.extra["depth"] = action.depth
        if action.depth < self.limits.max_depth:
            context.extra["spawn_subagent"] = SubAgentSpawner(
                child,
                interceptor,
                self.provider,
                self.tools_for,
                self.system_prompt,
                self.limits,
                self.slots,
                self.max_tokens,
                root,
                self.hooks,
            ).run
        loop = AgentLoop(
            child,
            self.provider,
            interceptor,
            tools,
            context,
            self.system_prompt + SUBAGENT_PROMPT,
            self.limits.max_turns,
            self.max_tokens,
            share,
            hooks=self.hooks if self.hooks is not None else HookRunner(),
        )
        report = _Report()
        async for event in loop.run(action.task):
            if isinstance(event, TextDelta):
                report.text += event.text
            elif isinstance(event, ToolCallFinished):
                report.tool_calls += 1
                report.text = ""  # the report is what the child says after its last tool call
            elif isinstance(event, AgentError):
                report.errors.append(event.message)
            elif isinstance(event, TurnComplete):
                report.stop_reason = event.stop_reason
        return report
