"""astrid-mcp: a secure MCP client.

Server lifecycle (``McpServerManager``), one guarded connection per server
(``SecureMcpClient``), tool pinning against rug pulls, and a Landlock launcher that sandboxes
native servers. Protocol work is done by the official ``mcp`` SDK.
"""

from ._content import McpToolResult
from ._errors import (
    ExecutableHashMismatch,
    McpServerError,
    ServerStartError,
    ServerUnavailable,
    ToolChanged,
    ToolNotFound,
)
from ._launch import ENV_ALLOW_LIST, scrubbed_environment
from ._server_requests import Sampler, check_elicitation_url
from .client import McpTool, SecureMcpClient
from .config import HttpTransport, McpServerConfig, RestartPolicy, SandboxConfig, StdioTransport
from .manager import McpServerManager, ServerState, ServerStatus
from .pinning import PinReport, ToolPins, tool_fingerprint

__all__ = [
    "ENV_ALLOW_LIST",
    "ExecutableHashMismatch",
    "HttpTransport",
    "McpServerConfig",
    "McpServerError",
    "McpServerManager",
    "McpTool",
    "McpToolResult",
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
    "scrubbed_environment",
    "tool_fingerprint",
]
