"""The Tool protocol: a tool turns arguments into the SensitiveAction to authorize, then runs.

Authorization happens in the agent loop, between ``action()`` and ``run()``, through the
SecurityInterceptor — tools never decide for themselves. A tool must act on exactly what it
authorized (``action()`` resolves relative paths once; ``run()`` uses that resolved path).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, Protocol

from astrid_approval import SecurityPolicy
from astrid_core import BadInputError, JsonObject, SensitiveAction, SessionId

__all__ = [
    "Tool",
    "ToolContext",
    "ToolRegistry",
    "cap_output",
    "truncation_marker",
    "MAX_OUTPUT_CHARS",
    "resolve_path",
    "require",
]

MAX_OUTPUT_CHARS = 30_000


def truncation_marker(what: str) -> str:
    """The one marker every tool appends when it shows less than there is."""
    return f"\n[... output truncated: {what} not shown ...]"


def cap_output(text: str, limit: int = MAX_OUTPUT_CHARS) -> str:
    """At most ``limit`` characters of ``text`` (its head), plus a marker saying what was cut."""
    if len(text) <= limit:
        return text
    return text[:limit] + truncation_marker(f"{len(text) - limit:,} more characters")


@dataclass
class ToolContext:
    workspace: str
    session_id: SessionId
    cwd: str = ""
    env_allow: tuple[str, ...] = ()
    bash_timeout_seconds: float = 120.0
    sandbox_bash: bool = False  # the runtime turns it on from security.sandbox_bash
    bash_network: bool = True  # security.bash_network: False denies the shell every TCP socket
    # Directories outside the workspace the sandboxed shell may read and write (declared by
    # the user, e.g. a shared build cache); everything else outside stays out of reach.
    sandbox_paths: tuple[str, ...] = ()
    # security.sandbox ("bwrap" or the weaker "landlock") and security.sandbox_home_entries;
    # egress: the running egress proxy (astrid_workspace.EgressProxy) that gives bash commands
    # their network when bash_network is on; None: no proxy.
    sandbox_mode: str = "bwrap"
    sandbox_home_entries: tuple[str, ...] = ()
    egress: Any = None
    egress_allow: tuple[str, ...] = ()  # security.egress_allow: exact private host:port pairs
    extra: dict[str, Any] = field(default_factory=dict[str, Any])
    # The session's policy, for what a single decision cannot cover: the files a grep/glob/
    # list walk visits (denied ones are skipped) and hard links met at use. None: built-in
    # defaults (never "nothing is denied").
    path_policy: SecurityPolicy | None = None

    def __post_init__(self) -> None:
        # Resolved once here: actions carry these paths and must name what they point at.
        self.workspace = os.path.realpath(self.workspace)
        self.cwd = os.path.realpath(self.cwd) if self.cwd else self.workspace


def require(args: JsonObject, name: str, kind: type = str) -> Any:
    value = args.get(name)
    if not isinstance(value, kind) or (kind is str and not value):
        raise BadInputError(f"argument {name!r} must be a non-empty {kind.__name__}")
    return value


def resolve_path(raw: str, ctx: ToolContext) -> str:
    if "\x00" in raw:
        raise BadInputError("path contains a NUL byte")
    expanded = os.path.expanduser(raw) if raw.startswith("~") else raw
    joined = expanded if os.path.isabs(expanded) else os.path.join(ctx.cwd, expanded)
    for _ in range(3):
        try:
            return os.path.realpath(joined)
        except OSError:  # a component flipped between lstat and readlink: look again
            continue
    raise BadInputError(
        f"{raw} keeps changing while it is being resolved (a symbolic link is being swapped)",
        hint="try again once nothing else is modifying that path",
    )


class Tool(Protocol):
    # Built-in tools set these on the class, MCP adapters per instance.
    name: str
    description: str
    input_schema: dict[str, Any]

    def action(self, args: JsonObject, ctx: ToolContext) -> SensitiveAction: ...

    async def run(self, args: JsonObject, action: SensitiveAction, ctx: ToolContext) -> str: ...


class ToolRegistry:
    def __init__(self, tools: list[Tool]) -> None:
        self._tools = {t.name: t for t in tools}

    def get(self, name: str) -> Tool | None:
        return self._tools.get(name)

    def add(self, tool: Tool) -> None:
        self._tools[tool.name] = tool

    def remove(self, name: str) -> None:
        self._tools.pop(name, None)

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(self._tools.values())

    def names(self) -> list[str]:
        return sorted(self._tools)
