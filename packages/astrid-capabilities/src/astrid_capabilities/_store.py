"""CapabilityStore: where tokens live, and the check that runs on every single lookup.

Session tokens live in memory; persistent tokens live in the storage backend and are re-read
from it on every use (one small read): a record deleted or edited on disk while the daemon runs
is caught the next time it is used, not at the next restart. Loading parses the records to index
them but verifies no signature (start-up does not grow with the number of tokens' signatures);
a record's signature is verified at its first use and again whenever the stored record differs
from the one verified. Every get / find / has / authorize re-checks, for the token and each of its
ancestors: signature against the *trusted* issuer keys, issue time and expiry (with clock
skew), revocation, single-use state and that each child is a valid narrowing of its parent.

Storage layout (namespaces): ``cap_tokens`` id -> token JSON, ``cap_revoked`` id -> {at},
``cap_used`` id -> {at} (single-use consumed), ``cap_calls`` id -> count (max_calls caveats).
Revocations and uses are written to storage *before* memory changes, so a crash in between can
never resurrect a revoked token or re-arm a used one.

Those rows are not signed, so deleting one would revive a revoked token or re-arm a spent
single-use one. The audit log (signed, chained, in a Merkle tree) is the authority: the runtime
records every revocation there first, and every allowed action names the token that allowed it;
at start it hands both sets to ``reconcile``, which restores missing rows and reports them.

Lookups are flat in the number of tokens: exact patterns are a dict lookup by URI and globs are
bucketed by their literal directory prefix, so a URI only visits the buckets of its own
prefixes (one per '/').
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

import anyio

from astrid_core import (
    AuthorizationProof,
    BadInputError,
    CapabilityDenied,
    NotFoundError,
    Permission,
    ProofKind,
    SensitiveAction,
    SessionId,
    TokenId,
    VerificationError,
)
from astrid_core.storage import Expect, Put, Storage, Write
from astrid_crypto import PublicKey

from ._caveats import MaxCalls, caveat_problem
from ._pattern import ResourcePattern, SplitUri, check_resource_uri
from ._token import CapabilityToken, TokenScope, attenuation_problem, now_seconds

__all__ = ["CapabilityStore", "CapabilityProof", "TokenCheck", "Explanation"]

logger = logging.getLogger("astrid.capabilities")

NS_TOKENS = "cap_tokens"
NS_REVOKED = "cap_revoked"
NS_USED = "cap_used"
NS_CALLS = "cap_calls"
MAX_CHAIN_DEPTH = 8
_CAS_RETRIES = 16


@dataclass(frozen=True, slots=True)
class CapabilityProof:
    """What authorized an action: the token, its ancestors and what was granted."""

    token_id: TokenId
    resource: str
    permission: Permission
    chain: tuple[TokenId, ...]
    single_use: bool

    def to_authorization_proof(self) -> AuthorizationProof:
        return _authorization_proof(self.token_id, self.permission, self.resource)


@functools.lru_cache(maxsize=256)
def _authorization_proof(
    token_id: TokenId, permission: Permission, resource: str
) -> AuthorizationProof:
    # Immutable, and the same token authorizes call after call: built once per grant.
    return AuthorizationProof(
        kind=ProofKind.CAPABILITY, token_id=token_id, detail=f"{permission.value} on {resource}"
    )


@dataclass(frozen=True, slots=True)
class TokenCheck:
    token_id: TokenId
    valid: bool
    problems: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Explanation:
    """Why a token is (not) valid, or why an action is (not) covered."""

    subject: str
    allowed: bool
    reason: str
    checks: tuple[TokenCheck, ...] = ()
    tampered_ignored: int = 0


@dataclass(slots=True)
class _Entry:
    scope: TokenScope
    pattern: ResourcePattern
    permissions: frozenset[Permission]
    session_id: SessionId | None
    parent_id: TokenId | None
    token: CapabilityToken | None  # session tokens only; persistent ones are re-read


@dataclass(slots=True)
class _Checked:
    token: CapabilityToken | None
    problems: list[str] = field(default_factory=list[str])
    chain: tuple[CapabilityToken, ...] = ()


def _specificity(entry: _Entry, token_id: TokenId) -> tuple[bool, int, int, str]:
    pattern = entry.pattern
    return (pattern.exact, len(pattern.literal_prefix), -pattern.wildcard_count, str(token_id))


class CapabilityStore:
    """Tokens for one runtime. ``trusted_issuers`` are the only keys whose signatures count."""

    def __init__(
        self,
        storage: Storage,
        trusted_issuers: Sequence[PublicKey],
        *,
        clock_skew_seconds: int = 30,
        clock: Callable[[], int] = now_seconds,
    ) -> None:
        if not trusted_issuers:
            raise BadInputError(
                "a CapabilityStore needs at least one trusted issuer key",
                hint="pass the runtime key's public_key",
            )
        if isinstance(clock_skew_seconds, bool) or clock_skew_seconds < 0:
            raise BadInputError(f"clock_skew_seconds {clock_skew_seconds!r} must be >= 0")
        self._storage = storage
        self._trusted = frozenset(trusted_issuers)
        self._skew = int(clock_skew_seconds)
        self._clock = clock
        self._entries: dict[TokenId, _Entry] = {}
        self._exact: dict[str, set[TokenId]] = {}
        self._globs: dict[str, set[TokenId]] = {}
        self._children: dict[TokenId, set[TokenId]] = {}
        # Persistent tokens verified at first use, with the stored record they came from: each
        # use re-reads the record and re-parses and re-verifies only when it changed.
        self._verified: dict[str, tuple[CapabilityToken, object]] = {}
        self._revoked: set[TokenId] = set()
        self._used: set[TokenId] = set()
        self._tampered: dict[str, str] = {}
        self._loaded = False
        self._load_lock = anyio.Lock()

    @classmethod
    async def open(
        cls,
        storage: Storage,
        trusted_issuers: Sequence[PublicKey],
        *,
        clock_skew_seconds: int = 30,
        clock: Callable[[], int] = now_seconds,
    ) -> CapabilityStore:
        """Create a store and load what storage holds (otherwise the first call loads it)."""
        store = cls(storage, trusted_issuers, clock_skew_seconds=clock_skew_seconds, clock=clock)
        await store.load()
        return store

    # ------------------------------------------------------------------ loading

    async def load(self) -> None:
        """Read persisted tokens, revocations and uses. Called lazily by every public method."""
        async with self._load_lock:
            if self._loaded:
                return
            for key, _ in await self._storage.scan(NS_REVOKED):
                self._revoked.add(TokenId.parse(key))
            for key, _ in await self._storage.scan(NS_USED):
                self._used.add(TokenId.parse(key))
            for key, value in await self._storage.scan(NS_TOKENS):
                token = self._parse_record(key, value, verify=False)  # verified at first use
                if token is not None:
                    self._index(token)
            self._loaded = True

    async def _ready(self) -> None:
        if not self._loaded:
            await self.load()

    def _parse_record(
        self, key: str, value: object, *, verify: bool = True
    ) -> CapabilityToken | None:
        """A stored token that parses (and verifies), or None (after counting and logging it)."""
        try:
            token = CapabilityToken.from_json(value)
            if str(token.id) != key:
                raise VerificationError(f"record {key} holds token {token.id}")
            if verify and token.issuer in self._trusted:
                token.verify(self._trusted)
            # An untrusted issuer is not tampering (trust may have been rotated): the token is
            # kept so that `explain` can say so, and every check refuses it.
        except (BadInputError, VerificationError) as exc:
            self._report_tampered(key, exc.message)
            return None
        return token

    def _report_tampered(self, key: str, problem: str) -> None:
        if self._tampered.get(key) != problem:
            logger.warning("persisted capability token %s failed verification: %s", key, problem)
        self._tampered[key] = problem

    @property
    def tampered_count(self) -> int:
        """How many distinct persisted records failed verification since this store opened."""
        return len(self._tampered)

    @property
    def tampered(self) -> dict[str, str]:
        return dict(self._tampered)

    def _index(self, token: CapabilityToken) -> None:
        pattern = token.resource
        self._entries[token.id] = _Entry(
            scope=token.scope,
            pattern=pattern,
            permissions=token.permissions,
            session_id=token.session_id,
            parent_id=token.parent_id,
            token=token if token.scope is TokenScope.SESSION else None,
        )
        table = self._exact if pattern.exact else self._globs
        table.setdefault(pattern.bucket, set()).add(token.id)
        if token.parent_id is not None:
            self._children.setdefault(token.parent_id, set()).add(token.id)

    def _unindex(self, token_id: TokenId) -> None:
        entry = self._entries.pop(token_id, None)
        if entry is None:
            return
        table = self._exact if entry.pattern.exact else self._globs
        bucket = table.get(entry.pattern.bucket)
        if bucket is not None:
            bucket.discard(token_id)
            if not bucket:
                del table[entry.pattern.bucket]

    # ------------------------------------------------------------------ adding

    async def add(self, token: CapabilityToken) -> None:
        """Store a token after checking it as strictly as any lookup would."""
        await self._ready()
        token.verify(self._trusted)
        now = self._clock()
        if token.is_expired(now, self._skew):
            raise BadInputError(f"capability token {token.id} has already expired")
        if token.id in self._revoked:
            raise CapabilityDenied(f"capability token {token.id} was revoked")
        existing = self._entries.get(token.id)
        if existing is not None:
            current = await self._read(token.id)
            if isinstance(current, CapabilityToken) and current.to_json() == token.to_json():
                return  # idempotent re-add
            raise BadInputError(f"a different token with id {token.id} is already stored")
        if token.parent_id is not None:
            parent = await self._check(token.parent_id, now)
            if parent.problems or parent.token is None:
                raise CapabilityDenied(
                    f"capability token {token.id}: parent {token.parent_id} is not valid: "
                    + "; ".join(parent.problems)
                )
            problem = attenuation_problem(parent.token, token)
            if problem is not None:
                raise CapabilityDenied(f"capability token {token.id} widens its parent: {problem}")
        if token.scope is TokenScope.PERSISTENT:
            await self._storage.put(NS_TOKENS, str(token.id), token.to_json())
        self._index(token)

    # ------------------------------------------------------------------ checking

    async def _read(self, token_id: TokenId) -> CapabilityToken | str:
        entry = self._entries.get(token_id)
        if entry is None:
            tampered = self._tampered.get(str(token_id))
            if tampered is not None:
                return f"stored record failed verification: {tampered}"
            return "no such token in this store"
        if entry.token is not None:
            return entry.token
        key = str(token_id)
        value = await self._storage.get(NS_TOKENS, key)  # every use: notices a change
        if value is None:
            self._verified.pop(key, None)
            return "the persisted record is missing (deleted from storage?)"
        cached = self._verified.get(key)
        if cached is not None and cached[1] == value:
            return cached[0]
        token = self._parse_record(key, value)
        if token is None:
            self._verified.pop(key, None)
            return f"stored record failed verification: {self._tampered[key]}"
        # Indexed from the record as loaded (unverified): index what was verified.
        self._unindex(token_id)
        self._index(token)
        self._verified[key] = (token, value)
        return token

    async def _check(self, token_id: TokenId, now: int, depth: int = 0) -> _Checked:
        """Every per-use validity check for one token and its ancestors."""
        read = await self._read(token_id)
        if isinstance(read, str):
            return _Checked(None, [read])
        token = read
        result = _Checked(token, [], (token,))
        try:
            token.verify(self._trusted)
        except VerificationError as exc:
            result.problems.append(exc.message)
        if token_id in self._revoked:
            result.problems.append("revoked")
        if token.is_expired(now, self._skew):
            result.problems.append(f"expired at {token.expires_at} (now {now})")
        if token.is_not_yet_valid(now, self._skew):
            result.problems.append(f"not valid before {token.issued_at} (now {now})")
        if token.single_use and token_id in self._used:
            result.problems.append("single-use token already used")
        if token.parent_id is not None:
            await self._check_parent(result, token, now, depth)
        return result

    async def _check_parent(
        self, result: _Checked, token: CapabilityToken, now: int, depth: int
    ) -> None:
        assert token.parent_id is not None
        if depth >= MAX_CHAIN_DEPTH:
            result.problems.append(f"parent chain longer than {MAX_CHAIN_DEPTH}")
            return
        parent = await self._check(token.parent_id, now, depth + 1)
        if parent.problems or parent.token is None:
            result.problems.append(f"parent {token.parent_id} invalid: {parent.problems[0]}")
            return
        problem = attenuation_problem(parent.token, token)
        if problem is not None:
            result.problems.append(f"not a valid narrowing of parent: {problem}")
        result.chain = (token, *parent.chain)

    def _coverage_problem(
        self,
        token: CapabilityToken,
        split: SplitUri,
        action: SensitiveAction,
        session_id: SessionId | None,
        now: int,
    ) -> str | None:
        if action.permission not in token.permissions:
            return f"does not grant {action.permission.value}"
        if not token.resource.matches_checked(split):
            return f"resource {token.resource.pattern!r} does not match {split.uri!r}"
        if token.scope is TokenScope.SESSION and token.session_id != session_id:
            return f"bound to session {token.session_id}, not {session_id}"
        if not token.caveats:
            return None
        arguments = action.arguments()
        for caveat in token.caveats:
            problem = caveat_problem(caveat, arguments, now)
            if problem is not None:
                return problem
        return None

    async def _calls_problem(self, chain: Iterable[CapabilityToken]) -> str | None:
        for token in chain:
            limit = _call_limit(token)
            if limit is not None:
                used = await self._storage.get(NS_CALLS, str(token.id))
                if isinstance(used, int) and used >= limit:
                    return f"max_calls {limit} of token {token.id} used up"
        return None

    def _candidates(self, split: SplitUri, permission: Permission) -> list[TokenId]:
        found: set[TokenId] = set(self._exact.get(split.uri, ()))
        uri = split.uri
        start = uri.find("/")
        while start != -1:
            bucket = self._globs.get(uri[: start + 1])
            if bucket:
                found.update(bucket)
            start = uri.find("/", start + 1)
        entries = self._entries
        ordered = [t for t in found if permission in entries[t].permissions]
        if len(ordered) > 1:
            ordered.sort(key=lambda t: _specificity(entries[t], t), reverse=True)
        return ordered

    # ------------------------------------------------------------------ public lookups

    async def get(self, token_id: TokenId) -> CapabilityToken | None:
        """The token if it passes every check right now, else None (ask ``explain`` why)."""
        await self._ready()
        checked = await self._check(token_id, self._clock())
        return None if checked.problems else checked.token

    async def usable_by(self, session_id: SessionId) -> list[CapabilityToken]:
        """Every token the session could use right now: valid, reusable (single-use tokens
        cannot be delegated), persistent or bound to this session. What a sub-agent may
        receive, attenuated, and nothing more."""
        await self._ready()
        now = self._clock()
        usable: list[CapabilityToken] = []
        for token_id, entry in list(self._entries.items()):
            if entry.scope is TokenScope.SESSION and entry.session_id != session_id:
                continue
            checked = await self._check(token_id, now)
            token = checked.token
            if checked.problems or token is None or token.single_use:
                continue
            usable.append(token)
        return usable

    async def _find(
        self, action: SensitiveAction, session_id: SessionId | None
    ) -> tuple[SplitUri | None, list[_Checked]]:
        """Valid covering tokens, most specific first (lazily: stops at the first one)."""
        try:
            split = check_resource_uri(action.resource)
        except BadInputError:
            return None, []
        now = self._clock()
        for token_id in self._candidates(split, action.permission):
            checked = await self._check(token_id, now)
            token = checked.token
            if checked.problems or token is None:
                continue
            if self._coverage_problem(token, split, action, session_id, now) is not None:
                continue
            if await self._calls_problem(checked.chain) is not None:
                continue
            return split, [checked]
        return split, []

    async def find_capability(
        self, action: SensitiveAction, session_id: SessionId | None = None
    ) -> CapabilityToken | None:
        """The most specific valid token covering ``action`` (not consumed), or None."""
        await self._ready()
        _, found = await self._find(action, session_id)
        return found[0].token if found else None

    async def has_capability(
        self, action: SensitiveAction, session_id: SessionId | None = None
    ) -> bool:
        return await self.find_capability(action, session_id) is not None

    async def authorize(
        self, action: SensitiveAction, session_id: SessionId | None = None
    ) -> CapabilityProof | None:
        """Find a covering token and *use* it: single-use and max_calls are consumed atomically.

        Returns the proof, or None when no token covers the action (``explain`` says why).
        """
        await self._ready()
        for _ in range(_CAS_RETRIES):
            _, found = await self._find(action, session_id)
            if not found:
                return None
            chain = found[0].chain
            if await self._consume(chain):
                token = chain[0]
                return CapabilityProof(
                    token_id=token.id,
                    resource=token.resource.pattern,
                    permission=action.permission,
                    chain=tuple(t.id for t in chain),
                    single_use=token.single_use,
                )
            # Lost a race (another task used the token or bumped a counter): look again.
        return None

    async def _consume(self, chain: tuple[CapabilityToken, ...]) -> bool:
        writes: list[Write] = []
        expect: list[Expect] = []
        token = chain[0]
        now = self._clock()
        if token.single_use:
            expect.append(Expect(NS_USED, str(token.id), None))
            writes.append(Put(NS_USED, str(token.id), {"at": now}))
        for link in chain:
            limit = _call_limit(link)
            if limit is None:
                continue
            current = await self._storage.get(NS_CALLS, str(link.id))
            count = current if isinstance(current, int) else 0
            if count >= limit:
                return False
            expect.append(Expect(NS_CALLS, str(link.id), current))
            writes.append(Put(NS_CALLS, str(link.id), count + 1))
        if not writes:
            return True
        committed = await self._storage.transaction(writes, expect=expect)
        if token.single_use and (
            committed or await self._storage.get(NS_USED, str(token.id)) is not None
        ):
            self._used.add(token.id)
        return committed

    async def mark_used(self, token_id: TokenId) -> bool:
        """Atomically consume a single-use token. True for exactly one caller, ever."""
        await self._ready()
        if token_id not in self._entries:
            raise NotFoundError(f"capability token {token_id} is not in this store")
        won = await self._storage.compare_and_set(
            NS_USED, str(token_id), None, {"at": self._clock()}
        )
        self._used.add(token_id)  # used either way: by us, or by whoever won
        return won

    def trust_issuer(self, key: PublicKey) -> None:
        """Trust one more issuer key from now on (a rotated-in runtime key)."""
        self._trusted = self._trusted | {key}

    # ------------------------------------------------------------------ the log's word

    async def reconcile(self, revoked: Iterable[str], authorized: Iterable[str]) -> list[str]:
        """Cross-check the revocation and single-use rows against the audit log's record.

        ``revoked``: token ids the log says were revoked; ``authorized``: token ids the log says
        allowed an action (for a single-use token that is a spend). A row the log proves but
        storage lacks (deleted) is written back and the token refused again; every such repair
        is returned (and logged) so that status can show the tampering."""
        await self._ready()
        problems: list[str] = []
        writes: list[Write] = []
        now = self._clock()
        restored_revoked: list[TokenId] = []
        for raw in sorted(set(revoked)):
            token_id = _parse_id(raw)
            if token_id is None:
                continue
            if await self._storage.get(NS_REVOKED, raw) is None:
                writes.append(Put(NS_REVOKED, raw, {"at": now, "restored_from": "audit log"}))
                problems.append(
                    f"capability token {raw} is revoked on the audit log but its cap_revoked "
                    "row was missing (deleted?); restored, the token stays revoked"
                )
            restored_revoked.append(token_id)
        restored_used: list[TokenId] = []
        for raw in sorted(set(authorized)):
            token_id = _parse_id(raw)
            if token_id is None or token_id not in self._entries:
                continue
            read = await self._read(token_id)
            if not isinstance(read, CapabilityToken) or not read.single_use:
                continue
            if await self._storage.get(NS_USED, raw) is None:
                writes.append(Put(NS_USED, raw, {"at": now, "restored_from": "audit log"}))
                problems.append(
                    f"single-use capability token {raw} was spent on the audit log but its "
                    "cap_used row was missing (deleted?); restored, the token stays spent"
                )
            restored_used.append(token_id)
        if writes and not await self._storage.transaction(writes):
            raise CapabilityDenied("restoring revocation rows from the audit log did not commit")
        self._revoked.update(restored_revoked)
        self._used.update(restored_used)
        for problem in problems:
            logger.warning("%s", problem)
        return problems

    async def persistent_tokens(self) -> list[tuple[CapabilityToken | None, TokenId, str]]:
        """Every persistent token: (token or None when unreadable, id, "valid" or why not)."""
        await self._ready()
        now = self._clock()
        listed: list[tuple[CapabilityToken | None, TokenId, str]] = []
        for token_id, entry in sorted(self._entries.items(), key=lambda item: str(item[0])):
            if entry.scope is not TokenScope.PERSISTENT:
                continue
            checked = await self._check(token_id, now)
            status = "; ".join(checked.problems) if checked.problems else "valid"
            listed.append((checked.token, token_id, status))
        return listed

    def cascade(self, token_id: TokenId) -> tuple[TokenId, ...]:
        """The token and every descendant, in the order ``revoke`` revokes them."""
        found: list[TokenId] = []
        pending = [token_id]
        while pending:
            current = pending.pop()
            if current in found:
                continue
            found.append(current)
            pending.extend(sorted(self._children.get(current, ()), key=str))
        return tuple(found)

    # ------------------------------------------------------------------ revocation

    async def revoke(self, token_id: TokenId) -> tuple[TokenId, ...]:
        """Revoke a token and every descendant; persisted before memory changes."""
        await self._ready()
        revoked = list(self.cascade(token_id))
        now = self._clock()
        writes: list[Write] = [Put(NS_REVOKED, str(t), {"at": now}) for t in revoked]
        if not await self._storage.transaction(writes):
            raise CapabilityDenied(f"revoking {token_id} did not commit; nothing was changed")
        self._revoked.update(revoked)
        return tuple(revoked)

    async def replace(
        self,
        add: Sequence[CapabilityToken],
        revoke: Sequence[TokenId],
        extra: Sequence[Write] = (),
    ) -> tuple[TokenId, ...]:
        """Add persistent root tokens and revoke others (with their descendants) in ONE storage
        transaction, with ``extra`` writes alongside: a policy apply happens whole or not at
        all. Each added token is checked as strictly as ``add`` checks it. Returns the revoked."""
        await self._ready()
        now = self._clock()
        for token in add:
            token.verify(self._trusted)
            if token.scope is not TokenScope.PERSISTENT or token.parent_id is not None:
                raise BadInputError(f"capability token {token.id}: only persistent root tokens")
            if token.is_expired(now, self._skew):
                raise BadInputError(f"capability token {token.id} has already expired")
            if token.id in self._entries or token.id in self._revoked:
                raise BadInputError(f"a token with id {token.id} is already known")
        revoked = [t for root in revoke for t in self.cascade(root)]
        writes: list[Write] = [Put(NS_TOKENS, str(t.id), t.to_json()) for t in add]
        writes += [Put(NS_REVOKED, str(t), {"at": now}) for t in revoked]
        writes += list(extra)
        if not await self._storage.transaction(writes):
            raise CapabilityDenied("replacing tokens did not commit; nothing was changed")
        self._revoked.update(revoked)
        for token in add:
            self._index(token)
        return tuple(revoked)

    def remove_session(self, session_id: SessionId) -> int:
        """Forget the in-memory tokens of an ended session; returns how many."""
        gone = [t for t, e in self._entries.items() if e.token and e.session_id == session_id]
        for token_id in gone:
            self._unindex(token_id)
        return len(gone)

    # ------------------------------------------------------------------ explain

    async def explain(
        self, subject: TokenId | SensitiveAction, session_id: SessionId | None = None
    ) -> Explanation:
        """Say why a token is or is not valid, or why an action is or is not covered."""
        await self._ready()
        now = self._clock()
        if isinstance(subject, TokenId):
            checked = await self._check(subject, now)
            check = TokenCheck(subject, not checked.problems, tuple(checked.problems))
            reason = "valid" if check.valid else "; ".join(check.problems)
            return Explanation(str(subject), check.valid, reason, (check,), self.tampered_count)
        return await self._explain_action(subject, session_id, now)

    async def _explain_action(
        self, action: SensitiveAction, session_id: SessionId | None, now: int
    ) -> Explanation:
        subject = f"{action.permission.value} {action.resource}"
        try:
            split = check_resource_uri(action.resource)
        except BadInputError as exc:
            return Explanation(subject, False, exc.message, (), self.tampered_count)
        checks: list[TokenCheck] = []
        allowed = False
        for token_id in self._candidates(split, action.permission):
            checked = await self._check(token_id, now)
            problems = list(checked.problems)
            if not problems and checked.token is not None:
                coverage = self._coverage_problem(checked.token, split, action, session_id, now)
                calls = await self._calls_problem(checked.chain)
                problems.extend(p for p in (coverage, calls) if p is not None)
            checks.append(TokenCheck(token_id, not problems, tuple(problems)))
            allowed = allowed or not problems
        if allowed:
            reason = "covered by a valid token"
        elif checks:
            reason = f"{len(checks)} token(s) match the resource but none is usable"
        else:
            reason = f"no token grants {action.permission.value} on {action.resource}"
        return Explanation(subject, allowed, reason, tuple(checks), self.tampered_count)


def _parse_id(raw: str) -> TokenId | None:
    try:
        return TokenId.parse(raw)
    except (BadInputError, ValueError):
        logger.warning("audit log names a malformed capability token id %r; ignored", raw[:80])
        return None


def _call_limit(token: CapabilityToken) -> int | None:
    limits = [c.limit for c in token.caveats if isinstance(c, MaxCalls)]
    return min(limits) if limits else None
