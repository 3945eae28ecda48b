"""astridd gateway: status RPC round trips, CLI start-up wall time, daemon idle RSS.

    uv run --frozen python benchmarks/gateway.py [--n 1000] [--clients 50] [--calls 20]
                                                 [--rounds 3] [--cli-runs 10]

Starts a real daemon (`python -m astrid_gateway --state-dir DIR`, DIR a private temp directory,
the runtime loaded as in production) and measures, against it:

  RPC: `astrid.status` round trips through GatewayClient, with 1 client making --n sequential
       calls and with --clients connections each making --calls sequential calls at the same
       time. The baseline, measured in the same run, is a bare `websockets` connection doing
       the same authenticated call (Bearer token in the handshake, one JSON-RPC frame out, one
       in), so the ratio is the client library's overhead; the daemon's own cost is in both.
       Rounds alternate baseline and client (rotating the order) so machine-load drift hits
       both; latency percentiles pool the rounds, ratios are medians of per-round ratios.
       Connecting is not timed.
  CLI: median wall time of --cli-runs runs each of `python -m astrid_cli --version` and
       `python -m astrid_cli status` (ASTRID_HOME=DIR, so status talks to this daemon) against
       `python -c pass`, the interpreter's own start-up. Target from the issue: --version
       under 0.3 s (the CLI imports only click until a command runs).
  RSS: the daemon's VmRSS right after start-up (idle) and after the RPC load, plus its peak
       (VmHWM), from /proc/PID/status.

The daemon is stopped with SIGTERM at the end (SIGKILL to its process group if it has not
exited within 10 s) and the run fails if anything in its process group survives. About 50 s
on an idle 2-core machine.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
from websockets.asyncio.client import ClientConnection, connect

from astrid_gateway._state import StatePaths, client_proof, daemon_proof, read_token
from astrid_gateway.client import GatewayClient, read_port
from astrid_gateway.protocol import (
    DAEMON_PID_HEADER,
    DAEMON_PROOF_HEADER,
    NONCE_HEADER,
    SERVER_NONCE_HEADER,
)

VERSION_TARGET_S = 0.3
STOP_TIMEOUT_S = 10.0

Call = Callable[[], Awaitable[object]]


# ---------------------------------------------------------------------------- the daemon


@dataclass
class Daemon:
    paths: StatePaths
    proc: subprocess.Popen[bytes]

    @property
    def port(self) -> int:
        port = read_port(self.paths)
        assert port is not None, "the daemon wrote no port file"
        return port

    @property
    def token(self) -> str:
        return read_token(self.paths.token)


def wait_until(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(0.05)


@contextlib.contextmanager
def running_daemon(home: Path) -> Iterator[Daemon]:
    """The daemon as the tests spawn it (conftest.spawn_daemon): own session, log to a file."""
    paths = StatePaths(home)
    paths.ensure()
    paths.log.parent.mkdir(parents=True, exist_ok=True)
    with paths.log.open("ab") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "astrid_gateway", "--state-dir", str(home)],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, so stop() can find every child
        )
    try:
        wait_until(
            lambda: paths.port.exists() or proc.poll() is not None, 60, "the daemon port file"
        )
        if proc.poll() is not None:
            raise RuntimeError(f"the daemon exited early:\n{paths.log.read_text()}")
        yield Daemon(paths, proc)
    finally:
        stop(proc)


def stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM (the daemon saves and exits), SIGKILL the group if it hangs, then verify."""
    group = proc.pid  # start_new_session: the daemon leads its own process group
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            print(f"daemon ignored SIGTERM for {STOP_TIMEOUT_S:g} s: killing its process group")
            kill_group(group)
            proc.wait()
    # Children (MCP servers) must not outlive the daemon; give stragglers a moment to exit.
    with contextlib.suppress(RuntimeError):
        wait_until(lambda: not group_alive(group), 5, "the daemon's process group to exit")
    if group_alive(group):
        kill_group(group)
        raise RuntimeError(f"processes of the daemon's group {group} survived it (killed now)")


def group_alive(group: int) -> bool:
    try:
        os.killpg(group, 0)
    except ProcessLookupError:
        return False
    return True


