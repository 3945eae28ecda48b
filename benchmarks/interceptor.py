"""SecurityInterceptor decisions/s and latency (p50/p99) vs a bare function call.

    uv run python benchmarks/interceptor.py [--quick]

(a) policy deny (`sudo` in a command line), (b) token-authorized with a durable audit append
on SurrealDB embedded, (c) the same on memory storage. The baseline is an async function call
doing nothing, measured in the same run.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

import anyio

from astrid_approval import (
    AllowanceStore,
    ApprovalManager,
    BudgetConfig,
    BudgetTracker,
    DeferredResolutionStore,
    SecurityInterceptor,
    SecurityPolicy,
    WorkspaceBoundary,
    WorkspaceMode,
)
from astrid_audit import AuditLog
from astrid_capabilities import CapabilityStore, CapabilityToken, ResourcePattern
from astrid_core import AuditEntryId, FileWrite, Permission, SessionId, ShellCommand
from astrid_core.storage import MemoryStorage, Storage, open_storage
from astrid_crypto import KeyPair

N = 300 if "--quick" in sys.argv else 2000


async def build(storage: Storage, workspace: str) -> SecurityInterceptor:
    key = KeyPair.generate()
    session = SessionId.new()
    guard = SecurityInterceptor(
        policy=SecurityPolicy(home="/nonexistent"),
        capabilities=CapabilityStore(storage, [key.public_key]),
        allowances=AllowanceStore(storage, key),
        budget=BudgetTracker(storage, BudgetConfig(), session=str(session)),
        workspace=WorkspaceBoundary(workspace, WorkspaceMode.SAFE),
        approvals=ApprovalManager(DeferredResolutionStore(storage)),
        audit=await AuditLog.open(storage, key),
        key=key,
        session_id=session,
    )
    token = CapabilityToken.issue(
        key,
        ResourcePattern(f"file://{workspace}/**"),
        [Permission.WRITE],
        scope="persistent",
        ttl_seconds=3600,
        approval_audit_id=AuditEntryId.new(),
    )
    await guard.capabilities.add(token)
    return guard


async def measure(label: str, func, baseline_us: float) -> None:  # type: ignore[no-untyped-def]
    samples = []
    for _ in range(N):
        start = time.perf_counter()
        await func()
        samples.append(time.perf_counter() - start)
    samples.sort()
    p50, p99 = statistics.median(samples) * 1e6, samples[int(len(samples) * 0.99)] * 1e6
    print(f"{label:48} {1e6 / p50:10,.0f} {p50:9.0f} {p99:9.0f} {p50 - baseline_us:11.0f}")


async def main() -> None:
    async def bare() -> None:
        return None

    samples = []
    for _ in range(N):
        start = time.perf_counter()
        await bare()
        samples.append(time.perf_counter() - start)
    baseline = statistics.median(samples) * 1e6
    print(f"{'decision':48} {'per s':>10} {'p50 us':>9} {'p99 us':>9} {'added us':>11}")
    print(f"{'baseline: bare async function call':48} {1e6 / baseline:10,.0f} {baseline:9.2f}")
    with tempfile.TemporaryDirectory() as tmp:
        workspace = str(Path(tmp).resolve())  # noqa: ASYNC240 - one-off benchmark setup
        memory_guard = await build(MemoryStorage(), workspace)
        sudo = ShellCommand(command="ls && sudo rm -rf /", cwd=workspace)
        await measure(
            "(a) policy deny (sudo hidden after &&)",
            lambda: memory_guard.intercept(sudo, "b"),
            baseline,
        )
        write = FileWrite(path=f"{workspace}/src/main.py")
        storage = await open_storage(f"surrealkv://{tmp}/db")
        durable_guard = await build(storage, workspace)
        await measure(
            "(b) token + durable audit, SurrealDB embedded",
            lambda: durable_guard.intercept(write, "b"),
            baseline,
        )
        per_worker = N // 16

        async def worker() -> None:
            for _ in range(per_worker):
                await durable_guard.intercept(write, "b")

        start = time.perf_counter()
        async with anyio.create_task_group() as tg:
            for _ in range(16):
                tg.start_soon(worker)
        rate = per_worker * 16 / (time.perf_counter() - start)
        print(f"{'(b) same, 16 concurrent sessions-worth of calls':48} {rate:10,.0f}")
        await storage.aclose()
        await measure(
            "(c) token + audit, memory storage",
            lambda: memory_guard.intercept(write, "b"),
            baseline,
        )


if __name__ == "__main__":
    anyio.run(main)
