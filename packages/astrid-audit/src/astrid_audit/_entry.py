"""Audit entries and checkpoints: the signed, versioned wire format (DESIGN.md §4).

The hash covers every field of the entry (not just an outcome bit), including the key id, and
the signature is over that hash. Timestamps are integer milliseconds.

Format versions (the ``v`` field, inside the hashed bytes, picks the canonical JSON form):
v2 (written now) is RFC 8785 JCS, so an action with float arguments is recorded and an outside
JCS implementation recomputes the hash; v1 (written before) is the float-free canonical JSON
of astrid_crypto v1 and keeps verifying. Any other ``v`` fails verification.
"""

from __future__ import annotations

from collections.abc import Mapping
from collections.abc import Set as AbstractSet
from enum import StrEnum
from typing import Any, Self

from pydantic import BaseModel, ConfigDict, Field

from astrid_core import AuditEntryId, BadInputError, JsonObject, VerificationError
from astrid_crypto import (
    CANONICAL_VERSIONS,
    KeyPair,
    PublicKey,
    canonical_json,
    canonical_text,
    content_hash,
)

__all__ = [
    "OutcomeKind",
    "Outcome",
    "AuditEntry",
    "Checkpoint",
    "GENESIS",
    "SYSTEM_CHAIN",
    "FORMAT_VERSION",
    "FORMAT_VERSIONS",
    "seal_body",
    "seal_member_texts",
    "BODY_MEMBERS",
]

FORMAT_VERSION = 2  # what is written; FORMAT_VERSIONS is what verifies
FORMAT_VERSIONS = CANONICAL_VERSIONS  # the entry/checkpoint v is its canonical JSON version
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
    SCHEDULED_RUN = "scheduled_run"  # a capsule's [[cron]] job started (its end: executed/denied)
    CAPABILITY_REVOKED = "capability_revoked"  # detail.capability_ids: token + descendants
    SESSION_DELETED = "session_deleted"  # a session's record was deleted (its entries stay)


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
        _known_version(self.v, f"entry {self.seq} ({self.id})")
        return content_hash(canonical_json(self.body(), self.v)).hex

    def sealed(self, key: KeyPair) -> Self:
        return self.sealed_with_text(key)[0]

    def sealed_with_text(self, key: KeyPair) -> tuple[Self, str]:
        """The sealed entry and its stored JSON text (canonical, hash and signature included)."""
        digest, signature, text = seal_body(self.body(), key)
        return self.model_copy(update={"hash": digest, "signature": signature}), text

    def check(self, keys: dict[str, PublicKey]) -> None:
        """Recompute the hash and verify the signature with a trusted key. Raises."""
        self.check_signature(self.check_content(keys))

    def check_content(self, keys: dict[str, PublicKey]) -> PublicKey:
        """The hash matches the content and names a trusted key, which is returned. Raises."""
        try:
            digest = self.compute_hash()
        except BadInputError as exc:  # e.g. a v1 entry relabelled v2 whose integer is too big
            raise VerificationError(
                f"entry {self.seq} ({self.id}): its content has no format v{self.v} encoding "
                f"(edited): {exc.message}"
            ) from exc
        if digest != self.hash:
            raise VerificationError(
                f"entry {self.seq} ({self.id}): hash does not match its content (edited)"
            )
        key = keys.get(self.key_id)
        if key is None:
            raise VerificationError(
                f"entry {self.seq} ({self.id}): signed by untrusted key {self.key_id}"
            )
        return key

    def check_signature(self, key: PublicKey) -> None:
        """The signature over the hash is ``key``'s (after ``check_content``). Raises."""
        try:
            key.verify(bytes.fromhex(self.hash), self.signature)
        except VerificationError as exc:
            raise VerificationError(
                f"entry {self.seq} ({self.id}): signature check failed"
            ) from exc


# The body's members in canonical (code point) order. The stored record is the hashed text
# with "hash" spliced in after chain_seq and "signature" after seq, so an entry is serialized
# once for both (a test checks the splice against a full serialization).
BODY_MEMBERS = (
    "action",
    "authorization",
    "chain",
    "chain_seq",
    "id",
    "key_id",
    "outcome",
    "prev_hash",
    "seq",
    "timestamp_ms",
    "v",
)
_BODY_KEYS = frozenset(BODY_MEMBERS)
_HASH_AFTER = BODY_MEMBERS.index("chain_seq") + 1
_SIGNATURE_AFTER = BODY_MEMBERS.index("seq") + 1


def seal_body(body: dict[str, Any], key: KeyPair) -> tuple[str, str, str]:
    """Hash and sign an entry body (the ``AuditEntry.body()`` form): (hash hex, signature
    base64, the stored JSON text of the sealed entry)."""
    _require_body_keys(body.keys())
    version = body["v"]
    _known_version(version, "entry")
    return seal_member_texts(
        {name: canonical_text(value, version) for name, value in body.items()}, key
    )


def seal_member_texts(texts: Mapping[str, str], key: KeyPair) -> tuple[str, str, str]:
    """``seal_body`` for a caller that has each member's value as canonical JSON text
    (``astrid_crypto.canonical_text`` in the version the ``v`` member names), some of them
    encoded once and reused. The members are ASCII names, so code point order (v1) and
    UTF-16 order (v2, RFC 8785) are the same and the splice holds for both."""
    _require_body_keys(texts.keys())
    members = [f'"{name}":{texts[name]}' for name in BODY_MEMBERS]
    first = ",".join(members[:_HASH_AFTER])
    middle = ",".join(members[_HASH_AFTER:_SIGNATURE_AFTER])
    last = ",".join(members[_SIGNATURE_AFTER:])
    digest = content_hash(f"{{{first},{middle},{last}}}".encode()).hex
    signature = key.sign_b64(bytes.fromhex(digest))
    return (
        digest,
        signature,
        f'{{{first},"hash":"{digest}",{middle},"signature":"{signature}",{last}}}',
    )


def _known_version(version: object, what: str) -> None:
    if version not in FORMAT_VERSIONS or isinstance(version, bool):
        raise VerificationError(
            f"{what}: unknown format version {version!r}",
            hint="this Astrid verifies audit format versions 1 and 2; upgrade it for newer logs",
        )


def _require_body_keys(keys: AbstractSet[str]) -> None:
    if keys != _BODY_KEYS:
        raise ValueError(f"an audit entry body has the keys {sorted(_BODY_KEYS)}")


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

    def signed_bytes(self) -> bytes:
        _known_version(self.v, f"checkpoint at size {self.tree_size}")
        return canonical_json(self.body(), self.v)

    def sealed(self, key: KeyPair) -> Self:
        return self.model_copy(update={"signature": key.sign_b64(self.signed_bytes())})

    def check(self, keys: dict[str, PublicKey]) -> None:
        signed = self.signed_bytes()
        key = keys.get(self.key_id)
        if key is None:
            raise VerificationError(
                f"checkpoint at size {self.tree_size}: signed by untrusted key {self.key_id}"
            )
        try:
            key.verify(signed, self.signature)
        except VerificationError as exc:
            raise VerificationError(
                f"checkpoint at size {self.tree_size}: signature check failed"
            ) from exc
