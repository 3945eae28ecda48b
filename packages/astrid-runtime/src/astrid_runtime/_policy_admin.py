"""The daemon side of ``astrid policy``: apply, list and revoke the admin policy file.

Only the daemon holds the runtime key and its capability store, so tokens are minted here.
``apply``:

1. parses and validates the text (the same parser as ``astrid policy check``);
2. records a ``config_change`` audit entry (``event = policy_apply``, the file's BLAKE3, its
   grants) — its id becomes every minted token's ``approval_audit_id``: an admin grant names
   the act that made it instead of an invented approval;
3. records the revocation of the previous policy's tokens (what keeps them revoked if a
   ``cap_revoked`` row is deleted), and witnesses both at once;
4. in ONE storage transaction: the new tokens, the old ones' revocation rows and the policy
   record (settings and token ids). If that transaction fails nothing changed, and an entry
   says so (the revocation entry then keeps the old tokens revoked at the next start: fail
   closed, fewer grants, never more).

The policy's settings (``strict``, ``on_caveat_mismatch``, labels) apply to sessions attached
after the apply; a workspace's ``.astrid/policy.toml`` adds restrictions to them.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import anyio

from astrid_approval import PolicySettings, parse_policy
from astrid_audit import Outcome, OutcomeKind
from astrid_capabilities import CapabilityToken
from astrid_core import AstridError, JsonObject, JsonValue, NotFoundError, TokenId
from astrid_core.storage import Put

if TYPE_CHECKING:
    from .runtime import AgentRuntime

__all__ = ["PolicyAdmin", "NS_POLICY"]

NS_POLICY = "policy_state"
_KEY = "current"
WORKSPACE_POLICY = Path(".astrid") / "policy.toml"


class PolicyAdmin:
    def __init__(self, runtime: AgentRuntime) -> None:
        self.runtime = runtime
        self.settings = PolicySettings()
        # apply and revoke read the applied record, then replace it: two at once would each
        # revoke only what they read, leaving live tokens that no record names.
        self._lock = anyio.Lock()

    async def load(self) -> None:
        record = await self._record()
        self.settings = PolicySettings.from_json(record["settings"]) if record else PolicySettings()

    async def _record(self) -> dict[str, Any] | None:
        value = await self.runtime.storage.get(NS_POLICY, _KEY)
        return cast(dict[str, Any], value) if isinstance(value, dict) else None

    def for_workspace(self, workspace: str) -> PolicySettings:
        """The applied settings plus the workspace's restrictions (ConfigError if its file is
        invalid or tries to loosen: the session is refused with the line and the fix)."""
        path = Path(workspace) / WORKSPACE_POLICY
        if not path.is_file():
            return self.settings
        local = parse_policy(path.read_text(encoding="utf-8"), str(path), layer="workspace")
        return self.settings.tightened(local.settings)

    async def apply(self, text: str, path: str) -> JsonObject:
        async with self._lock:
            return await self._apply(text, path)

    async def _apply(self, text: str, path: str) -> JsonObject:
        policy = parse_policy(text, path)
        runtime = self.runtime
        previous = await self._record()
        old_ids = [str(t) for t in (previous or {}).get("token_ids", [])]
        applied = await runtime.trail.event(
            Outcome(
                kind=OutcomeKind.CONFIG_CHANGE,
                reason=f"policy apply: {path} ({len(policy.grants)} grant(s))",
                detail={
                    "event": "policy_apply",
                    "path": path,
                    "blake3": policy.digest,
                    "grants": [g.name for g in policy.grants],
                    "replaces": len(old_ids),
                },
            )
        )
        tokens = policy.mint(runtime.key, applied.id)
        known = {str(t) for _, t, _ in await runtime.capabilities.persistent_tokens()}
        old = [TokenId.parse(t) for t in old_ids if t in known]
        if old:
            cascade = tuple(t for root in old for t in runtime.capabilities.cascade(root))
            await runtime.trail.revocation(cascade, f"replaced by policy apply {applied.id}")
        await runtime.audit.checkpoint()
        by_grant: list[JsonValue] = []
        index = 0
        for grant in policy.grants:
            ids = [str(t.id) for t in tokens[index : index + len(grant.resources)]]
            index += len(grant.resources)
            by_grant.append({"name": grant.name, "line": grant.line, "token_ids": list(ids)})
        record: JsonObject = {
            "audit_id": str(applied.id),
            "path": path,
            "blake3": policy.digest,
            "settings": policy.settings.to_json(),
            "token_ids": [str(t.id) for t in tokens],
            "grants": by_grant,
        }
        try:
            revoked = await runtime.capabilities.replace(
                tokens, old, [Put(NS_POLICY, _KEY, record)]
            )
        except AstridError as exc:
            await runtime.trail.event(
                Outcome(
                    kind=OutcomeKind.CONFIG_CHANGE,
                    reason=f"policy apply {applied.id} did not commit: {exc.message}",
                    detail={"event": "policy_apply_failed", "apply": str(applied.id)},
                )
            )
            raise
        self.settings = policy.settings
        return {
            "audit_id": str(applied.id),
            "tokens": [_token_row(t) for t in tokens],
            "revoked": [str(t) for t in revoked],
            "grants": by_grant,
            "settings": policy.settings.to_json(),
        }

    async def list(self) -> JsonObject:
        record = await self._record()
        if record is None:
            return {"applied": False, "tokens": [], "settings": PolicySettings().to_json()}
        statuses = {
            str(token_id): (token, status)
            for token, token_id, status in await self.runtime.capabilities.persistent_tokens()
        }
        rows: list[JsonValue] = []
        for grant in cast(list[dict[str, Any]], record.get("grants", [])):
            for token_id in grant.get("token_ids", []):
                token, status = statuses.get(token_id, (None, "missing from the store"))
                row: JsonObject = {"grant": grant["name"], "id": token_id, "status": status}
                if token is not None:
                    row.update(_token_row(token))
                rows.append(row)
        return {
            "applied": True,
            "audit_id": record.get("audit_id"),
            "path": record.get("path"),
            "blake3": record.get("blake3"),
            "settings": record.get("settings"),
            "tokens": rows,
        }

    async def revoke(self, grant: str | None, reason: str) -> JsonObject:
        """Revoke the applied policy's tokens (all, or one grant's); audited first."""
        async with self._lock:
            return await self._revoke(grant, reason)

    async def _revoke(self, grant: str | None, reason: str) -> JsonObject:
        record = await self._record()
        if record is None:
            raise NotFoundError("no policy is applied", hint="run `astrid policy apply FILE`")
        grants = cast(list[dict[str, Any]], record.get("grants", []))
        chosen = [g for g in grants if grant is None or g["name"] == grant]
        if not chosen:
            names = ", ".join(repr(g["name"]) for g in grants)
            raise NotFoundError(
                f"the applied policy has no grant named {grant!r}",
                hint=f"its grants: {names}; `astrid policy list` shows them",
            )
        known = {str(t) for _, t, _ in await self.runtime.capabilities.persistent_tokens()}
        roots = [TokenId.parse(t) for g in chosen for t in g["token_ids"] if t in known]
        cascade = tuple(t for root in roots for t in self.runtime.capabilities.cascade(root))
        if cascade:
            await self.runtime.trail.revocation(cascade, reason)
            await self.runtime.audit.checkpoint()
        remaining = [g for g in grants if g not in chosen]
        updated = dict(record)
        updated["grants"] = remaining
        updated["token_ids"] = [t for g in remaining for t in g["token_ids"]]
        if grant is None:
            updated["settings"] = PolicySettings().to_json()
        revoked = await self.runtime.capabilities.replace(
            [], roots, [Put(NS_POLICY, _KEY, cast(JsonObject, updated))]
        )
        await self.load()
        return {"revoked": [str(t) for t in revoked], "grants": [g["name"] for g in chosen]}


def _token_row(token: CapabilityToken) -> JsonObject:
    return {
        "id": str(token.id),
        "resource": token.resource.pattern,
        "permissions": [p.value for p in sorted(token.permissions, key=lambda p: p.value)],
        "caveats": [c.to_json() for c in token.caveats],
        "expires_at": token.expires_at,
        "approval_audit_id": str(token.approval_audit_id),
    }
