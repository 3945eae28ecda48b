"""The agent loop: model, tool calls through the interceptor, untrusted results, repeat."""

from ._compaction import CompactionResult, CompactionSettings, compact, needs_compaction
from ._hooks import (
    HOOK_EVENTS,
    MAX_OUTPUT_IN_PAYLOAD,
    ApprovalHooks,
    HookDecision,
    HookEvent,
    HookFailed,
    HookHandler,
    HookRunner,
)
from ._loop import AgentLoop, TurnCancelled
from ._subagent import (
    SUBAGENT_PROMPT_MARK,
    SubAgentApprovals,
    SubAgentLimits,
    SubAgentSpawner,
)

__all__ = [
    "AgentLoop",
    "TurnCancelled",
    "HookEvent",
    "HOOK_EVENTS",
    "MAX_OUTPUT_IN_PAYLOAD",
    "HookDecision",
    "HookHandler",
    "HookFailed",
    "HookRunner",
    "ApprovalHooks",
    "CompactionSettings",
    "CompactionResult",
    "compact",
    "needs_compaction",
    "SubAgentLimits",
    "SubAgentSpawner",
    "SubAgentApprovals",
    "SUBAGENT_PROMPT_MARK",
]
