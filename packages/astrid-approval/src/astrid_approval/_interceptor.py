"""SecurityInterceptor: the single choke point every agent action passes.

    policy (hard limits) → capability token / allowance → budget → risk & approval → audit

Intersection semantics: the policy AND (a grant OR a human's approval) AND the budget must
allow. The decision is written to the audit log before the action may run; if that write fails
the action is denied (fail closed). Implements astrid_core's ``Guard`` protocol.
"""

from __future__ import annotations

import json
import logging
import shlex
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

from astrid_audit import (
    AuditLog,
    AuditTrail,
    AuditUnavailable,
    Outcome,
    OutcomeKind,
    SideWriteRefused,
)
from astrid_capabilities import (
    CapabilityStore,
    CapabilityToken,
    CaveatRefusal,
    ResourcePattern,
    TokenScope,
    caveat_refusal,
)
from astrid_core import (
    ALL_APPROVAL_OPTIONS,
    ApprovalDecision,
    ApprovalOption,
    ApprovalRequest,
    AstridError,
    AuditEntryId,
    Authorization,
    AuthorizationProof,
    DenialLayer,
    JsonObject,
    LlmCall,
    McpSampling,
    NetworkRequest,
    ProofKind,
    RiskLevel,
    SensitiveAction,
    SessionId,
    ShellCommand,
)
from astrid_crypto import KeyPair

from ._allowances import AllowanceStore, shell_scope_resource
from ._approvals import ApprovalManager, Deferred
from ._budget import BudgetCheck, BudgetStatus, BudgetTracker, Reservation
from ._describe import (
    action_preview,
    describe_allowance,
    describe_always,
    fixed_description,
    shell_preview,
)
from ._ifc import FlowHints, TrustLabel, is_source, sink_reason
from ._normalize import Normalized, normalize_action
from ._policy import SecurityPolicy, Verdict
from ._policyfile import PolicySettings
from ._workspace import Placement, WorkspaceBoundary

__all__ = ["SecurityInterceptor", "InterceptResult", "GrantRefusal"]

log = logging.getLogger("astrid.approval")

Notify = Callable[[str], Awaitable[None]]
Replay = Callable[[SensitiveAction, "InterceptResult"], Awaitable[None]]
ReplayCall = Callable[[SensitiveAction, ApprovalDecision], Awaitable["InterceptResult | None"]]


_ALLOWS: dict[tuple[AuthorizationProof, str], Authorization] = {}


def _allow(proof: AuthorizationProof, reason: str) -> Authorization:
    """Authorization.allow, kept: it is immutable, one grant's allow for one stated reason
    recurs call after call, and the audit log encodes each distinct authorization once."""
    key = (proof, reason)
    allowed = _ALLOWS.get(key)
    if allowed is None:
        if len(_ALLOWS) >= 256:
            _ALLOWS.clear()
        allowed = _ALLOWS[key] = Authorization.allow(proof, reason=reason)
    return allowed


_PREVIEW_MAX_CHARS = 200_000  # what one approval request carries; frontends show the head


def _capped(text: str) -> str:
    if len(text) <= _PREVIEW_MAX_CHARS:
        return text
    cut = text.rfind("\n", 0, _PREVIEW_MAX_CHARS) + 1 or _PREVIEW_MAX_CHARS
    return text[:cut] + f"[... {len(text) - cut:,} more characters not shown ...]\n"


def _preview_of(
    normalized: Normalized,
    preview: Callable[[], str] | None,
    redact: Callable[[JsonObject], object],
) -> str:
    action = normalized.action
    if preview is not None:
        try:
            return preview()
        except Exception as exc:
            log.warning("approval preview of %s failed: %s", action.resource, exc)
            return f"(no preview: {exc})"
    if isinstance(action, ShellCommand):
        return shell_preview(action, normalized.shell)
    return action_preview(action, redact)


class _ShellLine(ShellCommand):
    """A shell line as grants see it: its resource names the exact set of simple commands it
    runs (``cmd://ls/line-<digest>``), so a token from "allow always" on ``ls`` covers ``ls``
    and never ``ls && touch pwned``. Tokens for ``cmd://<program>`` from before cover no line."""

    scope: str

    @property
    def resource(self) -> str:
        return self.scope


