"""OpenClaw plugins as WASM capsules: what compiling and running one costs.

    uv run python benchmarks/openclaw.py [--rounds N]

Needs the engine (scripts/build-openclaw-engine, called by scripts/install-test-deps) and
clang for the C baseline. What is measured, all in this process, rounds interleaved:

- compile: `build_capsule_dir` on a one-tool plugin (no npm dependencies): bundle (esbuild),
  pre-initialize (Wizer), describe (one extism instance), write Capsule.toml. Wall time.
- size: the engine, the pre-initialized plugin, and the plugin gzipped.
- first load vs cached load: extism.CompiledPlugin of the pre-initialized .wasm (Cranelift
  compiles it) with wasmtime's on-disk cache empty, then again with the cache filled (a fresh
  CompiledPlugin each time; the cache lives in a temp dir).
- new instance + first call: extism.Plugin(compiled) then one call of the tool, from an
  already compiled module. "pre-initialized": the Wizer snapshot; "not pre-initialized": the
  bare engine, which must first `load` the same bundled script (what Wizer did at build time).
- the runtime's path: astrid_capsule.wasm.WasmCapsule (how sessions load a capsule) + first
  call, here with wasmtime's disk cache configured (EXTISM_CACHE_CONFIG, set above). The
  engine keeps no compiled module between instances and, unless EXTISM_CACHE_CONFIG is set,
  sets it empty (no cache): a session's load then costs the first-load figure.
- per call: the tool called again on a live instance (echo the input: JSON.parse, build the
  OpenClaw result, JSON out), against a C capsule (bench_echo.c, no libc) that copies its input
  to its output through the same Extism kernel: the ratio is the price of the JS engine and
  the OpenClaw shim per call.

Host functions are stand-ins that refuse everything: the tool calls none, so the Guard's cost
is not part of these figures (benchmarks/interceptor.py has it).
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
PDK = ROOT / "packages" / "astrid-capsule" / "wasm"
BENCH_C = ROOT / "packages" / "astrid-openclaw" / "engine" / "bench_echo.c"
PLUGIN = """
export default {
  id: "bench",
  register(api) {
    api.registerTool({
      name: "echo",
      description: "Echo the text",
      parameters: { type: "object", properties: { text: { type: "string" } } },
      async execute(_id, params) {
        return { content: [{ type: "text", text: JSON.stringify({ echo: params.text }) }] };
      },
    });
  },
};
"""


def stand_in_host_functions() -> list[Any]:
    import extism
    from extism.extism import host_fn

    from astrid_openclaw._toolchain import HOST_FUNCTIONS

    def make(name: str) -> Any:
        @host_fn(
            name=name, namespace="astrid", signature=([extism.ValType.I64], [extism.ValType.I64])
        )
        def call(plugin: object, params: list[object], results: list[object], *_: object) -> None:
            plugin.return_string(results[0], '{"ok": false, "error": "benchmark"}')  # type: ignore[attr-defined]

        return call

    return [make(n) for n in HOST_FUNCTIONS]


def ms(samples: list[float]) -> str:
    return f"{statistics.median(samples) * 1e3:9.3f} ms"


def us(samples: list[float]) -> str:
    return f"{statistics.median(samples) * 1e6:9.1f} us"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=30)
    rounds = parser.parse_args().rounds

    with tempfile.TemporaryDirectory(prefix="astrid-bench-openclaw-") as tmp:
        work = Path(tmp)
        cache_dir = work / "wasmtime-cache"
        cache_config = work / "cache.toml"
        cache_config.write_text(f'[cache]\ndirectory = "{cache_dir}"\n')
        # Before extism loads: its cache config is read once per process.
        os.environ["EXTISM_CACHE_CONFIG"] = str(cache_config)
        import extism
        from extism.extism import CompiledPlugin

        from astrid_openclaw import build_capsule_dir, find_toolchain

        chain = find_toolchain()
        source = work / "plugin"
        source.mkdir()
        (source / "package.json").write_text(
            json.dumps(
                {"name": "bench", "version": "1.0.0", "openclaw": {"extensions": ["./index.js"]}}
            )
        )
        (source / "index.js").write_text(PLUGIN)

        compile_times: list[float] = []
        result = None
        for i in range(3):
            start = time.perf_counter()
            result = build_capsule_dir(str(source), work / f"capsule-{i}")
            compile_times.append(time.perf_counter() - start)
        assert result is not None
        snapshot = (result.capsule_dir / "plugin.wasm").read_bytes()
        engine = chain.engine.read_bytes()
        bundle = work / "bundle"
        bundle.mkdir()
        # The same script Wizer loaded, for the engine that is not pre-initialized.
        from astrid_openclaw._compile import _entry, copy_shim
        from astrid_openclaw._plugin import read_plugin

        shim_work = work / "shim-work"
        shim_work.mkdir()
        shim = copy_shim(shim_work)
        info = read_plugin(source)
        chain.bundle(
            _entry(shim, "entry-wasm.js", info), bundle / "plugin.js", "wasm", source, shim
        )
        script = (bundle / "plugin.js").read_bytes()

        clang = shutil.which("clang")
        assert clang, "clang is needed for the C baseline (scripts/install-test-deps)"
        c_wasm = work / "bench_echo.wasm"
        subprocess.run(
            [
                clang,
                "--target=wasm32-unknown-unknown",
                "-O2",
                "-nostdlib",
                "-Wl,--no-entry",
                "-Wl,--export-dynamic",
                f"-I{PDK}",
                "-o",
                str(c_wasm),
                str(BENCH_C),
            ],
            check=True,
        )

        functions = stand_in_host_functions()

        # First load (Cranelift) vs cached load, interleaved with a fresh cache each round.
        cold, cached = [], []
        for _ in range(3):
            shutil.rmtree(cache_dir, ignore_errors=True)
            start = time.perf_counter()
            CompiledPlugin({"wasm": [{"data": snapshot}]}, wasi=True, functions=functions)
            cold.append(time.perf_counter() - start)
            start = time.perf_counter()
            CompiledPlugin({"wasm": [{"data": snapshot}]}, wasi=True, functions=functions)
            cached.append(time.perf_counter() - start)

        pre = CompiledPlugin({"wasm": [{"data": snapshot}]}, wasi=True, functions=functions)
        bare = CompiledPlugin({"wasm": [{"data": engine}]}, wasi=True, functions=functions)
        c_compiled = CompiledPlugin({"wasm": [{"data": c_wasm.read_bytes()}]}, functions=functions)
        payload = json.dumps({"text": "hello"}).encode()

        first_pre: list[float] = []
        first_bare: list[float] = []
        first_c: list[float] = []
        out_pre = out_bare = b""
        for _ in range(rounds):
            start = time.perf_counter()
            plugin = extism.Plugin(pre)
            out_pre = plugin.call("tool_0", payload)
            first_pre.append(time.perf_counter() - start)
            start = time.perf_counter()
            plugin = extism.Plugin(bare)
            plugin.call("load", script)
            out_bare = plugin.call("tool_0", payload)
            first_bare.append(time.perf_counter() - start)
            start = time.perf_counter()
            plugin = extism.Plugin(c_compiled)
            plugin.call("echo", payload)
            first_c.append(time.perf_counter() - start)
        assert out_pre == out_bare == b'{"echo":"hello"}', (out_pre, out_bare)

        import anyio

        from astrid_capsule.wasm import HostContext, HostGrants, WasmCapsule, WasmLimits

        class DenyAll:
            async def authorize(self, action: object, reason: str) -> object:
                from astrid_core import Authorization, DenialLayer

                return Authorization.deny(DenialLayer.POLICY, "benchmark")

        async def runtime_path() -> float:
            context = HostContext("bench", work, HostGrants(), DenyAll(), WasmLimits())  # type: ignore[arg-type]
            start = time.perf_counter()
            capsule = await anyio.to_thread.run_sync(
                lambda: WasmCapsule("bench", snapshot, context, wasi=True)
            )
            await capsule.call("tool_0", payload)
            elapsed = time.perf_counter() - start
            capsule.close()
            return elapsed

        session_loads = [anyio.run(runtime_path) for _ in range(2)]

        live_js = extism.Plugin(pre)
        live_c = extism.Plugin(c_compiled)
        per_js, per_c = [], []
        for _ in range(rounds * 20):
            start = time.perf_counter()
            live_js.call("tool_0", payload)
            per_js.append(time.perf_counter() - start)
            start = time.perf_counter()
            live_c.call("echo", payload)
            per_c.append(time.perf_counter() - start)

    print(f"{'measure':58} {'median':>12}")
    print(f"{'compile a one-tool plugin (bundle + Wizer + describe)':58} {ms(compile_times)}")
    print(f"{'engine .wasm (QuickJS-ng + glue)':58} {len(engine) / 1e6:9.2f} MB")
    print(f"{'pre-initialized plugin .wasm':58} {len(snapshot) / 1e6:9.2f} MB")
    print(f"{'  gzipped':58} {len(gzip.compress(snapshot)) / 1e6:9.2f} MB")
    print(f"{'first load (Cranelift compile, empty cache)':58} {ms(cold)}")
    print(f"{'cached load (wasmtime disk cache)':58} {ms(cached)}")
    print(f"{'new instance + first call, pre-initialized':58} {ms(first_pre)}")
    print(f"{'new instance + first call, not pre-initialized':58} {ms(first_bare)}")
    print(f"{'new instance + first call, C capsule':58} {ms(first_c)}")
    print(
        f"{'WasmCapsule (as sessions load it, disk cache on) + first call':58} {ms(session_loads)}"
    )
    print(f"{'per call, OpenClaw tool (JS)':58} {us(per_js)}")
    print(f"{'per call, C capsule (same echo)':58} {us(per_c)}")
    ratio = statistics.median(first_bare) / statistics.median(first_pre)
    print(f"pre-initialization makes the first call {ratio:.1f}x faster")
    print(f"JS per call / C per call: {statistics.median(per_js) / statistics.median(per_c):.1f}x")
    print(f"first load / cached load: {statistics.median(cold) / statistics.median(cached):.0f}x")


if __name__ == "__main__":
    main()
