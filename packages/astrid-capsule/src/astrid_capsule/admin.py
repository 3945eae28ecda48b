"""Capsule installation inside the daemon: plan, trust, commit, list, info, roll back, remove.

Only a client holding the daemon token reaches this (the ``astrid.capsule*`` methods); no
agent tool maps to it, so the agent can never install or trust a capsule.

A client first *plans* an install: the source is staged (copied) and everything it is shown
comes from that staged copy, which is kept here under an unguessable plan id for
``PLAN_TTL_SECONDS``. Committing the plan installs exactly that copy; it needs a trust
acknowledgement when the install is fresh or the update asks for more than was accepted.

Every install, update, rollback and removal is written to the audit log *before* it takes
effect: when the entry cannot be written, the operation is undone (fail closed).

Trusted publisher keys are files ``<home>/keys/publishers/*.pub``, each holding one base64
Ed25519 public key (what ``astrid capsule keygen`` writes next to a publisher key). They
live under ``keys/`` because the security policy denies every path there to the agent: an
agent able to drop a key in would make its own capsule "trusted". They are read at each plan,
so adding one needs no daemon restart.
"""

from __future__ import annotations

import secrets as _secrets
import shutil
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import anyio

from astrid_audit import AuditLog, AuditTrail, Outcome, OutcomeKind
from astrid_core import (
    AstridError,
    BadInputError,
    ConfigError,
    JsonObject,
    JsonValue,
    NotFoundError,
)
from astrid_core.storage import Storage
from astrid_crypto import PublicKey

from .errors import ManifestError, TrustRequired
from .git import checkout, parse_git_source
from .install import (
    TRUST_REQUIRED_MESSAGE,
    CapsuleInstaller,
    InstallPlan,
    InstallRecord,
    RenewTrust,
    TrustAck,
)
from .manifest import CapsuleManifest, McpServerSpec, load_manifest
from .secrets import SECRETS_KEY_FILE, CapsuleSecrets

__all__ = [
    "CapsuleAdmin",
    "PLAN_TTL_SECONDS",
    "PUBLISHERS_DIR",
    "load_trusted_publishers",
    "manifest_summary",
]

PLAN_TTL_SECONDS = 600.0
PUBLISHERS_DIR = Path("keys") / "publishers"

TrustMethod = Literal["interactive", "flag"]


@dataclass
class _Pending:
    plan: InstallPlan
    expires_at: float