def _grant_view(action: SensitiveAction) -> SensitiveAction:
    if isinstance(action, ShellCommand) and not isinstance(action, _ShellLine):
        # the action is already validated: construct it, do not validate it again
        return _ShellLine.model_construct(
            command=action.command, cwd=action.cwd, scope=shell_scope_resource(action)
        )
    return action


def _scope_note(normalized: Normalized) -> list[str]:
    """For a shell line, what an allowance would cover: exactly these commands, nothing else."""
    line = normalized.shell
    if line is None or line.opaque or not line.commands:
        return []
    commands = sorted({shlex.join(c.argv) for c in line.commands if not c.via})
    shown = "; ".join(commands)
    if len(shown) > 300:
        shown = shown[:300] + "…"
    return [f"an allowance covers exactly these commands: {shown}"]


@dataclass(frozen=True)
class GrantRefusal:
    """A grant covers the action's resource, but one of its caveats refuses this call."""

    token_id: str
    refusal: CaveatRefusal | None  # None: the grant's max_calls are used up
    limit: int | None = None

    @property
    def caveat(self) -> str:
        return self.refusal.kind if self.refusal is not None else "max_calls"

    @property
    def reason(self) -> str:
        if self.refusal is None:
            return f"all {self.limit} calls this grant allows are used up"
        return self.refusal.reason

    def text(self) -> str:
        return f"caveat {self.caveat} of grant {self.token_id} refused it: {self.reason}"

    def audit_detail(self) -> dict[str, str]:
        detail = {"caveat": self.caveat, "grant": self.token_id, "refusal": self.reason[:300]}
        if self.refusal is not None:
            detail["argument"] = self.refusal.arg
            detail["value"] = json.dumps(self.refusal.value, ensure_ascii=False)[:300]
        return detail


@dataclass(frozen=True)
class InterceptResult:
    authorization: Authorization
    action: SensitiveAction
    reservation: Reservation | None = None
    warnings: tuple[str, ...] = ()

    @property
    def allowed(self) -> bool:
        return self.authorization.allowed

    @property
    def deferred(self) -> bool:
        return self.authorization.denied_by is DenialLayer.DEFERRED

    @property
    def audit_entry_id(self) -> AuditEntryId | None:
        return self.authorization.audit_entry_id


