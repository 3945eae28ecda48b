"""Test helpers for ``astrid mcp serve``: an MCP client started the way Claude Code starts it,
list_changed notices, and the daemon's audit log read back.

For tests of the gateway (here and in the repository's end-to-end tests); they drive the real
CLI and daemon.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
from mcp import ClientSession, StdioServerParameters, types
from mcp.client.stdio import stdio_client

from .client import GatewayClient
from .protocol import ApprovalNeeded

__all__ = [
    "ListChanged",
    "answer_approvals",
    "audit_entries",
    "result_text",
    "stdio_gateway_client",
]


class ListChanged:
    """A client message handler that notes ``notifications/tools/list_changed``."""

    def __init__(self) -> None:
        self.tools_changed = anyio.Event()

    def reset(self) -> None:
        self.tools_changed = anyio.Event()

    async def __call__(self, message: Any) -> None:
        if isinstance(message, types.ToolListChangedNotification):
            self.tools_changed.set()


@asynccontextmanager
async def stdio_gateway_client(
    home: Path,
    workspace: Path,
    notes: ListChanged | None = None,
    *,
    client_info: types.Implementation | None = None,
    elicitation: Any = None,
) -> AsyncIterator[ClientSession]:
    """What a client does with ``{"command": "astrid", "args": ["mcp", "serve"]}``."""
    params = StdioServerParameters(
        command=sys.executable,
        args=["-m", "astrid_cli", "mcp", "serve"],
        env={**os.environ, "ASTRID_HOME": str(home)},
        cwd=str(workspace),
    )
    async with (
        stdio_client(params) as (read, write),
        ClientSession(
            read,
            write,
            message_handler=notes,
            client_info=client_info,
            elicitation_callback=elicitation,
        ) as session,
    ):
        await session.initialize()
        yield session


async def audit_entries(home: Path) -> list[dict[str, Any]]:
    """Every audit entry, from an export the daemon writes (``astrid.auditExport``)."""
    async with await GatewayClient.open(home, autostart=False) as client:
        export = await client.call("auditExport", timeout=60)
    entries: list[dict[str, Any]] = []
    text = await anyio.Path(export["path"]).read_text()
    for line in text.splitlines():
        record = json.loads(line)
        entry = record.get("entry", record)
        if isinstance(entry, dict) and "outcome" in entry:
            entries.append(entry)  # pyright: ignore[reportUnknownArgumentType]
    return entries


def result_text(result: types.CallToolResult) -> str:
    return "\n".join(b.text for b in result.content if isinstance(b, types.TextContent))


async def answer_approvals(home: Path, option: str, seen: list[dict[str, Any]]) -> None:
    """A person at a frontend: answers every approval request with ``option`` (run it in a
    task; cancel it when done)."""
    async with await GatewayClient.open(home, autostart=False, client_name="person") as client:
        await client.subscribe()
        async for event in client.events():
            if isinstance(event, ApprovalNeeded):
                seen.append(event.request.model_dump(mode="json"))
                await client.call(
                    "approvalResponse", request_id=str(event.request.request_id), option=option
                )