class CapsuleAdmin:
    def __init__(
        self,
        home: Path,
        storage: Storage,
        audit: AuditLog,
        *,
        plan_ttl_seconds: float = PLAN_TTL_SECONDS,
        clock: Callable[[], float] = time.monotonic,
        renew_trust: RenewTrust = "always",
    ) -> None:
        self.home = home
        self.audit = audit
        self.publishers_dir = home / PUBLISHERS_DIR
        self.installer = CapsuleInstaller(
            home, storage, on_event=self._audit_event, renew_trust=renew_trust
        )
        self.secrets = CapsuleSecrets(storage, home / SECRETS_KEY_FILE)
        self.plan_ttl_seconds = plan_ttl_seconds
        self._clock = clock
        self._plans: dict[str, _Pending] = {}
        self._orphans_removed = False
        # Commits are serialized: a plan's view of "the installed revision" must still hold
        # when it is committed.
        self._commit_lock = anyio.Lock()

    # ------------------------------------------------------------------ planning

    async def plan(self, source: str) -> JsonObject:
        """Stage ``source`` (an absolute path to a directory or archive) and disclose it."""
        self._sweep()
        git = parse_git_source(source)
        path = Path(source)
        if git is None and not path.is_absolute():
            raise BadInputError(
                f"capsule source {source!r} is not an absolute path",
                hint="the daemon has its own working directory; send the resolved path",
            )
        self.installer.trusted_publishers = load_trusted_publishers(self.publishers_dir)
        if git is None:
            plan = await self.installer.plan(path)  # its permission diff covers every kind
        else:
            plan = await self._plan_git(*git)
        try:
            stored = await self.secrets.names(plan.name) if plan.previous is not None else []
        except BaseException:
            self.installer.discard(plan)
            raise
        plan_id = _secrets.token_hex(16)
        self._plans[plan_id] = _Pending(plan, self._clock() + self.plan_ttl_seconds)
        return {
            "plan_id": plan_id,
            "expires_in_seconds": self.plan_ttl_seconds,
            "disclosure": self._disclosure(plan, stored),
        }

    async def _plan_git(self, url: str, ref: str) -> InstallPlan:
        """Clone, pin ``ref`` to a commit, and plan from that checkout (then removed)."""
        self.installer.root.mkdir(parents=True, exist_ok=True, mode=0o700)
        work = Path(tempfile.mkdtemp(prefix=".staging-git-", dir=self.installer.root))
        try:
            checkout_dir = work / "checkout"
            source = await anyio.to_thread.run_sync(lambda: checkout(url, ref, checkout_dir))
            return await self.installer.plan(checkout_dir, git=source)
        finally:
            shutil.rmtree(work, ignore_errors=True)

    def _disclosure(self, plan: InstallPlan, stored_secrets: list[str]) -> JsonObject:
        previous: JsonObject | None = None
        if plan.previous is not None:
            previous = {
                "version": plan.previous.version,
                "revision": plan.previous.revision,
                "content_hash": plan.previous.content_hash,
                "permissions_accepted": plan.previous.permissions_accepted,
            }
        return {
            **manifest_summary(plan.manifest, stored_secrets),
            "content_hash": plan.content_hash.hex,
            "publisher": {
                "signed": plan.publisher.signed,
                "key_id": plan.publisher.key_id,
                "trusted": plan.publisher.trusted,
            },
            "trusted_publishers_dir": str(self.publishers_dir),
            "previous": previous,
            "component_hash": plan.component_hash,
            "outside_workspace": list[JsonValue](plan.manifest.capabilities.outside_workspace()),
            "source": None
            if plan.source is None
            else {"git": plan.source.url, "ref": plan.source.ref, "commit": plan.source.commit},
            "widened": list(plan.widened),
            "removed": list(plan.removed),
            "changed": list(plan.changed),
            "renew_trust": plan.renew_trust,
            "needs_trust": plan.needs_trust,
            "text": plan.disclosure(),
        }

    # ------------------------------------------------------------------ commit

    async def commit(
        self,
        plan_id: str,
        trust_method: str | None,
        actor: str,
        secrets: Mapping[str, str] | None = None,
    ) -> JsonObject:
        pending = self._take(plan_id)
        plan = pending.plan
        try:
            method = _trust_method(trust_method)
            if plan.needs_trust and method is None:
                raise TrustRequired(TRUST_REQUIRED_MESSAGE)
            values = self._check_secrets(plan, dict(secrets or {}), await self._stored(plan))
        except BaseException:
            self.installer.discard(plan)
            raise
        async with self._commit_lock:
            try:
                current = await self.installer.get(plan.name)
                if _identity(current) != _identity(plan.previous):
                    raise ConfigError(
                        f"capsule {plan.name} was installed, updated or removed since this "
                        "plan was made; nothing installed",
                        hint="run `astrid capsule install` again to see the current changes",
                    )
                ack = TrustAck(method=method, actor=actor) if method is not None else None
                record = await self.installer.commit(plan, ack)
            finally:
                self.installer.discard(plan)  # a no-op once the staged copy was installed
            await self.secrets.store(plan.name, values)
        return {"record": record.to_json(), "secrets_stored": [name for name in sorted(values)]}

    async def discard(self, plan_id: str) -> JsonObject:
        pending = self._plans.pop(plan_id, None)
        if pending is not None:
            self.installer.discard(pending.plan)
        return {"discarded": pending is not None}

    def _take(self, plan_id: str) -> _Pending:
        self._sweep()
        # Popped before anything awaits: a plan is committed at most once.
        pending = self._plans.pop(plan_id, None)
        if pending is None:
            raise NotFoundError(
                f"no pending install plan {plan_id!r} (plans expire after "
                f"{self.plan_ttl_seconds:g} s and are used once)",
                hint="run `astrid capsule install` again",
            )
        return pending

    def _sweep(self) -> None:
        if not self._orphans_removed:
            # The daemon is the only process that stages capsules: staged copies found before
            # its first plan were left by a previous daemon and belong to no plan.
            self._orphans_removed = True
            if self.installer.root.is_dir():
                for orphan in self.installer.root.glob(".staging-*"):
                    shutil.rmtree(orphan, ignore_errors=True)
        now = self._clock()
        for plan_id, pending in list(self._plans.items()):
            if pending.expires_at <= now:
                del self._plans[plan_id]
                self.installer.discard(pending.plan)

    async def _stored(self, plan: InstallPlan) -> list[str]:
        return await self.secrets.names(plan.name) if plan.previous is not None else []

    @staticmethod
    def _check_secrets(
        plan: InstallPlan, given: dict[str, str], stored: list[str]
    ) -> dict[str, str]:
        declared = plan.manifest.secrets
        unknown = sorted(set(given) - set(declared))
        if unknown:
            raise BadInputError(
                f"capsule {plan.name} declares no secret named {', '.join(unknown)}",
                hint=f"it declares: {', '.join(declared) or 'none'}",
            )
        missing = [
            name
            for name in declared
            if not given.get(name)
            and name not in stored
            and plan.manifest.env[name].default is None
        ]
        if missing:
            raise BadInputError(
                f"capsule {plan.name} needs the secret(s) {', '.join(missing)}",
                hint="`astrid capsule install` asks for them (hidden input)",
            )
        return {name: value for name, value in given.items() if value}

    # ------------------------------------------------------------------ lifecycle

    async def list(self) -> list[JsonObject]:
        records = sorted(await self.installer.list(), key=lambda r: r.name)
        return [record.to_json() for record in records]

    async def info(self, name: str) -> JsonObject:
        record = await self.installer.require(name)
        path = self.installer.path_of(record)
        problem: str | None = None
        try:
            await self.installer.verify_installed(name)
        except AstridError as exc:
            problem = exc.message
        summary: dict[str, Any] = {}
        try:
            summary = manifest_summary(load_manifest(path), await self.secrets.names(name))
        except ManifestError as exc:
            problem = problem or exc.message
        return {
            "record": record.to_json(),
            "path": str(path),
            "verified": problem is None,
            "problem": problem,
            "manifest": summary,
        }

    async def rollback(self, name: str) -> JsonObject:
        async with self._commit_lock:
            return (await self.installer.rollback(name)).to_json()

    async def remove(self, name: str) -> JsonObject:
        async with self._commit_lock:
            await self.installer.remove(name)
            await self.secrets.delete(name)
        return {"removed": name}

    # ------------------------------------------------------------------ audit

    async def _audit_event(self, kind: str, data: JsonObject) -> None:
        # An unknown kind raises here, and the installer undoes what it was about to do.
        outcome = OutcomeKind(kind)
        name, version, revision = data.get("name"), data.get("version"), data.get("revision")
        trust = f"trust: {data.get('trust_method')} by {data.get('trust_actor')}"
        reasons = {
            OutcomeKind.CAPSULE_INSTALL: f"installed capsule {name} {version} "
            f"(revision {revision}; {trust})",
            OutcomeKind.CAPSULE_UPDATE: f"updated capsule {name} to {version} "
            f"(revision {revision}; {trust})",
            OutcomeKind.CAPSULE_ROLLBACK: f"rolled capsule {name} back to {version} "
            f"(revision {revision})",
            OutcomeKind.CAPSULE_REMOVE: f"removed capsule {name}",
        }
        await AuditTrail(self.audit).event(
            Outcome(kind=outcome, reason=reasons.get(outcome, f"capsule {name}"), detail=data)
        )