@dataclass
class SecurityInterceptor:
    policy: SecurityPolicy
    capabilities: CapabilityStore
    allowances: AllowanceStore
    budget: BudgetTracker
    workspace: WorkspaceBoundary
    approvals: ApprovalManager
    audit: AuditLog
    key: KeyPair
    session_id: SessionId
    home: str | Path | None = None
    always_ttl_seconds: int = 3600
    settings: PolicySettings = field(default_factory=PolicySettings)
    strict: bool = False  # this session's own strictness (cron, unattended); policy may add it
    information_flow: bool = True  # [security] information_flow: tainted sessions ask at sinks
    flow_hints: FlowHints | None = None  # MCP annotations, capsule grants (wired by the runtime)
    bash_network: bool = True  # whether bash lines can reach the network (through the proxy)
    net_capsules: set[str] = field(default_factory=set[str])  # capsules holding network grants
    label: TrustLabel = field(default_factory=TrustLabel)
    sampling_max_requests: int | None = None  # per MCP server in this session; None: no cap
    _sampling_counts: dict[str, int] = field(default_factory=dict[str, int])
    on_notice: Notify | None = None  # budget warnings and similar, shown by the frontend
    on_replay: Replay | None = None  # executes a deferred action once it is approved
    # Runs an approved deferred action through the agent loop's own tool path (hooks, capsule
    # interceptors, this interceptor with the late answer, events). Takes precedence over
    # on_replay; returns the decision, or None when a hook refused before the interceptor.
    on_replay_call: ReplayCall | None = None
    _session_blocked: set[str] = field(default_factory=set[str])
    _trail: AuditTrail | None = field(default=None, repr=False)

    @property
    def trail(self) -> AuditTrail:
        """This session's audit write path: every record of this interceptor goes through it."""
        if self._trail is None or self._trail.audit is not self.audit:
            self._trail = AuditTrail(self.audit, self.session_id)
        return self._trail

    def derive(
        self,
        *,
        session_id: SessionId,
        budget: BudgetTracker,
        approvals: ApprovalManager,
        allowances: AllowanceStore | None = None,
    ) -> SecurityInterceptor:
        """The interceptor of a sub-agent: never looser than this one.

        Same policy (plus this session's "deny always" rules), workspace boundary, stores, audit
        log and key; its own session id, budget slice and approval channel. What it may use from
        the capability store is whatever the caller attenuated for the new session, and its
        allowances are ``allowances`` (e.g. a view that adds the parent's) or the same store."""
        return SecurityInterceptor(
            policy=self.policy.with_blocked(self._session_blocked),
            capabilities=self.capabilities,
            allowances=allowances if allowances is not None else self.allowances,
            budget=budget,
            workspace=self.workspace,
            approvals=approvals,
            audit=self.audit,
            key=self.key,
            session_id=session_id,
            home=self.home,
            always_ttl_seconds=self.always_ttl_seconds,
            settings=self.settings,
            strict=self.strict,
            information_flow=self.information_flow,
            flow_hints=self.flow_hints,
            bash_network=self.bash_network,
            net_capsules=self.net_capsules,
            sampling_max_requests=self.sampling_max_requests,
            # the sub-agent's task was written in this session's context: it inherits the taint
            label=self.label.copy(),
            on_notice=self.on_notice,
        )

    # ------------------------------------------------------------------ Guard protocol

    @property
    def is_strict(self) -> bool:
        return self.strict or self.settings.strict

    def taint(self, what: str, entry: AuditEntryId | None = None) -> None:
        """Untrusted content entered this session (an MCP resource, a sampled completion):
        from now on sinks ask. ``entry`` links the content's audit entry to later sinks."""
        self.label.taint(what, entry)

    async def authorize(self, action: SensitiveAction, reason: str) -> Authorization:
        estimated = (
            action.estimated_cost_micros if isinstance(action, LlmCall | McpSampling) else None
        )
        return (await self.intercept(action, reason, estimated)).authorization

    # ------------------------------------------------------------------ the flow

    async def intercept(
        self,
        action: SensitiveAction,
        reason: str,
        estimated_cost: int | None = None,
        *,
        untrusted_context: bool = False,
        preview: Callable[[], str] | None = None,
        _preapproved: ApprovalDecision | None = None,
    ) -> InterceptResult:
        """``preview``: what will happen, computed only if a person is asked (e.g. a tool's
        diff); without it the prompt shows what the action itself says (arguments, command)."""
        try:
            normalized = normalize_action(action, self.workspace.root, self.home)
        except AstridError as exc:
            return await self._deny(action, DenialLayer.POLICY, f"invalid action: {exc.message}")
        except Exception as exc:  # an analysis bug costs the action, never its decision and record
            log.exception("normalizing %s failed", action.resource)
            return await self._deny(
                action, DenialLayer.POLICY, f"the action could not be analysed ({exc!r})"
            )
        action = normalized.action
        warnings: list[str] = list(normalized.warnings)
        if isinstance(action, McpSampling) and self.sampling_max_requests is not None:
            used = self._sampling_counts.get(action.server, 0)
            if used >= self.sampling_max_requests:
                return await self._deny(
                    action,
                    DenialLayer.BUDGET,
                    f"MCP server {action.server} has made {used} sampling requests in this "
                    f"session, the cap ([security] sampling_max_requests = "
                    f"{self.sampling_max_requests})",
                )
            self._sampling_counts[action.server] = used + 1

        # 1. policy: hard limits, plus what the user denied "always" in this session
        policy = (
            self.policy.with_blocked(self._session_blocked)
            if self._session_blocked
            else self.policy
        )
        try:
            verdict = policy.check(normalized)
        except Exception as exc:  # fail closed: denied, and the denial is recorded
            log.exception("policy check of %s failed", action.resource)
            return await self._deny(
                action,
                DenialLayer.POLICY,
                f"blocked by policy: the action could not be analysed ({exc!r})",
                kind=OutcomeKind.POLICY_BLOCKED,
            )
        if verdict.verdict is Verdict.DENY:
            return await self._deny(
                action,
                DenialLayer.POLICY,
                f"blocked by policy: {verdict.reason}",
                kind=OutcomeKind.POLICY_BLOCKED,
            )
        placement, placement_reason = self.workspace.placement(normalized)
        if placement is Placement.DENY:
            return await self._deny(action, DenialLayer.WORKSPACE, placement_reason)

        # 2. grants: a capability token, else a signed allowance. A policy grant that covers
        # the resource but whose caveat refuses this call is the answer: no allowance or person
        # overrides it (unless the policy says on_caveat_mismatch = "ask").
        proof: AuthorizationProof | None = None
        ask_reasons: list[str] = []
        extra_detail: dict[str, str] = {}
        refused: GrantRefusal | None = None
        capability = await self.capabilities.authorize(_grant_view(action), self.session_id)
        if capability is not None:
            proof = capability.to_authorization_proof()
        else:
            refused = await self._grant_refusal(action)
        if refused is not None:
            extra_detail.update(refused.audit_detail())
            if self.settings.on_caveat_mismatch == "deny" or self.is_strict:
                return await self._deny(
                    action,
                    DenialLayer.CAPABILITY,
                    f"refused by the policy: {refused.text()}",
                    detail=extra_detail,
                )
            ask_reasons.append(f"a grant covers this tool but refused this call: {refused.text()}")
        elif proof is None:
            allowance = await self.allowances.find(action, self.session_id, self.workspace.root)
            if allowance is not None:
                proof = AuthorizationProof(
                    kind=ProofKind.ALLOWANCE,
                    allowance_id=allowance.id,
                    detail=f"{allowance.scope} allowance for {allowance.resource}",
                )
        if verdict.verdict is Verdict.ASK:
            ask_reasons.append(verdict.reason)  # never auto-allowed, even with a grant
        if proof is None and placement is Placement.ASK:
            ask_reasons.append(placement_reason)
        if untrusted_context and not self.label.tainted:
            self.label.taint("earlier tool output in the context", None)
        if self.information_flow and self.label.tainted:
            sink = await sink_reason(
                action,
                normalized,
                self.label,
                self.settings,
                self.flow_hints,
                self.bash_network,
                self.net_capsules,
            )
            if sink is not None and not await self._caveated(proof):
                ask_reasons.append(f"{self.label.prompt_reason()}; this is a sink: {sink}")
                extra_detail.update(self.label.audit_detail())
                extra_detail["sink"] = sink[:200]
        if proof is None and placement is Placement.AUTO and not ask_reasons:
            proof = AuthorizationProof(kind=ProofKind.POLICY, detail=placement_reason)
        if self.is_strict and (ask_reasons or proof is None) and _preapproved is None:
            why = "; ".join(ask_reasons) or "no grant covers it"
            return await self._deny(
                action,
                DenialLayer.CAPABILITY,
                f"strict policy: no grant covers this action and nothing is asked ({why}); "
                "grant it in policy.toml (`astrid policy apply FILE`) or with Allow Workspace / "
                "Allow Always from an attended session",
                detail=extra_detail,
            )

        # 3. budget. Bound to the audit log (the runtime), nothing is reserved here: the
        # reservation rides in the decision's transaction (step 5) and is decided again there.
        check: BudgetCheck | None = None
        budget_ask = False
        riding = self.budget.bind(self.audit)
        if estimated_cost is not None:
            check = await (
                self.budget.check(estimated_cost)
                if riding
                else self.budget.check_and_reserve(estimated_cost)
            )
            if check.status is BudgetStatus.OVER_ACTION:
                return await self._deny(action, DenialLayer.BUDGET, check.message)
            if check.status is BudgetStatus.OVER_SESSION:
                budget_ask = True
                ask_reasons.append(check.message)
            elif check.status is BudgetStatus.WARN:
                warnings.append(check.message)
                await self._notice(check.message)
        reservation = check.reservation if check else None

        # 4. risk and approval
        if ask_reasons or proof is None:
            outcome = await self._ask(
                normalized,
                reason,
                ask_reasons,
                warnings,
                budget_ask,
                _preapproved,
                preview,
                extra_detail,
            )
            if isinstance(outcome, InterceptResult):
                if reservation is not None:
                    await self.budget.refund(reservation)
                return outcome
            proof = outcome
            if budget_ask and estimated_cost is not None and not riding:
                check = await self.budget.check_and_reserve(estimated_cost, force=True)
                reservation = check.reservation

        # 5. audit the decision (with its budget reservation); fail closed if it cannot be
        # written. A reservation that no longer fits fails this decision alone.
        authorization = _allow(proof, reason)
        side = (
            self.budget.reserve_write(estimated_cost, force=budget_ask)
            if riding and estimated_cost is not None
            else None
        )
        try:
            entry = await self.trail.decision(
                action,
                authorization,
                detail={"risk": action.risk.value, **extra_detail},
                side=side,
            )
            if side is not None:
                reservation = self.budget.opened(side)
        except SideWriteRefused as exc:
            return await self._deny(action, DenialLayer.BUDGET, exc.message)
        except AstridError as exc:
            if reservation is not None:
                await self.budget.refund(reservation)
            log.error("audit append failed, denying %s: %s", action.resource, exc)
            return InterceptResult(
                Authorization.deny(
                    DenialLayer.POLICY, f"audit log unavailable, action denied: {exc.message}"
                ),
                action,
            )
        if isinstance(action, NetworkRequest):
            self.label.reached(f"{action.host}:{action.port}")  # known only while still clean
        return InterceptResult(
            authorization.model_copy(update={"audit_entry_id": entry.id}),
            action,
            reservation,
            tuple(warnings),
        )

    async def _ask(
        self,
        normalized: Normalized,
        reason: str,
        ask_reasons: list[str],
        warnings: list[str],
        budget_ask: bool,
        preapproved: ApprovalDecision | None,
        preview: Callable[[], str] | None = None,
        extra_detail: dict[str, str] | None = None,
    ) -> AuthorizationProof | InterceptResult:
        action = normalized.action
        risk = action.risk
        if normalized.shell is not None and normalized.shell.opaque:
            risk = risk.raised_to(RiskLevel.HIGH)
        options = (
            # Over budget, or a sink in a tainted session: an allowance or a caveat-free token
            # would not cover the next such call anyway, so only this call can be allowed.
            (ApprovalOption.ALLOW_ONCE, ApprovalOption.DENY)
            if budget_ask or "sink" in (extra_detail or {})
            else ALL_APPROVAL_OPTIONS
        )
        request = ApprovalRequest(
            session_id=self.session_id,
            action=action,
            risk=risk,
            reason=reason,
            summary=action.summary,
            options=options,
            details=tuple(dict.fromkeys([*ask_reasons, *warnings, *_scope_note(normalized)])),
            ask_reasons=tuple(dict.fromkeys(ask_reasons)),
            grants=self._grant_texts(action, options),
            preview=_capped(
                self.audit.redactor.text(
                    _preview_of(normalized, preview, self.audit.redactor.value)
                )
            ),
        )
        try:
            requested = await self.trail.approval_asked(
                action,
                "; ".join(ask_reasons) or "approval needed",
                detail={
                    "request_id": str(request.request_id),
                    "risk": risk.value,
                    **(extra_detail or {}),
                },
            )
        except AstridError as exc:
            return InterceptResult(
                Authorization.deny(DenialLayer.POLICY, f"audit log unavailable: {exc.message}"),
                action,
            )
        answer = preapproved or await self.approvals.request(request, priority=risk.rank)
        if isinstance(answer, Deferred):
            return await self._deny(
                action,
                DenialLayer.DEFERRED,
                f"approval deferred ({answer.why}); it will be offered again when a "
                "frontend connects",
                kind=OutcomeKind.APPROVAL_DEFERRED,
                detail={"request_id": str(request.request_id)},
            )
        if not answer.allowed or answer.option not in options:
            if answer.deny_always:
                self._session_blocked.add(action.resource)
            # Written once: "denied by the user", plus the person's own words if they gave
            # any (they reach the model as the tool result: "do X instead").
            said = (answer.reason or "").strip()
            by = self.approvals.answered_by
            return await self._deny(
                action,
                DenialLayer.APPROVAL,
                f"denied by {by}: {said}" if said else f"denied by {by}",
                kind=OutcomeKind.APPROVAL_DENIED,
            )
        # The grant is recorded BEFORE it is stored: a token or allowance never exists
        # without the approval that made it on the log.
        try:
            await self.trail.approval_granted(
                action,
                answer.option.value,
                detail={
                    "request_id": str(request.request_id),
                    "decided_by": answer.decided_by or "",
                },
            )
        except AuditUnavailable as exc:
            return InterceptResult(
                Authorization.deny(
                    DenialLayer.POLICY,
                    f"audit log unavailable, the approval was not recorded and nothing was "
                    f"granted: {exc.message}",
                ),
                action,
            )
        await self._grant(action, answer.option, requested.id)
        return AuthorizationProof(
            kind=ProofKind.REPLAY if preapproved else ProofKind.USER,
            approval_request_id=request.request_id,
            decision=answer.option,
            detail=f"approved: {answer.option.label}",
        )

    def _grant_texts(
        self, action: SensitiveAction, options: tuple[ApprovalOption, ...]
    ) -> dict[ApprovalOption, str]:
        """What each option would grant, from the allowance/token ``_grant`` would mint."""
        texts: dict[ApprovalOption, str] = {}
        for option in options:
            fixed = fixed_description(option)
            if fixed is not None:
                texts[option] = fixed
            elif option is ApprovalOption.ALLOW_ALWAYS:
                try:  # the token's resource: for a shell line, its command set's digest
                    pattern = ResourcePattern.literal(_grant_view(action).resource)
                except AstridError as exc:  # a description must never cost the decision
                    texts[option] = f"Always: cannot be granted ({exc.message})"
                    continue
                texts[option] = describe_always(
                    pattern, action.permission.value, self.always_ttl_seconds, action
                )
            else:
                scope = "session" if option is ApprovalOption.ALLOW_SESSION else "workspace"
                draft = self.allowances.draft(
                    action, scope=scope, session_id=self.session_id, workspace=self.workspace.root
                )
                texts[option] = describe_allowance(draft)
        return texts

    async def _grant(
        self, action: SensitiveAction, option: ApprovalOption, audit_id: AuditEntryId
    ) -> None:
        if option is ApprovalOption.ALLOW_SESSION:
            await self.allowances.grant(
                action,
                scope="session",
                session_id=self.session_id,
                workspace=self.workspace.root,
                approval_audit_id=str(audit_id),
            )
        elif option is ApprovalOption.ALLOW_WORKSPACE:
            await self.allowances.grant(
                action,
                scope="workspace",
                session_id=self.session_id,
                workspace=self.workspace.root,
                approval_audit_id=str(audit_id),
            )
        elif option is ApprovalOption.ALLOW_ALWAYS:
            token = CapabilityToken.issue(
                self.key,
                ResourcePattern.literal(_grant_view(action).resource),
                [action.permission],
                scope="persistent",
                ttl_seconds=self.always_ttl_seconds,
                approval_audit_id=audit_id,
            )
            await self.capabilities.add(token)

    async def _grant_refusal(self, action: SensitiveAction) -> GrantRefusal | None:
        """A valid token whose resource and permission cover ``action`` but whose caveats (or
        used-up max_calls) refuse it: the reason the action is refused, said to the person and
        the model. Only runs when no grant allowed the action."""
        view = _grant_view(action)
        explanation = await self.capabilities.explain(view, self.session_id)
        arguments = action.arguments()
        now = int(time.time())  # not_after caveats; the store re-checks its own clock
        closest: tuple[int, GrantRefusal] | None = None
        for check in explanation.checks:
            token = await self.capabilities.get(check.token_id)
            if token is None or not token.caveats or not token.resource.matches(view.resource):
                continue
            if token.scope is TokenScope.SESSION and token.session_id != self.session_id:
                continue
            refusals = [
                r for c in token.caveats if (r := caveat_refusal(c, arguments, now)) is not None
            ]
            if refusals:
                found = GrantRefusal(str(token.id), refusals[0])
            else:  # every caveat holds, yet the store refused: its max_calls are used up
                limits = [c.to_json().get("limit") for c in token.caveats]
                limit = next((x for x in limits if isinstance(x, int)), None)
                if limit is None:
                    continue
                found = GrantRefusal(str(token.id), None, limit)
            # Several grants may cover one tool (an event with or without participants): the
            # one this call misses by the fewest caveats is the one it was meant for.
            if closest is None or len(refusals) < closest[0]:
                closest = (len(refusals), found)
        return closest[1] if closest is not None else None

    async def _caveated(self, proof: AuthorizationProof | None) -> bool:
        """Whether ``proof`` is a capability token with caveats: an admin grant that says which
        arguments are fine still covers a sink in a tainted session."""
        if proof is None or proof.kind is not ProofKind.CAPABILITY or proof.token_id is None:
            return False
        token = await self.capabilities.get(proof.token_id)
        return token is not None and bool(token.caveats)

    async def _deny(
        self,
        action: SensitiveAction,
        layer: DenialLayer,
        reason: str,
        *,
        kind: OutcomeKind = OutcomeKind.DENIED,
        detail: dict[str, str] | None = None,
    ) -> InterceptResult:
        # Denied whether or not the log can record it; the reason then says it could not.
        denial = await self.trail.denial(
            action, reason, kind=kind, detail={"layer": layer.value, **(detail or {})}
        )
        entry_id = denial.entry.id if denial.entry is not None else None
        return InterceptResult(
            Authorization.deny(layer, denial.reason, audit_entry_id=entry_id), action
        )

    async def _notice(self, message: str) -> None:
        if self.on_notice is not None:
            await self.on_notice(message)

    # ------------------------------------------------------------------ after execution

    async def record_outcome(
        self,
        result: InterceptResult,
        *,
        success: bool,
        output: str = "",
        actual_cost: int | None = None,
        queue: bool = False,
    ) -> None:
        """Complete the audit after execution and settle the budget reservation.

        ``queue``: the record joins the next audit write (the next decision's transaction)
        instead of a transaction of its own; the caller flushes the audit log when it stops
        (``AuditLog.enqueue``). The budget is settled with the record (bound to the audit log:
        in its transaction; until it is written the reservation counts as spent), or durably
        now when the tracker is not bound."""
        side = None
        if result.reservation is not None:
            if self.budget.audit is self.audit:
                side = self.budget.settle_write(result.reservation, actual_cost)
            else:
                await self.budget.commit(result.reservation, actual_cost)
        if output and is_source(result.action, self.settings):
            self.label.taint(result.action.summary, result.audit_entry_id)
        from astrid_crypto import content_hash

        outcome = Outcome(
            kind=OutcomeKind.EXECUTED,
            success=success,
            output_digest=content_hash(output.encode()).hex if output else None,
            output_preview=output[:200],
            detail={"decision_entry": str(result.audit_entry_id) if result.audit_entry_id else ""},
        )
        await self.trail.outcome(outcome, action=result.action, queue=queue, side=side)

    # ------------------------------------------------------------------ deferred approvals

    async def resolve_deferred(self, decision: ApprovalDecision) -> InterceptResult | None:
        """Apply a late answer to a deferred request: re-validate and replay it exactly once.
        None when nothing was replayed (unknown, already resolved, denied, or refused by a
        hook before the interceptor saw it)."""
        store = self.approvals.deferred
        key = str(decision.request_id)
        item = await store.get(key)
        if (
            item is None
            or item.status != "pending"
            or str(item.request.session_id) != str(self.session_id)
        ):
            return None
        if not await store.transition(
            key, item, "approved" if decision.allowed else "denied", decision
        ):
            return None  # somebody else resolved it first
        if not decision.allowed:
            await self._deny(
                item.request.action,
                DenialLayer.APPROVAL,
                "deferred request denied by the user",
                kind=OutcomeKind.APPROVAL_DENIED,
                detail={"request_id": key},
            )
            return None
        if self.on_replay_call is not None:
            replayed = await self.on_replay_call(item.request.action, decision)
        else:
            replayed = await self.intercept(
                item.request.action, f"replay of deferred request {key}", _preapproved=decision
            )
        current = await store.get(key)
        if current is not None:
            await store.transition(key, current, "replayed", decision)
        if (
            self.on_replay_call is None
            and replayed is not None
            and replayed.allowed
            and self.on_replay is not None
        ):
            await self.on_replay(replayed.action, replayed)
        return replayed
