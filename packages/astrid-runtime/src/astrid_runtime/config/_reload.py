"""What a configuration reload can apply in a running daemon, and what needs a restart.

The daemon builds some things once, at start, from the admin configuration: the model
provider (key, endpoint, retries, rate limit), the MCP servers, the audit log and its witness,
the runtime key, hooks, logging, the gateway port, the Telegram bot. Others are read each time
a session is attached (policy, budget, workspace rules, sub-agent limits, turn limits) or each
time a job runs (session retention, capsule cron). A reload may change only the second kind:
changing the first kind in memory would make the daemon *report* a value it does not use.

``plan_reload(current, new)`` answers, key by key, which changed keys are applied and which
need ``astrid daemon restart``; ``in_effect`` is the configuration the daemon runs with after
the reload (the new values of the applied keys, the old values of the others), so ``config
show`` and ``status`` stay true. Key names only: a value (perhaps a secret) never leaves here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

from ._load import LoadedConfig
from ._models import AstridConfig

__all__ = ["LIVE_KEYS", "ReloadPlan", "plan_reload"]

# Keys read when a session is attached or a job runs, never kept from the start.
# "section." means every key of the section; servers are never live (each is a process).
LIVE_KEYS: Final = frozenset(
    {
        "security.",
        "budget.",
        "workspace.",
        "subagents.",
        "runtime.max_turns",
        "runtime.system_prompt",
        "runtime.compact_at_percent",
        "runtime.keep_recent_messages",
        "runtime.capsule_cron",
        "model.model",
        "model.max_tokens",
        "model.context_window",
        "timeouts.bash_seconds",
        "sessions.retention_days",
    }
)
# Live sections with a key the daemon uses at start: the MCP servers' sandbox is chosen then.
_NOT_LIVE: Final = frozenset({"security.sandbox"})


def is_live(key: str) -> bool:
    if key in _NOT_LIVE or key.startswith("servers"):
        return False
    section = key.split(".", 1)[0] + "."
    return key in LIVE_KEYS or section in LIVE_KEYS


def _flat(config: AstridConfig) -> dict[str, Any]:
    """ "section.key" -> value, one "servers.NAME" per MCP server (SecretStr compares by value)."""
    flat: dict[str, Any] = {}
    for section, values in config:
        if section == "servers":
            for server in config.servers:
                flat[f"servers.{server.name}"] = server
            continue
        for key, value in values:
            flat[f"{section}.{key}"] = value
    return flat


@dataclass(frozen=True)
class ReloadPlan:
    applied: tuple[str, ...]  # changed keys in effect from now on
    needs_restart: tuple[str, ...]  # changed keys the daemon keeps their old value for
    in_effect: LoadedConfig


def plan_reload(current: LoadedConfig, new: LoadedConfig) -> ReloadPlan:
    old, fresh = _flat(current.config), _flat(new.config)
    changed = sorted(k for k in old.keys() | fresh.keys() if old.get(k) != fresh.get(k))
    applied = tuple(k for k in changed if is_live(k))
    restart = tuple(k for k in changed if not is_live(k))
    merged = current.config.model_dump(mode="python")
    provenance = dict(current.provenance)
    for key in applied:
        section, name = key.split(".", 1)
        merged[section][name] = getattr(getattr(new.config, section), name)
        if key in new.provenance:
            provenance[key] = new.provenance[key]
        else:
            provenance.pop(key, None)
    in_effect = LoadedConfig(AstridConfig.model_validate(merged), provenance, list(new.files))
    return ReloadPlan(applied, restart, in_effect)
