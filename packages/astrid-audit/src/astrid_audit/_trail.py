"""AuditTrail: one session's write path to the audit log, with one fail-closed rule.

Every write site records through a trail instead of calling ``AuditLog.append`` itself, so the
rule is stated once:

* whatever *lets something happen* (a decision to allow, an approval asked, an approval
  granted, an event such as a session start, a revocation) is durable before it takes effect:
  if it cannot be written the method raises ``AuditUnavailable`` and the caller must not go on;
* a *denial* denies whether or not it could be recorded: ``denial`` never raises, and the
  reason it returns says that the audit log is unavailable when the record is missing;
* an *outcome* (what an allowed action did) is written or queued for the next write; it can
  no longer stop anything, but a failure to write it surfaces at the next decision.

A grant is recorded before it is stored: ``approval_granted`` is written first, and only then
may the caller store the token or allowance (the grant's ``approval_audit_id`` points at it).
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass

from astrid_core import (
    AuditEntryId,
    Authorization,
    BadInputError,
    JsonObject,
    SensitiveAction,
    SessionId,
    StorageError,
    TokenId,
)

from ._entry import AuditEntry, Outcome, OutcomeKind
from ._log import AuditLog, SideWrite

__all__ = ["AuditTrail", "AuditUnavailable", "Denial", "capability_history"]

log = logging.getLogger("astrid.audit")


class AuditUnavailable(StorageError):
    """The audit log could not record something that must be recorded before it happens."""

    code = "audit.unavailable"
    default_hint = "the action was NOT performed (fail closed); check the state directory"


@dataclass(frozen=True, slots=True)
class Denial:
    """A recorded (or, when the log is unavailable, unrecorded) denial."""

    reason: str  # what to tell the user; names a missing record
    entry: AuditEntry | None  # None: the audit log could not record it


class AuditTrail:
    """The audit write path of one session (``session_id=None``: the system chain)."""

    def __init__(self, audit: AuditLog, session_id: SessionId | None = None) -> None:
        self.audit = audit
        self.session_id = session_id

    async def _must(
        self,
        outcome: Outcome,
        action: SensitiveAction | None = None,
        authorization: Authorization | None = None,
        side: SideWrite | None = None,
    ) -> AuditEntry:
        try:
            return await self.audit.append(
                outcome,
                session_id=self.session_id,
                action=action,
                authorization=authorization,
                side=side,
            )
        except StorageError as exc:
            raise AuditUnavailable(
                f"audit log unavailable, {outcome.kind.value} not recorded: {exc.message}",
                hint=exc.hint or AuditUnavailable.default_hint,
            ) from exc

    # ---------------------------------------------------------------- before it happens

    async def decision(
        self,
        action: SensitiveAction,
        authorization: Authorization,
        *,
        detail: JsonObject | None = None,
        side: SideWrite | None = None,
    ) -> AuditEntry:
        """An allowed action, before it runs. Raises AuditUnavailable: then it must not run;
        SideWriteRefused when ``side`` (its budget reservation) refused at commit time."""
        return await self._must(
            Outcome(kind=OutcomeKind.ALLOWED, reason=authorization.reason, detail=detail or {}),
            action,
            authorization,
            side,
        )

    async def approval_asked(
        self, action: SensitiveAction, reason: str, *, detail: JsonObject | None = None
    ) -> AuditEntry:
        """A question put to a human, before it is asked. Raises AuditUnavailable."""
        return await self._must(
            Outcome(kind=OutcomeKind.APPROVAL_REQUESTED, reason=reason, detail=detail or {}),
            action,
        )

    async def approval_granted(
        self, action: SensitiveAction, option: str, *, detail: JsonObject | None = None
    ) -> AuditEntry:
        """A human's yes, BEFORE the grant it makes is stored. Raises AuditUnavailable: then
        nothing may be granted or stored."""
        return await self._must(
            Outcome(kind=OutcomeKind.APPROVAL_GRANTED, reason=option, detail=detail or {}),
            action,
        )

    async def event(self, outcome: Outcome, *, action: SensitiveAction | None = None) -> AuditEntry:
        """A lifecycle event (session start/end/deleted, revocation, key rotation, config):
        recorded before it takes effect. Raises AuditUnavailable."""
        return await self._must(outcome, action)

    async def revocation(self, token_ids: tuple[TokenId, ...], reason: str) -> AuditEntry:
        """Tokens about to be revoked (the token and its descendants). Raises AuditUnavailable.

        The ids go under ``capability_ids``: a detail key naming "token" is redacted as a
        secret, and these ids must stay readable for the rebuild below.

        The capability store rebuilds its revocation state from these entries at start, so a
        deleted ``cap_revoked`` row cannot revive a token."""
        return await self.event(
            Outcome(
                kind=OutcomeKind.CAPABILITY_REVOKED,
                reason=reason,
                detail={"capability_ids": [str(t) for t in token_ids]},
            )
        )

    # ---------------------------------------------------------------- denials: never raise

    async def denial(
        self,
        action: SensitiveAction | None,
        reason: str,
        *,
        kind: OutcomeKind = OutcomeKind.DENIED,
        detail: JsonObject | None = None,
    ) -> Denial:
        """Record a denial. Never raises: the denial stands either way, and when the record
        could not be written the returned reason says so."""
        try:
            entry = await self.audit.append(
                Outcome(kind=kind, reason=reason, detail=detail or {}),
                session_id=self.session_id,
                action=action,
            )
        except StorageError as exc:
            log.error("audit log unavailable, denial not recorded (%s): %s", reason, exc)
            return Denial(f"{reason} (audit log unavailable, denial not recorded)", None)
        return Denial(reason, entry)

    # ---------------------------------------------------------------- after it happened

    async def outcome(
        self,
        outcome: Outcome,
        *,
        action: SensitiveAction | None = None,
        queue: bool = False,
        side: SideWrite | None = None,
    ) -> AuditEntry | None:
        """What an allowed action did. ``queue``: ride on the next write (``AuditLog.enqueue``);
        the caller flushes before it stops. Raises StorageError when written now and failed."""
        if queue:
            self.audit.enqueue(outcome, session_id=self.session_id, action=action, side=side)
            return None
        return await self.audit.append(
            outcome, session_id=self.session_id, action=action, side=side
        )

    async def flush(self) -> None:
        await self.audit.flush()


async def capability_history(audit: AuditLog) -> tuple[set[str], set[str], AuditEntryId | None]:
    """From the log: every revoked token id, every token id that authorized an allowed action
    (for a single-use token: spent), and the id of the last revocation entry (None: none).

    Read from the log's capability index, checked against its signed seal, plus the entries
    after the seal (``AuditLog.capability_index``): this runs at every start, in O(tokens),
    not O(entries)."""
    caps = await audit.capability_index()
    last: AuditEntryId | None = None
    if caps.last_revocation is not None:
        with contextlib.suppress(ValueError, BadInputError):  # `audit verify` names it
            last = AuditEntryId.parse(caps.last_revocation)
    return set(caps.revoked), set(caps.used), last
