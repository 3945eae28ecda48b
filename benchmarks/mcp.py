"""MCP tool-call round trips: SecureMcpClient vs a bare `mcp` SDK ClientSession, same server.

    uv run --frozen python benchmarks/mcp.py [--n 1600] [--rounds 8] [--concurrency 16]

Every variant talks to its own copy of the SDK test server
packages/astrid-mcp/tests/servers/lab_server.py over stdio and calls its `echo` tool. The
baseline, measured in this process, is the SDK alone: stdio_client + ClientSession, initialize,
then call_tool. Against it:

  (a) SecureMcpClient with a trivial allow Guard (the client's own cost: tool lookup, pin
      state, McpToolCall construction, the guard call, result bounding and digesting);
  (b) SecureMcpClient with the real SecurityInterceptor as guard: autonomous workspace, a
      capability token for mcp://lab/echo, a signed audit append per call on MemoryStorage;
  (c) as (a), with the server started under the Landlock launcher (sandbox on).

Per variant: latency p50/p90/p99 of sequential calls, sequential calls/s, and calls/s with
--concurrency callers sharing one connection. Rounds alternate the variants (rotating the
order) so drift in machine load hits all of them alike. Latency percentiles pool the rounds;
added latency and ratios are medians of per-round comparisons with the baseline. The `cpu ms`
column is this process's CPU time per sequential call: on a busy machine wall-clock figures
move by +-0.5 ms between runs, CPU per call barely moves, so the verdict lines also give the
throughput ratio implied by client CPU alone. Targets from the issue: added p50 latency
< 1 ms, and a throughput ratio >= 0.8 against the baseline, throughput being calls/s with
--concurrency callers. (One caller's calls/s are 1 / its latency: with a ~2.5 ms baseline that
ratio is 0.8 only if less than ~0.6 ms is added, so it would make the 1 ms latency target moot;
it is printed beside the verdict all the same.) About a minute on an idle machine.
"""

# ruff: noqa: E402 - the sys.path fix below has to run before the imports that follow it.
from __future__ import annotations

import sys
from pathlib import Path

# This file is named like the SDK it measures. Run as a script, its directory is first on
# sys.path and `import mcp` (here and inside astrid_mcp) would import this file instead.
_HERE = Path(__file__).resolve().parent
sys.path[:] = [entry for entry in sys.path if Path(entry or ".").resolve() != _HERE]

import argparse
import contextlib
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import anyio
from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client

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
from astrid_core import (
    AuditEntryId,
    Authorization,
    AuthorizationProof,
    Guard,
    JsonObject,
    McpToolCall,
    Permission,
    ProofKind,
    SensitiveAction,
    SessionId,
)
from astrid_core.storage import MemoryStorage
from astrid_crypto import KeyPair
from astrid_mcp import McpServerConfig, SecureMcpClient

LAB_SERVER = _HERE.parent / "packages/astrid-mcp/tests/servers/lab_server.py"
ARGUMENTS: JsonObject = {"text": "x"}
ADDED_P50_TARGET_MS = 1.0
THROUGHPUT_RATIO_TARGET = 0.8

Call = Callable[[], Awaitable[object]]


class AllowGuard:
    """Allows everything, building a real Authorization per call as any guard would."""

    async def authorize(self, action: SensitiveAction, reason: str) -> Authorization:
        return Authorization.allow(AuthorizationProof(kind=ProofKind.POLICY, detail="bench"))


@dataclass
class Variant:
    label: str
    call: Call
    latencies: list[float] = field(default_factory=list[float])  # seconds, pooled over rounds
    # One entry per round, so variants can be compared round by round (paired).
    round_p50s: list[float] = field(default_factory=list[float])
    sequential_rates: list[float] = field(default_factory=list[float])
    concurrent_rates: list[float] = field(default_factory=list[float])
    client_cpu: list[float] = field(default_factory=list[float])  # CPU s per call, this process

    def percentile_ms(self, fraction: float) -> float:
        return percentile(self.latencies, fraction) * 1e3

    def added_p50_ms(self, other: Variant) -> float:
        return paired(self.round_p50s, other.round_p50s, lambda a, b: a - b) * 1e3

    def sequential_ratio(self, other: Variant) -> float:
        return paired(self.sequential_rates, other.sequential_rates, lambda a, b: a / b)

    def concurrent_ratio(self, other: Variant) -> float:
        return paired(self.concurrent_rates, other.concurrent_rates, lambda a, b: a / b)

    def cpu_ratio(self, other: Variant) -> float:
        """Throughput ratio if this process's CPU were the only limit: the load-robust figure."""
        return paired(self.client_cpu, other.client_cpu, lambda a, b: b / a)

    def added_cpu_ms(self, other: Variant) -> float:
        return paired(self.client_cpu, other.client_cpu, lambda a, b: a - b) * 1e3


