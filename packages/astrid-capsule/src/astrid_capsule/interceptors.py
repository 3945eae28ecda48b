"""What a capsule's ``[[interceptor]]`` export answered, checked before anyone acts on it.

A capsule interceptor answers with JSON: ``{"decision": "continue" | "deny", "reason": ...,
"annotation": ...}`` (empty output means ``{}``). Only a ``BeforeToolCall`` interceptor may
deny, and none may rewrite a call; anything else is a ``CapsuleError``, which the runtime
turns into a denial (``BeforeToolCall``: fail closed) or a reported failure (the
notify-only events). ``InterceptorAnswer`` is the checked answer; the runtime maps it to its
own hook decision.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .errors import CapsuleError

__all__ = ["InterceptorAnswer", "before_tool_call_answer", "notify_answer", "MAX_ANNOTATION"]

MAX_ANNOTATION = 500
BEFORE_TOOL_CALL = "BeforeToolCall"


@dataclass(frozen=True)
class InterceptorAnswer:
    """A checked answer: deny (with the reason shown to the agent) or continue, and a
    one-line annotation that is logged and audited and changes nothing."""

    deny_reason: str | None = None
    annotation: str = ""

    @property
    def denied(self) -> bool:
        return self.deny_reason is not None


def _fields(capsule: str, event: str, raw: bytes) -> dict[str, Any]:
    try:
        answer: Any = json.loads(raw) if raw.strip() else {}
    except ValueError:
        answer = None
    if not isinstance(answer, dict):
        raise CapsuleError(
            f"capsule {capsule}: its {event} interceptor did not answer with a JSON "
            f"decision: {raw[:200]!r}",
            hint='answer {"decision": "continue"} or {"decision": "deny", "reason": "..."}, '
            'optionally with an "annotation"',
        )
    return answer  # pyright: ignore[reportUnknownVariableType]


def _note(fields: Mapping[str, Any]) -> str:
    note = fields.get("annotation")
    return " ".join(str(note).split())[:MAX_ANNOTATION] if note else ""  # one line, bounded


def before_tool_call_answer(capsule: str, raw: bytes) -> InterceptorAnswer:
    """A BeforeToolCall interceptor's answer: continue or deny, and its annotation. Anything
    else raises CapsuleError, which the caller turns into a denial."""
    fields = _fields(capsule, BEFORE_TOOL_CALL, raw)
    decision = fields.get("decision", "continue")
    if decision == "continue":
        return InterceptorAnswer(annotation=_note(fields))
    if decision == "deny":
        reason = f"capsule {capsule}: {fields.get('reason') or 'no reason given'}"
        return InterceptorAnswer(deny_reason=reason, annotation=_note(fields))
    raise CapsuleError(
        f"capsule {capsule}: interceptor decision {decision!r} is not allowed",
        hint='a capsule interceptor may only "continue" or "deny" (never rewrite a call)',
    )


def notify_answer(capsule: str, event: str, raw: bytes) -> InterceptorAnswer:
    """What a notify-only interceptor (every event but BeforeToolCall) said: its annotation.
    It has no say; asking to deny is an error, reported so the author learns it is ignored."""
    fields = _fields(capsule, event, raw)
    decision = fields.get("decision", "continue")
    if decision != "continue":
        raise CapsuleError(
            f"capsule {capsule}: a {event} interceptor cannot decide anything (it answered "
            f"{decision!r}); ignored",
            hint='only BeforeToolCall interceptors may deny; answer {} or {"annotation": "..."}',
        )
    return InterceptorAnswer(annotation=_note(fields))
