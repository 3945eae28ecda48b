"""Install, trust, update, roll back and remove capsules (seed 004's flow, but enforced).

Everything is decided from a *staged copy*: the source is copied (regular files only) into the
state directory first, and the disclosure, hashes and signature checks are computed from that
copy, which is then the very directory that gets installed. Swapping the source after the
check changes nothing. Installing needs an explicit trust acknowledgement; the agent has no
path to this module (the daemon exposes no install method to sessions).
"""

from __future__ import annotations

import os
import shutil
import tarfile
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import anyio.to_thread

from astrid_core import AstridError, ConfigError, JsonObject, NotFoundError, VerificationError
from astrid_core.storage import Storage
from astrid_crypto import ContentHash, KeyPair, PublicKey, hash_file

from ._signing import PublisherInfo, sign_capsule, verify_capsule_signature
from ._tree import copy_tree, tree_hash
from .errors import TrustRequired
from .manifest import MANIFEST_NAME, Capabilities, CapsuleManifest, load_manifest

__all__ = [
    "CapsuleInstaller",
    "InstallPlan",
    "TrustAck",
    "TrustRequired",
    "InstallRecord",
    "GitSource",
    "RenewTrust",
    "compile_capsule",
    "widened_permissions",
    "TRUST_REQUIRED_MESSAGE",
]

_NAMESPACE = "capsules"
TRUST_REQUIRED_MESSAGE = (
    "installing a capsule requires explicit trust: pass --trust (--yes alone only skips the "
    "ordinary confirmation and never grants trust)"
)

EventHook = Callable[[str, JsonObject], Awaitable[None]]
# [capsules] renew_trust: "always" (seed 004: every update is trusted again) or "on_widening"
# (only an update that asks for more, changes hash-less component code or moves a git ref).
RenewTrust = Literal["always", "on_widening"]


@dataclass(frozen=True)
class TrustAck:
    method: Literal["interactive", "flag"]
    actor: str = "cli"


@dataclass(frozen=True)
class GitSource:
    """Where a capsule installed from git came from: the URL, the ref asked for, and the
    commit it resolved to when it was reviewed (the trust record keeps all three)."""

    url: str
    ref: str
    commit: str


