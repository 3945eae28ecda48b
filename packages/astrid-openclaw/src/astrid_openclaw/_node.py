"""Tier 2: the plugin under Node behind a small MCP adapter (filled in below)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ._plugin import OpenClawError, PluginInfo
from ._toolchain import Toolchain

__all__ = ["build_node_tier"]


def build_node_tier(
    info: PluginInfo, chain: Toolchain, work: Path, out: Path
) -> tuple[dict[str, Any], list[str]]:
    raise OpenClawError(f"{info.id} needs Tier 2 (Node), which is not built yet")
