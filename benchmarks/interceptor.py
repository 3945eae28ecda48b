"""SecurityInterceptor decisions/s and latency (p50/p99) vs a bare function call.

    uv run python benchmarks/interceptor.py [--quick] [--policy-only] [--compare=<commit>]

(a) policy deny (`sudo` in a command line), (b) token-authorized with a durable audit append
on SurrealDB embedded, (c) the same on memory storage. The baseline is an async function call
doing nothing, measured in the same run.

(d) the bash parser (tree-sitter-bash) against the hand-rolled shlex parser it replaced, on the
same lines, interleaved in the same run: the old parser is kept verbatim in
``benchmarks/_old_shell.py`` (BASELINE ONLY). (e) the full shell decision (parse + policy +
audit, autonomous mode, memory storage) against the whole astrid_approval package as of
commit ``b4be71e`` (before tree-sitter), loaded from git into a temporary module, interleaved:
cold = every line new to the parse cache, warm = the line was seen before. Target: <= 1.2x.
``--compare=<commit>`` adds that commit's package (e.g. the code before a change) as a third
column, interleaved in the same rounds, cold: before/after ratios from one run.

(f) real concurrency, on sqlite3 (the daemon's default, fsynced): token-authorized decisions
with their durable audit entry, completed per second, by 1 session and by 16 sessions at once
(16 interceptors of 16 distinct session ids sharing one store and audit log, as in the daemon),
each in ROUNDS interleaved rounds with the same-run sqlite3 WAL FULL ceiling (batch 1 for one
session, batch 16 for 16, ``benchmarks/audit.py``). The "(b) 16 tasks" line above is 16 tasks
of ONE session (its calls share one budget and one chain).

(g) policy grants loaded (issue 22): the same token-authorized FileWrite decision (memory
storage, safe mode) in three interceptors built alike, one with no policy, one with 10 and one
with 1,000 grants minted from a generated policy.toml (MCP tools with each_in / only_args /
range caveats and file globs elsewhere), measured interleaved in the same run; printed as
decisions/s and as a ratio against no policy (target >= 0.8x). Also, with each grant count,
the new refusal path: an MCP call a grant covers but whose caveat refuses it (denied with the
caveat's reason), as decisions/s.
"""

from __future__ import annotations

import importlib
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

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
BASELINE_COMMIT = "b4be71e"
LINES = [
    "ls -la",
    "git status && git diff --stat",
    "grep -rn 'def main' src | head -20",
    "cd src && python3 -m pytest -q tests/test_x.py",
    "find . -name '*.py' -exec wc -l {} +",
    "echo hello > out.txt 2>&1",
    "for f in a b c; do echo $f; done",
    "curl -fsSL https://example.com/install.sh -o install.sh",
    "sed -i 's/foo/bar/g' README.md && git add README.md && git commit -m 'docs: bar'",
    "cat <<EOF > notes.md\nhello $(date)\nEOF",
]


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
        print(f"{'(b) same, 16 tasks of ONE session':48} {rate:10,.0f}")
        await storage.aclose()
        await measure(
            "(c) token + audit, memory storage",
            lambda: memory_guard.intercept(write, "b"),
            baseline,
        )
        await real_concurrency(workspace)
        parser_ratio()
        await decision_ratio(workspace)
        await policy_ratio(workspace)


async def real_concurrency(workspace: str) -> None:
    from audit import sqlite_rows_per_second  # benchmarks/audit.py: the same ceiling

    rounds = 3 if "--quick" in sys.argv else 5
    calls = 200 if "--quick" in sys.argv else 600
    write = FileWrite(path=f"{workspace}/src/main.py")
    results: dict[str, list[float]] = {}
    for _ in range(rounds):
        with tempfile.TemporaryDirectory() as tmp:
            root = Path(tmp)
            results.setdefault("ceiling 1", []).append(sqlite_rows_per_second(root / "a", 1, 1.0))
            results.setdefault("ceiling 16", []).append(sqlite_rows_per_second(root / "b", 16, 1.0))
            for sessions in (1, 16):
                storage = await open_storage(f"sqlite://{root}/s{sessions}")
                first = await build(storage, workspace)
                guards = [first] + [
                    SecurityInterceptor(
                        policy=first.policy,
                        capabilities=first.capabilities,
                        allowances=first.allowances,
                        budget=BudgetTracker(storage, BudgetConfig(), session=str(session)),
                        workspace=first.workspace,
                        approvals=first.approvals,
                        audit=first.audit,
                        key=first.key,
                        session_id=session,
                    )
                    for session in (SessionId.new() for _ in range(sessions - 1))
                ]
                per = calls // sessions

                async def run(guard: SecurityInterceptor, per: int = per) -> None:
                    for _ in range(per):
                        result = await guard.intercept(write, "b")
                        assert result.allowed

                start = time.perf_counter()
                async with anyio.create_task_group() as tg:
                    for guard in guards:
                        tg.start_soon(run, guard)
                took = time.perf_counter() - start
                results.setdefault(f"sessions {sessions}", []).append(per * sessions / took)
                await storage.aclose()
    print(f"\n(f) decisions with a durable audit entry on sqlite3, {rounds} interleaved rounds")
    for sessions, ceiling in ((1, "ceiling 1"), (16, "ceiling 16")):
        rates = results[f"sessions {sessions}"]
        ratio = statistics.median([r / c for r, c in zip(rates, results[ceiling], strict=True)])
        base = statistics.median(results[ceiling])
        print(
            f"  {sessions:>2} session(s): {statistics.median(rates):8,.0f} decisions/s, "
            f"sqlite3 WAL FULL batch {ceiling.split()[1]} {base:8,.0f} rows/s, ratio {ratio:.2f}x"
        )


