"""ApprovalManager observers: bookkeeping (hooks) watches the flow without subclassing it.

``on_asked`` runs before the handler is asked, ``on_resolved`` after, with the very answer the
interceptor gets (a decision, or the Deferred when nobody could answer). They observe only.
"""

from __future__ import annotations

import pytest

from astrid_approval import ApprovalManager, Deferred, DeferredResolutionStore
from astrid_core import ApprovalDecision, ApprovalOption, ApprovalRequest, FileRead, RiskLevel
from astrid_core.storage import MemoryStorage

from .conftest import ScriptedFrontend

pytestmark = pytest.mark.anyio


def _request() -> ApprovalRequest:
    action = FileRead(path="/etc/hosts")
    return ApprovalRequest(action=action, risk=RiskLevel.LOW, reason="test", summary="read")


async def test_observers_see_the_question_before_and_the_answer_after() -> None:
    seen: list[str] = []
    handler = ScriptedFrontend(then=ApprovalOption.ALLOW_ONCE)

    async def asked(request: ApprovalRequest) -> None:
        seen.append(f"asked {request.request_id} (handler asked {len(handler.asked)} times)")

    async def resolved(request: ApprovalRequest, answer: ApprovalDecision | Deferred) -> None:
        assert isinstance(answer, ApprovalDecision)
        seen.append(f"resolved {request.request_id}: {answer.option.value}")

    manager = ApprovalManager(
        DeferredResolutionStore(MemoryStorage()), handler, on_asked=asked, on_resolved=resolved
    )
    request = _request()
    answer = await manager.request(request)
    assert isinstance(answer, ApprovalDecision)
    assert seen == [
        f"asked {request.request_id} (handler asked 0 times)",
        f"resolved {request.request_id}: allow_once",
    ]


async def test_a_deferred_request_is_reported_as_deferred() -> None:
    answers: list[ApprovalDecision | Deferred] = []

    async def resolved(request: ApprovalRequest, answer: ApprovalDecision | Deferred) -> None:
        answers.append(answer)

    manager = ApprovalManager(DeferredResolutionStore(MemoryStorage()), None, on_resolved=resolved)
    answer = await manager.request(_request())
    assert isinstance(answer, Deferred)
    assert answers == [answer]