def percentile(samples: list[float], fraction: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(len(ordered) * fraction))]


def paired(
    mine: list[float], theirs: list[float], compare: Callable[[float, float], float]
) -> float:
    """Median over rounds of a per-round comparison: load drift between rounds cancels out."""
    return statistics.median(compare(a, b) for a, b in zip(mine, theirs, strict=True))


async def sdk_baseline(stack: contextlib.AsyncExitStack, state: str) -> Call:
    parameters = StdioServerParameters(
        command=sys.executable, args=[str(LAB_SERVER)], env={"LAB_STATE": state}
    )
    read, write = await stack.enter_async_context(stdio_client(parameters))
    session = await stack.enter_async_context(ClientSession(read, write))
    await session.initialize()

    async def call() -> object:
        return await session.call_tool("echo", ARGUMENTS)

    return call


async def astrid_client(
    stack: contextlib.AsyncExitStack, state: str, guard: Guard, *, sandboxed: bool
) -> Call:
    config = McpServerConfig.model_validate(
        {
            "name": "lab",
            "command": sys.executable,
            "args": [str(LAB_SERVER)],
            "env": {"LAB_STATE": state},
            "sandbox": {"enabled": sandboxed, "read_paths": [state]},
            "trusted": True,  # only a trusted server may run unsandboxed
        }
    )
    client = await stack.enter_async_context(SecureMcpClient(config, guard=guard))
    if sandboxed and (client.launch is None or not client.launch.sandboxed):
        raise RuntimeError("the sandboxed variant did not start under the Landlock launcher")
    await client.tools()

    async def call() -> object:
        return await client.call_tool("echo", ARGUMENTS)

    return call


async def interceptor_guard(workspace: str) -> SecurityInterceptor:
    """The real guard, as benchmarks/interceptor.py builds it, with a token for the echo tool."""
    storage = MemoryStorage()
    key = KeyPair.generate()
    session = SessionId.new()
    guard = SecurityInterceptor(
        policy=SecurityPolicy(home="/nonexistent"),
        capabilities=CapabilityStore(storage, [key.public_key]),
        allowances=AllowanceStore(storage, key),
        budget=BudgetTracker(storage, BudgetConfig(), session=str(session)),
        workspace=WorkspaceBoundary(workspace, WorkspaceMode.AUTONOMOUS),
        approvals=ApprovalManager(DeferredResolutionStore(storage)),
        audit=await AuditLog.open(storage, key),
        key=key,
        session_id=session,
    )
    token = CapabilityToken.issue(
        key,
        ResourcePattern.literal("mcp://lab/echo"),
        [Permission.INVOKE],
        scope="persistent",
        ttl_seconds=3600,
        approval_audit_id=AuditEntryId.new(),
    )
    await guard.capabilities.add(token)
    # Setup check, not a timing one: the measured path must be the token-authorized allow path
    # (an approval prompt would hang, a policy allow would skip the capability store).
    decision = await guard.authorize(McpToolCall(server="lab", tool="echo", args=ARGUMENTS), "b")
    if decision.proof is None or decision.proof.kind is not ProofKind.CAPABILITY:
        raise RuntimeError(f"interceptor did not allow echo by capability token: {decision}")
    return guard


async def sequential(variant: Variant, calls: int) -> None:
    latencies: list[float] = []
    cpu_before = time.process_time()
    started = time.perf_counter()
    for _ in range(calls):
        before = time.perf_counter()
        await variant.call()
        latencies.append(time.perf_counter() - before)
    variant.sequential_rates.append(calls / (time.perf_counter() - started))
    variant.client_cpu.append((time.process_time() - cpu_before) / calls)
    variant.round_p50s.append(percentile(latencies, 0.5))
    variant.latencies.extend(latencies)


