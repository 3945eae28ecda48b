"""Sessions: the conversation, usage and workspace of one agent session, persisted after every
turn so a restarted daemon resumes exactly where it stopped."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from astrid_core import JsonObject, NotFoundError, SessionId
from astrid_core.storage import Storage

from ..llm import ChatMessage
from ..service import SessionInfo

__all__ = ["Session", "SessionStore"]

_NS = "sessions"


@dataclass
class Session:
    id: SessionId
    workspace: str
    model: str
    created_at: float = field(default_factory=time.time)
    updated_at: float = field(default_factory=time.time)
    messages: list[ChatMessage] = field(default_factory=list[ChatMessage])
    turns: int = 0
    cost_micros: int = 0
    state: str = "idle"
    title: str = ""
    has_untrusted: bool = False

    def info(self) -> SessionInfo:
        return SessionInfo(
            session_id=self.id,
            workspace=self.workspace,
            model=self.model,
            created_at=datetime.fromtimestamp(self.created_at, UTC),
            updated_at=datetime.fromtimestamp(self.updated_at, UTC),
            turns=self.turns,
            cost_micros=self.cost_micros,
            state=self.state,
            title=self.title,
        )

    def to_json(self) -> JsonObject:
        return {
            "id": str(self.id),
            "workspace": self.workspace,
            "model": self.model,
            "created_at": int(self.created_at * 1000),
            "updated_at": int(self.updated_at * 1000),
            "messages": [m.to_json() for m in self.messages],
            "turns": self.turns,
            "cost_micros": self.cost_micros,
            "state": self.state,
            "title": self.title,
            "has_untrusted": self.has_untrusted,
        }

    @classmethod
    def from_json(cls, raw: Any) -> Session:
        return cls(
            SessionId.parse(raw["id"]),
            raw["workspace"],
            raw["model"],
            raw["created_at"] / 1000,
            raw["updated_at"] / 1000,
            [ChatMessage.from_json(m) for m in raw["messages"]],
            int(raw["turns"]),
            int(raw["cost_micros"]),
            str(raw["state"]),
            str(raw.get("title", "")),
            bool(raw.get("has_untrusted", False)),
        )


class SessionStore:
    def __init__(self, storage: Storage) -> None:
        self.storage = storage

    async def save(self, session: Session) -> None:
        session.updated_at = time.time()
        await self.storage.put(_NS, str(session.id), session.to_json())

    async def load(self, session_id: SessionId) -> Session:
        raw = await self.storage.get(_NS, str(session_id))
        if raw is None:
            raise NotFoundError(
                f"no session {session_id}", hint="`astrid sessions list` shows the sessions"
            )
        return Session.from_json(raw)

    async def list(self) -> list[Session]:
        return sorted(
            (Session.from_json(raw) for _, raw in await self.storage.scan(_NS)),
            key=lambda s: s.updated_at,
            reverse=True,
        )

    async def delete(self, session_id: SessionId) -> bool:
        return await self.storage.delete(_NS, str(session_id))

    async def cleanup(self, older_than_days: int) -> int:
        cutoff = time.time() - older_than_days * 86400
        removed = 0
        for session in await self.list():
            if session.updated_at < cutoff and await self.delete(session.id):
                removed += 1
        return removed
