"""Where the prebuilt engine and the build tools are, and running them.

``scripts/build-openclaw-engine`` builds them once per machine (called by
``scripts/install-test-deps``) into ``.cache/openclaw``; ``ASTRID_OPENCLAW_HOME`` points
elsewhere. Nothing is downloaded here: a missing piece is an error naming the script.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ._plugin import OpenClawError

__all__ = ["Toolchain", "find_toolchain", "SHIM_DIR", "HOST_FUNCTIONS"]

SHIM_DIR = Path(__file__).resolve().parent / "shim"
# Wizer runs the plugin's load without the capsule engine's time limit: this bounds it.
PREINIT_SECONDS = 60
_BUILD_HINT = "run scripts/build-openclaw-engine (or scripts/install-test-deps) once"
# The imports of engine.c: what Wizer's stand-ins must provide (never called at build time).
_EXTISM_KERNEL = (
    ("input_length", "", "i64"),
    ("input_load_u8", "i64", "i32"),
    ("input_load_u64", "i64", "i64"),
    ("alloc", "i64", "i64"),
    ("length", "i64", "i64"),
    ("load_u8", "i64", "i32"),
    ("load_u64", "i64", "i64"),
    ("store_u8", "i64 i32", ""),
    ("store_u64", "i64 i64", ""),
    ("output_set", "i64 i64", ""),
    ("error_set", "i64", ""),
    ("free", "i64", ""),
)
HOST_FUNCTIONS = (
    "read_file",
    "write_file",
    "http_request",
    "fs_exists",
    "fs_mkdir",
    "fs_readdir",
    "fs_stat",
    "fs_unlink",
    "kv_get",
    "kv_set",
    "get_config",
    "log",
)


def _wat(functions: list[tuple[str, str, str]]) -> str:
    lines = ["(module"]
    for name, params, result in functions:
        p = f" (param {params})" if params else ""
        r = f" (result {result})" if result else ""
        lines.append(f'  (func (export "{name}"){p}{r} unreachable)')
    return "\n".join(lines) + ")\n"


@dataclass(frozen=True)
class Toolchain:
    home: Path
    node: str

    @property
    def engine(self) -> Path:
        return self.home / "engine.wasm"

    @property
    def tools(self) -> Path:
        return self.home / "tools"

    @property
    def wizer(self) -> Path:
        """The native Wizer binary of this platform (its npm package's own launcher is a node
        script whose child would outlive a timeout)."""
        arch = {"x86_64": "x64", "aarch64": "arm64", "s390x": "s390x"}.get(
            platform.machine(), platform.machine()
        )
        return self.tools / "node_modules" / "@bytecodealliance" / f"wizer-linux-{arch}" / "wizer"

    def bundle(
        self, entry: Path, outfile: Path, platform: str, cwd: Path, shim: Path
    ) -> dict[str, Any]:
        """Bundle with esbuild (shim/build.mjs); returns its JSON report."""
        job = {
            "entry": str(entry),
            "outfile": str(outfile),
            "platform": platform,
            "shim": str(shim),
            "tools": str(self.tools),
        }
        proc = subprocess.run(
            [self.node, str(SHIM_DIR / "build.mjs"), json.dumps(job)],
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=300,
            env=_tool_env(),
        )
        if proc.returncode != 0 or not proc.stdout.strip():
            raise OpenClawError(f"the bundler failed: {proc.stderr.strip()[-2000:]}")
        report: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
        # esbuild follows any import, `/home/me/.docker/config.json` or `../../x` included:
        # what the plugin bundles must come from its own folder (its node_modules within).
        root = cwd.resolve()
        for name in report.get("inputs", []):
            if not (root / name).resolve().is_relative_to(root):
                raise OpenClawError(
                    f"the plugin imports {name}, which is outside the plugin folder",
                    hint="copy what the plugin needs into its folder and import it from there",
                    code="openclaw.outside",
                )
        return report

    def preinitialize(self, script_dir: Path, output: Path) -> None:
        """Wizer: load ``script_dir/plugin.js`` into the engine and snapshot the result."""
        stubs = output.parent
        (stubs / "extism-env.wat").write_text(_wat(list(_EXTISM_KERNEL)))
        (stubs / "astrid.wat").write_text(_wat([(n, "i64", "i64") for n in HOST_FUNCTIONS]))
        wizer = self.wizer
        try:
            proc = self._preinit(wizer, script_dir, stubs, output)
        except subprocess.TimeoutExpired:
            raise OpenClawError(
                f"loading the plugin took longer than {PREINIT_SECONDS} s at build time "
                "(its top-level code or register() may loop)",
                code="openclaw.preinit",
            ) from None
        if proc.returncode != 0:
            raise OpenClawError(
                "pre-initializing the plugin failed (its top-level code threw or used a "
                f"host function while loading): {proc.stderr.strip()[-2000:]}",
                code="openclaw.preinit",
            )

    def _preinit(
        self, wizer: Path, script_dir: Path, stubs: Path, output: Path
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [
                str(wizer),
                "--allow-wasi",
                "--inherit-stdio=false",
                "--mapdir",
                f"/src::{script_dir}",
                "--preload",
                f"extism:host/env={stubs / 'extism-env.wat'}",
                "--preload",
                f"astrid={stubs / 'astrid.wat'}",
                "-r",
                "_initialize=astrid_initialized",
                "-o",
                str(output),
                str(self.engine),
            ],
            capture_output=True,
            text=True,
            timeout=PREINIT_SECONDS,
            env=_tool_env(),
        )


def _tool_env() -> dict[str, str]:
    # The build tools get a minimal environment: no credentials of the user's shell.
    keep = ("PATH", "HOME", "LANG", "TMPDIR")
    return {k: v for k, v in os.environ.items() if k in keep}


def _candidates() -> list[Path]:
    env = os.environ.get("ASTRID_OPENCLAW_HOME")
    if env:
        return [Path(env)]
    found = [parent / ".cache" / "openclaw" for parent in Path(__file__).resolve().parents]
    return [*found, Path.cwd() / ".cache" / "openclaw"]


def find_toolchain() -> Toolchain:
    node = shutil.which("node")
    if node is None:
        raise OpenClawError(
            "Node.js is not installed: the plugin bundler (esbuild) runs under node",
            hint="apt-get install nodejs (>= 18), then " + _BUILD_HINT,
        )
    for home in _candidates():
        if (home / "engine.wasm").is_file() and (home / "tools" / "node_modules").is_dir():
            return Toolchain(home=home, node=node)
    raise OpenClawError(
        "the OpenClaw engine is not built (no .cache/openclaw/engine.wasm)", hint=_BUILD_HINT
    )
