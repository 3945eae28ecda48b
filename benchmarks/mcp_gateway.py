"""`astrid mcp serve` in front of server-everything vs the same SDK client straight to it.

    uv run --frozen python benchmarks/mcp_gateway.py [--n 300] [--rounds 4] [--concurrency 16]

Measured: the `echo` tool of the npm server-everything (installed by scripts/install-test-deps),
called by the `mcp` SDK client (ClientSession over stdio). Two paths, alternated round by round
in this one process so machine load hits both alike:

  baseline  the client starts server-everything itself (stdio) and calls it;
  gateway   the client starts `astrid mcp serve` (as Claude Code would), which relays to the
            daemon's MCP endpoint; the daemon checks each call with the full SecurityInterceptor
            (policy, capability token from one "allow always", budget, a signed audit append on
            the daemon's default storage, SurrealDB embedded, fsynced) and forwards it to its own
            server-everything.

Both upstreams run unsandboxed (a trusted admin entry), so the difference is the gateway alone.
Per round: p50 of --n sequential calls, and calls/s with --concurrency callers on one session.
Printed: p50 per path, added p50 (median over rounds of the per-round difference), throughput
ratio gateway/baseline (median over rounds). Targets (issue #24): < 2 ms added p50, >= 0.7x.
"""

# ruff: noqa: E402 - the sys.path fix below has to run before the imports that follow it.
from __future__ import annotations

import sys
from pathlib import Path

_HERE = Path(__file__).resolve().parent
sys.path[:] = [entry for entry in sys.path if Path(entry or ".").resolve() != _HERE]

import argparse
import json
import statistics
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client

from astrid_gateway.mcp_testing import answer_approvals, stdio_gateway_client
from astrid_gateway.testing import run_cli, start_daemon, stop_daemon, write_scripted_config

REPO = _HERE.parent
EVERYTHING = REPO / ".cache" / "node" / "node_modules" / ".bin" / "mcp-server-everything"


@asynccontextmanager
async def direct() -> AsyncIterator[ClientSession]:
    params = StdioServerParameters(command=str(EVERYTHING.resolve()), args=[])
    async with stdio_client(params) as (read, write), ClientSession(read, write) as session:
        await session.initialize()
        yield session


async def sequential(session: ClientSession, tool: str, n: int) -> float:
    times: list[float] = []
    for _ in range(n):
        start = time.perf_counter()
        result = await session.call_tool(tool, {"message": "hi"})
        times.append(time.perf_counter() - start)
        assert not result.is_error, result
    return statistics.median(times) * 1000


async def concurrent(session: ClientSession, tool: str, n: int, callers: int) -> float:
    per_caller = max(1, n // callers)

    async def caller() -> None:
        for _ in range(per_caller):
            result = await session.call_tool(tool, {"message": "hi"})
            assert not result.is_error, result

    start = time.perf_counter()
    async with anyio.create_task_group() as tg:
        for _ in range(callers):
            tg.start_soon(caller)
    return per_caller * callers / (time.perf_counter() - start)


async def main(n: int, rounds: int, callers: int) -> None:
    if not EVERYTHING.exists():
        raise SystemExit(f"{EVERYTHING} is missing: run scripts/install-test-deps")
    with tempfile.TemporaryDirectory(prefix="astrid-bench-") as tmp:
        home, workspace = Path(tmp) / "home", Path(tmp) / "ws"
        workspace.mkdir()
        write_scripted_config(home, workspace, [{"text": "unused"}], mode="safe")
        with (home / "config.toml").open("a") as config:
            config.write(
                '[[servers]]\nname = "everything"\ntrusted = true\nsandbox = false\n'
                f"command = {json.dumps(str(EVERYTHING.resolve()))}\n"
            )
        daemon = start_daemon(home)
        try:
            for _ in range(120):
                if run_cli(home, "mcp", "approve", "everything").returncode == 0:
                    break
                await anyio.sleep(0.5)
            async with (
                stdio_gateway_client(home, workspace) as via_astrid,
                direct() as straight,
            ):
                async with anyio.create_task_group() as tg:
                    tg.start_soon(answer_approvals, home, "allow_always", [])
                    await anyio.sleep(1)
                    await via_astrid.call_tool("everything__echo", {"message": "grant"})
                    tg.cancel_scope.cancel()
                paths = {
                    "baseline": (straight, "echo"),
                    "gateway": (via_astrid, "everything__echo"),
                }
                for session, tool in paths.values():  # warm-up
                    await sequential(session, tool, 20)
                p50: dict[str, list[float]] = {name: [] for name in paths}
                rate: dict[str, list[float]] = {name: [] for name in paths}
                for index in range(rounds):
                    order = list(paths) if index % 2 == 0 else list(reversed(paths))
                    for name in order:
                        session, tool = paths[name]
                        p50[name].append(await sequential(session, tool, n))
                        rate[name].append(await concurrent(session, tool, n, callers))
        finally:
            stop_daemon(daemon)
    added = statistics.median(g - b for g, b in zip(p50["gateway"], p50["baseline"], strict=True))
    ratio = statistics.median(g / b for g, b in zip(rate["gateway"], rate["baseline"], strict=True))
    for name in paths:
        print(
            f"{name:<9} p50 {statistics.median(p50[name]):6.2f} ms   "
            f"{statistics.median(rate[name]):7.0f} calls/s with {callers} callers"
        )
    print(f"added p50: {added:.2f} ms (target < 2 ms: {'met' if added < 2 else 'NOT met'})")
    print(
        f"throughput ratio: {ratio:.2f}x (target >= 0.7x: {'met' if ratio >= 0.7 else 'NOT met'})"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="astrid mcp serve vs a direct connection")
    parser.add_argument("--n", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--concurrency", type=int, default=16)
    args = parser.parse_args()
    anyio.run(main, args.n, args.rounds, args.concurrency)