def kill_group(group: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(group, signal.SIGKILL)


def memory_kib(pid: int) -> dict[str, int]:
    """VmRSS (resident now) and VmHWM (peak resident) in KiB."""
    fields: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            fields[name] = int(value.split()[0])
    return fields


# ---------------------------------------------------------------------------- RPC clients


class RawClient:
    """The baseline: the least a client can do for an authenticated astrid.status call."""

    def __init__(self, ws: ClientConnection) -> None:
        self._ws = ws
        self._next_id = 0

    @classmethod
    async def open(cls, daemon: Daemon) -> RawClient:
        """Connect and do the mutual challenge-response by hand (the daemon accepts no bearer
        token): verify the daemon's proof, send ours. Paid once per connection, not per call."""
        import secrets

        nonce = secrets.token_hex(32)
        ws = await connect(
            f"ws://127.0.0.1:{daemon.port}", additional_headers={NONCE_HEADER: nonce}
        )
        assert ws.response is not None
        headers = ws.response.headers
        server_nonce, pid = headers[SERVER_NONCE_HEADER], int(headers[DAEMON_PID_HEADER])
        token, port = daemon.token, daemon.port
        assert headers[DAEMON_PROOF_HEADER] == daemon_proof(token, nonce, server_nonce, port, pid)
        proof = client_proof(token, nonce, server_nonce, port, pid)
        await ws.send(
            json.dumps(
                {
                    "jsonrpc": "2.0",
                    "id": 0,
                    "method": "astrid.authenticate",
                    "params": {"proof": proof},
                }
            )
        )
        assert json.loads(await ws.recv())["result"]["authenticated"] is True
        return cls(ws)

    async def status(self) -> dict[str, Any]:
        self._next_id += 1
        request = {"jsonrpc": "2.0", "id": self._next_id, "method": "astrid.status", "params": {}}
        await self._ws.send(json.dumps(request))
        reply: dict[str, Any] = json.loads(await self._ws.recv())
        return reply["result"]

    async def aclose(self) -> None:
        await self._ws.close()


async def open_raw(stack: contextlib.AsyncExitStack, daemon: Daemon) -> Call:
    client = await RawClient.open(daemon)
    stack.push_async_callback(client.aclose)
    return client.status


async def open_gateway_client(stack: contextlib.AsyncExitStack, daemon: Daemon) -> Call:
    client = await GatewayClient.open(daemon.paths.root, autostart=False, client_name="bench")
    await stack.enter_async_context(client)

    async def status() -> object:
        return await client.call("status")

    return status


Opener = Callable[[contextlib.AsyncExitStack, Daemon], Awaitable[Call]]


@dataclass
class Variant:
    label: str
    open: Opener
    latencies: list[float] = field(default_factory=list[float])  # seconds, pooled over rounds
    rates: list[float] = field(default_factory=list[float])  # calls/s, one per round
    p99s: list[float] = field(default_factory=list[float])  # seconds, one per round

    def percentile_ms(self, fraction: float) -> float:
        return percentile(self.latencies, fraction) * 1e3

    def rate_ratio(self, baseline: Variant) -> float:
        return paired(self.rates, baseline.rates, lambda a, b: a / b)

    def p99_ratio(self, baseline: Variant) -> float:
        return paired(self.p99s, baseline.p99s, lambda a, b: a / b)


def percentile(samples: list[float], fraction: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(len(ordered) * fraction))]


def paired(
    mine: list[float], theirs: list[float], compare: Callable[[float, float], float]
) -> float:
    """Median over rounds of a per-round comparison: load drift between rounds cancels out."""
    return statistics.median(compare(a, b) for a, b in zip(mine, theirs, strict=True))


async def measure(variant: Variant, daemon: Daemon, clients: int, calls_each: int) -> None:
    """Open ``clients`` connections, then time ``calls_each`` sequential calls on each, all
    connections at once. Records per-call latencies and the aggregate calls/s."""
    async with contextlib.AsyncExitStack() as stack:
        callers = [await variant.open(stack, daemon) for _ in range(clients)]
        # Setup check, not a timing one: every connection must really get a status answer.
        for caller in callers:
            result = await caller()
            if not isinstance(result, dict) or "version" not in result:
                raise RuntimeError(f"{variant.label}: unexpected status result {result!r}")
        latencies: list[float] = []

        async def run(caller: Call) -> None:
            for _ in range(calls_each):
                started = time.perf_counter()
                await caller()
                latencies.append(time.perf_counter() - started)

        started = time.perf_counter()
        async with anyio.create_task_group() as tg:
            for caller in callers:
                tg.start_soon(run, caller)
        elapsed = time.perf_counter() - started
    variant.latencies.extend(latencies)
    variant.rates.append(len(latencies) / elapsed)
    variant.p99s.append(percentile(latencies, 0.99))


