"""Capsule ``[[cron]]`` jobs: each entry runs on its schedule, unattended, under the same rules
as when the agent calls the tool it names.

* Where: ``[workspace] root``. Without it no job runs and ``status`` names the key to set. The
  switch is ``[runtime] capsule_cron``; that workspace's ``.astrid/config.toml`` may turn jobs
  off, never on.
* Who: each capsule with cron entries gets one headless session, titled ``cron: <capsule>``,
  made by the runtime's normal session path (its own interceptor, budget, audit chain and
  allowances). It is reused across runs and daemon restarts: its id is kept in storage
  (namespace ``capsule_cron``), and a new one is made if it was ended or deleted.
* How: a run is a call of the entry's ``[[tool]]`` with no arguments (``{}``), as in a turn:
  ``before_tool_call`` hooks, a ``CapsuleHostCall`` decided by the session's interceptor, the
  export, ``after_tool_call`` hooks. Every host call inside is authorized by that interceptor
  within what the manifest declared and the user accepted. The capsule is re-verified (tree
  hash, BLAKE3) before every run; a swapped one is refused and audited like at session load
  (``CapsuleHost.load_for_run``).
* The runtime: reached only through the ``HeadlessSessions`` port (``ports.py``).
* Nobody is present: every question that would go to a person is answered "deny" at once
  (``_Unattended``). It is never waited for, never deferred, and never routed to a frontend
  connected for other sessions; the denial is audited and shown in ``status``. Policy,
  capability tokens and allowances apply as usual, so granting Allow Workspace (or Always) in a
  session of that workspace is how a user lets a job do what would need approval.
* When: 5-field schedules in the daemon's local wall-clock time. If the previous run of an
  entry is still going when it is due again, that occurrence is skipped (logged, counted in
  ``status``). Runs missed while the daemon was down are not caught up; after a stall (the
  machine slept) an entry runs at most once, then waits for its next time after now.
* Limits: the WASM limits (time, memory, payload) stop a looping or greedy job; a failed run is
  recorded and never reaches the daemon or the other jobs.

Audit, on the cron session's chain: the start of each run is a ``scheduled_run`` entry, then
the usual decision, host-call and ``executed`` entries, then the end: ``executed`` (success
true/false) or ``denied``; both carry ``detail = {"layer": "cron", "stage": "start" | "end",
...}``.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Literal

import anyio

from astrid_approval import ApprovalHandler, ApprovalManager, DeferredResolutionStore
from astrid_audit import AuditLog, AuditTrail, Outcome, OutcomeKind
from astrid_capsule.cron import cron_export, next_after, unschedulable
from astrid_capsule.manifest import CronSpec
from astrid_core import (
    ApprovalDecision,
    ApprovalOption,
    ApprovalRequest,
    AstridError,
    CapsuleHostCall,
    ConfigError,
    JsonObject,
    NotFoundError,
    SessionId,
)

from ..agent import MAX_OUTPUT_IN_PAYLOAD, HookEvent
from ..tools import cap_output
from .host import CapsuleHost, capsule_tool_name
from .ports import HeadlessSession, HeadlessSessions

if TYPE_CHECKING:
    from anyio.abc import TaskGroup

    from astrid_core.storage import Storage

__all__ = ["CapsuleCron", "CronJob", "CronRun", "RunStatus"]

log = logging.getLogger("astrid.runtime.cron")

Clock = Callable[[], datetime]
RunStatus = Literal["ok", "failed", "denied", "refused", "skipped", "not_run"]

_NS = "capsule_cron"
_POLL_SECONDS = 30.0  # installs, config and the clock are looked at again at least this often
_STOP_SECONDS = 5.0


@dataclass(frozen=True)
class CronRun:
    """What became of one due occurrence of an entry."""

    capsule: str
    job: str
    scheduled: datetime
    status: RunStatus
    detail: str = ""  # why it was denied, refused or failed; else the start of its output


@dataclass(frozen=True)
class CronJob:
    """One scheduled entry, as ``CapsuleCron.jobs`` shows it."""

    capsule: str
    job: str
    schedule: str
    action: str
    next_due: datetime | None
    running: bool
    runs: int
    skipped: int
    last: CronRun | None


@dataclass(eq=False)
class _Entry:
    capsule: str
    spec: CronSpec
    next_due: datetime | None
    runs: int = 0
    skipped: int = 0
    last: CronRun | None = None
    # What the last run was refused for want of a person to approve it (action summaries).
    unattended: list[str] = field(default_factory=list[str])

    @property
    def key(self) -> tuple[str, str]:
        return (self.capsule, self.spec.name)

    @property
    def label(self) -> str:
        return f"cron job {self.spec.name} of capsule {self.capsule}"


_Due = tuple[_Entry, datetime]  # an entry and the time it was due at


class _Unattended(ApprovalManager):
    """The approval channel of one cron run: nobody is there, so every question is answered
    "deny" at once. Nothing can be registered on it, so a frontend connected for other sessions
    is never asked nor waited for, and nothing is deferred."""

    answered_by = "the cron runner"

    def __init__(self, deferred: DeferredResolutionStore, entry: _Entry) -> None:
        super().__init__(deferred, None)
        self.entry = entry

    def register(self, handler: ApprovalHandler | None) -> None:
        del handler  # the runtime hands the daemon's frontend to every session: not to this

    async def request(self, request: ApprovalRequest, *, priority: int = 0) -> ApprovalDecision:
        del priority
        self.entry.unattended.append(request.summary)
        return ApprovalDecision(
            request_id=request.request_id,
            option=ApprovalOption.DENY,
            reason=(
                f"{self.entry.label} runs unattended: this action needs approval; grant it "
                "with Allow Workspace or Allow Always from a session, or change the policy"
            ),
            decided_by="cron (nobody present)",
        )


class CapsuleCron:
    """The scheduler of the installed capsules' ``[[cron]]`` entries; one per runtime.

    ``run`` is the daemon's loop (started by ``AgentRuntime.run_background``, stopped by
    ``aclose``). ``run_due(now)`` runs what is due at ``now`` and waits for it: the loop uses
    it, and tests call it with the time they want instead of waiting for the wall clock.
    """

    def __init__(
        self,
        sessions: HeadlessSessions,
        capsules: CapsuleHost,
        *,
        audit: AuditLog,
        deferred: DeferredResolutionStore,
        storage: Storage,
        clock: Clock = datetime.now,
        poll_seconds: float = _POLL_SECONDS,
    ) -> None:
        self.sessions = sessions
        self.capsules = capsules
        self.audit = audit
        self.deferred = deferred
        self.storage = storage
        self.clock = clock  # local wall-clock time, naive (schedules are local time)
        self.poll_seconds = poll_seconds
        self._entries: dict[tuple[str, str], _Entry] = {}
        self._running: set[tuple[str, str]] = set()
        self._installed: tuple[tuple[str, int, str], ...] | None = None
        self._problems: list[str] = []  # entries that cannot be scheduled
        self._blocked: str | None = None  # why no job runs at all right now
        self._refresh_lock = anyio.Lock()
        self._session_lock = anyio.Lock()
        self._scope: anyio.CancelScope | None = None
        self._stopped: anyio.Event | None = None

    @property
    def enabled(self) -> bool:
        return self.sessions.config.runtime.capsule_cron

    # ------------------------------------------------------------------ schedule

    async def refresh(self) -> None:
        """Re-read the entries when the installed capsules changed (install, update, remove).
        An entry seen for the first time is first due at its next time after now."""
        async with self._refresh_lock:
            records = await self.capsules.installer.list()
            installed = tuple(sorted((r.name, r.revision, r.content_hash) for r in records))
            if installed == self._installed:
                return
            now = self.clock()
            entries: dict[tuple[str, str], _Entry] = {}
            problems: list[str] = []
            for capsule in await self.capsules.verified():
                for spec in capsule.manifest.cron:
                    problem = unschedulable(capsule, spec)
                    if problem is not None:
                        problems.append(problem)
                        continue
                    key = (capsule.name, spec.name)
                    old = self._entries.get(key)
                    if old is not None and old.spec == spec:
                        entries[key] = old  # unchanged: keeps its next time and its counts
                    else:
                        entries[key] = _Entry(capsule.name, spec, next_after(spec.schedule, now))
            self._entries, self._problems, self._installed = entries, problems, installed

    def _take_due(self, now: datetime, *, start: bool) -> tuple[list[_Due], list[CronRun]]:
        """The entries due at ``now`` that may start (marked running), and the skipped ones.
        Every due entry moves on to its next time after ``now``: nothing missed is caught up."""
        due: list[_Due] = []
        skipped: list[CronRun] = []
        for entry in self._entries.values():
            scheduled = entry.next_due
            if scheduled is None or scheduled > now:
                continue
            entry.next_due = next_after(entry.spec.schedule, now)
            if not start:
                continue
            if entry.key in self._running:
                entry.skipped += 1
                log.warning(
                    "%s: the run due at %s is skipped: the previous run is still running",
                    entry.label,
                    f"{scheduled:%Y-%m-%d %H:%M}",
                )
                why = "the previous run was still running"
                skipped.append(CronRun(entry.capsule, entry.spec.name, scheduled, "skipped", why))
                continue
            self._running.add(entry.key)
            due.append((entry, scheduled))
        return due, skipped

    def _jobs_workspace(self) -> str | None:
        """The workspace jobs run in, or None (and why, in ``_blocked``) when they may not."""
        self._blocked = None
        if not self.sessions.config.workspace.root:
            self._blocked = (
                "capsule cron jobs do not run: [workspace] root is not set; set it in "
                f"{self.sessions.config_file} to the directory the jobs work in "
                "(or set [runtime] capsule_cron = false)"
            )
            return None
        try:
            workspace = self.sessions.default_workspace()
            if not self.sessions.config_for(workspace).runtime.capsule_cron:
                return None  # that workspace turned them off: not a problem to report
        except AstridError as exc:
            self._blocked = f"capsule cron jobs do not run: {exc.message}"
            return None
        return workspace

    # ------------------------------------------------------------------ running

    async def run_due(self, now: datetime) -> list[CronRun]:
        """Run every entry due at ``now``, concurrently, and wait for them. The result has a
        record for each, skipped occurrences included."""
        if not self.enabled:
            return []
        await self.refresh()
        workspace = self._jobs_workspace()
        due, results = self._take_due(now, start=workspace is not None)
        if workspace is not None and due:
            async with anyio.create_task_group() as tg:
                for entry, scheduled in due:
                    tg.start_soon(self._run_guarded, entry, scheduled, workspace, results)
        return results

    async def run(self) -> None:
        """The scheduler loop: until ``aclose``, wake at the next due time (at least every
        ``poll_seconds``) and start the due runs in the background, so a long run never delays
        the other entries."""
        if not self.enabled:
            return
        self._stopped = anyio.Event()
        try:
            with anyio.CancelScope() as self._scope:
                async with anyio.create_task_group() as tg:
                    while True:
                        delay = await self._tick(tg)
                        await anyio.sleep(delay)
        finally:
            self._stopped.set()

    async def _tick(self, tg: TaskGroup) -> float:
        try:
            await self.refresh()
            workspace = self._jobs_workspace()
            due, _ = self._take_due(self.clock(), start=workspace is not None)
            for entry, scheduled in due:
                assert workspace is not None
                tg.start_soon(self._run_guarded, entry, scheduled, workspace, None)
        except Exception:  # the loop outlives a failing storage read; it tries again later
            log.exception("capsule cron: checking the schedule failed")
            return self.poll_seconds
        upcoming = [e.next_due for e in self._entries.values() if e.next_due is not None]
        if not upcoming:
            return self.poll_seconds
        wait = (min(upcoming) - self.clock()).total_seconds()
        return min(self.poll_seconds, max(wait, 0.01))

    async def run_now(self, capsule: str, job: str) -> CronRun:
        """Run one entry now, as its schedule would (a person trying a job out): the same
        session, the same unattended rules, recorded like a scheduled run. Its schedule is
        not moved. Refused when jobs are off, have no workspace, or this one is running."""
        if not self.enabled:
            raise ConfigError(
                "capsule cron jobs are turned off",
                hint="set [runtime] capsule_cron = true in $ASTRID_HOME/config.toml",
            )
        await self.refresh()
        entry = self._entries.get((capsule, job))
        if entry is None:
            raise NotFoundError(
                f"capsule {capsule!r} has no [[cron]] entry named {job!r}",
                hint="`astrid status` lists the scheduled jobs",
            )
        workspace = self._jobs_workspace()
        if workspace is None:
            raise ConfigError(self._blocked or f"{entry.label} cannot run now")
        if entry.key in self._running:
            raise AstridError(
                f"{entry.label} is running already",
                hint="wait for it to finish; `astrid status` shows its last result",
            )
        self._running.add(entry.key)
        results: list[CronRun] = []
        await self._run_guarded(entry, self.clock(), workspace, results)
        return results[0]

    async def aclose(self) -> None:
        """Stop the loop and cancel the runs in progress (before the runtime closes storage)."""
        if self._scope is not None and self._stopped is not None:
            self._scope.cancel()
            with anyio.move_on_after(_STOP_SECONDS):
                await self._stopped.wait()

    async def _run_guarded(
        self, entry: _Entry, scheduled: datetime, workspace: str, results: list[CronRun] | None
    ) -> None:
        try:
            run = await self._run(entry, scheduled, workspace)
        except Exception as exc:  # a bug here must not reach the daemon or the other jobs
            log.exception("%s failed", entry.label)
            run = CronRun(entry.capsule, entry.spec.name, scheduled, "failed", f"internal: {exc}")
        finally:
            self._running.discard(entry.key)
        entry.runs += 1
        entry.last = run
        if results is not None:
            results.append(run)

    async def _run(self, entry: _Entry, scheduled: datetime, workspace: str) -> CronRun:
        entry.unattended.clear()
        try:
            live = await self._session(entry.capsule, workspace)
        except AstridError as exc:
            why = f"its session cannot be opened: {exc.message}"
            return CronRun(entry.capsule, entry.spec.name, scheduled, "not_run", why)
        about: JsonObject = {
            "layer": "cron",
            "capsule": entry.capsule,
            "cron": entry.spec.name,
            "scheduled": scheduled.isoformat(timespec="minutes"),
        }
        started = f"{entry.label}: run due at {scheduled:%Y-%m-%d %H:%M} started"
        try:  # what starts a run is on the log first: no record, no run
            await AuditTrail(self.audit, live.session.id).event(
                Outcome(
                    kind=OutcomeKind.SCHEDULED_RUN,
                    reason=started,
                    detail={**about, "stage": "start"},
                )
            )
        except AstridError as exc:
            why = f"its start could not be recorded: {exc.message}"
            return CronRun(entry.capsule, entry.spec.name, scheduled, "not_run", why)
        run = await self._call(entry, scheduled, live)
        ok = run.status == "ok"
        await self._audit(
            live,
            Outcome(
                kind=OutcomeKind.EXECUTED if run.status in ("ok", "failed") else OutcomeKind.DENIED,
                success=ok if run.status in ("ok", "failed") else None,
                reason=f"{entry.label}: {run.status}" + (f": {run.detail}" if not ok else ""),
                detail={**about, "stage": "end", "status": run.status},
            ),
        )
        await self.sessions.save(live.session)  # also keeps it from session cleanup
        return run

    async def _call(self, entry: _Entry, scheduled: datetime, live: HeadlessSession) -> CronRun:
        """The entry's tool, called as the agent loop calls a tool; nobody to ask."""

        def result(status: RunStatus, detail: str) -> CronRun:
            return CronRun(entry.capsule, entry.spec.name, scheduled, status, detail)

        loop = live.loop
        target = entry.spec.target
        tool_name = capsule_tool_name(entry.capsule, target) or target
        call_id = f"cron-{uuid.uuid4().hex[:12]}"
        args: JsonObject = {}
        hook = await loop.fire_hook(
            HookEvent.BEFORE_TOOL_CALL, call_id=call_id, tool=tool_name, arguments=args
        )
        if hook.denied:
            return result("denied", f"denied by hook: {hook.reason}")
        if hook.action == "rewrite" and hook.arguments is not None:
            args = hook.arguments  # judged below like any rewritten call
        guard = live.interceptor.derive(
            session_id=live.session.id,
            budget=live.budget,
            approvals=_Unattended(self.deferred, entry),
        )
        guard.on_notice = None  # nobody reads a headless session's notices
        try:
            capsule, plugin = await self.capsules.load_for_run(loop, guard, entry.capsule)
        except AstridError as exc:
            return result("refused", exc.message)
        if unschedulable(capsule, entry.spec) is not None:  # changed since it was scheduled
            plugin.close()
            return result("not_run", f"capsule {entry.capsule} has no tool {entry.spec.action!r}")
        function, export = cron_export(capsule, entry.spec)
        action = CapsuleHostCall(capsule=entry.capsule, function=function, args=dict(args))
        reason = f"{entry.label}, due {scheduled:%Y-%m-%d %H:%M}"
        decision = await guard.intercept(action, reason)
        if not decision.allowed:
            plugin.close()
            return result("denied", decision.authorization.reason)
        authorized = decision.action
        assert isinstance(authorized, CapsuleHostCall)
        ok, output = False, ""
        try:
            # The export gets exactly the arguments that were authorized.
            raw = await plugin.call(export, json.dumps(authorized.args))
            output, ok = cap_output(raw.decode("utf-8", errors="replace")), True
        except AstridError as exc:
            output = f"error: {exc.message}"
        # Not in a finally: a cancelled call may still be unwinding on its worker thread,
        # which holds the plugin; it is freed once that thread lets go.
        plugin.close()
        await guard.record_outcome(decision, success=ok, output=output)
        await loop.fire_hook(
            HookEvent.AFTER_TOOL_CALL,
            call_id=call_id,
            tool=tool_name,
            arguments=args,
            ok=ok,
            denied=False,
            output=output[:MAX_OUTPUT_IN_PAYLOAD],
        )
        return result("ok" if ok else "failed", output[:500])

    async def _session(self, capsule: str, workspace: str) -> HeadlessSession:
        """The capsule's cron session in ``workspace``: the saved one, else a new one."""
        async with self._session_lock:
            saved = await self.storage.get(_NS, capsule)
            if isinstance(saved, dict) and saved.get("workspace") == workspace:
                try:
                    live = await self.sessions.open(SessionId.parse(str(saved.get("session_id"))))
                    if live.session.state != "ended":
                        return live
                except AstridError as exc:  # deleted, or unreadable: start a new one
                    log.info(
                        "capsule %s: a new cron session replaces the old one: %s", capsule, exc
                    )
            live = await self.sessions.create(workspace, f"cron: {capsule}")
            record: JsonObject = {"session_id": str(live.session.id), "workspace": workspace}
            await self.storage.put(_NS, capsule, record)
            return live

    async def _audit(self, live: HeadlessSession, outcome: Outcome) -> None:
        trail = AuditTrail(self.audit, live.session.id)
        if outcome.kind in (OutcomeKind.DENIED, OutcomeKind.POLICY_BLOCKED):
            await trail.denial(None, outcome.reason, kind=outcome.kind, detail=outcome.detail)
            return
        try:
            await trail.event(outcome)
        except AstridError as exc:
            log.error("could not audit a cron run: %s", exc)

    # ------------------------------------------------------------------ status

    def jobs(self) -> list[CronJob]:
        """Every scheduled entry as last seen: when it is next due and how its runs went."""
        return [
            CronJob(
                capsule=entry.capsule,
                job=entry.spec.name,
                schedule=entry.spec.schedule,
                action=entry.spec.action,
                next_due=entry.next_due,
                running=entry.key in self._running,
                runs=entry.runs,
                skipped=entry.skipped,
                last=entry.last,
            )
            for entry in sorted(self._entries.values(), key=lambda e: e.key)
        ]

    async def warnings(self) -> list[str]:
        """What stops jobs from running, and what went wrong in their last runs."""
        if not self.enabled:
            return []
        await self.refresh()
        if self._entries:
            self._jobs_workspace()
        found = list(self._problems)
        if self._blocked is not None and self._entries:
            found.append(self._blocked)
        for entry in sorted(self._entries.values(), key=lambda e: e.key):
            last = entry.last
            if entry.unattended:  # says more than "denied"
                found.append(
                    f"{entry.label} runs unattended and was denied what needs approval "
                    f"({'; '.join(dict.fromkeys(entry.unattended))}): grant it with Allow "
                    "Workspace or Allow Always from a session in its workspace, or change the "
                    "policy"
                )
            elif last is not None and last.status in ("failed", "denied", "refused"):
                found.append(
                    f"{entry.label}: the run due at {last.scheduled:%Y-%m-%d %H:%M} was "
                    f"{last.status}: {last.detail[:300]}"
                )
            if entry.skipped:
                found.append(
                    f"{entry.label}: {entry.skipped} run(s) skipped because the previous run "
                    "was still running"
                )
        return found
