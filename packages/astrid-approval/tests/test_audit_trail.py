"""One audit write path, one fail-closed rule, against a real audit store that goes away.

The audit log lives in real SurrealDB embedded whose state directory is deleted at the worst
moment (the storage then refuses every write); grants and decisions must not survive that.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from astrid_audit import AuditLog, OutcomeKind
from astrid_core import (
    ApprovalDecision,
    ApprovalOption,
    ApprovalRequest,
    FileDelete,
    ShellCommand,
)
from astrid_core.storage import MemoryStorage, open_storage
from astrid_crypto import KeyPair

from .conftest import make_interceptor

pytestmark = pytest.mark.anyio


@dataclass
class DeletesTheLogThenApproves:
    """A frontend double: while the human decides, the audit store's directory disappears."""

    directory: Path
    asked: list[ApprovalRequest] = field(default_factory=list[ApprovalRequest])

    async def request_approval(self, request: ApprovalRequest) -> ApprovalDecision:
        self.asked.append(request)
        shutil.rmtree(self.directory)
        return ApprovalDecision(
            request_id=request.request_id, option=ApprovalOption.ALLOW_ALWAYS, decided_by="t"
        )


async def test_a_grant_that_cannot_be_recorded_is_not_stored(
    tmp_path: Path, workspace: Path
) -> None:
    key = KeyPair.generate()
    state = tmp_path / "audit-state"
    audit_storage = await open_storage(f"surrealkv://{state}")
    handler = DeletesTheLogThenApproves(state)
    try:
        guard = await make_interceptor(MemoryStorage(), key, workspace, handler=handler)  # type: ignore[arg-type]
        guard.audit = await AuditLog.open(audit_storage, key)
        target = str(workspace / "important.txt")
        result = await guard.intercept(FileDelete(path=target), "cleanup")
        assert not result.allowed
        assert "approval was not recorded and nothing was granted" in result.authorization.reason
        assert len(handler.asked) == 1
        # The Allow Always token was never stored: the next call asks again (and is refused).
        assert await guard.capabilities.find_capability(FileDelete(path=target)) is None
        requested = [e.outcome.kind for e in await guard.audit.entries()]
        assert requested == [OutcomeKind.APPROVAL_REQUESTED]  # the last record that made it
    finally:
        await audit_storage.aclose()


async def test_a_denial_that_cannot_be_recorded_still_denies_and_says_so(
    tmp_path: Path, workspace: Path
) -> None:
    key = KeyPair.generate()
    state = tmp_path / "audit-state"
    audit_storage = await open_storage(f"surrealkv://{state}")
    try:
        guard = await make_interceptor(MemoryStorage(), key, workspace)
        guard.audit = await AuditLog.open(audit_storage, key)
        shutil.rmtree(state)
        result = await guard.intercept(
            ShellCommand(command="sudo rm -rf /", cwd=str(workspace)), "cleanup"
        )
        assert not result.allowed
        assert result.audit_entry_id is None
        assert "audit log unavailable, denial not recorded" in result.authorization.reason
    finally:
        await audit_storage.aclose()
