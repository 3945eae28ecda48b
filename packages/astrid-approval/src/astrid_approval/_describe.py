"""What each approval option grants, in words, derived from the grant it would mint.

A person choosing "Allow Session" must know exactly what the signed allowance will cover; a
label alone ("Allow Session") says nothing about the pattern or the lifetime. The texts here
are built from the same objects the interceptor stores — the :class:`Allowance` draft for
Session/Workspace, the token's pattern, permission and TTL for Always — so a description cannot
promise less than the grant allows.
"""

from __future__ import annotations

import json
from collections.abc import Callable

from astrid_capabilities import ResourcePattern
from astrid_core import (
    ApprovalOption,
    CapsuleHostCall,
    JsonObject,
    McpToolCall,
    NetworkRequest,
    Permission,
    SensitiveAction,
    ShellCommand,
)

from ._allowances import Allowance, AllowanceKind, command_set, decode_commands
from ._shell import CommandKey, ParsedLine

__all__ = [
    "action_preview",
    "describe_allowance",
    "describe_always",
    "describe_pattern",
    "human_duration",
    "shell_preview",
]

_VERBS: dict[str, str] = {
    Permission.READ.value: "read",
    Permission.WRITE.value: "write",
    Permission.DELETE.value: "delete",
    Permission.LIST.value: "list",
    Permission.EXECUTE.value: "run",
    Permission.INVOKE.value: "call",
    Permission.NETWORK.value: "connect",
    Permission.SPAWN.value: "start",
    Permission.SPEND.value: "spend on",
}


def human_duration(seconds: int) -> str:
    """``3600`` -> ``1 h``; ``90`` -> ``90 s``; ``86400`` -> ``1 day``; ``129600`` -> ``36 h``."""
    if seconds % 86400 == 0 and seconds >= 86400:
        days = seconds // 86400
        return f"{days} day{'s' * (days != 1)}"
    if seconds % 3600 == 0 and seconds >= 3600:
        return f"{seconds // 3600} h"
    if seconds % 60 == 0 and seconds >= 60:
        return f"{seconds // 60} min"
    return f"{seconds} s"


def describe_pattern(pattern: str, permission: str) -> str:
    """What a resource pattern with one permission covers, e.g. ``bash running `ls` …``."""
    parsed = ResourcePattern(pattern)
    if not parsed.exact:
        return f"{_VERBS.get(permission, permission)} anything matching the pattern `{pattern}`"
    uri = parsed.literal_prefix
    scheme, _, rest = uri.partition("://")
    if scheme == "cmd":
        # A token from before command sets (``cmd://<program>``): it covers no shell line now.
        return f"`bash` lines of the program `{rest}` (an old grant: it covers no line now)"
    if scheme == "mcp":
        return f"MCP tool `{rest}` with any arguments"
    if scheme == "capsule":
        capsule, _, function = rest.partition("/")
        return f"capsule `{capsule}` calling host function `{function}` with any arguments"
    if scheme == "net":
        return f"network connections to `{rest}`"
    if scheme == "llm":
        return f"model calls to `{rest}`"
    return f"exactly `{uri}` {_VERBS.get(permission, permission)}"


def describe_commands(keys: frozenset[CommandKey]) -> str:
    """What a bash grant covers: exactly these simple commands (with their assignments,
    redirections and directory), a later line only if every command of it is one of them."""
    import shlex

    shown: list[str] = []
    for assignments, argv, redirects, cwds in sorted(keys):
        text = " ".join([*assignments, shlex.join(argv), *redirects])
        if cwds and cwds != (".",):
            text += f" (in {', '.join(cwds)})"
        shown.append(f"`{text}`")
    if not shown:
        return "`bash` running nothing (this line cannot be granted)"
    return "`bash` running exactly " + ", ".join(shown) + " and nothing else"


def describe_allowance(allowance: Allowance) -> str:
    """The option text for an allowance, from the allowance itself."""
    if allowance.kind == AllowanceKind.COMMAND_SET:
        what = describe_commands(decode_commands(allowance.resource))
    else:
        what = describe_pattern(allowance.resource, allowance.permission)
    if allowance.scope == "session":
        return f"Allow for this session and its sub-agents: {what}"
    return f"Allow in this workspace (`{allowance.workspace}`, every session, no expiry): {what}"


def describe_always(
    pattern: ResourcePattern,
    permission: str,
    ttl_seconds: int,
    action: SensitiveAction | None = None,
) -> str:
    """The option text for the persistent capability token "Allow Always" issues (for a shell
    line, the token's resource is a digest of the line's exact command set: named here)."""
    if isinstance(action, ShellCommand):
        what = describe_commands(command_set(action) or frozenset())
    else:
        what = describe_pattern(pattern.pattern, permission)
    return f"Always ({human_duration(ttl_seconds)}, every session and workspace): {what}"


ONCE = "Allow once: this call only; nothing is kept"
DENY = "Deny: the call does not run; the model is told it was denied"


def fixed_description(option: ApprovalOption) -> str | None:
    if option is ApprovalOption.ALLOW_ONCE:
        return ONCE
    if option is ApprovalOption.DENY:
        return DENY
    return None


def action_preview(
    action: SensitiveAction, redact: Callable[[JsonObject], object] | None = None
) -> str:
    """What will happen, for the approval prompt: the full arguments of a tool or capsule
    call as indented JSON (``redact`` masks secret values first, by name and by shape), the
    command line and its directory for bash. Empty when the summary already says everything
    (a file path, a delete). Callers redact the text as a whole too."""
    if isinstance(action, McpToolCall | CapsuleHostCall):
        args = redact(action.args) if redact is not None else action.args
        return json.dumps(args, indent=2, ensure_ascii=False, sort_keys=True)
    if isinstance(action, ShellCommand):
        return f"$ {action.command}\n(in {action.cwd})"
    if isinstance(action, NetworkRequest):
        return f"{action.method.upper()} {action.url}"
    return ""


def shell_preview(action: ShellCommand, parsed: ParsedLine | None) -> str:
    """A command line as the policy parsed it: each simple command that will run (wrappers
    such as ``env``/``sudo`` named), the files it redirects into, and what the parser could not
    determine (such a line is never auto-allowed)."""
    lines = [f"$ {action.command}", f"(in {action.cwd})"]
    if parsed is None:
        return "\n".join(lines)
    runs: list[str] = []
    for command in parsed.commands:
        shown = " ".join(command.argv) or command.program
        runs.append(f"{shown} (via {', '.join(command.via)})" if command.via else shown)
    if len(runs) > 1 or (runs and runs[0] != action.command.strip()):
        lines.append("runs: " + " · ".join(runs))
    if parsed.redirect_targets:
        lines.append("writes to: " + ", ".join(parsed.redirect_targets))
    if parsed.opaque_reasons:
        lines.append("cannot be fully determined: " + "; ".join(parsed.opaque_reasons))
    return "\n".join(lines)
