"""What the sandbox costs: spawn, egress throughput, a new host's authorization.

    uv run python benchmarks/sandbox.py [--quick]

(a) spawning ``true`` confined (pids cgroup join + bubblewrap namespaces and mounts + the
    launcher's Landlock, rlimits and seccomp; network none) with the native launcher and with
    the Python one, vs a bare ``subprocess.run``; then the parts: the same bwrap without a
    launcher, bwrap with one bind only, with the namespaces, with the network namespace.
    Interleaved, medians in ms. Target: < 15 ms added.
(b) a 32 MiB HTTP download from a loopback server: direct (an unconfined client) vs from
    inside the sandbox through the bridge and the egress proxy, with the native launcher's
    bridge (C, splice) and with the Python fallback's; the client times only the transfer
    (CONNECT included). Interleaved; target: proxied >= 0.8x direct.
(c) a new host's authorization through the proxy (CONNECT to a name never seen, until the
    tunnel is up): with a host-list guard, and with the real SecurityInterceptor (token,
    audit on memory storage).
Takes well under 2 minutes.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
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
from astrid_core import AuditEntryId, Guard, Permission, SessionId
from astrid_core.storage import MemoryStorage
from astrid_crypto import KeyPair
from astrid_workspace import (
    Confinement,
    EgressProxy,
    HostListGuard,
    IPAddress,
    confined_argv,
    scrubbed_environment,
)

QUICK = "--quick" in sys.argv
SPAWNS = 15 if QUICK else 40
DOWNLOADS = 3 if QUICK else 6
AUTHS = 50 if QUICK else 200
BODY = b"\0" * (32 * 1024 * 1024)
LOOPBACK: list[IPAddress] = []

CLIENT = r"""
import os, socket, sys, time
port, via_proxy = int(sys.argv[1]), sys.argv[2] == "proxy"
start = time.perf_counter()
if via_proxy:
    s = socket.create_connection(("127.0.0.1", 3128))
    s.sendall(f"CONNECT data.test:{port} HTTP/1.1\r\n\r\n".encode())
    head = b""
    while b"\r\n\r\n" not in head:
        head += s.recv(4096)
    assert head.startswith(b"HTTP/1.1 200"), head
else:
    s = socket.create_connection(("127.0.0.1", port))
s.sendall(b"GET / HTTP/1.1\r\nHost: data.test\r\nConnection: close\r\n\r\n")
total = 0
buf = bytearray(1 << 20)
while n := s.recv_into(buf):
    total += n
print(total, time.perf_counter() - start)
"""


SERVER = r"""
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
BODY = b"\0" * (32 * 1024 * 1024)
class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Length", str(len(BODY)))
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(BODY)
    def log_message(self, *args):
        pass
ThreadingHTTPServer.request_queue_size = 256  # a backlog of 5 drops SYNs: 1 s retries
server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
print(server.server_address[1], flush=True)
server.serve_forever()
"""


def _allow_all(ip: IPAddress) -> bool:
    return True  # the loopback server stands for the internet here


async def _loopback(host: str, port: int) -> list[IPAddress]:
    return LOOPBACK


def _without_launcher(argv: list[str]) -> list[str]:
    """The same bwrap (namespaces, mounts) running /bin/true directly: the launcher's share."""
    bwrap = next(i for i, a in enumerate(argv) if a.endswith("bwrap"))
    return [*argv[: argv.index("--", bwrap) + 1], "/bin/true"]


def spawn_benchmark(workspace: str) -> None:
    import os

    from astrid_workspace import bwrap_path

    box = Confinement(workspace=workspace, network="none")

    def native() -> list[str]:
        return confined_argv("/bin/true", [], box)

    def python() -> list[str]:
        os.environ["ASTRID_SANDBOX_LAUNCHER"] = "python"
        try:
            return confined_argv("/bin/true", [], box)
        finally:
            del os.environ["ASTRID_SANDBOX_LAUNCHER"]

    assert "/run/astrid-launcher" in native(), "the native launcher is not in force (no cc?)"
    bwrap = bwrap_path() or "bwrap"
    namespaces = ["--unshare-user-try", "--unshare-pid", "--unshare-ipc", "--unshare-uts",
                  "--unshare-cgroup-try", "--die-with-parent", "--new-session"]  # fmt: skip
    # Each argv is built inside the timing (a pids cgroup is made per command, and the
    # sandboxed side pays for computing its mounts); bare pays for nothing.
    cases: dict[str, Callable[[], list[str]]] = {
        "bare subprocess": lambda: ["/bin/true"],
        "sandboxed, native launcher": native,
        "sandboxed, Python launcher": python,
        "  bwrap + mounts, no launcher": lambda: _without_launcher(native()),
        "  bwrap --ro-bind / / only": lambda: [bwrap, "--ro-bind", "/", "/", "--", "/bin/true"],
        "  + namespaces but net": lambda: [
            bwrap,
            *namespaces,
            "--ro-bind",
            "/",
            "/",
            "--",
            "/bin/true",
        ],
        "  + net namespace": lambda: [
            bwrap,
            *namespaces,
            "--unshare-net",
            "--ro-bind",
            "/",
            "/",
            "--",
            "/bin/true",
        ],
    }
    samples: dict[str, list[float]] = {name: [] for name in cases}
    env = scrubbed_environment()
    for _ in range(SPAWNS):  # interleaved: every case sees the same machine load
        for name, make in cases.items():
            start = time.perf_counter()
            subprocess.run(make(), check=True, env=env, cwd=workspace)
            samples[name].append(time.perf_counter() - start)
    ms = {name: statistics.median(values) * 1e3 for name, values in samples.items()}
    bare = ms["bare subprocess"]
    print("(a) spawn `true`, median ms (added over bare; ratio to bare):")
    for name, value in ms.items():
        print(f"    {name:32s} {value:6.1f} ms  (+{value - bare:5.1f} ms, {value / bare:4.1f}x)")


