"""The Guard protocol: how lower layers ask "may this action run?" without knowing who decides.

astrid_mcp and astrid_capsule call ``guard.authorize(action, reason)``; astrid_approval's
SecurityInterceptor implements it. An ``Authorization`` is either allowed with a proof, or
denied with a reason; ``require()`` turns a denial into the matching exception so a caller
that ignores the result still cannot proceed.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict, model_validator

from ._actions import SensitiveAction
from ._errors import (
    ApprovalDenied,
    BudgetDenied,
    CapabilityDenied,
    PolicyDenied,
    SecurityDenied,
    WorkspaceDenied,
)
from ._frontend import ApprovalOption
from ._ids import AuditEntryId, RequestId, TokenId

__all__ = ["ProofKind", "AuthorizationProof", "Authorization", "Guard", "DenialLayer"]


class ProofKind(StrEnum):
    POLICY = "policy"  # allowed without asking (low risk, workspace mode)
    CAPABILITY = "capability"  # a signed capability token covered it
    ALLOWANCE = "allowance"  # a signed session/workspace allowance covered it
    USER = "user"  # a human approved it just now
    REPLAY = "replay"  # a deferred approval, re-validated and replayed


class DenialLayer(StrEnum):
    POLICY = "policy"
    CAPABILITY = "capability"
    BUDGET = "budget"
    APPROVAL = "approval"
    WORKSPACE = "workspace"
    DEFERRED = "deferred"  # nobody could answer; queued for later, not run now


_DENIAL_ERRORS: dict[DenialLayer, type[SecurityDenied]] = {
    DenialLayer.POLICY: PolicyDenied,
    DenialLayer.CAPABILITY: CapabilityDenied,
    DenialLayer.BUDGET: BudgetDenied,
    DenialLayer.APPROVAL: ApprovalDenied,
    DenialLayer.WORKSPACE: WorkspaceDenied,
    DenialLayer.DEFERRED: ApprovalDenied,
}


class AuthorizationProof(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: ProofKind
    detail: str = ""
    token_id: TokenId | None = None
    allowance_id: str | None = None
    approval_request_id: RequestId | None = None
    decision: ApprovalOption | None = None


class Authorization(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    allowed: bool
    reason: str
    proof: AuthorizationProof | None = None
    denied_by: DenialLayer | None = None
    audit_entry_id: AuditEntryId | None = None

    @model_validator(mode="after")
    def _consistent(self) -> Authorization:
        # An "allowed" without proof, or a denial that also carries a proof, is a bug upstream;
        # refuse to represent it rather than guess which half is true.
        if self.allowed and (self.proof is None or self.denied_by is not None):
            raise ValueError("an allowed Authorization needs a proof and no denied_by")
        if not self.allowed and (self.denied_by is None or self.proof is not None):
            raise ValueError("a denied Authorization needs denied_by and no proof")
        return self

    @classmethod
    def allow(
        cls,
        proof: AuthorizationProof,
        reason: str = "allowed",
        audit_entry_id: AuditEntryId | None = None,
    ) -> Authorization:
        return cls(allowed=True, reason=reason, proof=proof, audit_entry_id=audit_entry_id)

    @classmethod
    def deny(
        cls, layer: DenialLayer, reason: str, audit_entry_id: AuditEntryId | None = None
    ) -> Authorization:
        return cls(allowed=False, reason=reason, denied_by=layer, audit_entry_id=audit_entry_id)

    def require(self) -> Authorization:
        """Return self if allowed; otherwise raise the SecurityDenied subclass of the layer."""
        if self.allowed:
            return self
        error_type = _DENIAL_ERRORS.get(self.denied_by or DenialLayer.APPROVAL, SecurityDenied)
        raise error_type(f"denied by {self.denied_by or 'approval'}: {self.reason}")


@runtime_checkable
class Guard(Protocol):
    async def authorize(self, action: SensitiveAction, reason: str) -> Authorization: ...