def load_trusted_publishers(directory: Path) -> list[PublicKey]:
    """Every ``*.pub`` in ``directory``; a malformed one is an error, not silently skipped."""
    if not directory.is_dir():
        return []
    keys: list[PublicKey] = []
    for path in sorted(directory.glob("*.pub")):
        try:
            keys.append(PublicKey.from_b64(path.read_text().strip()))
        except (AstridError, OSError, UnicodeDecodeError) as exc:
            why = exc.message if isinstance(exc, AstridError) else str(exc)
            raise ConfigError(
                f"trusted publisher key {path} is not a base64 Ed25519 public key: {why}",
                hint="put exactly the one-line public key from `astrid capsule keygen` "
                "(the KEYFILE.pub) in the file, or remove it",
            ) from exc
    return keys


def _trust_method(value: str | None) -> TrustMethod | None:
    if value is None:
        return None
    if value == "interactive":
        return "interactive"
    if value == "flag":
        return "flag"
    raise BadInputError(f"unknown trust method {value!r}", hint="use 'interactive' or 'flag'")


def _identity(record: InstallRecord | None) -> tuple[int, str] | None:
    return (record.revision, record.content_hash) if record is not None else None


def _command(server: McpServerSpec) -> str:
    return " ".join([server.command or server.url or "?", *server.args])


def manifest_summary(manifest: CapsuleManifest, stored_secrets: list[str]) -> dict[str, Any]:
    """What a capsule is and asks for, as JSON for clients to render."""
    caps = manifest.capabilities
    package = manifest.package
    return {
        "name": package.name,
        "version": package.version,
        "description": package.description,
        "authors": list(package.authors),
        "license": package.license,
        "component": None
        if manifest.component is None
        else {
            "entrypoint": manifest.component.entrypoint,
            "wasi": manifest.component.wasi,
            "hash": manifest.component.hash,
        },
        "capabilities": caps.model_dump(mode="json"),
        "secrets": [
            {
                "name": name,
                "description": var.description,
                "request": var.request,
                "has_default": var.default is not None,
                "stored": name in stored_secrets,
            }
            for name, var in manifest.env.items()
            if var.is_secret
        ],
        "settings": [
            {"name": name, "description": var.description, "default": var.default}
            for name, var in manifest.env.items()
            if not var.is_secret
        ],
        "mcp_servers": [
            {"id": s.id, "type": s.type, "command": _command(s), "env": sorted(s.env)}
            for s in manifest.mcp_server
        ],
        "tools": [{"name": t.name, "description": t.description} for t in manifest.tool],
        "skills": [{"name": s.name, "description": s.description} for s in manifest.skill],
        "context": [{"name": c.name, "file": c.file} for c in manifest.context],
        "commands": [{"name": c.name, "description": c.description} for c in manifest.command],
        "interceptors": [hook.event for hook in manifest.interceptor],
        "cron": [
            {"name": c.name, "schedule": c.schedule, "action": c.action} for c in manifest.cron
        ],
        "llm_providers": [p.id for p in manifest.llm_provider],
    }