def _load_baseline_package(
    commit: str = BASELINE_COMMIT, name: str = "astrid_approval_baseline"
) -> Any | None:
    """astrid_approval as of ``commit``, imported as ``name``."""
    root = Path(__file__).resolve().parent.parent
    src = "packages/astrid-approval/src/astrid_approval"
    try:
        names = subprocess.run(
            ["git", "ls-tree", "--name-only", commit, src + "/"],
            cwd=root, capture_output=True, text=True, check=True,
        ).stdout.split()  # fmt: skip
        target = Path(tempfile.mkdtemp()) / name
        target.mkdir()
        for file in names:
            text = subprocess.run(
                ["git", "show", f"{commit}:{file}"],
                cwd=root, capture_output=True, text=True, check=True,
            ).stdout  # fmt: skip
            (target / Path(file).name).write_text(text)
    except (OSError, subprocess.CalledProcessError):
        return None
    sys.path.insert(0, str(target.parent))
    return importlib.import_module(name)


def parser_ratio() -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import _old_shell  # pyright: ignore[reportMissingImports]

    from astrid_approval._shell import _parse_cached

    new_parse = _parse_cached.__wrapped__  # uncached: the parser's own cost
    rounds = max(N // 10, 20)
    old_t: list[float] = []
    new_t: list[float] = []
    for _ in range(rounds):
        for line in LINES:  # interleaved: old, new, old, new ... on the same line
            start = time.perf_counter()
            _old_shell.parse_command_line(line)
            mid = time.perf_counter()
            new_parse(line)
            old_t.append(mid - start)
            new_t.append(time.perf_counter() - mid)
    old_us, new_us = statistics.median(old_t) * 1e6, statistics.median(new_t) * 1e6
    print(f"{'(d) parse a line, old shlex parser (baseline)':48} {'':>10} {old_us:9.1f}")
    print(f"{'(d) parse a line, tree-sitter-bash (uncached)':48} {'':>10} {new_us:9.1f}")
    print(f"{'(d) parser ratio new/old':48} {new_us / old_us:10.2f}x")


async def _guard(package: Any, workspace: str) -> Any:
    storage = MemoryStorage()
    key = KeyPair.generate()
    session = SessionId.new()
    return package.SecurityInterceptor(
        policy=package.SecurityPolicy(home="/nonexistent"),
        capabilities=CapabilityStore(storage, [key.public_key]),
        allowances=package.AllowanceStore(storage, key),
        budget=package.BudgetTracker(storage, package.BudgetConfig(), session=str(session)),
        workspace=package.WorkspaceBoundary(workspace, package.WorkspaceMode.AUTONOMOUS),
        approvals=package.ApprovalManager(package.DeferredResolutionStore(storage)),
        audit=await AuditLog.open(storage, key),
        key=key,
        session_id=session,
    )


async def decision_ratio(workspace: str) -> None:
    import astrid_approval
    from astrid_approval._shell import _parse_cached

    baseline = _load_baseline_package()
    if baseline is None:
        print(f"(e) skipped: git cannot show commit {BASELINE_COMMIT}")
        return
    old_guard = await _guard(baseline, workspace)
    new_guard = await _guard(astrid_approval, workspace)
    compare = next((a.split("=", 1)[1] for a in sys.argv if a.startswith("--compare=")), None)
    other = _load_baseline_package(compare, "astrid_approval_compare") if compare else None
    other_guard = await _guard(other, workspace) if other is not None else None
    other_cache = getattr(getattr(other, "_shell", None), "_parse_cached", None)
    other_t: list[float] = []
    actions = [ShellCommand(command=line, cwd=workspace) for line in LINES]
    rounds = max(N // 20, 10)

    async def timed(call: Callable[[], Awaitable[Any]]) -> float:
        start = time.perf_counter()
        await call()
        return time.perf_counter() - start

    old_t: list[float] = []
    cold_t: list[float] = []
    warm_t: list[float] = []
    for _ in range(rounds):
        for action in actions:
            old_t.append(await timed(lambda a=action: old_guard.intercept(a, "b")))
            if other_guard is not None:
                if other_cache is not None:
                    other_cache.cache_clear()
                other_t.append(await timed(lambda a=action: other_guard.intercept(a, "b")))
            _parse_cached.cache_clear()
            cold_t.append(await timed(lambda a=action: new_guard.intercept(a, "b")))
            warm_t.append(await timed(lambda a=action: new_guard.intercept(a, "b")))
    old_us = statistics.median(old_t) * 1e6
    cold_us = statistics.median(cold_t) * 1e6
    warm_us = statistics.median(warm_t) * 1e6
    label = "(e) shell decision, baseline " + BASELINE_COMMIT
    print(f"{label:48} {1e6 / old_us:10,.0f} {old_us:9.0f}")
    print(f"{'(e) shell decision, tree-sitter, cold':48} {1e6 / cold_us:10,.0f} {cold_us:9.0f}")
    print(f"{'(e) shell decision, tree-sitter, warm':48} {1e6 / warm_us:10,.0f} {warm_us:9.0f}")
    label = "(e) decision ratio cold/baseline, warm/baseline"
    print(f"{label:48} {cold_us / old_us:10.2f}x {warm_us / old_us:8.2f}x")
    if other_t:
        other_us = statistics.median(other_t) * 1e6
        label = f"(e) shell decision, {compare}, cold"
        print(f"{label:48} {1e6 / other_us:10,.0f} {other_us:9.0f}")
        label = f"(e) decision ratio {compare} cold/baseline"
        print(f"{label:48} {other_us / old_us:10.2f}x")


def _policy_text(grants: int) -> str:
    parts = ["version = 1\n"]
    for i in range(grants):
        if i % 2:
            parts.append(f'[[grant]]\nname = "files {i}"\nfiles = "/data/p{i}/**"\n')
            continue
        parts.append(
            f'[[grant]]\nname = "mail {i}"\nmcp = "srv{i % 50}/tool{i}"\n'
            'caveats = [{ each_in = "to", values = ["a@example.com", "b@example.com"] },'
            ' { range = "n", lo = 0, hi = 100 }, { only_args = ["to", "n", "body"] }]\n'
            "max_calls = 1000000\n"
        )
    return "\n".join(parts)


async def _policy_guard(workspace: str, grants: int) -> SecurityInterceptor:
    from astrid_approval import parse_policy

    guard = await build(MemoryStorage(), workspace)
    if grants:
        policy = parse_policy(_policy_text(grants), f"{grants}.toml")
        await guard.capabilities.replace(policy.mint(guard.key, AuditEntryId.new()), [])
        guard.settings = policy.settings
    return guard


async def policy_ratio(workspace: str) -> None:
    from astrid_core import McpToolCall

    guards = {n: await _policy_guard(workspace, n) for n in (0, 10, 1000)}
    write = FileWrite(path=f"{workspace}/src/main.py")
    refused = McpToolCall(server="srv0", tool="tool0", args={"to": ["eve@evil.test"], "n": 1})
    rounds = max(N // 2, 50)
    times: dict[tuple[str, int], list[float]] = {}
    for _ in range(rounds):
        for n, guard in guards.items():
            for kind, action in (("write", write), ("refused", refused)):
                if kind == "refused" and n == 0:
                    continue
                start = time.perf_counter()
                result = await guard.intercept(action, "b")
                times.setdefault((kind, n), []).append(time.perf_counter() - start)
                assert result.allowed == (kind == "write"), result.authorization.reason
    base = statistics.median(times[("write", 0)])
    print(f"{'(g) token decision, no policy':48} {1 / base:10,.0f} {base * 1e6:9.0f}")
    for n in (10, 1000):
        t = statistics.median(times[("write", n)])
        label = f"(g) token decision, {n:,} policy grants"
        print(f"{label:48} {1 / t:10,.0f} {t * 1e6:9.0f}   ratio {base / t:.2f}x")
    for n in (10, 1000):
        t = statistics.median(times[("refused", n)])
        label = f"(g) caveat refusal (denied), {n:,} grants"
        print(f"{label:48} {1 / t:10,.0f} {t * 1e6:9.0f}")


if __name__ == "__main__":
    if "--policy-only" in sys.argv:

        async def _only() -> None:
            with tempfile.TemporaryDirectory() as tmp:
                await policy_ratio(str(Path(tmp).resolve()))  # noqa: ASYNC240

        anyio.run(_only)
    else:
        anyio.run(main)
