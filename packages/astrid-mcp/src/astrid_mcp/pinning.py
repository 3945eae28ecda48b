"""Tool pinning: trust on first sight, then refuse silent changes ("rug pulls").

The first time a server lists a tool we store a BLAKE3 fingerprint of everything the model and
the policy see about it. If a later listing differs, the tool is disabled until a human
re-approves the new version. Pins are keyed by server name and persisted in astrid-core storage,
so a restart cannot be used to launder a change.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

from astrid_core import JsonObject
from astrid_core.storage import Storage

from ._digest import json_digest

__all__ = ["ToolPins", "PinReport", "PinnedTool", "tool_fingerprint"]

NAMESPACE = "mcp_tool_pins"


def tool_fingerprint(tool: JsonObject) -> str:
    """Hash of a tool's name, description, schemas and annotations.

    Annotations are included because a flip of ``readOnlyHint`` or ``destructiveHint`` can
    change how a policy treats the tool just as much as a new description can.
    """
    pinned = {
        key: tool.get(key)
        for key in ("name", "title", "description", "inputSchema", "outputSchema", "annotations")
    }
    return json_digest(pinned)[0]


@dataclass(frozen=True)
class PinnedTool:
    server: str
    tool: str
    fingerprint: str
    pinned_at: str
    description: str


@dataclass
class PinReport:
    new: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    # Tools whose change is still waiting for a human: disabled.
    disabled: dict[str, str] = field(default_factory=dict)


class ToolPins:
    def __init__(self, storage: Storage) -> None:
        self._storage = storage

    @staticmethod
    def _key(server: str, tool: str) -> str:
        # Names cannot contain "/" (astrid_core.Name), so this key is unambiguous.
        return f"{server}/{tool}"

    async def get(self, server: str, tool: str) -> PinnedTool | None:
        raw = await self._storage.get(NAMESPACE, self._key(server, tool))
        if not isinstance(raw, dict):
            return None
        return PinnedTool(
            server=server,
            tool=tool,
            fingerprint=str(raw["fingerprint"]),
            pinned_at=str(raw["pinned_at"]),
            description=str(raw.get("description", "")),
        )

    async def pin(self, server: str, tool: JsonObject) -> PinnedTool:
        name = str(tool["name"])
        record = PinnedTool(
            server=server,
            tool=name,
            fingerprint=tool_fingerprint(tool),
            pinned_at=datetime.now(UTC).isoformat(),
            description=str(tool.get("description") or ""),
        )
        await self._storage.put(
            NAMESPACE,
            self._key(server, name),
            {
                "fingerprint": record.fingerprint,
                "pinned_at": record.pinned_at,
                "description": record.description,
            },
        )
        return record

    async def check(self, server: str, tools: list[JsonObject]) -> PinReport:
        """Compare a listing with the pins; pin new tools; report changed ones (not re-pinned)."""
        report = PinReport()
        for tool in tools:
            name = str(tool["name"])
            pinned = await self.get(server, name)
            if pinned is None:
                await self.pin(server, tool)
                report.new.append(name)
            elif pinned.fingerprint != tool_fingerprint(tool):
                report.changed.append(name)
                report.disabled[name] = pinned.fingerprint
            else:
                report.unchanged.append(name)
        return report

    async def forget_server(self, server: str) -> int:
        removed = 0
        for key, _ in await self._storage.scan(NAMESPACE, prefix=f"{server}/"):
            removed += await self._storage.delete(NAMESPACE, key)
        return removed
