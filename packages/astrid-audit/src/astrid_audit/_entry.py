"""Audit entries and checkpoints: the signed, versioned wire format (DESIGN.md §4).

The hash covers every field of the entry (not just an outcome bit), including the key id, and
the signature is over that hash. Timestamps are integer milliseconds (no floats are signed).
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any, Self

from pydantic import BaseModel, ConfigDict, Field

from astrid_core import AuditEntryId, JsonObject, VerificationError
from astrid_crypto import KeyPair, PublicKey, canonical_json, content_hash

__all__ = [
    "OutcomeKind",
    "Outcome",
    "AuditEntry",
    "Checkpoint",
    "GENESIS",
    "SYSTEM_CHAIN",
    "FORMAT_VERSION",
]

FORMAT_VERSION = 1
GENESIS = "0" * 64
SYSTEM_CHAIN = "system"  # the chain of entries that belong to no session (lifecycle, config)


class OutcomeKind(StrEnum):
    ALLOWED = "allowed"
    DENIED = "denied"
    POLICY_BLOCKED = "policy_blocked"
    APPROVAL_REQUESTED = "approval_requested"
    APPROVAL_GRANTED = "approval_granted"
    APPROVAL_DENIED = "approval_denied"
    APPROVAL_DEFERRED = "approval_deferred"
    EXECUTED = "executed"
    SESSION_START = "session_start"
    SESSION_END = "session_end"
    CAPSULE_INSTALL = "capsule_install"
    CAPSULE_TRUST = "capsule_trust"
    CAPSULE_UPDATE = "capsule_update"
    CAPSULE_REMOVE = "capsule_remove"
    CAPSULE_ROLLBACK = "capsule_rollback"
    CONFIG_CHANGE = "config_change"
    KEY_ROTATION = "key_rotation"
    FRONTEND_REFUSED = "frontend_refused"
    MCP_TOOL_CHANGED = "mcp_tool_changed"  # a pinned tool changed: disabled until re-approved
    MCP_TOOL_APPROVED = "mcp_tool_approved"
    MCP_SERVER_EVENT = "mcp_server_event"  # start, crash, restart, give-up


class Outcome(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: OutcomeKind
    reason: str = ""
    success: bool | None = None  # for EXECUTED
    output_digest: str | None = None  # BLAKE3 of the full output
    output_preview: str = ""  # first bytes of the output, redacted and truncated
    detail: JsonObject = Field(default_factory=dict)


class AuditEntry(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    v: int = FORMAT_VERSION
    id: AuditEntryId
    seq: int = Field(ge=0)
    chain: str  # session id, or "system"
    chain_seq: int = Field(ge=0)
    timestamp_ms: int
    action: JsonObject | None = None
    authorization: JsonObject | None = None
    outcome: Outcome
    prev_hash: str
    key_id: str
    hash: str = ""
    signature: str = ""

    def body(self) -> dict[str, Any]:
        return self.model_dump(mode="json", exclude={"hash", "signature"})

    def compute_hash(self) -> str:
        return content_hash(canonical_json(self.body())).hex

    def sealed(self, key: KeyPair) -> Self:
        return self.sealed_with_record(key)[0]

    def sealed_with_record(self, key: KeyPair) -> tuple[Self, JsonObject]:
        """The sealed entry and its stored JSON form, from one serialization of the body."""
        body = self.body()
        digest = content_hash(canonical_json(body)).hex
        signature = key.sign_b64(bytes.fromhex(digest))
        sealed = self.model_copy(update={"hash": digest, "signature": signature})
        return sealed, {**body, "hash": digest, "signature": signature}

    def check(self, keys: dict[str, PublicKey]) -> None:
        """Recompute the hash and verify the signature with a trusted key. Raises."""
        if self.compute_hash() != self.hash:
            raise VerificationError(
                f"entry {self.seq} ({self.id}): hash does not match its content (edited)"
            )
        key = keys.get(self.key_id)
        if key is None:
            raise VerificationError(
                f"entry {self.seq} ({self.id}): signed by untrusted key {self.key_id}"
            )
        try:
            key.verify(bytes.fromhex(self.hash), self.signature)
        except VerificationError as exc:
            raise VerificationError(
                f"entry {self.seq} ({self.id}): signature check failed"
            ) from exc


class Checkpoint(BaseModel):
    """A signed statement: "the log had ``tree_size`` entries with Merkle root ``root``"."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    v: int = FORMAT_VERSION
    tree_size: int = Field(ge=0)
    root: str
    timestamp_ms: int
    key_id: str
    signature: str = ""

    def body(self) -> dict[str, Any]:
        return self.model_dump(mode="json", exclude={"signature"})

    def sealed(self, key: KeyPair) -> Self:
        return self.model_copy(update={"signature": key.sign_b64(canonical_json(self.body()))})

    def check(self, keys: dict[str, PublicKey]) -> None:
        key = keys.get(self.key_id)
        if key is None:
            raise VerificationError(
                f"checkpoint at size {self.tree_size}: signed by untrusted key {self.key_id}"
            )
        try:
            key.verify(canonical_json(self.body()), self.signature)
        except VerificationError as exc:
            raise VerificationError(
                f"checkpoint at size {self.tree_size}: signature check failed"
            ) from exc
