"""Turn MCP results into bounded text for the agent, keeping a digest of everything."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from mcp import types

from astrid_core import JsonObject, one_line

from ._digest import json_digest
from .screening import neutralize

__all__ = ["McpToolResult", "tool_result", "untrusted_description", "MAX_DESCRIPTION_CHARS"]

# A description is model-facing text written by the server: cap it and strip anything that
# could forge extra lines in an approval prompt or a system message.
MAX_DESCRIPTION_CHARS = 2048


def untrusted_description(text: str | None) -> str:
    flat = one_line(text or "")
    if len(flat) > MAX_DESCRIPTION_CHARS:
        return flat[:MAX_DESCRIPTION_CHARS] + " [description truncated]"
    return flat


@dataclass(frozen=True)
class McpToolResult:
    server: str
    tool: str
    text: str
    is_error: bool
    structured: JsonObject | None
    truncated: bool
    # BLAKE3 over the whole result as the server sent it, before truncation: the audit log can
    # prove what the server returned even when the agent only saw a prefix.
    digest: str
    size_bytes: int


def _block_text(block: Any) -> str:
    if isinstance(block, types.TextContent):
        return block.text
    if isinstance(block, types.ImageContent | types.AudioContent):
        return f"[{block.type}: {block.mime_type}, {len(block.data) * 3 // 4} bytes]"
    if isinstance(block, types.EmbeddedResource):
        resource = block.resource
        if isinstance(resource, types.TextResourceContents):
            return f"[resource {resource.uri}]\n{resource.text}"
        return f"[resource {resource.uri}: binary]"
    if isinstance(block, types.ResourceLink):
        return f"[resource link {block.uri}]"
    return f"[{getattr(block, 'type', 'unknown')} content]"


def tool_result(
    server: str, tool: str, result: types.CallToolResult, max_bytes: int
) -> McpToolResult:
    raw = result.model_dump(by_alias=True, mode="json", exclude_none=True)
    digest, size = json_digest(raw)
    # What a server says reaches the model, the CLI transcript, `astrid run` output and
    # Telegram: no escape sequence or control character of its own goes with it.
    text = neutralize("\n".join(_block_text(block) for block in result.content))
    data = text.encode()
    truncated = len(data) > max_bytes
    if truncated:
        text = data[:max_bytes].decode(errors="ignore") + (
            f"\n[output truncated: {len(data)} bytes, showing the first {max_bytes}]"
        )
    structured = result.structured_content
    # Structured content is part of the raw result: only a large result can hold a large one.
    if structured is not None and size > max_bytes and json_digest(structured)[1] > max_bytes:
        structured, truncated = None, True
    return McpToolResult(
        server=server,
        tool=tool,
        text=text,
        is_error=bool(result.is_error),
        structured=structured,
        truncated=truncated,
        digest=digest,
        size_bytes=size,
    )
