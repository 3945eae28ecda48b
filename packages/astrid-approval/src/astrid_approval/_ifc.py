"""Information-flow control, kept simple (in the spirit of CaMeL and FIDES).

Each session carries a trust label. Content that comes from outside — tool results, MCP tool
results and resources, web fetches, sampled completions — *taints* it, and the label remembers
the audit entry of the action whose output did. Once a session is tainted, actions that could
carry that content out or act on it outside (*sinks*) are asked of a person, whatever the mode
and whatever allowance exists, with the prompt saying that untrusted content preceded the
request; only a capability token *with caveats* (an admin's policy grant, which says exactly
which arguments are fine) still covers a sink. Pure reads never ask because of taint.

Sinks: a network request to a host the session had not reached before it was tainted; a bash
line that runs a network program while bash has network; a call to an MCP tool that does not
declare ``readOnlyHint`` (or declares ``destructiveHint`` / ``openWorldHint``); a sub-agent
spawn; a call of a capsule tool whose capsule holds network grants; MCP sampling. The policy
file's ``[[label]]`` tables override a tool's classification (``source`` / ``sink``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from astrid_core import (
    AuditEntryId,
    CapsuleHostCall,
    DirectoryList,
    FileDelete,
    FileRead,
    FileWrite,
    JsonObject,
    LlmCall,
    McpToolCall,
    NetworkRequest,
    SensitiveAction,
    ShellCommand,
    SubAgentSpawn,
)

from ._normalize import Normalized
from ._policyfile import PolicySettings

__all__ = ["TrustLabel", "Taint", "FlowHints", "is_source", "sink_reason"]

# Programs whose whole purpose is to talk to another host.
NETWORK_PROGRAMS = frozenset(
    {
        "curl",
        "wget",
        "nc",
        "ncat",
        "netcat",
        "socat",
        "ssh",
        "scp",
        "sftp",
        "rsync",
        "telnet",
        "ftp",
        "http",
        "https",
        "xh",
        "aria2c",
    }
)


class FlowHints(Protocol):
    """What the runtime knows about tools that the interceptor cannot see in the action."""

    async def mcp_annotations(self, server: str, tool: str) -> JsonObject | None: ...


@dataclass(frozen=True, slots=True)
class Taint:
    what: str  # the action whose output tainted the session, as a person reads it
    entry: AuditEntryId | None  # its decision's audit entry (None: restored or inherited)


@dataclass
class TrustLabel:
    """One session's label: clean until untrusted content enters, then tainted for good."""

    taints: list[Taint] = field(default_factory=list[Taint])
    known_hosts: set[str] = field(default_factory=set[str])  # reached while still clean

    @property
    def tainted(self) -> bool:
        return bool(self.taints)

    def taint(self, what: str, entry: AuditEntryId | None) -> None:
        if len(self.taints) < 16:  # the first few name where it came from; the rest add nothing
            self.taints.append(Taint(what, entry))

    def reached(self, host: str) -> None:
        if not self.tainted:
            self.known_hosts.add(host)

    def copy(self) -> TrustLabel:
        return TrustLabel(list(self.taints), set(self.known_hosts))

    def audit_detail(self) -> dict[str, str]:
        first = self.taints[0]
        detail = {"tainted_by": first.what[:200]}
        if first.entry is not None:
            detail["tainted_by_entry"] = str(first.entry)
        return detail

    def prompt_reason(self) -> str:
        first = self.taints[0]
        where = f" (audit entry {first.entry})" if first.entry is not None else ""
        return (
            f"untrusted content preceded this request: the output of {first.what}{where} is in "
            "the context, and it may be steering the agent"
        )


def is_source(action: SensitiveAction, settings: PolicySettings) -> bool:
    """Whether this action's output taints the session (what it returns comes from outside)."""
    source, _ = settings.label_for(action.resource)
    if source is not None:
        return source
    # Writes and deletes return no outside content; the agent's own LLM call is not outside.
    return not isinstance(action, FileWrite | FileDelete | LlmCall)


async def sink_reason(
    action: SensitiveAction,
    normalized: Normalized,
    label: TrustLabel,
    settings: PolicySettings,
    hints: FlowHints | None,
    bash_network: bool,
    net_capsules: frozenset[str] | set[str] = frozenset(),
) -> str | None:
    """Why ``action`` is a sink (it can exfiltrate or act outside), or None for a pure read."""
    _, labelled = settings.label_for(action.resource)
    if labelled is not None:
        return f"the policy labels {action.resource} a sink" if labelled else None
    if isinstance(action, FileRead | DirectoryList | FileWrite | FileDelete | LlmCall):
        return None
    if isinstance(action, NetworkRequest):
        where = f"{action.host}:{action.port}"
        if where in label.known_hosts:
            return None
        return f"network egress to {where}, a host this session had not reached before"
    if isinstance(action, ShellCommand):
        line = normalized.shell
        if not bash_network or line is None:
            return None
        programs = {c.program for c in line.commands} & NETWORK_PROGRAMS
        if programs or line.hosts:
            what = ", ".join(sorted(programs)) or "/dev/tcp"
            return f"a command that reaches the network ({what})"
        return None
    if isinstance(action, McpToolCall):
        annotations = (
            await hints.mcp_annotations(action.server, action.tool) if hints is not None else None
        ) or {}
        if annotations.get("readOnlyHint") is True and not annotations.get("openWorldHint"):
            return None
        said = [k for k in ("destructiveHint", "openWorldHint") if annotations.get(k) is True]
        why = f" ({', '.join(said)})" if said else " (no readOnlyHint)"
        return f"MCP tool {action.server}/{action.tool} is not read-only{why}"
    if isinstance(action, SubAgentSpawn):
        return "a sub-agent spawn"
    if isinstance(action, CapsuleHostCall):
        if action.capsule in net_capsules:
            return f"capsule {action.capsule} holds network grants"
        return None
    return None