@dataclass
class InstallPlan:
    manifest: CapsuleManifest
    staged: Path
    content_hash: ContentHash
    publisher: PublisherInfo
    previous: InstallRecord | None
    widened: list[str] = field(default_factory=list[str])  # added permissions (the diff's +)
    removed: list[str] = field(default_factory=list[str])  # what the update gives up (-)
    changed: list[str] = field(default_factory=list[str])  # version, content, code, commit (~)
    # The BLAKE3 of the component: the manifest's, or computed at install when it gives none.
    component_hash: str | None = None
    source: GitSource | None = None
    renew_trust: RenewTrust = "always"
    # Changes that need trust again whatever renew_trust says (hash-less code, a moved ref).
    rebinding: list[str] = field(default_factory=list[str])

    @property
    def name(self) -> str:
        return self.manifest.name

    @property
    def needs_trust(self) -> bool:
        # A fresh install always needs trust; an update as [capsules] renew_trust says, and
        # always when it asks for more or what trust was bound to (a hash, a commit) moved.
        if self.previous is None or self.renew_trust == "always":
            return True
        return bool(self.widened) or bool(self.rebinding)

    def disclosure(self) -> str:
        m = self.manifest
        caps = m.capabilities
        lines = [
            f"Capsule {m.name} {m.package.version}"
            + (f" — {m.package.description}" if m.package.description else ""),
            f"  content hash: {self.content_hash.hex}",
        ]
        component = m.component
        if component is not None:
            how = "" if component.hash else " (hashed now: the manifest gives no hash)"
            lines.append(
                f"  component:    {component.entrypoint} BLAKE3 {self.component_hash}{how}"
            )
        if self.source is not None:
            lines.append(
                f"  from git:     {self.source.url} at {self.source.ref!r} = commit "
                f"{self.source.commit} (pinned: a moved ref needs trust again)"
            )
        if self.publisher.signed:
            trust = (
                "trusted publisher"
                if self.publisher.trusted
                else "publisher NOT in your trusted keys"
            )
            lines.append(f"  signed by:    {self.publisher.key_id} ({trust})")
        else:
            lines.append("  signed by:    *** UNSIGNED: nobody vouches for this capsule ***")
        lines.append("  it asks for:")
        asked = [
            ("read files (workspace)", caps.fs_read),
            ("write files (workspace)", caps.fs_write),
            ("network hosts", caps.net),
            ("config keys", caps.config),
        ]
        for label, values in asked:
            inside = [v for v in values if not v.startswith("/")]
            if inside:
                lines.append(f"    - {label}: {', '.join(inside)}")
        for entry in caps.outside_workspace():
            kind, path = entry.split(": ", 1)
            verb = "READ" if kind == "fs_read" else "WRITE"
            lines.append(
                f"    - *** {verb} OUTSIDE THE WORKSPACE: {path} *** (your denied paths, e.g. "
                "~/.ssh, still apply)"
            )
        if caps.kv:
            lines.append("    - its own key-value storage")
        if m.secrets:
            lines.append(f"    - secrets you will be asked for: {', '.join(m.secrets)}")
        for server in m.mcp_server:
            command = " ".join([server.command or server.url or "?", *server.args])
            lines.append(f"    - runs an MCP server (untrusted, sandboxed): {server.id}: {command}")
        tools = {t.name for t in m.tool}
        for cron in m.cron:
            also = ""
            if cron.dotted and cron.target not in tools:
                also = f": runs its export {cron.target} (also a tool, so you can allow it)"
            lines.append(f"    - scheduled task {cron.name} ({cron.schedule}){also}")
        for hook in m.interceptor:
            lines.append(f"    - sees every {hook.event} event")
        for provider in m.llm_provider:
            lines.append(f"    - offers the model provider {provider.id} (declared; not used yet)")
        if not any(v for _, v in asked) and not (
            caps.kv or m.secrets or m.mcp_server or m.cron or m.interceptor or m.llm_provider
        ):
            lines.append("    - nothing beyond its own tools")
        if m.tool:
            lines.append(f"  tools: {', '.join(t.name for t in m.tool)}")
        if m.context:
            files = ", ".join(c.file for c in m.context)
            lines.append(f"  context files (untrusted reference text for the model): {files}")
        if m.command:
            names = ", ".join(f"/{c.name}" for c in m.command)
            lines.append(f"  slash commands (expand into a prompt, run nothing): {names}")
        if self.previous is not None:
            lines.append(f"  updates {self.previous.version} (revision {self.previous.revision})")
            if self.widened:
                lines.append("  NEW permissions compared to the installed revision:")
                lines += [f"    + {item}" for item in self.widened]
            else:
                lines.append("  no new permissions")
            if self.removed:
                lines.append("  REMOVED compared to the installed revision:")
                lines += [f"    - {item}" for item in self.removed]
            if self.changed:
                lines.append("  CHANGED compared to the installed revision:")
                lines += [f"    ~ {item}" for item in self.changed]
            if self.renew_trust == "always":
                lines.append("  every update is trusted again ([capsules] renew_trust = always)")
        lines.append(
            "  Enforced: the capsule gets only these permissions, each use is checked and audited."
        )
        return "\n".join(lines)


@dataclass(frozen=True)
class InstallRecord:
    name: str
    version: str
    revision: int
    content_hash: str
    trust_acknowledged_at: int
    trust_method: str
    trust_actor: str
    permissions_accepted: JsonObject
    publisher_key_id: str | None
    signed: bool
    previous_revision: int | None
    installed_at: int
    # Added later: records written before have None (their manifests always gave a hash).
    component_hash: str | None = None
    source_url: str | None = None
    source_ref: str | None = None
    source_commit: str | None = None

    def to_json(self) -> JsonObject:
        return dict(self.__dict__)

    @classmethod
    def from_json(cls, data: Any) -> InstallRecord:
        return cls(**data)


