from __future__ import annotations

import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest

from astrid_core import (
    ActionBase,
    Authorization,
    AuthorizationProof,
    DenialLayer,
    McpToolCall,
    ProofKind,
)
from astrid_mcp import McpServerConfig

SERVERS = Path(__file__).parent / "servers"
LAB = SERVERS / "lab_server.py"
BROKEN = SERVERS / "broken_servers.py"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class RuleGuard:
    """A Guard for this package's tests: allows everything except the named tools.

    The real Guard (astrid-approval's SecurityInterceptor) is exercised with these servers in
    the root tests; here we only need to see what the client asks and whether it obeys.
    """

    def __init__(self, deny_tools: Iterable[str] = (), *, deny_llm: bool = False) -> None:
        self.deny_tools = set(deny_tools)
        self.deny_llm = deny_llm
        self.seen: list[ActionBase] = []

    async def authorize(self, action: Any, reason: str) -> Authorization:
        self.seen.append(action)
        denied = (isinstance(action, McpToolCall) and action.tool in self.deny_tools) or (
            self.deny_llm and action.kind in ("llm_call", "mcp_sampling")
        )
        if denied:
            return Authorization.deny(DenialLayer.POLICY, f"test policy refuses {action.resource}")
        return Authorization.allow(AuthorizationProof(kind=ProofKind.POLICY, detail="test"))


def lab_config(state: Path, name: str = "lab", **overrides: Any) -> McpServerConfig:
    fields: dict[str, Any] = {
        "name": name,
        "command": sys.executable,
        "args": [str(LAB)],
        "env": {"LAB_STATE": str(state)},
        "sandbox": {"enabled": False},
        "trusted": True,
        "startup_timeout_s": 20,
    }
    fields.update(overrides)
    return McpServerConfig.model_validate(fields)


def broken_config(mode: str, **overrides: Any) -> McpServerConfig:
    fields: dict[str, Any] = {
        "name": f"broken-{mode}",
        "command": sys.executable,
        "args": [str(BROKEN), mode],
        "sandbox": {"enabled": False},
        "trusted": True,
        "startup_timeout_s": 3,
    }
    fields.update(overrides)
    return McpServerConfig.model_validate(fields)
