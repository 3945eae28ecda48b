"""The daemon's Frontend: relays approvals and elicitations to subscribed clients.

The first valid answer wins; later answers are told the request was already resolved. When no
client is subscribed for the session, ``request_approval`` raises ``FrontendUnavailable`` and
the runtime's ApprovalManager defers the request (persisted, delivered on the next
subscription) — an approval is never silently granted or dropped.

Ordering: the question (``ApprovalNeeded``) and its answer (``ApprovalResolved``) are both
published from the turn's own task — the question before the turn waits, the answer before the
turn goes on — so a subscriber sees them in place among the turn's events (see
``astrid_runtime.events``). Only ``show_status``/``show_error``, which are synchronous and
belong to no session, go through a queue.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Literal

import anyio
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from astrid_core import (
    ApprovalDecision,
    ApprovalRequest,
    ElicitationRequest,
    ElicitationResponse,
    FrontendUnavailable,
    SessionId,
    UrlElicitationRequest,
    UserInput,
)

from .protocol import (
    AgentError,
    AgentEvent,
    ApprovalNeeded,
    ApprovalResolved,
    ElicitationNeeded,
    ElicitationResolved,
    StatusNote,
    UrlElicitationNeeded,
)
from .server import GatewayServer

__all__ = ["RelayFrontend"]

log = logging.getLogger("astrid.gateway.relay")

Answer = ApprovalDecision | ElicitationResponse


@dataclass
class _Pending:
    kind: Literal["approval", "elicitation"]
    session_id: SessionId | None
    question: ApprovalNeeded | ElicitationNeeded
    done: anyio.Event = field(default_factory=anyio.Event)
    answer: Answer | None = None
    answered_by: str = ""


def _key(session_id: SessionId | None) -> str | None:
    return str(session_id) if session_id is not None else None


class RelayFrontend:
    def __init__(self, server: GatewayServer) -> None:
        self._server = server
        self._pending: dict[str, _Pending] = {}
        send, receive = anyio.create_memory_object_stream[AgentEvent](1000)
        self._outbox: MemoryObjectSendStream[AgentEvent] = send
        self._inbox: MemoryObjectReceiveStream[AgentEvent] = receive

    # ------------------------------------------------------------------ background

    async def pump(self) -> None:
        """Deliver events queued by the synchronous show_status/show_error methods."""
        async with self._inbox:
            async for event in self._inbox:
                await self._server.publish(_key(event.session_id), event)

    def close(self) -> None:
        self._outbox.close()

    # ------------------------------------------------------------------ Frontend protocol

    async def request_approval(self, request: ApprovalRequest) -> ApprovalDecision:
        question = ApprovalNeeded(session_id=request.session_id, request=request)
        answer = await self._ask("approval", str(request.request_id), question)
        assert isinstance(answer, ApprovalDecision)
        return answer

    async def elicit(self, request: ElicitationRequest) -> ElicitationResponse:
        question = ElicitationNeeded(session_id=request.session_id, request=request)
        try:
            answer = await self._ask("elicitation", str(request.request_id), question)
        except FrontendUnavailable:
            # Nobody can fill the form: the server gets "cancel", never invented content.
            return ElicitationResponse(request_id=request.request_id, action="cancel")
        assert isinstance(answer, ElicitationResponse)
        return answer

    async def elicit_url(self, request: UrlElicitationRequest) -> None:
        event = UrlElicitationNeeded(session_id=request.session_id, request=request)
        if await self._server.publish(_key(request.session_id), event) == 0:
            raise FrontendUnavailable(f"nobody is connected to open {request.url}")

    def show_status(self, message: str) -> None:
        self._queue(StatusNote(session_id=None, message=message))

    def show_error(self, message: str) -> None:
        self._queue(AgentError(session_id=None, code="runtime", message=message))

    async def receive_input(self) -> UserInput | None:
        return None  # input arrives as astrid.sendInput calls, not through this channel

    # ------------------------------------------------------------------ answers

    def answer(self, request_id: str, answer: Answer, by: str) -> bool:
        """Record the first answer; False if unknown or already resolved. The waiting turn
        publishes the resolution itself (ordering, above)."""
        pending = self._pending.get(request_id)
        if pending is None or pending.done.is_set():
            return False
        expected = ApprovalDecision if pending.kind == "approval" else ElicitationResponse
        if not isinstance(answer, expected):
            return False
        pending.answer = answer
        pending.answered_by = by
        pending.done.set()
        return True

    def is_pending(self, request_id: str) -> bool:
        pending = self._pending.get(request_id)
        return pending is not None and not pending.done.is_set()

    def live_requests(self, session_id: str | None) -> list[ApprovalNeeded | ElicitationNeeded]:
        """Pending questions to re-send to a client that just subscribed."""
        return [
            p.question
            for p in self._pending.values()
            if not p.done.is_set() and (session_id is None or _key(p.session_id) == session_id)
        ]

    # ------------------------------------------------------------------ internals

    async def _ask(
        self,
        kind: Literal["approval", "elicitation"],
        request_id: str,
        question: ApprovalNeeded | ElicitationNeeded,
    ) -> Answer:
        session = _key(question.session_id)
        if self._server.subscriber_count(session) == 0:
            raise FrontendUnavailable(f"no client is subscribed to answer this {kind}")
        pending = _Pending(kind, question.session_id, question)
        self._pending[request_id] = pending
        try:
            if await self._server.publish(session, question) == 0:
                raise FrontendUnavailable(f"no client received this {kind}")
            await pending.done.wait()
        finally:
            self._pending.pop(request_id, None)
        answer = pending.answer
        assert answer is not None
        await self._server.publish(session, _resolution(pending, request_id, answer))
        return answer

    def _queue(self, event: AgentEvent) -> None:
        try:
            self._outbox.send_nowait(event)
        except (anyio.WouldBlock, anyio.ClosedResourceError):
            log.warning("event dropped (outbox full or closed): %s", type(event).__name__)


def _resolution(
    pending: _Pending, request_id: str, answer: Answer
) -> ApprovalResolved | ElicitationResolved:
    if isinstance(answer, ApprovalDecision):
        return ApprovalResolved(
            session_id=pending.session_id,
            request_id=request_id,
            option=answer.option.value,
            resolved_by=pending.answered_by,
        )
    return ElicitationResolved(
        session_id=pending.session_id,
        request_id=request_id,
        option=answer.action,
        resolved_by=pending.answered_by,
    )