class CapsuleInstaller:
    """Manages ``<home>/capsules/<name>/<revision>/`` and the install records in storage."""

    def __init__(
        self,
        home: Path,
        storage: Storage,
        *,
        trusted_publishers: Sequence[PublicKey] = (),
        on_event: EventHook | None = None,
        renew_trust: RenewTrust = "always",
    ) -> None:
        self.root = home / "capsules"
        self.storage = storage
        self.trusted_publishers = list(trusted_publishers)
        self.on_event = on_event
        self.renew_trust: RenewTrust = renew_trust

    # ------------------------------------------------------------------ planning

    async def plan(self, source: Path, *, git: GitSource | None = None) -> InstallPlan:
        """Stage a capsule directory or archive and describe what installing it means
        (``git``: where ``source``, a checkout, came from)."""
        # Copying and hashing are blocking file work: keep them off the event loop.
        staged, manifest, digest, publisher, component = await anyio.to_thread.run_sync(
            self._stage, source
        )
        try:
            previous = await self.get(manifest.name)
            plan = InstallPlan(
                manifest,
                staged,
                digest,
                publisher,
                previous,
                component_hash=component,
                source=git,
                renew_trust=self.renew_trust,
            )
            if previous is not None:
                await self._diff(plan, previous)
        except BaseException:
            shutil.rmtree(staged, ignore_errors=True)
            raise
        return plan

    async def _diff(self, plan: InstallPlan, previous: InstallRecord) -> None:
        """Fill the update diff: added, removed and changed permissions and components."""
        manifest = plan.manifest
        plan.widened = await self._widened(previous, manifest)
        try:
            old = await anyio.to_thread.run_sync(self._verified_manifest, previous)
            accepted = Capabilities.model_validate(previous.permissions_accepted)
            # What the old revision may do that the new one may not: the diff's removals.
            plan.removed = widened_permissions(
                manifest, manifest.capabilities, old.model_copy(update={"capabilities": accepted})
            )
        except (AstridError, OSError, ValueError):
            plan.removed = []  # unverifiable: everything counts as new already
        if previous.version != manifest.package.version:
            plan.changed.append(f"version: {previous.version} -> {manifest.package.version}")
        if previous.content_hash != plan.content_hash.hex:
            plan.changed.append(f"content: {previous.content_hash} -> {plan.content_hash.hex}")
        old_component = previous.component_hash
        if old_component is None and manifest.component is not None:
            old_component = _installed_component_hash(self.path_of(previous))
        if (
            manifest.component is not None
            and old_component is not None
            and old_component != plan.component_hash
        ):
            item = f"component code: {old_component} -> {plan.component_hash}"
            plan.changed.append(item)
            if manifest.component.hash is None:  # trust was bound to the hash computed then
                plan.rebinding.append(item)
        source = plan.source
        if (
            source is not None
            and (previous.source_url, previous.source_ref) == (source.url, source.ref)
            and previous.source_commit != source.commit
        ):
            item = f"git ref {source.ref!r} moved: {previous.source_commit} -> {source.commit}"
            plan.changed.append(item)
            plan.rebinding.append(item)

    async def _widened(self, previous: InstallRecord, manifest: CapsuleManifest) -> list[str]:
        """The permission diff against the installed revision, read from its files only after
        they are checked against its record: a tampered install cannot make an update look
        narrower than it is."""
        try:
            accepted = Capabilities.model_validate(previous.permissions_accepted)
            old = await anyio.to_thread.run_sync(self._verified_manifest, previous)
        except (AstridError, OSError, ValueError) as exc:
            why = exc.message if isinstance(exc, AstridError) else str(exc)
            everything = widened_permissions(None, Capabilities(), manifest)
            unverified = f"the installed revision cannot be verified ({why}), so all counts as new"
            return [unverified, *everything]
        return widened_permissions(old, accepted, manifest)

    def _verified_manifest(self, record: InstallRecord) -> CapsuleManifest:
        directory = self.path_of(record)
        tree_hash(directory).verify_equals(
            ContentHash.from_hex(record.content_hash), what=f"installed capsule {record.name}"
        )
        return load_manifest(directory)

    def _stage(
        self, source: Path
    ) -> tuple[Path, CapsuleManifest, ContentHash, PublisherInfo, str | None]:
        self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
        staged = Path(tempfile.mkdtemp(prefix=".staging-", dir=self.root))
        try:
            if source.is_dir():
                copy_tree(source, staged)
            elif source.is_file():
                _extract_archive(source, staged)
            else:
                raise NotFoundError(
                    f"no capsule at {source}", hint="give a capsule directory or .capsule archive"
                )
            manifest = load_manifest(staged)
            component = _check_component_hash(staged, manifest)
            digest = tree_hash(staged)
            publisher = verify_capsule_signature(
                staged, manifest.name, manifest.package.version, digest, self.trusted_publishers
            )
        except BaseException:
            shutil.rmtree(staged, ignore_errors=True)
            raise
        return staged, manifest, digest, publisher, component

    def discard(self, plan: InstallPlan) -> None:
        shutil.rmtree(plan.staged, ignore_errors=True)

    # ------------------------------------------------------------------ commit

    async def commit(self, plan: InstallPlan, trust: TrustAck | None) -> InstallRecord:
        if plan.needs_trust and trust is None:
            self.discard(plan)
            raise TrustRequired(TRUST_REQUIRED_MESSAGE)
        # Re-hash the staged copy: what we install is exactly what was disclosed.
        if tree_hash(plan.staged) != plan.content_hash:
            self.discard(plan)
            raise VerificationError(
                "the staged capsule changed after it was checked; nothing installed"
            )
        revision = (plan.previous.revision + 1) if plan.previous else 1
        target = self.root / plan.name / str(revision)
        target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        if target.exists():
            shutil.rmtree(target)
        os.replace(plan.staged, target)
        now = int(time.time())
        ack = trust or TrustAck(method="flag", actor="update-without-new-permissions")
        record = InstallRecord(
            name=plan.name,
            version=plan.manifest.package.version,
            revision=revision,
            content_hash=plan.content_hash.hex,
            trust_acknowledged_at=now,
            trust_method=ack.method,
            trust_actor=ack.actor,
            permissions_accepted=plan.manifest.capabilities.model_dump(mode="json"),
            publisher_key_id=plan.publisher.key_id,
            signed=plan.publisher.signed,
            previous_revision=plan.previous.revision if plan.previous else None,
            installed_at=now,
            component_hash=plan.component_hash,
            source_url=plan.source.url if plan.source else None,
            source_ref=plan.source.ref if plan.source else None,
            source_commit=plan.source.commit if plan.source else None,
        )
        # The audit event is written first: if it cannot be recorded, the install is undone.
        try:
            await self._event(
                "capsule_update" if plan.previous else "capsule_install", record.to_json()
            )
        except BaseException:
            shutil.rmtree(target, ignore_errors=True)
            raise
        await self.storage.put(_NAMESPACE, plan.name, record.to_json())
        return record

    # ------------------------------------------------------------------ lifecycle

    async def get(self, name: str) -> InstallRecord | None:
        data = await self.storage.get(_NAMESPACE, name)
        return InstallRecord.from_json(data) if data is not None else None

    async def list(self) -> list[InstallRecord]:
        return [InstallRecord.from_json(v) for _, v in await self.storage.scan(_NAMESPACE)]

    async def require(self, name: str) -> InstallRecord:
        record = await self.get(name)
        if record is None:
            raise NotFoundError(
                f"capsule {name!r} is not installed", hint="`astrid capsule list` shows what is"
            )
        return record

    def path_of(self, record: InstallRecord) -> Path:
        return self.root / record.name / str(record.revision)

    async def verify_installed(self, name: str) -> InstallRecord:
        """Re-hash the installed files against the record (detects swaps after install)."""
        record = await self.require(name)
        actual = tree_hash(self.path_of(record))
        actual.verify_equals(
            ContentHash.from_hex(record.content_hash), what=f"installed capsule {name}"
        )
        return record

    async def rollback(self, name: str) -> InstallRecord:
        record = await self.require(name)
        if record.previous_revision is None:
            raise ConfigError(f"capsule {name} has no previous revision to roll back to")
        old_dir = self.root / name / str(record.previous_revision)
        manifest = load_manifest(old_dir)
        rolled = InstallRecord(
            **{
                **record.to_json(),
                "version": manifest.package.version,
                "revision": record.previous_revision,
                "content_hash": tree_hash(old_dir).hex,
                "permissions_accepted": manifest.capabilities.model_dump(mode="json"),
                "component_hash": _installed_component_hash(old_dir),
                "previous_revision": None,
                "installed_at": int(time.time()),
            }
        )
        await self._event("capsule_rollback", rolled.to_json())
        await self.storage.put(_NAMESPACE, name, rolled.to_json())
        return rolled

    async def remove(self, name: str) -> None:
        record = await self.require(name)
        await self._event("capsule_remove", record.to_json())
        await self.storage.delete(_NAMESPACE, name)
        shutil.rmtree(self.root / name, ignore_errors=True)

    async def _event(self, kind: str, data: JsonObject) -> None:
        if self.on_event is not None:
            await self.on_event(kind, data)


