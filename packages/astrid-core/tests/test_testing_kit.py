"""The shared test kit: ScriptedFrontend behaves as its docstring says, and the surface check
finds what it should."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from astrid_core import (
    ApprovalOption,
    ApprovalRequest,
    ElicitationRequest,
    FileRead,
    Frontend,
    FrontendUnavailable,
    RiskLevel,
)
from astrid_core.testing import ScriptedFrontend, public_surface_problems

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def _request() -> ApprovalRequest:
    action = FileRead(path="/etc/hosts")
    return ApprovalRequest(action=action, risk=RiskLevel.LOW, reason="t", summary="read")


async def test_answers_in_order_then_the_fallback_and_records_each_question() -> None:
    person = ScriptedFrontend([ApprovalOption.ALLOW_ONCE], then=ApprovalOption.ALLOW_SESSION)
    frontend: Frontend = person  # it is a Frontend
    first, second = _request(), _request()
    assert (await frontend.request_approval(first)).option is ApprovalOption.ALLOW_ONCE
    answer = await frontend.request_approval(second)
    assert answer.option is ApprovalOption.ALLOW_SESSION
    assert answer.request_id == second.request_id
    assert person.asked == [first, second]
    person.present = False
    with pytest.raises(FrontendUnavailable):
        await frontend.request_approval(_request())


async def test_forms_are_answered_in_order_then_cancelled() -> None:
    person = ScriptedFrontend(forms=[{"name": "x"}, "decline"])
    request = ElicitationRequest(source="s", message="m", requested_schema={})
    assert (await person.elicit(request)).content == {"name": "x"}
    assert (await person.elicit(request)).action == "decline"
    assert (await person.elicit(request)).action == "cancel"


def test_the_surface_check_finds_a_missing_and_a_phantom_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "kitprobe.py").write_text(
        '__all__ = ["ghost"]\n\ndef visible() -> None: ...\n\ndef _hidden() -> None: ...\n'
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        assert public_surface_problems("kitprobe") == [
            "kitprobe.__all__ names 'ghost', which does not exist",
            "kitprobe.visible is public but not in __all__",
        ]
    finally:
        sys.modules.pop("kitprobe", None)
