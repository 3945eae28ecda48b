"""Capsule engine costs: plugin load, empty export call, gated host read-file vs a direct read.

    uv run python benchmarks/capsule.py

Builds the C test capsules first (needs clang; scripts/install-test-deps installs it). The
Guard here allows everything, so the gated figure is the engine's own overhead (JSON framing,
the thread hop to the event loop, path confinement) — the interceptor's cost is measured by
benchmarks/interceptor.py.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import anyio

from astrid_capsule.wasm import HostContext, HostGrants, WasmCapsule, WasmLimits, load_wasm_bytes
from astrid_core import Authorization, AuthorizationProof, ProofKind, SensitiveAction
from astrid_crypto import hash_file

WASM_DIR = Path(__file__).resolve().parents[1] / "packages" / "astrid-capsule" / "wasm"


class AllowAll:
    async def authorize(self, action: SensitiveAction, reason: str) -> Authorization:
        return Authorization.allow(AuthorizationProof(kind=ProofKind.POLICY))


def per_call_us(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    return statistics.median(ordered) * 1e6, ordered[int(len(ordered) * 0.99)] * 1e6


async def main() -> None:
    module = WASM_DIR / "build" / "notes_tool.wasm"
    with tempfile.TemporaryDirectory() as tmp:
        workspace = Path(tmp)
        (workspace / "note.txt").write_text("hello " * 100)
        ctx = HostContext("bench", workspace, HostGrants(fs_read=("**",)), AllowAll(), WasmLimits())
        wasm = load_wasm_bytes(module, str(hash_file(module)), dev_mode=False)

        loads = []
        for _ in range(20):
            start = time.perf_counter()
            WasmCapsule("bench", wasm, ctx).close()
            loads.append(time.perf_counter() - start)

        capsule = WasmCapsule("bench", wasm, ctx)
        empty = []
        for _ in range(300):
            start = time.perf_counter()
            await capsule.call("noop")
            empty.append(time.perf_counter() - start)

        request = json.dumps({"path": "note.txt"})
        gated = []
        for _ in range(300):
            start = time.perf_counter()
            await capsule.call("read_note", request)
            gated.append(time.perf_counter() - start)

        direct = []
        for _ in range(300):
            start = time.perf_counter()
            await anyio.to_thread.run_sync((workspace / "note.txt").read_text)
            direct.append(time.perf_counter() - start)

    load_ms = statistics.median(loads) * 1e3
    empty_p50, empty_p99 = per_call_us(empty)
    gated_p50, gated_p99 = per_call_us(gated)
    direct_p50, _ = per_call_us(direct)
    print(f"{'measure':42} {'p50':>10} {'p99':>10}")
    print(f"{'plugin load (compile + instantiate)':42} {load_ms:8.2f}ms")
    print(f"{'empty export call':42} {empty_p50:8.1f}us {empty_p99:8.1f}us")
    print(f"{'gated read-file through the host':42} {gated_p50:8.1f}us {gated_p99:8.1f}us")
    print(f"{'direct read (same thread hop)':42} {direct_p50:8.1f}us")
    print(f"gated / direct ratio: {gated_p50 / direct_p50:.1f}x")


if __name__ == "__main__":
    subprocess.run([str(WASM_DIR / "build.sh")], check=True, capture_output=True)
    anyio.run(main)
