"""Budget writes ride in the audit transactions: a reservation that no longer fits fails its
own decision only, never the other sessions' entries in the same group commit."""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest

from astrid_approval import BudgetConfig, BudgetTracker
from astrid_audit import AuditLog, Outcome, OutcomeKind, SideWriteRefused, verify_storage
from astrid_core import SessionId
from astrid_core.storage import Put, Storage, open_storage
from astrid_core.storage._sqlite import SqliteStorage
from astrid_crypto import KeyPair

pytestmark = pytest.mark.anyio


async def test_a_refused_reservation_fails_alone_in_its_group_commit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    commits: list[int] = []  # entries per storage transaction (the group commits)
    original = SqliteStorage.transaction

    async def counting(self: SqliteStorage, writes: list[Put], **kwargs: object) -> bool:
        commits.append(sum(1 for w in writes if w.namespace == "audit_entry"))
        return await original(self, writes, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(SqliteStorage, "transaction", counting)
    storage: Storage = await open_storage(f"sqlite://{tmp_path / 'db'}")
    key = KeyPair.generate()
    try:
        audit = await AuditLog.open(storage, key)
        config = BudgetConfig(
            session_limit_micros=None, per_action_limit_micros=None, workspace_limit_micros=10
        )
        sessions = [SessionId.new() for _ in range(16)]
        trackers = [BudgetTracker(storage, config, session=str(s), workspace="w") for s in sessions]
        assert all(t.bind(audit) for t in trackers)
        allowed: list[int] = []
        refused: list[int] = []
        plain: list[int] = []
        reasons: set[str] = set()

        async def decide(i: int) -> None:
            write = trackers[i].reserve_write(1)
            try:
                await audit.append(
                    Outcome(kind=OutcomeKind.ALLOWED, reason=f"call {i}"),
                    session_id=sessions[i],
                    side=write,
                )
            except SideWriteRefused as exc:
                refused.append(i)
                reasons.add(exc.message.split(":")[0])
                return
            assert trackers[i].opened(write) is not None
            allowed.append(i)

        async def other(i: int) -> None:  # entries of other sessions, in the same groups
            await audit.append(Outcome(kind=OutcomeKind.DENIED, reason=f"other {i}"))
            plain.append(i)

        commits.clear()
        async with anyio.create_task_group() as tg:
            for i in range(16):
                tg.start_soon(decide, i)
                tg.start_soon(other, i)
        assert len(allowed) == 10
        assert len(refused) == 6
        assert reasons == {"workspace budget"}
        assert len(plain) == 16  # no entry of another session was lost with a refusal
        assert sum(commits) == 26  # every written entry, none for a refused decision
        assert len(commits) < 26  # they were group-committed
        snapshot = await trackers[0].snapshot()
        assert snapshot["workspace_spent_micros"] == 0
        assert (await audit.side_values("budget", ["workspace:w"]))["workspace:w"] == {
            "reserved": 10,
            "spent": 0,
        }
        assert await storage.get("budget", "workspace:w") == {"reserved": 10, "spent": 0}
        report = await verify_storage(storage, [key.public_key])
        assert report.entries == 26
    finally:
        await storage.aclose()


async def test_the_settlement_rides_with_the_outcome(tmp_path: Path) -> None:
    storage = await open_storage(f"sqlite://{tmp_path / 'db'}")
    try:
        audit = await AuditLog.open(storage, KeyPair.generate())
        tracker = BudgetTracker(storage, BudgetConfig(), session="s")
        tracker.bind(audit)
        write = tracker.reserve_write(300)
        await audit.append(Outcome(kind=OutcomeKind.ALLOWED, reason="llm"), side=write)
        reservation = tracker.opened(write)
        assert reservation is not None
        assert (await tracker.snapshot())["reserved_micros"] == 300
        settle = tracker.settle_write(reservation, 120)
        assert settle is not None
        assert tracker.settle_write(reservation, 120) is None  # never twice
        audit.enqueue(Outcome(kind=OutcomeKind.EXECUTED, reason="done"), side=settle)
        assert (await tracker.snapshot())["spent_micros"] == 0  # queued: not yet written
        await audit.flush()
        snapshot = await tracker.snapshot()
        assert (snapshot["spent_micros"], snapshot["reserved_micros"]) == (120, 0)
        assert await storage.get("budget", "session:s") == {"reserved": 0, "spent": 120}
    finally:
        await storage.aclose()