def widened_permissions(
    old: CapsuleManifest | None, accepted: Capabilities, new: CapsuleManifest
) -> list[str]:
    """Everything ``new`` may do that the installed revision may not, one line each: the
    update permission diff. Empty means the update asks for nothing new (no renewed trust).

    ``old`` is the installed revision's manifest and ``accepted`` the ``[capabilities]`` the
    user accepted for it; ``old=None`` (unreadable) makes everything count as new. Compared:
    capabilities (net, fs_read, fs_write, kv, config), secrets, ``[[mcp_server]]`` entries (new
    or changed in any way: command, args, env, url) and the ``[env]`` values they receive,
    ``[[interceptor]]`` events, ``[[cron]]`` entries (new or changed), ``[[llm_provider]]``,
    WASM code where there was none, WASI. Removing anything never widens.

    Not compared, deliberately: a new ``[[tool]]`` (each call of it is authorized like any tool
    call and confined to the same capabilities, so it can do nothing a changed existing tool
    could not; the disclosure lists it), skills, and code changes within the same permissions
    (the disclosure shows the new content hash)."""
    before = old if old is not None else CapsuleManifest(package=new.package)
    added = _capabilities_widened(accepted, new.capabilities)
    added += _servers_widened(before, new)
    old_events = {hook.event for hook in before.interceptor}
    added += [
        f"interceptor: {event}"
        for event in _unique(h.event for h in new.interceptor)
        if event not in old_events
    ]
    added += [
        f"cron: {c.name} ({c.schedule}) -> {c.action}" for c in new.cron if c not in before.cron
    ]
    added += [f"secret: {name}" for name in new.secrets if name not in before.secrets]
    if new.component is not None and before.component is None:
        added.append(f"component: WASM code ({new.component.entrypoint})")
    old_wasi = before.component is not None and before.component.wasi
    if new.component is not None and new.component.wasi and not old_wasi:
        added.append("component: WASI access")
    old_providers = {provider.id for provider in before.llm_provider}
    added += [f"llm_provider: {p.id}" for p in new.llm_provider if p.id not in old_providers]
    return added


