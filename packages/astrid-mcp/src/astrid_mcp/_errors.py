"""Errors of the MCP layer, each a subclass of the astrid-core error a caller already handles."""

from __future__ import annotations

from astrid_core import AstridError, PolicyDenied, VerificationError

__all__ = [
    "McpServerError",
    "ServerStartError",
    "ServerUnavailable",
    "ExecutableHashMismatch",
    "ToolChanged",
    "ToolNotFound",
]


class McpServerError(AstridError):
    """A server misbehaved or could not be reached; the manager and other servers carry on."""

    code = "mcp.server"


class ServerStartError(McpServerError):
    code = "mcp.start_failed"
    default_hint = "run the server's command by hand to see why it fails, then fix [[servers]]"


class ServerUnavailable(McpServerError):
    code = "mcp.unavailable"
    default_hint = "the server is stopped or crashed; `astrid servers status` shows why"


class ToolNotFound(McpServerError, LookupError):
    code = "mcp.tool_not_found"
    default_hint = "list the server's tools; the name is case-sensitive"


class ExecutableHashMismatch(VerificationError):
    code = "mcp.hash_mismatch"
    default_hint = (
        "the executable changed since its hash was configured; inspect it, then update"
        " `blake3` in [[servers]] (astrid servers hash NAME prints the current one)"
    )


class ToolChanged(PolicyDenied):
    """A pinned tool's name, description or schema changed: a possible rug pull."""

    code = "mcp.tool_changed"
    default_hint = (
        "review the change, then re-approve the tool (astrid servers approve SERVER TOOL)"
    )
