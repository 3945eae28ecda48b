"""Schedule maths of ``[[cron]]`` entries: when an entry is next due, and whether a verified
capsule can run it at all. The runner that calls the tools lives in the runtime
(``astrid_runtime.capsules.cron``), which owns sessions; schedules are checked when the
manifest is loaded (``astrid_capsule.manifest``)."""

from __future__ import annotations

from datetime import datetime

from cronsim import CronSim, CronSimError

from .manifest import CronSpec
from .verified import VerifiedCapsule

__all__ = ["next_after", "unschedulable", "cron_export"]


def next_after(schedule: str, now: datetime) -> datetime | None:
    """The first time after ``now`` that ``schedule`` matches (local wall-clock time, naive),
    or None when it never does."""
    try:
        return next(CronSim(schedule, now))
    except (CronSimError, StopIteration):
        return None  # checked at install; a schedule that cannot match is never due


def unschedulable(capsule: VerifiedCapsule, spec: CronSpec) -> str | None:
    """Why ``spec`` of ``capsule`` cannot be scheduled, or None when it can."""
    label = f"cron job {spec.name} of capsule {capsule.name} is not scheduled"
    if capsule.wasm is None:
        return f"{label}: the capsule has no [component] to run"
    if spec.dotted or any(tool.name == spec.action for tool in capsule.manifest.tool):
        return None  # a dotted action without such a tool is the component's export
    return f"{label}: it names no [[tool]] of the capsule ({spec.action!r})"


def cron_export(capsule: VerifiedCapsule, spec: CronSpec) -> tuple[str, str]:
    """(function, export) that a run of ``spec`` calls: the ``[[tool]]`` the action names (by
    its name or the last segment of a dotted name), else, for a dotted action, the
    component's export of that name, authorized as a call of a function of that name."""
    for tool in capsule.manifest.tool:
        if tool.name == spec.target:
            return tool.name, tool.export
    return spec.target, spec.target