def _capabilities_widened(accepted: Capabilities, new: Capabilities) -> list[str]:
    added = [f"net: {host}" for host in new.net if not _host_covered(host, accepted.net)]
    added += _paths_widened("fs_read", accepted.fs_read, new.fs_read)
    added += _paths_widened("fs_write", accepted.fs_write, new.fs_write)
    added += [f"config: {key}" for key in new.config if key not in accepted.config]
    if new.kv and not accepted.kv:
        added.append("kv: true")
    return added


def _host_covered(host: str, accepted: tuple[str, ...]) -> bool:
    """Is ``host`` (a name or ``*.domain``) reachable already under the accepted hosts?"""
    host = host.lower().rstrip(".")
    for allowed in (a.lower().rstrip(".") for a in accepted):
        if host == allowed:
            return True
        # "*.example.com" covers "api.example.com" and "*.api.example.com", not "example.com".
        if allowed.startswith("*.") and host.endswith(allowed[1:]) and host != allowed[2:]:
            return True
    return False


def _paths_widened(kind: str, accepted: tuple[str, ...], new: tuple[str, ...]) -> list[str]:
    # gitwildmatch lists: the last matching pattern wins and "!p" excludes. Containment of one
    # glob in another is not decided here: any new pattern counts as new. A dropped exclusion
    # widens, and so may a change of order once exclusions are involved.
    added = [f"{kind}: {p}" for p in new if not p.startswith("!") and p not in accepted]
    added += [
        f"{kind}: no longer excludes {p[1:]}"
        for p in accepted
        if p.startswith("!") and p not in new
    ]
    if any(p.startswith("!") for p in accepted + new):
        kept_before = [p for p in _unique(accepted) if p in new]
        kept_now = [p for p in _unique(new) if p in accepted]
        if kept_before != kept_now:
            added.append(f"{kind}: patterns reordered ({', '.join(new)})")
    return added


