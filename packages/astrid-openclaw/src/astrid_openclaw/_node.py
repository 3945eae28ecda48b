"""Tier 2: the plugin under Node behind a small MCP adapter (shim/entry-node.js).

Chosen when the plugin cannot be a WASM capsule (Node built-ins, channels or providers, code
the bundler or the engine refuses). The capsule's ``[[mcp_server]]`` runs
``node plugin/astrid-entry.mjs`` (plugin, dependencies and adapter bundled into that one file,
beside a copy of the plugin's own files) and the runtime launches it
like every capsule MCP server: untrusted, sandboxed (astrid-workspace confinement: bubblewrap,
Landlock, the workspace only as far as the accepted paths say), its network only through the
egress proxy to the granted hosts, its tools pinned at first use. No plugin code runs at
build time: its tools are listed by the server itself when the runtime asks (`tools/list`).
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ._plugin import OpenClawError, PluginInfo
from ._toolchain import Toolchain

__all__ = ["build_node_tier"]


def build_node_tier(
    info: PluginInfo,
    chain: Toolchain,
    work: Path,
    out: Path,
    entry: Callable[[Path, str, PluginInfo], Path],
) -> tuple[dict[str, Any], list[str]]:
    """Bundle the Node capsule into ``out/plugin/astrid-entry.mjs``; returns (a report like
    describe's, hosts)."""
    from ._compile import NODE_DIR, NODE_ENTRY, copy_shim

    (out / "plugin.wasm").unlink(missing_ok=True)
    shim = copy_shim(work)
    # The plugin's own files (not node_modules: the bundle has what it imports), so that what
    # it reads beside itself at run time (its package.json, templates) is where it expects;
    # the bundle goes next to them.
    shutil.copytree(
        info.root,
        out / NODE_DIR,
        symlinks=True,
        ignore=shutil.ignore_patterns("node_modules", ".git"),
    )
    report = chain.bundle(
        entry(shim, "entry-node.js", info), out / NODE_ENTRY, "node", info.root, shim
    )
    if not report["ok"]:
        raise OpenClawError(
            f"{info.id} cannot be bundled even for Node: {'; '.join(report['errors'])[:1500]}",
            hint="the plugin's dependencies must be installable from npm without install scripts",
        )
    described: dict[str, Any] = {
        # Names only (contracts.tools): the schemas come from the server at run time.
        "tools": [
            {"index": i, "name": name, "description": "", "parameters": {"type": "object"}}
            for i, name in enumerate(info.declared_tools)
        ],
        "warnings": ["Tier 2 serves tools only: hooks, channels and providers are not wired"],
    }
    return described, list(report["hosts"])
