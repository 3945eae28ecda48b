"""Input classification: every message carries who said it and how far it may be trusted.

Only ``USER`` input (optionally signed by the frontend) can ask for actions. Content marked
``UNTRUSTED`` (tool output, fetched pages, MCP tool descriptions) is data: the runtime wraps it
so the model sees it as quoted material, and the interceptor can require approval for any
action proposed while such content is in the context.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

from ._ids import RequestId, SessionId

__all__ = ["MessageTrust", "TaggedMessage"]


class MessageTrust(StrEnum):
    USER = "user"  # a verified human on a frontend
    CAPABILITY = "capability"  # produced under a capability token (scoped, pre-authorized)
    UNTRUSTED = "untrusted"  # tool results, external data: never an instruction


_FENCE_TAG = re.compile(r"<(/?\s*untrusted-content)", re.IGNORECASE)


def _defang(content: str) -> str:
    # Content that contains our own fence tags could close the fence early and have the rest
    # read as instructions; render every such tag inert.
    return _FENCE_TAG.sub(r"&lt;\1", content)


def _now() -> datetime:
    return datetime.now(UTC)


class TaggedMessage(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    message_id: RequestId = Field(default_factory=RequestId.new)
    user_id: str
    frontend: str
    trust: MessageTrust
    content: str
    session_id: SessionId | None = None
    context: str = ""
    created_at: datetime = Field(default_factory=_now)
    # Base64 Ed25519 signature by the frontend over the canonical message; verified by the
    # runtime (astrid_crypto) when present. Core only carries it.
    signature: str | None = None

    @property
    def is_untrusted(self) -> bool:
        return self.trust is MessageTrust.UNTRUSTED

    def as_model_text(self) -> str:
        """The text the LLM sees. Untrusted content is fenced and labelled as data."""
        if not self.is_untrusted:
            return self.content
        # The fence is part of the prompt contract; the interceptor, not the fence, is what
        # stops injected instructions from being executed.
        source = json.dumps(self.context or self.frontend).replace("<", "\\u003c")
        source = source.replace(">", "\\u003e")
        return f"<untrusted-content source={source}>\n{_defang(self.content)}\n</untrusted-content>"
