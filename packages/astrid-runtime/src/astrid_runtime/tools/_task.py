"""The ``task`` tool: hand a self-contained piece of work to a sub-agent.

Starting one is a ``SubAgentSpawn`` action (permission ``spawn``) that the interceptor decides
like any other; what the child may then do is limited as described in agent/_subagent.py.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from astrid_core import BadInputError, JsonObject, SensitiveAction, SubAgentSpawn

from ._base import ToolContext, require

__all__ = ["Task"]

Spawn = Callable[[SubAgentSpawn, ToolContext], Awaitable[str]]


class Task:
    name: str = "task"
    description: str = (
        "Delegate a self-contained task to a sub-agent. It works in the same workspace with at "
        "most your permissions and a slice of your budget, and returns a short report."
    )
    input_schema: dict[str, Any] = {
        "type": "object",
        "properties": {
            "prompt": {"type": "string", "description": "the task, with everything it needs"},
        },
        "required": ["prompt"],
        "additionalProperties": False,
    }

    def action(self, args: JsonObject, ctx: ToolContext) -> SensitiveAction:
        prompt: str = require(args, "prompt")
        depth = int(ctx.extra.get("depth", 0)) + 1
        return SubAgentSpawn(task=prompt, parent_session=ctx.session_id, depth=depth)

    async def run(self, args: JsonObject, action: SensitiveAction, ctx: ToolContext) -> str:
        spawn: Spawn | None = ctx.extra.get("spawn_subagent")
        if spawn is None or not isinstance(action, SubAgentSpawn):
            raise BadInputError(
                "sub-agents cannot be started here (depth limit reached or none configured)",
                hint="do the task directly",
            )
        return await spawn(action, ctx)
