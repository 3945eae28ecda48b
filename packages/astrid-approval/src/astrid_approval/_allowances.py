"""Allowances: what "Allow Session" and "Allow Workspace" grant. Signed, verified on every use.

An allowance is built only from the *literal* resource the user approved (glob characters
escaped through ``ResourcePattern.literal``), so approving the file ``/tmp/*`` never grants
``/tmp/anything``. A shell line's allowance is the set of its simple commands (argv, variable
assignments, redirections and the directories ``cd`` leads to): a later line is covered only
when every one of its simple commands is in that set and the line is not opaque, so approving
``ls`` never covers ``ls && touch pwned``. Allowances stored before (``cmd://<program>``) still
load and verify, but no longer cover any shell line. Each record is signed by the runtime
key; a record edited in storage fails verification, is counted as tampered and is never used.
"""

from __future__ import annotations

import json
import logging
import re
import shlex
import time
import weakref
from dataclasses import dataclass, replace
from enum import StrEnum
from functools import lru_cache
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
    ShellCommand,
    VerificationError,
)
from astrid_core.storage import Storage
from astrid_crypto import KeyPair, PublicKey, canonical_json, content_hash

from ._shell import CommandKey, parse_command_line

__all__ = [
    "AllowanceKind",
    "Allowance",
    "AllowanceStore",
    "command_set",
    "decode_commands",
    "shell_scope_resource",
]

log = logging.getLogger("astrid.approval")
_NS = "allowances"


class AllowanceKind(StrEnum):
    EXACT_TOOL = "exact_tool"
    FILE_PATTERN = "file_pattern"
    NETWORK_HOST = "network_host"
    WORKSPACE_RELATIVE = "workspace_relative"
    CAPSULE_CAPABILITY = "capsule_capability"
    COMMAND = "command"  # before command sets: "cmd://<program>"; never covers a shell line
    COMMAND_SET = "command_set"  # the exact simple commands of an approved shell line


def command_set(action: ShellCommand) -> frozenset[CommandKey] | None:
    """The simple commands a shell line runs, or None when it is opaque (never covered)."""
    parsed = parse_command_line(action.command)
    if parsed.opaque or not parsed.commands:
        return None
    return parsed.keys


def _encode_commands(keys: frozenset[CommandKey]) -> str:
    ordered = sorted([list(part) for part in key] for key in keys)
    return canonical_json(ordered).decode()


@lru_cache(maxsize=512)
def decode_commands(resource: str) -> frozenset[CommandKey]:
    """The command set a COMMAND_SET allowance's resource encodes (empty when malformed)."""
    try:
        raw = json.loads(resource)
        keys: set[CommandKey] = set()
        for item in raw:
            assignments, argv, redirects, cwds = (tuple(str(x) for x in part) for part in item)
            keys.add((assignments, argv, redirects, cwds))
        return frozenset(keys)
    except (ValueError, TypeError):
        return frozenset()


def shell_scope_resource(action: ShellCommand) -> str:
    """The capability resource an "allow always" of this exact line grants: the program and
    a digest of its command set, so the token covers only lines that run the same commands."""
    return _scope_resource(action.command)


@lru_cache(maxsize=1024)
def _scope_resource(command: str) -> str:
    parsed = parse_command_line(command)
    keys = parsed.keys if not parsed.opaque and parsed.commands else frozenset[CommandKey]()
    digest = content_hash(_encode_commands(keys).encode()).hex
    program = parsed.commands[0].program if parsed.commands else ""
    if not re.fullmatch(r"[A-Za-z0-9._+-]{1,64}", program) or program in (".", ".."):
        program = "_"  # only a label (the digest is the scope); "." is no URI segment
    return f"cmd://{program}/line-{digest}"


def _kind_for(action: SensitiveAction, workspace: str) -> AllowanceKind:
    if isinstance(action, ShellCommand):
        return AllowanceKind.COMMAND_SET
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
        if action.permission.value != self.permission:
            return False
        if isinstance(action, ShellCommand):
            if self.kind is not AllowanceKind.COMMAND_SET:
                return False  # a program-wide allowance from before command sets
            wanted = command_set(action)
            return wanted is not None and wanted <= decode_commands(self.resource)
        if self.kind is AllowanceKind.COMMAND_SET:
            return False
        return ResourcePattern(self.resource).matches(action.resource)

    @property
    def scope_text(self) -> str:
        """What it covers, for a human: the exact commands of a command set."""
        if self.kind is AllowanceKind.COMMAND_SET:
            return "; ".join(
                shlex.join(argv) for _, argv, _, _ in sorted(decode_commands(self.resource))
            )
        return self.resource


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

        kind = _kind_for(action, workspace)
        if isinstance(action, ShellCommand):
            resource = _encode_commands(command_set(action) or frozenset())
        else:
            resource = ResourcePattern.literal(action.resource).pattern
        return Allowance(
            id=str(uuid.uuid4()),
            kind=kind,
            resource=resource,
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
