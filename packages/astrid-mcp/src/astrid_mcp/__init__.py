"""astrid-mcp: a secure MCP client.

Server lifecycle (``McpServerManager``), one guarded connection per server
(``SecureMcpClient``) and tool pinning against rug pulls; native servers are confined by
``astrid_workspace``. Protocol work is done by the official ``mcp`` SDK.

Names are loaded on first use (PEP 562): the config models must not
cost an import of the mcp SDK (~2 s) to callers that only need them.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._content import McpToolResult
    from ._errors import (
        ExecutableHashMismatch,
        McpServerError,
        ServerStartError,
        ServerUnavailable,
        ToolChanged,
        ToolNotFound,
    )
    from ._server_requests import Sampler, check_elicitation_url
    from .client import McpTool, SecureMcpClient
    from .config import (
        HttpTransport,
        McpServerConfig,
        OAuthConfig,
        RestartPolicy,
        SandboxConfig,
        StdioTransport,
    )
    from .manager import McpServerManager, ServerState, ServerStatus
    from .oauth import (
        OAuthError,
        OAuthLoginRequired,
        OAuthLoginTimeout,
        OAuthTokenStore,
        oauth_provider,
    )
    from .pinning import PinReport, ToolPins, tool_fingerprint

_LAZY = {
    "ExecutableHashMismatch": "._errors",
    "HttpTransport": ".config",
    "McpServerConfig": ".config",
    "McpServerError": "._errors",
    "McpServerManager": ".manager",
    "McpTool": ".client",
    "McpToolResult": "._content",
    "OAuthConfig": ".config",
    "OAuthError": ".oauth",
    "OAuthLoginRequired": ".oauth",
    "OAuthLoginTimeout": ".oauth",
    "OAuthTokenStore": ".oauth",
    "PinReport": ".pinning",
    "RestartPolicy": ".config",
    "Sampler": "._server_requests",
    "SandboxConfig": ".config",
    "SecureMcpClient": ".client",
    "ServerStartError": "._errors",
    "ServerState": ".manager",
    "ServerStatus": ".manager",
    "ServerUnavailable": "._errors",
    "StdioTransport": ".config",
    "ToolChanged": "._errors",
    "ToolNotFound": "._errors",
    "ToolPins": ".pinning",
    "check_elicitation_url": "._server_requests",
    "oauth_provider": ".oauth",
    "tool_fingerprint": ".pinning",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value


__all__ = [
    "ExecutableHashMismatch",
    "HttpTransport",
    "McpServerConfig",
    "McpServerError",
    "McpServerManager",
    "McpTool",
    "McpToolResult",
    "OAuthConfig",
    "OAuthError",
    "OAuthLoginRequired",
    "OAuthLoginTimeout",
    "OAuthTokenStore",
    "PinReport",
    "RestartPolicy",
    "Sampler",
    "SandboxConfig",
    "SecureMcpClient",
    "ServerStartError",
    "ServerState",
    "ServerStatus",
    "ServerUnavailable",
    "StdioTransport",
    "ToolChanged",
    "ToolNotFound",
    "ToolPins",
    "check_elicitation_url",
    "oauth_provider",
    "tool_fingerprint",
]
