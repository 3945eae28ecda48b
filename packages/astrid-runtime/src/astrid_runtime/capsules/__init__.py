"""Installed capsules inside the runtime: session wiring (``CapsuleHost``) and the
``[[cron]]`` runner (``CapsuleCron``). The capsule domain itself — verification, engines,
interceptor answers, schedules, install and trust — is ``astrid_capsule``."""

from .cron import CapsuleCron, CronJob, CronRun, RunStatus
from .host import MAX_SKILL_CHARS, CapsuleHost, CapsuleTool, capsule_tool_name
from .ports import HeadlessSession, HeadlessSessions

__all__ = [
    "CapsuleHost",
    "CapsuleTool",
    "capsule_tool_name",
    "MAX_SKILL_CHARS",
    "CapsuleCron",
    "CronJob",
    "CronRun",
    "RunStatus",
    "HeadlessSession",
    "HeadlessSessions",
]
