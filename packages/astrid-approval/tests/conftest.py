from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest

from astrid_approval import (
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
from astrid_audit import AuditLog
from astrid_capabilities import CapabilityStore
from astrid_core import SessionId
from astrid_core.storage import Storage
from astrid_core.testing import ScriptedFrontend
from astrid_crypto import KeyPair

__all__ = ["ScriptedFrontend", "make_interceptor"]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def make_interceptor(
    storage: Storage,
    key: KeyPair,
    workspace: Path,
    *,
    handler: ScriptedFrontend | None = None,
    mode: WorkspaceMode = WorkspaceMode.SAFE,
    escape: EscapePolicy = EscapePolicy.ASK,
    budget: BudgetConfig | None = None,
    session: SessionId | None = None,
    home: Path | None = None,
    policy: SecurityPolicy | None = None,
    extra_trusted: Sequence[KeyPair] = (),
) -> SecurityInterceptor:
    session = session or SessionId.new()
    audit = await AuditLog.open(storage, key)
    trusted = [key.public_key, *(k.public_key for k in extra_trusted)]
    return SecurityInterceptor(
        policy=policy or SecurityPolicy(home=str(home or workspace.parent / "home")),
        capabilities=CapabilityStore(storage, trusted),
        allowances=AllowanceStore(storage, key),
        budget=BudgetTracker(
            storage, budget or BudgetConfig(), session=str(session), workspace=str(workspace)
        ),
        workspace=WorkspaceBoundary(str(workspace), mode, escape),
        approvals=ApprovalManager(DeferredResolutionStore(storage), handler),
        audit=audit,
        key=key,
        session_id=session,
        home=home or workspace.parent / "home",
    )


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    ws = tmp_path / "ws"
    (ws / "src").mkdir(parents=True)
    (ws / "important.txt").write_text("keep me")
    (tmp_path / "home").mkdir()
    return ws.resolve()