async def concurrent(variant: Variant, calls: int, callers: int) -> None:
    per_caller = max(1, calls // callers)

    async def caller() -> None:
        for _ in range(per_caller):
            await variant.call()

    started = time.perf_counter()
    async with anyio.create_task_group() as tg:
        for _ in range(callers):
            tg.start_soon(caller)
    variant.concurrent_rates.append(per_caller * callers / (time.perf_counter() - started))


def report(variants: list[Variant], concurrency: int) -> None:
    baseline, allow, *_ = variants
    header = (
        f"{'variant':41} {'p50 ms':>7} {'p90 ms':>7} {'p99 ms':>7} {'cpu ms':>7} "
        f"{'calls/s':>8} {'+p50 ms':>8} {'ratio':>6} {f'{concurrency}x calls/s':>14} {'ratio':>6}"
    )
    print(header)
    print("-" * len(header))
    for variant in variants:
        print(
            f"{variant.label:41} {variant.percentile_ms(0.5):7.3f} "
            f"{variant.percentile_ms(0.9):7.3f} {variant.percentile_ms(0.99):7.3f} "
            f"{statistics.median(variant.client_cpu) * 1e3:7.3f} "
            f"{statistics.median(variant.sequential_rates):8,.0f} "
            f"{variant.added_p50_ms(baseline):+8.3f} {variant.sequential_ratio(baseline):6.2f} "
            f"{statistics.median(variant.concurrent_rates):14,.0f} "
            f"{variant.concurrent_ratio(baseline):6.2f}"
        )
    print()
    print(
        f"targets (issue #7): added p50 latency < {ADDED_P50_TARGET_MS:g} ms, and throughput "
        f"(calls/s with {concurrency} concurrent callers) ratio >= {THROUGHPUT_RATIO_TARGET:g}."
    )
    print(
        "  One caller's calls/s are 1 / its latency: that ratio is the latency target seen "
        "another way, and is shown too."
    )
    for variant in variants[1:]:
        added = variant.added_p50_ms(baseline)
        ratio = variant.concurrent_ratio(baseline)
        latency = "met" if added < ADDED_P50_TARGET_MS else "NOT met"
        throughput = "met" if ratio >= THROUGHPUT_RATIO_TARGET else "NOT met"
        cpu_added, cpu_ratio = variant.added_cpu_ms(baseline), variant.cpu_ratio(baseline)
        print(
            f"  {variant.label:41} latency {latency:7} ({added:+.3f} ms)  "
            f"throughput {throughput:7} ({ratio:.2f});  one caller's calls/s ratio "
            f"{variant.sequential_ratio(baseline):.2f};  client CPU {cpu_added:+.3f} ms/call, "
            f"ratio {cpu_ratio:.2f}"
        )
    sandboxed = variants[-1]
    print(
        f"sandbox cost per call, (c) vs (a): {sandboxed.added_p50_ms(allow):+.3f} ms p50, "
        f"concurrent ratio {sandboxed.concurrent_ratio(allow):.2f}"
    )


async def main() -> None:
    parser = argparse.ArgumentParser(description="MCP tool-call round trips vs the bare SDK.")
    parser.add_argument(
        "--n", type=int, default=1600, help="sequential (and again concurrent) calls per variant"
    )
    parser.add_argument("--rounds", type=int, default=8, help="alternating rounds")
    parser.add_argument("--concurrency", type=int, default=16, help="concurrent callers")
    parser.add_argument("--warmup", type=int, default=200, help="untimed calls per variant")
    args = parser.parse_args()
    per_round = max(1, args.n // args.rounds)

    with tempfile.TemporaryDirectory() as tmp:
        state = str(Path(tmp).resolve())  # noqa: ASYNC240 - one-off benchmark setup
        async with contextlib.AsyncExitStack() as stack:
            guard = await interceptor_guard(state)
            variants = [
                Variant("baseline: mcp SDK ClientSession", await sdk_baseline(stack, state)),
                Variant(
                    "(a) SecureMcpClient, allow guard",
                    await astrid_client(stack, state, AllowGuard(), sandboxed=False),
                ),
                Variant(
                    "(b) SecureMcpClient, SecurityInterceptor",
                    await astrid_client(stack, state, guard, sandboxed=False),
                ),
                Variant(
                    "(c) SecureMcpClient, allow, sandboxed",
                    await astrid_client(stack, state, AllowGuard(), sandboxed=True),
                ),
            ]
            for variant in variants:
                for _ in range(args.warmup):
                    await variant.call()
            for round_number in range(args.rounds):
                # Rotate who goes first so no variant always runs right after another.
                shift = round_number % len(variants)
                for variant in variants[shift:] + variants[:shift]:
                    await sequential(variant, per_round)
                    await concurrent(variant, per_round, args.concurrency)
            audited = guard.audit.size
    print(
        f"{args.rounds} rounds x {per_round} sequential + {per_round} concurrent calls per "
        f"variant, {args.warmup} warm-up; echo tool of lab_server.py over stdio"
    )
    print()
    report(variants, args.concurrency)
    print()
    print(f"(b) wrote {audited:,} signed audit entries (one per authorized call)")


if __name__ == "__main__":
    anyio.run(main)
