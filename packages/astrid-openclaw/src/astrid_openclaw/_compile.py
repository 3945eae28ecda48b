"""Compile an OpenClaw plugin (a folder or an npm spec) into an Astrid capsule.

Tier 1 (WASM): bundle plugin + npm dependencies + the OpenClaw API shim into one script,
pre-initialize it inside the QuickJS-ng engine with Wizer (``register(api)`` runs at build
time, in the sandboxed engine, with no host function available), ask the snapshot which tools
and hooks it registered, and write a Capsule.toml whose ``[capabilities]`` are derived from
the plugin (the http hosts its code names, its config), one ``[[tool]]`` per tool with its
JSON Schema. Tier 2 (Node): when the plugin needs Node (built-ins, channels, providers, code
the bundler or the engine cannot take), the same shim runs under Node behind a small MCP
adapter as the capsule's ``[[mcp_server]]``, confined like every MCP server.

The compiler never runs plugin code outside a sandbox: npm install runs with scripts
disabled; the only code execution is inside the WASM engine (Wizer, then extism).
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import subprocess
import tarfile
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from astrid_crypto import hash_file

from ._plugin import OpenClawError, PluginInfo, is_openclaw_plugin, read_plugin
from ._toml import toml_value
from ._toolchain import SHIM_DIR, Toolchain, find_toolchain

__all__ = ["CompileResult", "compile_plugin", "prepare_source", "build_capsule_dir"]

log = logging.getLogger("astrid.openclaw")
Tier = Literal["wasm", "node"]
MAX_TOOLS = 32  # engine.c exports tool_0 .. tool_31
HOOK_EVENTS = ("BeforeToolCall", "AfterToolCall", "UserPrompt", "SessionStart", "SessionEnd")
NODE_DIR = "plugin"
NODE_ENTRY = "plugin/astrid-entry.mjs"
_URL_HOST = re.compile(r"\bhttps?://([A-Za-z0-9.-]+|\[[0-9a-fA-F:]+\])")


@dataclass
class CompileResult:
    """What the compiler chose and produced; ``notes`` are shown to the user."""

    plugin: PluginInfo
    tier: Tier
    reason: str
    capsule_dir: Path
    tools: list[dict[str, Any]] = field(default_factory=list[dict[str, Any]])
    hosts: list[str] = field(default_factory=list[str])
    hooks: list[str] = field(default_factory=list[str])
    notes: list[str] = field(default_factory=list[str])
    wasm_bytes: int = 0


# ---------------------------------------------------------------------- source


def _safe_extract(archive: Path, target: Path) -> None:
    with tarfile.open(archive, "r:gz") as tar:
        tar.extractall(target, filter="data")  # no traversal, links or devices


def _npm(args: list[str], cwd: Path, what: str) -> str:
    proc = subprocess.run(
        ["npm", *args, "--ignore-scripts", "--no-audit", "--no-fund"],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=600,
    )
    if proc.returncode != 0:
        raise OpenClawError(
            f"{what} failed: {proc.stderr.strip()[-1500:]}",
            hint="check the npm name and version (`npm view NAME versions`) and the registry",
        )
    return proc.stdout


def _refuse_links_out(root: Path) -> None:
    """A plugin folder from elsewhere may hold a link to ~/.ssh/id_ed25519: the bundler would
    follow it into the capsule, where the plugin could send it anywhere it may reach."""
    real_root = root.resolve()
    for link in (p for p in root.rglob("*") if p.is_symlink()):
        if not link.resolve().is_relative_to(real_root):
            raise OpenClawError(
                f"{link.relative_to(root)} in the plugin is a link to {os.readlink(link)}, "
                "outside the plugin folder",
                hint="copy what the plugin needs into its folder instead of linking to it",
                code="openclaw.link",
            )


def prepare_source(source: str, work: Path) -> Path:
    """Copy the plugin (a folder, or an npm spec fetched with `npm pack`) into ``work/plugin``
    and install its npm dependencies with install scripts disabled."""
    target = work / "plugin"
    path = Path(source)
    if path.is_dir():
        if not is_openclaw_plugin(path):
            raise OpenClawError(f"{path} is not an OpenClaw plugin folder")
        shutil.copytree(
            path, target, symlinks=True, ignore=shutil.ignore_patterns(".git", "node_modules")
        )
        _refuse_links_out(target)
    else:
        if path.exists() or source.startswith((".", "/")):
            raise OpenClawError(f"{source}: neither a plugin folder nor an npm package name")
        packed = work / "packed"
        packed.mkdir()
        out = _npm(["pack", source, "--json", "--pack-destination", str(packed)], work, "npm pack")
        try:
            filename = json.loads(out)[0]["filename"]
        except (ValueError, KeyError, IndexError) as exc:
            raise OpenClawError(f"npm pack {source}: unexpected output {out[:200]!r}") from exc
        unpacked = work / "unpacked"
        _safe_extract(packed / Path(filename).name, unpacked)
        shutil.move(unpacked / "package", target)
    info = read_plugin(target)
    deps = {k: v for k, v in info.dependencies.items() if k != "openclaw"}
    if deps:
        _npm(
            ["install", "--omit=dev", "--omit=peer", "--no-package-lock", "--install-links"],
            target,
            f"npm install of {', '.join(sorted(deps))}",
        )
    return target


# ---------------------------------------------------------------------- tiers


def copy_shim(work: Path) -> Path:
    shim = work / "shim"
    if shim.is_dir():
        return shim
    shutil.copytree(SHIM_DIR, shim, ignore=shutil.ignore_patterns("__pycache__", "*.py"))
    return shim


def _entry(shim: Path, template: str, info: PluginInfo) -> Path:
    meta = {
        "id": info.id,
        "name": info.name,
        "version": info.version,
        "description": info.description,
        "configDefaults": config_defaults(info.config_schema),
    }
    text = (shim / template).read_text()
    text = text.replace('"__ASTRID_PLUGIN__"', json.dumps(str(info.entry)))
    text = text.replace("__ASTRID_META__", json.dumps(meta))
    entry = shim / f"entry-{info.capsule_name}.js"
    entry.write_text(text)
    return entry


def _describe(wasm: bytes, workspace: Path) -> dict[str, Any]:
    """Ask the pre-initialized snapshot what it registered, inside the WASM sandbox with no
    grant at all (every host call is refused)."""
    import anyio

    from astrid_capsule.wasm import HostContext, HostGrants, WasmCapsule, WasmLimits
    from astrid_core import Authorization, DenialLayer, SensitiveAction

    class _DenyAll:
        async def authorize(self, action: SensitiveAction, reason: str) -> Authorization:
            return Authorization.deny(DenialLayer.POLICY, "no host call at build time")

    async def run() -> bytes:
        context = HostContext(
            capsule="openclaw-build",
            workspace=workspace,
            grants=HostGrants(),
            guard=_DenyAll(),
            limits=WasmLimits(timeout_seconds=10.0),
        )
        plugin = await anyio.to_thread.run_sync(
            lambda: WasmCapsule("openclaw-build", wasm, context, wasi=True)
        )
        try:
            return await plugin.call("describe", b"")
        finally:
            plugin.close()

    # In a thread of its own: the compiler is synchronous and may be called from async code.
    answer: list[bytes] = []
    failure: list[BaseException] = []

    def worker() -> None:
        try:
            answer.append(anyio.run(run))
        except BaseException as exc:
            failure.append(exc)

    thread = threading.Thread(target=worker, name="openclaw-describe")
    thread.start()
    thread.join()
    if failure:
        raise OpenClawError(
            f"the pre-initialized plugin does not answer describe: {failure[0]}",
            code="openclaw.describe",
        ) from failure[0]
    report: dict[str, Any] = json.loads(answer[0])
    return report


def _wasm_tier(
    info: PluginInfo, chain: Toolchain, work: Path, out: Path
) -> tuple[str | None, dict[str, Any], list[str]]:
    """Try Tier 1; returns (reason it cannot be used, describe report, hosts)."""
    if info.channels or info.providers:
        kinds = [k for k, v in (("channels", info.channels), ("providers", info.providers)) if v]
        return f"its manifest declares {' and '.join(kinds)}, which need a Node process", {}, []
    shim = copy_shim(work)
    src = work / "src"
    src.mkdir()
    report = chain.bundle(
        _entry(shim, "entry-wasm.js", info), src / "plugin.js", "wasm", info.root, shim
    )
    if not report["ok"]:
        return f"esbuild cannot bundle it for WASM: {'; '.join(report['errors'])[:500]}", {}, []
    if report["builtins"]:
        return f"it imports Node built-ins: {', '.join(report['builtins'])}", {}, []
    wasm_path = out / "plugin.wasm"
    try:
        chain.preinitialize(src, wasm_path)
    except OpenClawError as exc:
        return f"it does not load in the WASM engine: {exc.message[:500]}", {}, []
    described = _describe(wasm_path.read_bytes(), work)
    plugin = described.get("plugin") or {}
    if plugin.get("loadError"):
        wasm_path.unlink()
        first = str(plugin["loadError"]).strip().splitlines()[0][:300]
        return f"register(api) failed in the WASM engine: {first}", {}, []
    if described.get("unsupported"):
        wasm_path.unlink()
        kinds = sorted({u["kind"] for u in described["unsupported"]})
        return f"it registers {', '.join(kinds)}, which need a Node process", {}, []
    if len(described.get("tools", [])) > MAX_TOOLS:
        wasm_path.unlink()
        return f"it registers more than {MAX_TOOLS} tools, the engine's limit", {}, []
    return None, described, list(report["hosts"])


# ---------------------------------------------------------------------- Capsule.toml


def config_defaults(schema: dict[str, Any]) -> dict[str, Any]:
    props = schema.get("properties")
    if not isinstance(props, dict):
        return {}
    return {
        str(k): v["default"]
        for k, v in props.items()  # pyright: ignore[reportUnknownVariableType]
        if isinstance(v, dict) and "default" in v
    }


def config_hosts(schema: dict[str, Any]) -> set[str]:
    """Hosts named by URL defaults of the config schema (e.g. a server URL): the plugin
    reaches them unless the user configures another."""
    hosts: set[str] = set()
    for value in config_defaults(schema).values():
        if isinstance(value, str):
            hosts |= {m.lower().rstrip(".") for m in _URL_HOST.findall(value)}
    return hosts


def _manifest_text(
    info: PluginInfo,
    tier: Tier,
    reason: str,
    tools: list[dict[str, Any]],
    hosts: list[str],
    hooks: list[str],
    wasm_hash: str | None,
) -> str:
    title = "Tier 1: WASM" if tier == "wasm" else "Tier 2: Node MCP server"
    lines = [
        f"# Compiled from the OpenClaw plugin {info.id} {info.version} by astrid-openclaw",
        f"# ({title}: {' '.join(reason.split())[:300]}).",
        "[package]",
        f"name = {toml_value(info.capsule_name)}",
        f"version = {toml_value(info.capsule_version)}",
        f"description = {toml_value(info.description or f'OpenClaw plugin {info.id}')}",
        "",
    ]
    if tier == "wasm":
        lines += ["[component]", 'entrypoint = "plugin.wasm"', f'hash = "{wasm_hash}"']
        lines += ["wasi = true", ""]
    # Tier 2 gets its config in the server's environment ([[mcp_server]] env) instead.
    has_config = tier == "wasm" and bool(info.config_schema.get("properties"))
    lines += ["[capabilities]", f"net = {toml_value(sorted(hosts))}"]
    if has_config:
        lines.append('config = ["plugin_config"]')
    lines.append("")
    if has_config:
        # api.pluginConfig: the schema's defaults; edit before `astrid capsule compile DIR`.
        lines += [
            "[config]",
            f"plugin_config = {toml_value(json.dumps(config_defaults(info.config_schema)))}",
            "",
        ]
    if tier == "node":
        env = {"ASTRID_OPENCLAW_CONFIG": json.dumps(config_defaults(info.config_schema))}
        lines += [
            "[[mcp_server]]",
            'id = "openclaw"',
            'command = "node"',
            f"args = [{toml_value(NODE_ENTRY)}]",
            f"env = {toml_value(env)}",
            "",
        ]
    for tool in tools:
        lines += [
            "[[tool]]",
            f"name = {toml_value(tool['name'])}",
            f"description = {toml_value(tool['description'] or tool['name'])}",
            f'export = "tool_{tool["index"]}"',
            f"input_schema = {toml_value(tool['parameters'])}",
            "",
        ]
    for event in hooks:
        lines += ["[[interceptor]]", f"event = {toml_value(event)}", f'export = "hook_{event}"', ""]
    return "\n".join(lines)


def _check_tools(described: dict[str, Any], info: PluginInfo) -> list[str]:
    notes: list[str] = []
    names = [t["name"] for t in described.get("tools", [])]
    seen: set[str] = set()
    for t in described.get("tools", []):
        if not isinstance(t.get("parameters"), dict):
            t["parameters"] = {"type": "object"}
        # A [[tool]] name is 1-64 of [A-Za-z0-9_-]; the export is by index, so a renamed tool
        # still runs the plugin's own.
        name = re.sub(r"[^A-Za-z0-9_-]", "_", str(t["name"]))[:64] or "tool"
        while name in seen:
            name = f"{name[:60]}_{t['index']}"
        seen.add(name)
        if name != t["name"]:
            notes.append(f"tool {t['name']!r} is named {name!r} in the capsule")
            t["name"] = name
    missing = [n for n in info.declared_tools if n not in names]
    if missing:
        notes.append(f"contracts.tools names tools the plugin did not register: {missing}")
    for w in described.get("warnings", []):
        notes.append(str(w))
    for entry in described.get("logs", []):
        notes.append(f"plugin log ({entry.get('level')}): {entry.get('message')}")
    return notes


def build_capsule_dir(
    source: str,
    out: Path,
    *,
    tier: Tier | None = None,
    toolchain: Toolchain | None = None,
) -> CompileResult:
    """Compile ``source`` into the capsule folder ``out`` (created; must not exist)."""
    chain = toolchain or find_toolchain()
    out.mkdir(parents=True)
    with tempfile.TemporaryDirectory(prefix="astrid-openclaw-") as tmp:
        work = Path(tmp)
        root = prepare_source(source, work)
        info = read_plugin(root)
        reason: str | None
        described: dict[str, Any] = {}
        hosts: list[str] = []
        if tier == "node":
            reason = 'Tier 2 was asked for (tier="node")'
        else:
            reason, described, hosts = _wasm_tier(info, chain, work, out)
            if reason is not None and tier == "wasm":
                raise OpenClawError(
                    f"{info.id} cannot run as WASM: {reason}",
                    hint="leave tier unset to let the compiler choose Tier 2 (Node)",
                )
        if reason is None:
            chosen: Tier = "wasm"
            why = "pure JavaScript/TypeScript that bundles into one script without Node built-ins"
        else:
            from ._node import build_node_tier

            chosen = "node"
            why = reason
            described, hosts = build_node_tier(info, chain, work, out, _entry)
        hosts = sorted(set(hosts) | config_hosts(info.config_schema))
        notes = _check_tools(described, info)
        tools: list[dict[str, Any]] = described.get("tools", [])
        hooks: list[str] = [h for h in described.get("hooks", []) if h in HOOK_EVENTS]
        wasm = out / "plugin.wasm"
        digest = hash_file(wasm).hex if chosen == "wasm" else None
        (out / "Capsule.toml").write_text(
            _manifest_text(info, chosen, why, tools, hosts, hooks, digest)
        )
        shutil.copy2(root / "package.json", out / "openclaw-package.json")
        if (root / "openclaw.plugin.json").is_file():
            shutil.copy2(root / "openclaw.plugin.json", out / "openclaw.plugin.json")
        return CompileResult(
            plugin=info,
            tier=chosen,
            reason=why,
            capsule_dir=out,
            tools=tools,
            hosts=sorted(hosts),
            hooks=hooks,
            notes=notes,
            wasm_bytes=wasm.stat().st_size if wasm.is_file() else 0,
        )


def compile_plugin(
    source: str,
    output: Path | None = None,
    *,
    tier: Tier | None = None,
    sign_with: Any = None,
) -> tuple[CompileResult, Path, str]:
    """Compile and pack: returns (result, archive path, content hash hex). The result's
    folders (``capsule_dir``, ``plugin.root``) were temporary and are gone: the archive is
    what remains."""
    from astrid_capsule.install import compile_capsule

    with tempfile.TemporaryDirectory(prefix="astrid-openclaw-out-") as tmp:
        result = build_capsule_dir(source, Path(tmp) / "capsule", tier=tier)
        info = result.plugin
        target = output or Path(f"{info.capsule_name}-{info.capsule_version}.capsule")
        digest = compile_capsule(result.capsule_dir, target, sign_with=sign_with)
    return result, target, digest.hex
