"""The daemon's Frontend: relays approvals and elicitations to subscribed clients.

The first valid answer wins; later answers are told the request was already resolved. When no
client is subscribed for the session, ``request_approval`` raises ``FrontendUnavailable`` and
the runtime's ApprovalManager defers the request (persisted, delivered on the next
subscription) — an approval is never silently granted or dropped.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import anyio
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from astrid_core import (
    ApprovalDecision,
    ApprovalRequest,
    ElicitationRequest,
    ElicitationResponse,
    FrontendUnavailable,
    UrlElicitationRequest,
    UserInput,
)

from .server import GatewayServer

__all__ = ["RelayFrontend"]

log = logging.getLogger("astrid.gateway.relay")


@dataclass
class _Pending:
    kind: str  # "approval" | "elicitation"
    session_id: str | None
    payload: dict[str, Any]
    done: anyio.Event = field(default_factory=anyio.Event)
    answer: Any = None
    answered_by: str = ""


def _session_of(
    request: ApprovalRequest | ElicitationRequest | UrlElicitationRequest,
) -> str | None:
    return str(request.session_id) if request.session_id is not None else None


class RelayFrontend:
    def __init__(self, server: GatewayServer) -> None:
        self._server = server
        self._pending: dict[str, _Pending] = {}
        send, receive = anyio.create_memory_object_stream[tuple[str | None, dict[str, Any]]](1000)
        self._outbox: MemoryObjectSendStream[tuple[str | None, dict[str, Any]]] = send
        self._inbox: MemoryObjectReceiveStream[tuple[str | None, dict[str, Any]]] = receive

    # ------------------------------------------------------------------ background

    async def pump(self) -> None:
        """Deliver events queued by the synchronous show_status/show_error methods."""
        async with self._inbox:
            async for session_id, event in self._inbox:
                await self._server.publish(session_id, event)

    def close(self) -> None:
        self._outbox.close()

    # ------------------------------------------------------------------ Frontend protocol

    async def request_approval(self, request: ApprovalRequest) -> ApprovalDecision:
        payload = {
            "type": "approval_needed",
            "session_id": _session_of(request),
            "request": request.model_dump(mode="json"),
        }
        answer = await self._ask("approval", str(request.request_id), _session_of(request), payload)
        assert isinstance(answer, ApprovalDecision)
        return answer

    async def elicit(self, request: ElicitationRequest) -> ElicitationResponse:
        payload = {
            "type": "elicitation_needed",
            "session_id": _session_of(request),
            "request": request.model_dump(mode="json"),
        }
        try:
            answer = await self._ask(
                "elicitation", str(request.request_id), _session_of(request), payload
            )
        except FrontendUnavailable:
            # Nobody can fill the form: the server gets "cancel", never invented content.
            return ElicitationResponse(request_id=request.request_id, action="cancel")
        assert isinstance(answer, ElicitationResponse)
        return answer

    async def elicit_url(self, request: UrlElicitationRequest) -> None:
        payload = {
            "type": "url_elicitation_needed",
            "session_id": _session_of(request),
            "request": request.model_dump(mode="json"),
        }
        if await self._server.publish(_session_of(request), payload) == 0:
            raise FrontendUnavailable(f"nobody is connected to open {request.url}")

    def show_status(self, message: str) -> None:
        self._queue(None, {"type": "status", "session_id": None, "message": message})

    def show_error(self, message: str) -> None:
        self._queue(
            None, {"type": "error", "session_id": None, "code": "runtime", "message": message}
        )

    async def receive_input(self) -> UserInput | None:
        return None  # input arrives as astrid.sendInput calls, not through this channel

    # ------------------------------------------------------------------ answers

    def answer(
        self, request_id: str, answer: ApprovalDecision | ElicitationResponse, by: str
    ) -> bool:
        """Record the first answer; False if unknown or already resolved."""
        pending = self._pending.get(request_id)
        if pending is None or pending.done.is_set():
            return False
        expected = ApprovalDecision if pending.kind == "approval" else ElicitationResponse
        if not isinstance(answer, expected):
            return False
        pending.answer = answer
        pending.answered_by = by
        pending.done.set()
        option = answer.option.value if isinstance(answer, ApprovalDecision) else answer.action
        self._queue(
            pending.session_id,
            {
                "type": "approval_resolved"
                if pending.kind == "approval"
                else "elicitation_resolved",
                "session_id": pending.session_id,
                "request_id": request_id,
                "option": option,
                "resolved_by": by,
            },
        )
        return True

    def is_pending(self, request_id: str) -> bool:
        pending = self._pending.get(request_id)
        return pending is not None and not pending.done.is_set()

    def live_requests(self, session_id: str | None) -> list[dict[str, Any]]:
        """Pending request events to re-send to a client that just subscribed."""
        return [
            p.payload
            for p in self._pending.values()
            if not p.done.is_set() and (session_id is None or p.session_id == session_id)
        ]

    # ------------------------------------------------------------------ internals

    async def _ask(
        self, kind: str, request_id: str, session_id: str | None, payload: dict[str, Any]
    ) -> Any:
        if self._server.subscriber_count(session_id) == 0:
            raise FrontendUnavailable(f"no client is subscribed to answer this {kind}")
        pending = _Pending(kind, session_id, payload)
        self._pending[request_id] = pending
        try:
            if await self._server.publish(session_id, payload) == 0:
                raise FrontendUnavailable(f"no client received this {kind}")
            await pending.done.wait()
            return pending.answer
        finally:
            self._pending.pop(request_id, None)

    def _queue(self, session_id: str | None, event: dict[str, Any]) -> None:
        try:
            self._outbox.send_nowait((session_id, event))
        except (anyio.WouldBlock, anyio.ClosedResourceError):
            log.warning("event dropped (outbox full or closed): %s", event.get("type"))