async def download_benchmark(workspace: str, port: int, proxy: EgressProxy) -> None:
    import os

    env = scrubbed_environment()
    box = Confinement(  # noqa: S604 - shell: python3 is found on PATH
        workspace=workspace, network="proxy", proxy_socket=proxy.socket_path, shell=True
    )

    def proxied(launcher: str) -> list[str]:
        # Built per run: each command gets its own pids cgroup.
        os.environ["ASTRID_SANDBOX_LAUNCHER"] = launcher
        try:
            return confined_argv(
                "/usr/bin/env", ["python3", "-c", CLIENT, str(port), "proxy"], box, cwd=workspace
            )
        finally:
            del os.environ["ASTRID_SANDBOX_LAUNCHER"]

    cases: dict[str, Callable[[], list[str]]] = {
        "direct": lambda: ["python3", "-c", CLIENT, str(port), "direct"],
        "native bridge + proxy": lambda: proxied("native"),
        "Python bridge + proxy (fallback)": lambda: proxied("python"),
    }
    samples: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(DOWNLOADS):  # interleaved
        for name, make in cases.items():
            result = await anyio.run_process(make(), env=env, cwd=workspace, check=True)
            size, seconds = result.stdout.split()
            assert int(size) > len(BODY), result.stdout
            samples[name].append(float(seconds))
    mib = len(BODY) / 2**20
    rate = {name: mib / statistics.median(values) for name, values in samples.items()}
    print("(b) 32 MiB download from a loopback server, median MiB/s (ratio to direct):")
    for name, value in rate.items():
        print(f"    {name:34s} {value:7,.0f} MiB/s  ({value / rate['direct']:.2f}x)")


async def interceptor_guard() -> Guard:
    storage = MemoryStorage()
    key = KeyPair.generate()
    session = SessionId.new()
    guard = SecurityInterceptor(
        # allow_private_networks: the policy's own private-address lookup would need real DNS.
        policy=SecurityPolicy(home="/nonexistent", allow_private_networks=True),
        capabilities=CapabilityStore(storage, [key.public_key]),
        allowances=AllowanceStore(storage, key),
        budget=BudgetTracker(storage, BudgetConfig(), session=str(session)),
        workspace=WorkspaceBoundary("/nonexistent-ws", WorkspaceMode.SAFE),
        approvals=ApprovalManager(DeferredResolutionStore(storage)),
        audit=await AuditLog.open(storage, key),
        key=key,
        session_id=session,
    )
    token = CapabilityToken.issue(
        key,
        ResourcePattern("net://**"),
        [Permission.NETWORK],
        scope="persistent",
        ttl_seconds=3600,
        approval_audit_id=AuditEntryId.new(),
    )
    await guard.capabilities.add(token)
    return guard


async def authorization_benchmark(label: str, guard: Guard, port: int, directory: str) -> None:
    proxy = EgressProxy(guard, address_allowed=_allow_all, resolver=_loopback)
    samples = []
    async with proxy.serving(directory):
        for i in range(AUTHS):
            start = time.perf_counter()
            async with await anyio.connect_unix(proxy.socket_path) as stream:
                await stream.send(f"CONNECT h{i}.new.test:{port} HTTP/1.1\r\n\r\n".encode())
                reply = await stream.receive()
                assert reply.startswith(b"HTTP/1.1 200"), reply
            samples.append(time.perf_counter() - start)
    samples.sort()
    p50, p99 = statistics.median(samples) * 1e3, samples[int(len(samples) * 0.99)] * 1e3
    print(f"(c) new host via the proxy, {label}: p50 {p50:.2f} ms, p99 {p99:.2f} ms")


async def main() -> None:
    import ipaddress

    LOOPBACK.append(ipaddress.ip_address("127.0.0.1"))
    # The web server runs in its own process, as the internet would: in this one it would
    # compete with the proxy for the GIL and slow the proxied side only.
    server = subprocess.Popen(  # noqa: ASYNC220 - started once, before any timing
        [sys.executable, "-c", SERVER], stdout=subprocess.PIPE, text=True
    )
    assert server.stdout is not None
    port = int(server.stdout.readline())
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        workspace = str(Path(tmp).resolve())  # noqa: ASYNC240 - one-off benchmark setup
        spawn_benchmark(workspace)
        guard = HostListGuard(["data.test"], owner="benchmark")
        proxy = EgressProxy(guard, address_allowed=_allow_all, resolver=_loopback)
        async with proxy.serving(tmp):
            await download_benchmark(workspace, port, proxy)
        await authorization_benchmark(
            "host-list guard", HostListGuard(["*.new.test"], owner="benchmark"), port, tmp
        )
        await authorization_benchmark(
            "SecurityInterceptor (token, audit)", await interceptor_guard(), port, tmp
        )
    server.kill()
    server.wait()
    with open("/proc/loadavg") as load:  # noqa: ASYNC230 - one line, after the timings
        print(f"total {time.perf_counter() - started:.1f} s; load average {load.read().split()[0]}")


if __name__ == "__main__":
    anyio.run(main)
