"""Budgets in integer micro-dollars: per action, per session, per workspace. Atomic, persisted.

``check_and_reserve`` decides and reserves atomically, so concurrent actions can never
together exceed a limit (time-of-check == time-of-use): the write is a compare-and-set on the
exact state it decided on, retried when another tracker (another session of the same
workspace, or another process) changed it in between. ``commit`` replaces a reservation by
the real cost; ``refund`` releases it. State lives in storage, so a restart does not reset
spending.

Bound to the audit log (``bind``), the budget state is written only through the log's side
writes (``AuditLog.append(side=...)``): the reservation rides in the transaction of the decision
it pays for (``reserve_write``) and is decided again at commit time against the state the group
commit has reached — if it no longer fits, that decision alone fails (``SideWriteRefused``), the
other sessions' entries in the same group commit are written. The settlement rides with the
outcome record (``settle_write``). An agent round is then two storage transactions, not four.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING

import anyio
import anyio.lowlevel

from astrid_core import BadInputError, JsonObject, JsonValue, StorageError
from astrid_core.storage import Expect, Put, Storage

if TYPE_CHECKING:
    from astrid_audit import AuditLog

__all__ = [
    "BudgetConfig",
    "BudgetTracker",
    "BudgetCheck",
    "BudgetStatus",
    "BudgetWrite",
    "Reservation",
]

_NS = "budget"
_MAX_ATTEMPTS = 1000  # compare-and-set retries; each failed one means another writer won


def _parse_state(raw: JsonValue | None) -> dict[str, int]:
    if isinstance(raw, dict):
        spent, reserved = raw.get("spent", 0), raw.get("reserved", 0)
        if isinstance(spent, int) and isinstance(reserved, int):
            return {"spent": spent, "reserved": reserved}
    return {"spent": 0, "reserved": 0}


@dataclass(frozen=True)
class BudgetConfig:
    session_limit_micros: int | None = 5_000_000
    per_action_limit_micros: int | None = 1_000_000
    workspace_limit_micros: int | None = None
    warn_at_percent: int = 80

    def __post_init__(self) -> None:
        for name in ("session_limit_micros", "per_action_limit_micros", "workspace_limit_micros"):
            value = getattr(self, name)
            if value is not None and value < 0:
                raise BadInputError(f"{name} must be >= 0, got {value}")
        if not 0 < self.warn_at_percent <= 100:
            raise BadInputError(f"warn_at_percent must be 1-100, got {self.warn_at_percent}")


class BudgetStatus(StrEnum):
    OK = "ok"
    WARN = "warn"  # allowed, but nearing the session/workspace limit
    OVER_ACTION = "over_action"  # denied: one action may not cost this much
    OVER_SESSION = "over_session"  # would exceed the session or workspace limit: ask the user


@dataclass(frozen=True)
class Reservation:
    id: int
    cost: int


@dataclass(frozen=True)
class BudgetCheck:
    status: BudgetStatus
    reservation: Reservation | None
    spent: int
    limit: int | None
    message: str

    @property
    def allowed(self) -> bool:
        return self.reservation is not None


class BudgetWrite:
    """A reservation (``cost``) or a settlement (``settle``) that rides in an audit entry's
    transaction (``astrid_audit.SideWrite``); ``check`` holds the decision once applied."""

    namespace = _NS

    def __init__(
        self,
        tracker: BudgetTracker,
        *,
        cost: int = 0,
        force: bool = False,
        settle: tuple[Reservation, int] | None = None,
    ) -> None:
        self._tracker = tracker
        self._cost = cost
        self._force = force
        self._settle = settle
        self.check: BudgetCheck | None = None

    @property
    def keys(self) -> Sequence[str]:
        return self._tracker.keys

    def apply(self, current: Mapping[str, JsonValue | None]) -> Mapping[str, JsonValue] | str:
        states = {key: _parse_state(current.get(key)) for key in self._tracker.keys}
        if self._settle is not None:
            reservation, spend = self._settle
            for state in states.values():
                state["reserved"] = max(0, state["reserved"] - reservation.cost)
                state["spent"] += max(0, spend)
        else:
            check = self._tracker.decide(states, self._cost, self._force)
            if check.reservation is None:
                return check.message
            self.check = check
        return {key: dict(state) for key, state in states.items()}

    @property
    def reservation(self) -> Reservation | None:
        return self.check.reservation if self.check is not None else None


class BudgetTracker:
    def __init__(
        self, storage: Storage, config: BudgetConfig, *, session: str, workspace: str | None = None
    ) -> None:
        self.storage = storage
        self.config = config
        self._keys = [f"session:{session}"] + ([f"workspace:{workspace}"] if workspace else [])
        self._lock = anyio.Lock(fast_acquire=True)  # no event-loop round trip when uncontended
        self._ids = itertools.count(1)
        self._open: dict[int, int] = {}
        self._known: dict[str, JsonValue | None] | None = None  # what this tracker last wrote
        self.audit: AuditLog | None = None  # bound: every write is an audit side write

    @property
    def keys(self) -> list[str]:
        return list(self._keys)

    def bind(self, audit: AuditLog) -> bool:
        """Write the budget only through ``audit``'s side writes (same storage required)."""
        if self.audit is None and audit.storage is self.storage:
            self.audit = audit
        return self.audit is audit

    async def check(self, cost: int, *, force: bool = False) -> BudgetCheck:
        """Judge ``cost`` against the committed state, reserving nothing (the reservation is
        ``reserve_write``, decided again when it commits)."""
        if cost < 0:
            raise BadInputError(f"cost must be >= 0, got {cost}")
        if self.audit is not None:
            raws = await self.audit.side_values(_NS, self._keys)
        else:
            raws = {key: await self.storage.get(_NS, key) for key in self._keys}
        states = {key: _parse_state(raw) for key, raw in raws.items()}
        check = self._decide(states, cost, force)
        return BudgetCheck(check.status, None, check.spent, check.limit, check.message)

    def reserve_write(self, cost: int, *, force: bool = False) -> BudgetWrite:
        if cost < 0:
            raise BadInputError(f"cost must be >= 0, got {cost}")
        return BudgetWrite(self, cost=cost, force=force)

    def opened(self, write: BudgetWrite) -> Reservation | None:
        """Record the reservation a committed ``reserve_write`` made (for ``settle_write``)."""
        reservation = write.reservation
        if reservation is not None:
            self._open[reservation.id] = reservation.cost
        return reservation

    def settle_write(
        self, reservation: Reservation, actual: int | None = None
    ) -> BudgetWrite | None:
        """The settlement of ``reservation`` as a side write (None: settled already)."""
        if self._open.pop(reservation.id, None) is None:
            return None
        spend = reservation.cost if actual is None else actual
        return BudgetWrite(self, settle=(reservation, spend))

    def decide(self, states: dict[str, dict[str, int]], cost: int, force: bool) -> BudgetCheck:
        return self._decide(states, cost, force)

    async def _read(
        self, attempt: int
    ) -> tuple[dict[str, dict[str, int]], dict[str, JsonValue | None]]:
        """Each key's state, and the stored value it came from (for compare-and-set).

        The first attempt uses what this tracker last wrote, without reading: the write is
        conditional on it, so a stale guess only costs a retry that reads."""
        raws = self._known if attempt == 0 and self._known is not None else None
        if raws is None:
            raws = {key: await self.storage.get(_NS, key) for key in self._keys}
        return {key: _parse_state(raw) for key, raw in raws.items()}, raws

    async def _write_if_unchanged(
        self, states: dict[str, dict[str, int]], raws: dict[str, JsonValue | None]
    ) -> bool:
        written: dict[str, JsonValue | None] = {key: dict(value) for key, value in states.items()}
        committed = await self.storage.transaction(
            [Put(_NS, key, value) for key, value in written.items() if value is not None],
            expect=[Expect(_NS, key, raw) for key, raw in raws.items()],
        )
        self._known = written if committed else None
        return committed

    async def _contended(self, attempt: int) -> None:
        if attempt + 1 >= _MAX_ATTEMPTS:
            raise StorageError(
                f"the budget state changed under {_MAX_ATTEMPTS} attempts in a row",
                hint="too many concurrent actions on one workspace; the action was not allowed",
            )
        await anyio.lowlevel.checkpoint()  # let the writer that won finish its turn

    def _limits(self) -> list[int | None]:
        return [self.config.session_limit_micros] + (
            [self.config.workspace_limit_micros] if len(self._keys) > 1 else []
        )

    async def check_and_reserve(self, cost: int, *, force: bool = False) -> BudgetCheck:
        """Reserve ``cost`` if every limit allows it. ``force`` (after a human said yes to going
        over the session budget) still never lifts the per-action limit."""
        if cost < 0:
            raise BadInputError(f"cost must be >= 0, got {cost}")
        if self.audit is not None:
            from astrid_audit import SideWriteRefused

            write = self.reserve_write(cost, force=force)
            try:
                await self.audit.apply_side(write)
            except SideWriteRefused:
                return await self.check(cost, force=force)
            assert write.check is not None
            self.opened(write)
            return write.check
        async with self._lock:
            for attempt in range(_MAX_ATTEMPTS):
                states, raws = await self._read(attempt)
                check = self._decide(states, cost, force)
                if check.reservation is None:
                    if attempt == 0 and self._known is not None:
                        self._known = None  # never refuse on a guess: others may have refunded
                        continue
                    return check
                if await self._write_if_unchanged(states, raws):
                    self._open[check.reservation.id] = cost
                    return check
                await self._contended(attempt)
        raise AssertionError("unreachable: _contended raises on the last attempt")

    def _decide(self, states: dict[str, dict[str, int]], cost: int, force: bool) -> BudgetCheck:
        """Judge ``cost`` against ``states``; when allowed, add it to their reservations."""
        per_action = self.config.per_action_limit_micros
        spent = states[self._keys[0]]["spent"] + states[self._keys[0]]["reserved"]
        if per_action is not None and cost > per_action:
            return BudgetCheck(
                BudgetStatus.OVER_ACTION,
                None,
                spent,
                per_action,
                f"this action would cost ${cost / 1e6:.4f}, over the "
                f"per-action limit of ${per_action / 1e6:.4f}",
            )
        status = BudgetStatus.OK
        message = ""
        for key, limit in zip(self._keys, self._limits(), strict=True):
            if limit is None:
                continue
            used = states[key]["spent"] + states[key]["reserved"]
            if used + cost > limit and not force:
                return BudgetCheck(
                    BudgetStatus.OVER_SESSION,
                    None,
                    used,
                    limit,
                    f"{_standing(key, states[key], limit)}; this action needs "
                    f"${cost / 1e6:.4f} more",
                )
            if limit and (used + cost) * 100 >= limit * self.config.warn_at_percent:
                status = BudgetStatus.WARN
                message = (
                    f"{_scope(key)} budget {100 * (used + cost) // limit}% used, counting this "
                    f"call's estimate of ${cost / 1e6:.4f} ("
                    + _standing(key, states[key], limit, scope=False)
                    + ")"
                )
        for state in states.values():
            state["reserved"] += cost
        reservation = Reservation(next(self._ids), cost)
        return BudgetCheck(status, reservation, spent + cost, self._limits()[0], message)

    async def commit(self, reservation: Reservation, actual: int | None = None) -> None:
        """Turn a reservation into spending (``actual`` replaces the estimate)."""
        await self._settle(reservation, reservation.cost if actual is None else actual)

    async def refund(self, reservation: Reservation) -> None:
        await self._settle(reservation, 0)

    async def _settle(self, reservation: Reservation, spend: int) -> None:
        if self.audit is not None:
            write = self.settle_write(reservation, spend)
            if write is not None:
                await self.audit.apply_side(write)
            return
        async with self._lock:
            if self._open.pop(reservation.id, None) is None:
                return  # settled already: settling twice must not double-count
            for attempt in range(_MAX_ATTEMPTS):
                states, raws = await self._read(attempt)
                for state in states.values():
                    state["reserved"] = max(0, state["reserved"] - reservation.cost)
                    state["spent"] += max(0, spend)
                if await self._write_if_unchanged(states, raws):
                    return
                await self._contended(attempt)

    async def _state(self, key: str) -> dict[str, int]:
        if self.audit is not None:
            return _parse_state((await self.audit.side_values(_NS, [key]))[key])
        return _parse_state(await self.storage.get(_NS, key))

    async def snapshot(self) -> JsonObject:
        session = await self._state(self._keys[0])
        result: JsonObject = {
            "spent_micros": session["spent"],
            "reserved_micros": session["reserved"],
            "session_limit_micros": self.config.session_limit_micros,
            "per_action_limit_micros": self.config.per_action_limit_micros,
            "warn_at_percent": self.config.warn_at_percent,
        }
        if len(self._keys) > 1:
            workspace = await self._state(self._keys[1])
            result["workspace_spent_micros"] = workspace["spent"]
            result["workspace_limit_micros"] = self.config.workspace_limit_micros
        return result


def _scope(key: str) -> str:
    return key.split(":", 1)[0]


def _standing(key: str, state: dict[str, int], limit: int, *, scope: bool = True) -> str:
    """Where a budget stands, in the words a user can check against the per-call costs shown:
    what is spent, and apart from it what is only reserved for calls still running (an
    estimate, settled to the real cost when each call ends)."""
    text = f"${state['spent'] / 1e6:.4f} spent"
    if state["reserved"]:
        text += f" + ${state['reserved'] / 1e6:.4f} reserved for calls in progress"
    text += f", of ${limit / 1e6:.4f}"
    return f"{_scope(key)} budget: {text}" if scope else text
