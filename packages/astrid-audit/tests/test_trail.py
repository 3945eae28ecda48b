"""AuditTrail: the one write path and its one fail-closed rule."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from astrid_audit import AuditLog, AuditTrail, AuditUnavailable, Outcome, OutcomeKind
from astrid_core import (
    Authorization,
    AuthorizationProof,
    FileRead,
    ProofKind,
    SessionId,
    StorageError,
    TokenId,
)
from astrid_crypto import KeyPair

from .conftest import FailingStorage

pytestmark = pytest.mark.anyio

PACKAGES = Path(__file__).resolve().parents[2]
# A direct write to an audit log, anywhere but inside astrid_audit itself.
DIRECT_WRITE = re.compile(r"\baudit\w*\s*\.\s*(append|enqueue)\s*\(")


def test_no_write_site_outside_astrid_audit_bypasses_the_trail() -> None:
    offenders: list[str] = []
    for path in sorted(PACKAGES.glob("*/src/**/*.py")):
        if "astrid_audit" in path.parts:
            continue
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if DIRECT_WRITE.search(line):
                offenders.append(f"{path.relative_to(PACKAGES)}:{number}: {line.strip()}")
    assert offenders == [], "write through AuditTrail instead:\n" + "\n".join(offenders)


async def test_what_allows_raises_when_the_log_cannot_record_it(key: KeyPair) -> None:
    storage = FailingStorage()
    trail = AuditTrail(await AuditLog.open(storage, key), SessionId.new())
    action = FileRead(path="/w/a")
    proof = AuthorizationProof(kind=ProofKind.POLICY, detail="auto")
    storage.fail = True
    with pytest.raises(AuditUnavailable) as info:
        await trail.decision(action, Authorization.allow(proof, reason="r"))
    assert isinstance(info.value, StorageError)  # callers that catch StorageError still do
    assert "allowed not recorded" in info.value.message
    with pytest.raises(AuditUnavailable):
        await trail.approval_granted(action, "allow_always")
    with pytest.raises(AuditUnavailable):
        await trail.approval_asked(action, "why")
    with pytest.raises(AuditUnavailable):
        await trail.revocation((TokenId.new(),), "r")
    with pytest.raises(AuditUnavailable):
        await trail.event(Outcome(kind=OutcomeKind.SESSION_START))


async def test_a_denial_never_raises_and_says_when_it_is_not_recorded(key: KeyPair) -> None:
    storage = FailingStorage()
    audit = await AuditLog.open(storage, key)
    trail = AuditTrail(audit, SessionId.new())
    recorded = await trail.denial(None, "blocked")
    assert recorded.entry is not None
    assert recorded.reason == "blocked"
    storage.fail = True
    missing = await trail.denial(None, "blocked", kind=OutcomeKind.POLICY_BLOCKED)
    assert missing.entry is None
    assert missing.reason == "blocked (audit log unavailable, denial not recorded)"
    assert audit.size == 1


async def test_revocation_ids_stay_readable_for_the_rebuild(key: KeyPair) -> None:
    from astrid_audit import capability_history
    from astrid_core.storage import MemoryStorage

    audit = await AuditLog.open(MemoryStorage(), key)
    trail = AuditTrail(audit)
    ids = (TokenId.new(), TokenId.new())
    await trail.revocation(ids, "user")
    revoked, used, last = await capability_history(audit)
    assert revoked == {str(t) for t in ids}  # not "[redacted]": the key is not secret-looking
    assert used == set()
    assert last is not None
