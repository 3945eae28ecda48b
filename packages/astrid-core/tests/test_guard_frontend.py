from __future__ import annotations

import pytest
from pydantic import ValidationError

from astrid_core import (
    ALL_APPROVAL_OPTIONS,
    ApprovalDecision,
    ApprovalDenied,
    ApprovalOption,
    ApprovalRequest,
    AuditEntryId,
    Authorization,
    AuthorizationProof,
    BudgetDenied,
    CapabilityDenied,
    DenialLayer,
    ElicitationRequest,
    ElicitationResponse,
    FileRead,
    Frontend,
    Guard,
    PolicyDenied,
    ProofKind,
    RequestId,
    RiskLevel,
    SecurityDenied,
    SensitiveAction,
    TokenId,
    UrlElicitationRequest,
    UserInput,
    WorkspaceDenied,
)

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize(
    ("layer", "error"),
    [
        (DenialLayer.POLICY, PolicyDenied),
        (DenialLayer.CAPABILITY, CapabilityDenied),
        (DenialLayer.BUDGET, BudgetDenied),
        (DenialLayer.APPROVAL, ApprovalDenied),
        (DenialLayer.WORKSPACE, WorkspaceDenied),
        (DenialLayer.DEFERRED, ApprovalDenied),
    ],
)
async def test_require_raises_the_layers_error(
    layer: DenialLayer, error: type[SecurityDenied]
) -> None:
    denial = Authorization.deny(layer, "over the limit")
    assert not denial.allowed
    with pytest.raises(error, match="over the limit") as info:
        denial.require()
    assert type(info.value) is error
    assert layer.value in info.value.message


def test_allow_carries_proof() -> None:
    entry = AuditEntryId.new()
    proof = AuthorizationProof(kind=ProofKind.CAPABILITY, token_id=TokenId.new())
    auth = Authorization.allow(proof, audit_entry_id=entry)
    assert auth.require() is auth
    assert auth.audit_entry_id == entry
    assert Authorization.model_validate_json(auth.model_dump_json()) == auth


@pytest.mark.parametrize(
    "data",
    [
        {"allowed": True, "reason": "x"},  # allowed without proof
        {"allowed": True, "reason": "x", "proof": {"kind": "user"}, "denied_by": "policy"},
        {"allowed": False, "reason": "x"},  # denied without a layer
        {"allowed": False, "reason": "x", "denied_by": "policy", "proof": {"kind": "user"}},
    ],
)
def test_inconsistent_authorizations_are_unrepresentable(data: dict[str, object]) -> None:
    with pytest.raises(ValidationError, match="Authorization needs"):
        Authorization.model_validate(data)


def test_approval_wire_types() -> None:
    action = FileRead(path="/etc/hosts")
    req = ApprovalRequest(
        action=action, risk=RiskLevel.LOW, reason="agent asked", summary=action.summary
    )
    assert req.options == ALL_APPROVAL_OPTIONS
    back = ApprovalRequest.model_validate_json(req.model_dump_json())
    assert back == req
    assert type(back.action) is FileRead
    decision = ApprovalDecision(request_id=req.request_id, option=ApprovalOption.DENY)
    assert not decision.allowed
    assert ApprovalOption.ALLOW_SESSION.allows
    assert ApprovalOption.ALLOW_SESSION.label
    with pytest.raises(ValidationError):
        ApprovalDecision.model_validate({"request_id": str(RequestId.new()), "option": "allow"})


def test_elicitation_wire_types() -> None:
    req = ElicitationRequest(source="mcp:x", message="name?", requested_schema={"type": "object"})
    resp = ElicitationResponse(request_id=req.request_id, action="accept", content={"n": "a"})
    assert ElicitationResponse.model_validate_json(resp.model_dump_json()) == resp
    with pytest.raises(ValidationError):
        ElicitationResponse(request_id=req.request_id, action="maybe")  # type: ignore[arg-type]
    url = UrlElicitationRequest(source="mcp:x", message="log in", url="https://a")
    assert UrlElicitationRequest.model_validate_json(url.model_dump_json()) == url


class ScriptedFrontend:
    """A real Frontend implementation used to check the protocol shape."""

    def __init__(self) -> None:
        self.status: list[str] = []

    async def elicit(self, request: ElicitationRequest) -> ElicitationResponse:
        return ElicitationResponse(request_id=request.request_id, action="decline")

    async def elicit_url(self, request: UrlElicitationRequest) -> None:
        return None

    async def request_approval(self, request: ApprovalRequest) -> ApprovalDecision:
        return ApprovalDecision(request_id=request.request_id, option=ApprovalOption.ALLOW_ONCE)

    def show_status(self, message: str) -> None:
        self.status.append(message)

    def show_error(self, message: str) -> None:
        self.status.append("error: " + message)

    async def receive_input(self) -> UserInput | None:
        return None


class DenyAllGuard:
    async def authorize(self, action: SensitiveAction, reason: str) -> Authorization:
        return Authorization.deny(DenialLayer.POLICY, f"{action.resource} is blocked")


async def test_protocols_are_structural() -> None:
    frontend = ScriptedFrontend()
    assert isinstance(frontend, Frontend)
    guard = DenyAllGuard()
    assert isinstance(guard, Guard)
    auth = await guard.authorize(FileRead(path="/etc/shadow"), "why not")
    with pytest.raises(PolicyDenied, match="file:///etc/shadow"):
        auth.require()
    assert not isinstance(object(), Frontend)
