"""OpenClaw plugins as Astrid capsules: Tier 1 (QuickJS-ng in WASM, pre-initialized with
Wizer) or Tier 2 (Node behind an MCP adapter, confined like every MCP server)."""

from ._compile import CompileResult, build_capsule_dir, compile_plugin, prepare_source
from ._plugin import OpenClawError, PluginInfo, is_openclaw_plugin, read_plugin
from ._toolchain import Toolchain, find_toolchain

__all__ = [
    "compile_plugin",
    "build_capsule_dir",
    "prepare_source",
    "CompileResult",
    "is_openclaw_plugin",
    "read_plugin",
    "PluginInfo",
    "OpenClawError",
    "Toolchain",
    "find_toolchain",
]
