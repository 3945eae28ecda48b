"""Allowances: what "Allow Session" and "Allow Workspace" grant. Signed, verified on every use.

An allowance is built only from the *literal* resource the user approved (glob characters
escaped through ``ResourcePattern.literal``), so approving the file ``/tmp/*`` never grants
``/tmp/anything``. Each record is signed by the runtime key; a record edited in storage fails
verification, is counted as tampered and is never used.
"""

from __future__ import annotations

import logging
import time
import weakref
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Any

from astrid_capabilities import ResourcePattern
from astrid_core import (
    BadInputError,
    CapsuleHostCall,
    JsonObject,
    McpToolCall,
    NetworkRequest,
    SensitiveAction,
    SessionId,
    VerificationError,
)
from astrid_core.storage import Storage
from astrid_crypto import KeyPair, PublicKey, canonical_json

__all__ = ["AllowanceKind", "Allowance", "AllowanceStore"]

log = logging.getLogger("astrid.approval")
_NS = "allowances"


class AllowanceKind(StrEnum):
    EXACT_TOOL = "exact_tool"
    FILE_PATTERN = "file_pattern"
    NETWORK_HOST = "network_host"
    WORKSPACE_RELATIVE = "workspace_relative"
    CAPSULE_CAPABILITY = "capsule_capability"
    COMMAND = "command"


def _kind_for(action: SensitiveAction, workspace: str) -> AllowanceKind:
    if isinstance(action, McpToolCall):
        return AllowanceKind.EXACT_TOOL
    if isinstance(action, NetworkRequest):
        return AllowanceKind.NETWORK_HOST
    if isinstance(action, CapsuleHostCall):
        return AllowanceKind.CAPSULE_CAPABILITY
    if action.resource.startswith("file://"):
        inside = action.resource[len("file://") :].startswith(workspace.rstrip("/") + "/")
        return AllowanceKind.WORKSPACE_RELATIVE if inside else AllowanceKind.FILE_PATTERN
    return AllowanceKind.COMMAND


@dataclass(frozen=True)
class Allowance:
    id: str
    kind: AllowanceKind
    resource: str  # an escaped literal ResourcePattern
    permission: str
    scope: str  # "session" | "workspace"
    session_id: str | None
    workspace: str
    created_at: int
    approval_audit_id: str | None
    issuer: str
    signature: str = ""

    def body(self) -> dict[str, Any]:
        data = dict(self.__dict__)
        data.pop("signature")
        data["kind"] = self.kind.value
        return data

    def to_json(self) -> JsonObject:
        return {**self.body(), "signature": self.signature}

    @classmethod
    def from_json(cls, raw: Any) -> Allowance:
        if not isinstance(raw, dict):
            raise BadInputError("allowance record is not an object")
        data: dict[str, Any] = dict(raw)  # pyright: ignore[reportUnknownArgumentType]

        def optional(name: str) -> str | None:
            value = data.get(name)
            return None if value is None else str(value)

        return cls(
            id=str(data["id"]),
            kind=AllowanceKind(data["kind"]),
            resource=str(data["resource"]),
            permission=str(data["permission"]),
            scope=str(data["scope"]),
            session_id=optional("session_id"),
            workspace=str(data["workspace"]),
            created_at=int(data["created_at"]),
            approval_audit_id=optional("approval_audit_id"),
            issuer=str(data["issuer"]),
            signature=str(data.get("signature", "")),
        )

    def matches(self, action: SensitiveAction) -> bool:
        return action.permission.value == self.permission and ResourcePattern(
            self.resource
        ).matches(action.resource)


# Verified allowances per storage, trusted-key set and key prefix. Every AllowanceStore in
# the process over the same storage shares them (a sub-agent's view included), so a grant by
# one is seen by all without re-reading storage on each decision. Allowances are never
# revoked, and one edited in storage could not be re-signed: it is caught at the next start.
_VERIFIED: weakref.WeakKeyDictionary[Any, dict[tuple[frozenset[str], str], list[Allowance]]] = (
    weakref.WeakKeyDictionary()
)


class AllowanceStore:
    def __init__(
        self, storage: Storage, key: KeyPair, trusted: list[PublicKey] | None = None
    ) -> None:
        self.storage = storage
        self.key = key
        self.trusted = {k.key_id: k for k in (trusted or [key.public_key])}
        self.tampered = 0

    def draft(
        self,
        action: SensitiveAction,
        *,
        scope: str,
        session_id: SessionId,
        workspace: str,
        approval_audit_id: str | None = None,
    ) -> Allowance:
        """The unsigned allowance ``grant`` would store for ``action``: what an approval
        prompt describes to the person before they choose (see ``describe_allowance``)."""
        import uuid

        return Allowance(
            id=str(uuid.uuid4()),
            kind=_kind_for(action, workspace),
            resource=ResourcePattern.literal(action.resource).pattern,
            permission=action.permission.value,
            scope=scope,
            session_id=str(session_id) if scope == "session" else None,
            workspace=workspace,
            created_at=int(time.time()),
            approval_audit_id=approval_audit_id,
            issuer=self.key.key_id,
        )

    async def grant(
        self,
        action: SensitiveAction,
        *,
        scope: str,
        session_id: SessionId,
        workspace: str,
        approval_audit_id: str | None,
    ) -> Allowance:
        allowance = self.draft(
            action,
            scope=scope,
            session_id=session_id,
            workspace=workspace,
            approval_audit_id=approval_audit_id,
        )
        signed = replace(allowance, signature=self.key.sign_b64(canonical_json(allowance.body())))
        prefix = f"{scope}:{signed.session_id or workspace}:"
        await self.storage.put(_NS, f"{prefix}{signed.id}", signed.to_json())
        for (trusted, cached_prefix), allowances in self._cache().items():
            if cached_prefix == prefix and signed.issuer in trusted:
                allowances.append(signed)
        return signed

    def _cache(self) -> dict[tuple[frozenset[str], str], list[Allowance]]:
        try:
            return _VERIFIED.setdefault(self.storage, {})
        except TypeError:  # a storage object that cannot be weakly referenced: no caching
            return {}

    def _verified(self, raw: Any) -> Allowance | None:
        try:
            allowance = Allowance.from_json(raw)
            key = self.trusted.get(allowance.issuer)
            if key is None:
                raise VerificationError("allowance issued by an untrusted key")
            key.verify(canonical_json(allowance.body()), allowance.signature)
        except (VerificationError, BadInputError, KeyError, TypeError, ValueError) as exc:
            self.tampered += 1
            log.warning("ignoring an allowance that failed verification: %s", exc)
            return None
        return allowance

    async def list(self, session_id: SessionId, workspace: str) -> list[Allowance]:
        cache = self._cache()
        trusted = frozenset(self.trusted)
        found: list[Allowance] = []
        for prefix in (f"session:{session_id}:", f"workspace:{workspace}:"):
            cached = cache.get((trusted, prefix))
            if cached is None:
                cached = list[Allowance]()
                for _, raw in await self.storage.scan(_NS, prefix):
                    allowance = self._verified(raw)
                    if allowance is not None:
                        cached.append(allowance)
                cache[(trusted, prefix)] = cached
            found += cached
        return found

    async def find(
        self, action: SensitiveAction, session_id: SessionId, workspace: str
    ) -> Allowance | None:
        for allowance in await self.list(session_id, workspace):
            if allowance.matches(action):
                return allowance
        return None
