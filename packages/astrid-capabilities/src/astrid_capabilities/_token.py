"""CapabilityToken: the signed wire format of DESIGN.md §4, issuing, verifying, attenuating.

Wire form, signed as canonical JSON of every field except ``signature``::

    {"v": 2, "id": uuid, "resource": pattern, "permissions": [sorted names],
     "issued_at": int, "expires_at"?: int, "scope": "session"|"persistent",
     "session_id"?: uuid, "issuer": base64 Ed25519 public key,
     "approval_audit_id": uuid, "single_use": bool, "caveats": [...], "parent_id"?: uuid,
     "signature": base64 Ed25519 signature}

Format versions: ``v`` is the canonical JSON version of the signed bytes (astrid_crypto).
v2 (issued now) is RFC 8785 (JCS), so caveat values may be floats and an outside JCS
implementation rebuilds the signed bytes; v1 tokens (issued before, no floats) keep verifying.
``v`` is inside the signed bytes, so a token cannot be re-labelled to the other form.

Timestamps are integer **unix seconds**. Optional fields are omitted when absent rather than
written as null, so each token has exactly one byte form; ``from_json`` refuses any other
spelling (unsorted permissions, extra fields, wrong types).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Final, cast

from astrid_core import (
    AuditEntryId,
    BadInputError,
    CapabilityDenied,
    JsonObject,
    JsonValue,
    Permission,
    SessionId,
    TokenId,
    VerificationError,
)
from astrid_crypto import CANONICAL_VERSIONS, KeyPair, PublicKey, b64decode, canonical_json

from ._caveats import Caveat, caveat_from_json, caveat_key
from ._pattern import ResourcePattern

__all__ = [
    "CapabilityToken",
    "TokenScope",
    "TOKEN_VERSION",
    "TOKEN_VERSIONS",
    "WideningError",
    "attenuation_problem",
    "pattern_within",
    "now_seconds",
]

TOKEN_VERSION: Final = 2  # issued; TOKEN_VERSIONS verify
TOKEN_VERSIONS: Final = CANONICAL_VERSIONS
_REQUIRED: Final = frozenset(
    {
        "v",
        "id",
        "resource",
        "permissions",
        "issued_at",
        "scope",
        "issuer",
        "approval_audit_id",
        "single_use",
        "caveats",
        "signature",
    }
)
_OPTIONAL: Final = frozenset({"expires_at", "session_id", "parent_id"})
_VERIFIED_CACHE_LIMIT: Final = 100_000

# Signature results cached by the exact signed bytes. Safe because Ed25519 verification is a
# pure function of (public key, message bytes, signature): the same triple always verifies the
# same way, and none of the three can change behind the cache (bytes are immutable, the key is
# part of the cache key). Only *successes* are cached, and only the signature check: whether
# the issuer is still trusted, expiry, revocation, single-use and the parent chain are
# re-checked on every lookup. Any edit to a stored token changes the bytes and misses the cache.
_verified: dict[tuple[bytes, bytes, str], None] = {}


def now_seconds() -> int:
    return int(time.time())


class TokenScope(StrEnum):
    SESSION = "session"
    PERSISTENT = "persistent"


class WideningError(CapabilityDenied):
    """An attenuation tried to grant more than its parent token."""

    code = "security.capability.widening"
    default_hint = (
        "a derived token can only narrow: fewer permissions, a narrower resource, "
        "an earlier expiry and more caveats"
    )


def _permissions(values: Iterable[Permission | str]) -> frozenset[Permission]:
    result: set[Permission] = set()
    for value in values:
        try:
            result.add(Permission(value))
        except ValueError as exc:
            raise BadInputError(
                f"unknown permission {value!r}",
                hint=f"use one of {', '.join(p.value for p in Permission)}",
            ) from exc
    if not result:
        raise BadInputError("a capability token needs at least one permission")
    return frozenset(result)


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


@dataclass(frozen=True, slots=True)
class CapabilityToken:
    """One signed grant. Construct with ``issue`` / ``attenuate`` / ``from_json``."""

    id: TokenId
    resource: ResourcePattern
    permissions: frozenset[Permission]
    issued_at: int
    expires_at: int | None
    scope: TokenScope
    session_id: SessionId | None
    issuer: PublicKey
    approval_audit_id: AuditEntryId
    single_use: bool
    caveats: tuple[Caveat, ...]
    parent_id: TokenId | None
    signature: str
    v: int = TOKEN_VERSION
    signed_bytes: bytes = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        problem = self._shape_problem()
        if problem is not None:
            raise BadInputError(f"capability token {self.id}: {problem}")
        object.__setattr__(self, "signed_bytes", canonical_json(self.payload(), self.v))

    def _shape_problem(self) -> str | None:
        if not _is_int(self.v) or self.v not in TOKEN_VERSIONS:
            return (
                f"unsupported version {self.v!r} "
                f"(this library reads v{', v'.join(map(str, sorted(TOKEN_VERSIONS)))})"
            )
        if not self.permissions:
            return "it grants no permission"
        if not _is_int(self.issued_at) or self.issued_at < 0:
            return f"issued_at {self.issued_at!r} is not a non-negative integer (unix seconds)"
        if self.expires_at is not None:
            if not _is_int(self.expires_at):
                return f"expires_at {self.expires_at!r} is not an integer (unix seconds)"
            if self.expires_at < self.issued_at:
                return "expires_at is before issued_at"
        if self.scope is TokenScope.SESSION and self.session_id is None:
            return "a session-scoped token needs a session_id"
        if self.scope is TokenScope.PERSISTENT and self.session_id is not None:
            return "a persistent token must not carry a session_id"
        return None

    # ------------------------------------------------------------------ wire form

    def payload(self) -> JsonObject:
        """Everything the signature covers, in wire form."""
        data: JsonObject = {
            "v": self.v,
            "id": str(self.id),
            "resource": self.resource.pattern,
            "permissions": list[JsonValue](sorted(p.value for p in self.permissions)),
            "issued_at": self.issued_at,
            "scope": self.scope.value,
            "issuer": self.issuer.b64,
            "approval_audit_id": str(self.approval_audit_id),
            "single_use": self.single_use,
            "caveats": list[JsonValue]([c.to_json() for c in self.caveats]),
        }
        if self.expires_at is not None:
            data["expires_at"] = self.expires_at
        if self.session_id is not None:
            data["session_id"] = str(self.session_id)
        if self.parent_id is not None:
            data["parent_id"] = str(self.parent_id)
        return data

    def to_json(self) -> JsonObject:
        data = self.payload()
        data["signature"] = self.signature
        return data

    @classmethod
    def from_json(cls, data: object) -> CapabilityToken:
        """Parse the wire form strictly. Does NOT verify the signature (see ``verify``)."""
        if not isinstance(data, dict):
            raise BadInputError(f"a capability token is a JSON object, got {type(data).__name__}")
        obj = cast(dict[str, Any], data)
        missing = _REQUIRED - obj.keys()
        extra = obj.keys() - _REQUIRED - _OPTIONAL
        if missing or extra:
            raise BadInputError(
                f"capability token fields wrong: missing {sorted(missing)}, unknown {sorted(extra)}"
            )
        token = cls._parse(obj)
        original = {k: v for k, v in obj.items() if k != "signature"}
        if canonical_json(original, token.v) != token.signed_bytes:
            raise BadInputError(
                f"capability token {token.id} is not in canonical form "
                "(e.g. unsorted or repeated permissions, null for an absent field)"
            )
        return token

    @classmethod
    def _parse(cls, obj: dict[str, Any]) -> CapabilityToken:
        def text(name: str) -> str:
            value = obj.get(name)
            if not isinstance(value, str):
                raise BadInputError(f"capability token field {name!r} must be a string")
            return value

        permissions = obj["permissions"]
        caveats = obj["caveats"]
        if not isinstance(permissions, list) or not all(
            isinstance(p, str) for p in cast(list[object], permissions)
        ):
            raise BadInputError("capability token field 'permissions' must be a list of strings")
        if not isinstance(caveats, list):
            raise BadInputError("capability token field 'caveats' must be a list")
        if not isinstance(obj["single_use"], bool):
            raise BadInputError("capability token field 'single_use' must be true or false")
        for name in ("v", "issued_at", "expires_at"):
            if name in obj and not _is_int(obj[name]):
                raise BadInputError(f"capability token field {name!r} must be an integer")
        try:
            scope = TokenScope(text("scope"))
        except ValueError as exc:
            raise BadInputError("capability token scope must be session or persistent") from exc
        return cls(
            v=obj["v"],
            id=TokenId.parse(text("id")),
            resource=ResourcePattern(text("resource")),
            permissions=_permissions(cast(list[str], permissions)),
            issued_at=obj["issued_at"],
            expires_at=obj.get("expires_at"),
            scope=scope,
            session_id=SessionId.parse(text("session_id")) if "session_id" in obj else None,
            issuer=PublicKey.from_b64(text("issuer")),
            approval_audit_id=AuditEntryId.parse(text("approval_audit_id")),
            single_use=obj["single_use"],
            caveats=tuple(caveat_from_json(c) for c in cast(list[JsonValue], caveats)),
            parent_id=TokenId.parse(text("parent_id")) if "parent_id" in obj else None,
            signature=text("signature"),
        )

    # ------------------------------------------------------------------ issuing

    @classmethod
    def issue(
        cls,
        key: KeyPair,
        resource: ResourcePattern,
        permissions: Iterable[Permission | str],
        *,
        scope: TokenScope | str,
        session_id: SessionId | None = None,
        ttl_seconds: int | None = None,
        approval_audit_id: AuditEntryId,
        single_use: bool = False,
        caveats: Sequence[Caveat] = (),
        now: int | None = None,
    ) -> CapabilityToken:
        """Mint and sign a token with ``key`` (the runtime key)."""
        if not isinstance(resource, ResourcePattern):  # pyright: ignore[reportUnnecessaryIsInstance]
            raise BadInputError(
                f"resource must be a ResourcePattern, got {type(resource).__name__}",
                hint="use ResourcePattern.literal(uri) for an approved resource, "
                "ResourcePattern(glob) for a deliberate glob",
            )
        if ttl_seconds is not None and (not _is_int(ttl_seconds) or ttl_seconds <= 0):
            raise BadInputError(f"ttl_seconds {ttl_seconds!r} must be a positive integer")
        issued = now_seconds() if now is None else now
        try:
            scope_value = TokenScope(scope)
        except ValueError as exc:
            raise BadInputError(f"scope {scope!r} must be 'session' or 'persistent'") from exc
        unsigned = cls(
            id=TokenId.new(),
            resource=resource,
            permissions=_permissions(permissions),
            issued_at=issued,
            expires_at=None if ttl_seconds is None else issued + ttl_seconds,
            scope=scope_value,
            session_id=session_id,
            issuer=key.public_key,
            approval_audit_id=approval_audit_id,
            single_use=bool(single_use),
            caveats=tuple(caveats),
            parent_id=None,
            signature="",
        )
        return unsigned.signed_with(key)

    def signed_with(self, key: KeyPair) -> CapabilityToken:
        if key.public_key != self.issuer:
            raise BadInputError("the signing key is not the token's issuer")
        return dataclasses.replace(self, signature=key.sign_b64(self.signed_bytes))

    # ------------------------------------------------------------------ verifying

    def verify(self, trusted_keys: Iterable[PublicKey]) -> None:
        """Raise VerificationError unless a *trusted* key (never just the embedded one) signed."""
        trusted = trusted_keys if isinstance(trusted_keys, set | frozenset) else set(trusted_keys)
        if self.issuer not in trusted:
            raise VerificationError(
                f"capability token {self.id} was issued by key {self.issuer.key_id}, "
                "which is not a trusted issuer",
                hint="only tokens signed by the runtime key (or another trusted issuer) count",
            )
        cache_key = (self.issuer.raw, self.signed_bytes, self.signature)
        if cache_key in _verified:
            return
        try:
            signature = b64decode(self.signature, what="token signature")
        except BadInputError as exc:
            raise VerificationError(f"capability token {self.id}: {exc.message}") from exc
        try:
            self.issuer.verify(self.signed_bytes, signature)
        except VerificationError as exc:
            raise VerificationError(
                f"capability token {self.id}: signature does not verify (forged or edited)",
                hint=exc.hint,
            ) from exc
        if len(_verified) >= _VERIFIED_CACHE_LIMIT:
            _verified.clear()  # crude bound; a miss only costs one re-verification
        _verified[cache_key] = None

    def is_expired(self, now: int, skew: int) -> bool:
        return self.expires_at is not None and now > self.expires_at + skew

    def is_not_yet_valid(self, now: int, skew: int) -> bool:
        return self.issued_at > now + skew

    # ------------------------------------------------------------------ attenuation

    def attenuate(
        self,
        key: KeyPair,
        *,
        permissions: Iterable[Permission | str] | None = None,
        resource: ResourcePattern | None = None,
        ttl_seconds: int | None = None,
        caveats: Sequence[Caveat] = (),
        session_id: SessionId | None = None,
        scope: TokenScope | str | None = None,
        approval_audit_id: AuditEntryId | None = None,
        now: int | None = None,
    ) -> CapabilityToken:
        """Derive a narrower child token signed by ``key``; raise WideningError on any widening.

        The child keeps every parent caveat and adds ``caveats``; it expires no later than the
        parent. A session child may name another session (the sub-agent's); a persistent child
        of a session token is refused because it would outlive its parent.
        """
        issued = now_seconds() if now is None else now
        expires = self.expires_at
        if ttl_seconds is not None:
            if not _is_int(ttl_seconds) or ttl_seconds <= 0:
                raise BadInputError(f"ttl_seconds {ttl_seconds!r} must be a positive integer")
            expires = issued + ttl_seconds
        scope_value = TokenScope(scope) if scope is not None else self.scope
        child = CapabilityToken(
            id=TokenId.new(),
            resource=self.resource if resource is None else resource,
            permissions=self.permissions if permissions is None else _permissions(permissions),
            issued_at=max(issued, self.issued_at),
            expires_at=expires,
            scope=scope_value,
            session_id=(session_id or self.session_id)
            if scope_value is TokenScope.SESSION
            else None,
            issuer=key.public_key,
            approval_audit_id=approval_audit_id or self.approval_audit_id,
            single_use=False,
            caveats=self.caveats + tuple(caveats),
            parent_id=self.id,
            signature="",
        )
        problem = attenuation_problem(self, child)
        if problem is not None:
            raise WideningError(f"cannot derive from token {self.id}: {problem}")
        return child.signed_with(key)


def pattern_within(child: ResourcePattern, parent: ResourcePattern) -> bool:
    """True only if every URI ``child`` matches is provably matched by ``parent``.

    Conservative: glob inclusion in general is not decided; we accept equal patterns, exact
    children the parent matches, and globs below a parent of the form ``prefix/**`` or (for one
    segment) ``prefix/*``. Anything else is treated as widening.
    """
    if child.pattern == parent.pattern:
        return True
    if child.exact:
        return parent.matches(child.literal_prefix)
    if parent.exact or not parent.literal_prefix.endswith("/"):
        return False
    if not child.literal_prefix.startswith(parent.literal_prefix):
        return False
    if parent.tail == "**":
        return True
    if parent.tail == "*":
        rest = child.literal_prefix[len(parent.literal_prefix) :]
        # One segment only: nothing in the child may cross a '/', and '**' could.
        return "/" not in rest and "/" not in child.tail and "**" not in child.tail
    return False


def attenuation_problem(parent: CapabilityToken, child: CapabilityToken) -> str | None:
    """Why ``child`` is not a valid narrowing of ``parent``, or None."""
    if child.parent_id != parent.id:
        return "the child's parent_id does not name the parent"
    if parent.single_use:
        return "a single-use token cannot be delegated"
    if child.single_use:
        return "a derived token cannot be single-use (its parent is reusable; nothing to narrow)"
    extra = child.permissions - parent.permissions
    if extra:
        return f"permissions {sorted(p.value for p in extra)} are not granted by the parent"
    if not pattern_within(child.resource, parent.resource):
        return f"resource {child.resource.pattern!r} is not within {parent.resource.pattern!r}"
    if parent.expires_at is not None and (
        child.expires_at is None or child.expires_at > parent.expires_at
    ):
        return "the child would expire after its parent"
    if child.issued_at < parent.issued_at:
        return "the child claims to be issued before its parent"
    if parent.scope is TokenScope.SESSION and child.scope is not TokenScope.SESSION:
        return "a child of a session token must be session-scoped"
    child_caveats = {caveat_key(c) for c in child.caveats}
    if any(caveat_key(c) not in child_caveats for c in parent.caveats):
        return "the child drops a caveat of its parent"
    return None
