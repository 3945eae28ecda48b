"""ApprovalManager and the persisted DeferredResolutionStore.

A request goes to the one registered handler (the frontend side) with a timeout. If no handler
is registered, none is connected (``FrontendUnavailable``) or the timeout passes, the request
is *deferred*: persisted with a priority and a 24 h expiry, and the action returns "deferred" —
never silently allowed or dropped. When a human answers later, the interceptor re-validates
and replays the action exactly once.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol, TypeAlias

import anyio

from astrid_core import (
    ApprovalDecision,
    ApprovalRequest,
    FrontendUnavailable,
    JsonObject,
)
from astrid_core.storage import Storage

__all__ = [
    "ApprovalHandler",
    "ApprovalManager",
    "DeferredResolutionStore",
    "DeferredItem",
    "Deferred",
]

_NS = "deferred"
DEFAULT_TIMEOUT_SECONDS = 300.0
DEFAULT_EXPIRY_SECONDS = 24 * 3600


class ApprovalHandler(Protocol):
    async def request_approval(self, request: ApprovalRequest) -> ApprovalDecision: ...


@dataclass(frozen=True)
class Deferred:
    """Returned instead of a decision when nobody could answer in time."""

    request: ApprovalRequest
    why: str


@dataclass(frozen=True)
class DeferredItem:
    request: ApprovalRequest
    priority: int
    created_at: int
    expires_at: int
    status: str  # "pending" | "approved" | "denied" | "expired" | "replayed"
    decision: JsonObject | None = None

    def to_json(self) -> JsonObject:
        return {
            "request": self.request.model_dump(mode="json"),
            "priority": self.priority,
            "created_at": self.created_at,
            "expires_at": self.expires_at,
            "status": self.status,
            "decision": self.decision,
        }

    @classmethod
    def from_json(cls, raw: Any) -> DeferredItem:
        return cls(
            ApprovalRequest.model_validate(raw["request"]),
            int(raw["priority"]),
            int(raw["created_at"]),
            int(raw["expires_at"]),
            str(raw["status"]),
            raw.get("decision"),
        )


class DeferredResolutionStore:
    def __init__(self, storage: Storage, *, expiry_seconds: int = DEFAULT_EXPIRY_SECONDS) -> None:
        self.storage = storage
        self.expiry_seconds = expiry_seconds

    async def add(self, request: ApprovalRequest, priority: int = 0) -> DeferredItem:
        now = int(time.time())
        item = DeferredItem(request, priority, now, now + self.expiry_seconds, "pending")
        await self.storage.put(_NS, str(request.request_id), item.to_json())
        return item

    async def get(self, request_id: str) -> DeferredItem | None:
        raw = await self.storage.get(_NS, request_id)
        return DeferredItem.from_json(raw) if raw is not None else None

    async def pending(self, session_id: str | None = None) -> list[DeferredItem]:
        now = int(time.time())
        items: list[DeferredItem] = []
        for key, raw in await self.storage.scan(_NS):
            item = DeferredItem.from_json(raw)
            if item.status != "pending":
                continue
            if item.expires_at < now:
                await self.transition(key, item, "expired")
                continue
            if session_id is None or str(item.request.session_id) == session_id:
                items.append(item)
        return sorted(items, key=lambda i: (-i.priority, i.created_at))

    async def transition(
        self,
        request_id: str,
        item: DeferredItem,
        status: str,
        decision: ApprovalDecision | None = None,
    ) -> bool:
        """Move a pending item to ``status`` exactly once (compare-and-set)."""
        new = DeferredItem(
            item.request,
            item.priority,
            item.created_at,
            item.expires_at,
            status,
            decision.model_dump(mode="json") if decision else item.decision,
        )
        return await self.storage.compare_and_set(_NS, request_id, item.to_json(), new.to_json())


# Observers of the approval flow (bookkeeping such as hooks): told when a person is asked and
# how it ended. They observe; they cannot change the answer.
OnAsked: TypeAlias = Callable[[ApprovalRequest], Awaitable[None]]
OnResolved: TypeAlias = Callable[[ApprovalRequest, "ApprovalDecision | Deferred"], Awaitable[None]]


class ApprovalManager:
    """Asks the registered handler (a frontend), within ``timeout_seconds``; defers the
    request when nobody can answer. ``on_asked`` runs before the question goes out,
    ``on_resolved`` after it was answered or deferred, in that order, every time."""

    # Who answers this channel's questions, as a denial names it ("denied by the user").
    # A channel that answers by itself (an unattended cron run) says so instead.
    answered_by = "the user"

    def __init__(
        self,
        deferred: DeferredResolutionStore,
        handler: ApprovalHandler | None = None,
        *,
        timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS,
        on_asked: OnAsked | None = None,
        on_resolved: OnResolved | None = None,
    ) -> None:
        self.deferred = deferred
        self.handler = handler
        self.timeout_seconds = timeout_seconds
        self.on_asked = on_asked
        self.on_resolved = on_resolved

    def register(self, handler: ApprovalHandler | None) -> None:
        self.handler = handler

    async def request(
        self, request: ApprovalRequest, *, priority: int = 0
    ) -> ApprovalDecision | Deferred:
        if self.on_asked is not None:
            await self.on_asked(request)
        answer = await self._answer(request, priority)
        if self.on_resolved is not None:
            await self.on_resolved(request, answer)
        return answer

    async def _answer(self, request: ApprovalRequest, priority: int) -> ApprovalDecision | Deferred:
        if self.handler is None:
            await self.deferred.add(request, priority)
            return Deferred(request, "no frontend is registered to answer")
        try:
            with anyio.fail_after(self.timeout_seconds):
                decision = await self.handler.request_approval(request)
        except FrontendUnavailable as exc:
            await self.deferred.add(request, priority)
            return Deferred(request, exc.message)
        except TimeoutError:
            await self.deferred.add(request, priority)
            return Deferred(request, f"nobody answered within {self.timeout_seconds:g} s")
        if str(decision.request_id) != str(request.request_id):
            # An answer to a different question is no answer: fail closed.
            return ApprovalDecision(
                request_id=request.request_id,
                option=decision.option.DENY,
                reason="the answer did not match the request",
            )
        return decision