async def rpc_table(daemon: Daemon, args: argparse.Namespace) -> None:
    print(
        f"status RPC, {args.rounds} rounds: 1 client x {args.n} calls; "
        f"{args.clients} clients x {args.calls} calls at once"
    )
    header = ("clients", "variant", "calls/s", "p50 ms", "p99 ms", "calls/s vs raw", "p99 vs raw")
    print(f"{header[0]:>7}  {header[1]:<16}" + "".join(f"{h:>15}" for h in header[2:]))
    for clients, calls_each in ((1, args.n), (args.clients, args.calls)):
        raw = Variant("raw websockets", open_raw)
        ours = Variant("GatewayClient", open_gateway_client)
        for round_index in range(args.rounds):
            order = (raw, ours) if round_index % 2 == 0 else (ours, raw)
            for variant in order:
                await measure(variant, daemon, clients, calls_each)
        for variant in (raw, ours):
            ratios = (
                ("", "")
                if variant is raw
                else (f"{ours.rate_ratio(raw):.2f}x", f"{ours.p99_ratio(raw):.2f}x")
            )
            print(
                f"{clients:>7}  {variant.label:<16}{statistics.median(variant.rates):>15,.0f}"
                f"{variant.percentile_ms(0.50):>15.2f}{variant.percentile_ms(0.99):>15.2f}"
                f"{ratios[0]:>15}{ratios[1]:>15}"
            )


# ---------------------------------------------------------------------------- CLI wall time


def wall_times(argv: list[str], env: dict[str, str], runs: int) -> list[float]:
    times: list[float] = []
    for _ in range(runs + 1):  # the first run warms the page cache and .pyc files: not kept
        started = time.perf_counter()
        done = subprocess.run(argv, env=env, capture_output=True, check=False)
        times.append(time.perf_counter() - started)
        if done.returncode != 0:
            raise RuntimeError(f"{argv} exited {done.returncode}: {done.stderr.decode()}")
    return times[1:]


def cli_table(daemon: Daemon, runs: int) -> None:
    env = {**os.environ, "ASTRID_HOME": str(daemon.paths.root)}
    commands = {
        "python -c pass": [sys.executable, "-c", "pass"],
        "astrid --version": [sys.executable, "-m", "astrid_cli", "--version"],
        "astrid status": [sys.executable, "-m", "astrid_cli", "status"],
    }
    medians: dict[str, float] = {}
    print(f"CLI wall time, median (min) of {runs} runs, daemon running:")
    print(f"{'command':<18}{'median ms':>12}{'min ms':>10}{'vs python':>11}{'added ms':>10}")
    for label, argv in commands.items():
        times = wall_times(argv, env, runs)
        medians[label] = statistics.median(times)
        baseline = medians["python -c pass"]
        print(
            f"{label:<18}{medians[label] * 1e3:>12.0f}{min(times) * 1e3:>10.0f}"
            f"{medians[label] / baseline:>10.1f}x{(medians[label] - baseline) * 1e3:>10.0f}"
        )
    version = medians["astrid --version"]
    verdict = "met" if version < VERSION_TARGET_S else "NOT met"
    print(f"target astrid --version < {VERSION_TARGET_S:g} s: {verdict} ({version:.3f} s)")


# ---------------------------------------------------------------------------- main


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--n", type=int, default=1000, help="sequential calls by the one client")
    parser.add_argument("--clients", type=int, default=50, help="concurrent connections")
    parser.add_argument("--calls", type=int, default=20, help="calls per concurrent connection")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds per variant")
    parser.add_argument("--cli-runs", type=int, default=10, help="runs per CLI command")
    args = parser.parse_args()

    with (
        tempfile.TemporaryDirectory(prefix="astrid-bench-") as tmp,
        running_daemon(Path(tmp) / "home") as daemon,
    ):
        pid = daemon.proc.pid
        time.sleep(0.5)  # let start-up work that follows the port file settle
        idle = memory_kib(pid)
        anyio.run(rpc_table, daemon, args, backend="asyncio")  # websockets needs asyncio
        time.sleep(0.5)
        loaded = memory_kib(pid)
        print()
        cli_table(daemon, args.cli_runs)
        print()
        print("daemon memory (runtime loaded, no MCP servers configured):")
        print(f"  VmRSS idle after start-up   {idle['VmRSS'] / 1024:>7.1f} MiB")
        print(f"  VmRSS after the RPC load    {loaded['VmRSS'] / 1024:>7.1f} MiB")
        print(f"  VmHWM (peak) after the load {loaded['VmHWM'] / 1024:>7.1f} MiB")
    print(f"\ndaemon {pid} stopped with SIGTERM; its process group is gone")


if __name__ == "__main__":
    main()
