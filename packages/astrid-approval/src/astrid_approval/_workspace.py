"""Workspace boundary: how much the agent may do on its own inside (and outside) the workspace.

* ``safe``       — ask before everything except LLM calls (seed: "ask about everything");
                   an MCP server's sampling request is asked in safe and guided mode.
* ``guided``     — reads and listings inside the workspace run without asking; anything that
                   changes state, runs a command, uses the network or leaves the workspace asks.
* ``autonomous`` — everything inside the workspace runs without asking (writes, deletes,
                   commands whose working directory is inside); outside follows escape_policy.

``escape_policy`` applies in every mode to actions outside the workspace: ``ask`` or ``deny``.
The admin policy (SecurityPolicy) still applies first, whatever the mode.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from enum import StrEnum

from astrid_core import (
    DirectoryList,
    FileDelete,
    FileRead,
    FileWrite,
    LlmCall,
    McpSampling,
    ShellCommand,
)

from ._normalize import Normalized
from ._paths import is_within_resolved

__all__ = ["WorkspaceMode", "EscapePolicy", "WorkspaceBoundary", "Placement"]


class WorkspaceMode(StrEnum):
    SAFE = "safe"
    GUIDED = "guided"
    AUTONOMOUS = "autonomous"


class EscapePolicy(StrEnum):
    ASK = "ask"
    DENY = "deny"


class Placement(StrEnum):
    AUTO = "auto"  # may run without asking
    ASK = "ask"
    DENY = "deny"


@dataclass(frozen=True)
class WorkspaceBoundary:
    root: str
    mode: WorkspaceMode = WorkspaceMode.SAFE
    escape_policy: EscapePolicy = EscapePolicy.ASK
    # Resolved once: a root re-resolved per decision would follow a symlink the agent put in
    # its place (the workspace replaced by a link to "/"), and it cost a realpath per decision.
    resolved_root: str = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "resolved_root", os.path.realpath(self.root))

    def placement(self, normalized: Normalized) -> tuple[Placement, str]:
        action = normalized.action
        if isinstance(action, LlmCall):
            return Placement.AUTO, "LLM calls are governed by the budget"
        if isinstance(action, McpSampling):
            # The server spends our budget and writes the prompt: asked per server (Allow
            # Session / Always cover that server) except in autonomous mode, where the
            # budget and [security] sampling_max_requests / sampling_max_tokens govern it.
            if self.mode is WorkspaceMode.AUTONOMOUS:
                return Placement.AUTO, "autonomous mode: sampling within the per-server cap"
            return Placement.ASK, f"{self.mode.value} mode asks before an MCP server uses the model"
        inside: bool | None = None
        if normalized.path is not None:
            inside = is_within_resolved(normalized.path, self.resolved_root)
        elif isinstance(action, ShellCommand):
            inside = is_within_resolved(os.path.realpath(action.cwd), self.resolved_root)
        if inside is False:
            if self.escape_policy is EscapePolicy.DENY:
                return (
                    Placement.DENY,
                    f"{normalized.path or 'the action'} is outside the workspace {self.root}",
                )
            return Placement.ASK, "leaves the workspace"
        if self.mode is WorkspaceMode.SAFE:
            return Placement.ASK, "safe mode asks before every action"
        is_read = isinstance(action, FileRead | DirectoryList)
        if self.mode is WorkspaceMode.GUIDED:
            if is_read and inside:
                return Placement.AUTO, "guided mode: reads inside the workspace"
            return Placement.ASK, "guided mode asks before changes, commands and network"
        # autonomous
        if inside and isinstance(
            action, FileRead | DirectoryList | FileWrite | FileDelete | ShellCommand
        ):
            return Placement.AUTO, "autonomous mode: inside the workspace"
        return Placement.ASK, "autonomous mode still asks for network, tools and sub-agents"