def _servers_widened(old: CapsuleManifest, new: CapsuleManifest) -> list[str]:
    added: list[str] = []
    old_servers = {server.id: server for server in old.mcp_server}
    for server in new.mcp_server:
        command = " ".join([server.command or server.url or "?", *server.args])
        before = old_servers.get(server.id)
        if before is None:
            added.append(f"mcp_server: {server.id} ({command})")
        elif before != server:
            added.append(f"mcp_server changed: {server.id} ({command})")
    if new.mcp_server:
        # Declared [env] values reach every MCP server's environment.
        for name, var in new.env.items():
            previous = old.env.get(name)
            if (
                not var.is_secret
                and var.default is not None
                and (previous is None or previous.is_secret or previous.default != var.default)
            ):
                added.append(f"env: {name} (given to its MCP servers)")
    return added


def _unique(items: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(items))


def _check_component_hash(root: Path, manifest: CapsuleManifest) -> str | None:
    """The component's BLAKE3: checked against the manifest's hash, or computed here when the
    manifest gives none (the trust record then binds to it)."""
    if manifest.component is None:
        return None
    wasm = root / manifest.component.entrypoint
    if not wasm.is_file():
        raise ConfigError(
            f"{MANIFEST_NAME}: component entrypoint {manifest.component.entrypoint} is missing"
        )
    actual = hash_file(wasm)
    if manifest.component.hash is not None:
        actual.verify_equals(
            manifest.component.hash, what=f"component {manifest.component.entrypoint}"
        )
    return actual.hex


def _installed_component_hash(directory: Path) -> str | None:
    """The component hash of an installed revision, from its (tree-hashed) files."""
    try:
        manifest = load_manifest(directory)
        if manifest.component is None:
            return None
        return manifest.component.hash or hash_file(directory / manifest.component.entrypoint).hex
    except (AstridError, OSError):
        return None


def _extract_archive(archive: Path, destination: Path) -> None:
    try:
        with tarfile.open(archive, "r:gz") as tar:
            # The "data" filter refuses absolute paths, '..', links outside the tree and devices.
            tar.extractall(destination, filter="data")
    except (tarfile.TarError, OSError) as exc:
        raise ConfigError(f"{archive} is not a valid capsule archive: {exc}") from exc


def compile_capsule(source: Path, output: Path, *, sign_with: KeyPair | None = None) -> ContentHash:
    """Validate, record the component hash, optionally sign, and pack into ``output``."""
    with tempfile.TemporaryDirectory(prefix="astrid-compile-") as tmp:
        work = Path(tmp) / "capsule"
        work.mkdir()
        copy_tree(source, work)
        manifest = load_manifest(work)
        if manifest.component is not None:
            digest = hash_file(work / manifest.component.entrypoint).hex
            _write_component_hash(work / MANIFEST_NAME, manifest, digest)
            manifest = load_manifest(work)
        (work / "SIGNATURE.json").unlink(missing_ok=True)
        tree = tree_hash(work)
        if sign_with is not None:
            sign_capsule(work, sign_with, manifest.name, manifest.package.version, tree)
        output.parent.mkdir(parents=True, exist_ok=True)
        with tarfile.open(output, "w:gz") as tar:
            for path in sorted(work.rglob("*")):
                if path.is_file():
                    tar.add(path, arcname=path.relative_to(work).as_posix())
        return tree


def _write_component_hash(manifest_path: Path, manifest: CapsuleManifest, digest: str) -> None:
    import re

    text = manifest_path.read_text()
    assert manifest.component is not None
    if manifest.component.hash is not None:
        text = re.sub(r'(?m)^(\s*hash\s*=\s*)"[0-9a-f]{64}"', rf'\g<1>"{digest}"', text, count=1)
    else:
        text = re.sub(r"(?m)^(\s*entrypoint\s*=.*)$", rf'\g<1>\nhash = "{digest}"', text, count=1)
    manifest_path.write_text(text)
