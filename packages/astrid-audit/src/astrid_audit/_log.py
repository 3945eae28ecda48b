"""AuditLog: the only write path to the audit trail. Durable before ``append`` returns.

Entries are chained per session (``prev_hash``) and all of them are leaves of one Merkle tree
whose signed checkpoints let anyone prove inclusion and consistency in O(log n) and detect a
truncated tail. If the storage write fails, ``append`` raises and nothing in memory changes:
callers must not act (``record()`` makes that impossible to forget).

Concurrent appends are group-committed: whoever holds the commit lock writes every queued entry
in one storage transaction, and each caller returns only after its own entry is durable.

Start-up does not grow with the log (store layout 2, ``audit_meta/layout``): each transaction
also stores what opening the log would otherwise rebuild from every entry — the Merkle tree's
tiles (``_tiles``), each chain's head (``audit_head``), an entry-id index (``audit_id``), the
capability index (``audit_cap``: revoked and used token ids) and the seqs of key rotations. Open
reads the size, the right edge of the tree (one tile per level above 0, at most 255 newest
entries for level 0), the rotations, and checks the tree against the newest witnessed head:
O(log n) records. A chain's head is read at its first append after a restart. ``astrid audit
verify`` still reads and checks everything, tiles included. A store of layout 1 (written
before) is read in full once at open and its indexes are written then.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import AsyncGenerator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, Protocol, cast

import anyio

from astrid_core import (
    AstridError,
    AuditEntryId,
    Authorization,
    JsonObject,
    JsonValue,
    SensitiveAction,
    SessionId,
    StorageError,
    VerificationError,
    action_to_json,
)
from astrid_core.storage import EncodedJson, Expect, Put, Storage
from astrid_crypto import KeyPair, PublicKey, content_hash

from ._entry import (
    FORMAT_VERSION,
    GENESIS,
    SYSTEM_CHAIN,
    AuditEntry,
    Checkpoint,
    Outcome,
    OutcomeKind,
    seal_member_texts,
)
from ._merkle import leaf_hash
from ._record import action_record, entry_text
from ._redact import Redactor
from ._tiles import TiledTree
from ._witness import Witness, WitnessedHead, check_head

__all__ = ["AuditLog", "Recording", "SideWrite", "SideWriteRefused"]

log = logging.getLogger("astrid.audit")

NS_ENTRY = "audit_entry"
NS_META = "audit_meta"
NS_CHECKPOINT = "audit_checkpoint"
NS_HEAD = "audit_head"  # chain -> [hash, chain_seq] of its newest entry
NS_ID = "audit_id"  # entry id -> seq
NS_CAP = "audit_cap"  # "r/<token id>": revoked, "u/<token id>": authorized an allowed action
LAYOUT = 2  # the store carries tiles and indexes (1: entries, size and checkpoints only)
_PREVIEW = 200


# The hint of every start-up refusal: the daemon cannot run on this log, the offline verifier
# (which takes the same store lock, and needs no daemon) can show what is wrong with it.
_DAMAGED_HINT = (
    "the stored audit log is damaged or shorter than what was witnessed; examine it with "
    "`astrid audit verify --offline` (no daemon needed), then restore $ASTRID_HOME/state "
    "from a backup"
)


def _key(seq: int) -> str:
    return f"{seq:012d}"


_VERSION_TEXT = str(FORMAT_VERSION)

# Flat outcome values (see _outcome_key) and authorizations repeat from one decision to the
# next (the same reason, risk and proof), so their encoded text is kept, up to this many each.
_TEXT_CACHE_SIZE = 256
_FLAT = (str, int, bool, type(None))


def _outcome_key(outcome: Outcome) -> tuple[Any, ...] | None:
    """A hashable key for an outcome whose detail is flat (strings, integers, booleans, null),
    or None. Each value's type is in the key: True == 1 in Python, not in JSON."""
    items: list[tuple[str, type, Any]] = []
    for name, value in outcome.detail.items():
        kind = type(value)
        if kind not in _FLAT:
            return None
        items.append((name, kind, value))
    return (
        outcome.kind,
        outcome.reason,
        outcome.success,
        outcome.output_digest,
        outcome.output_preview,
        tuple(items),
    )


class SideWrite(Protocol):
    """State that rides in an entry's transaction (a budget reservation with its decision, a
    budget settlement with an outcome): ``apply`` gets the current values of ``keys`` (None:
    absent) as of this entry's place in the group commit and returns their new values, or a
    reason to refuse — then this entry alone fails (``SideWriteRefused``) and the rest of the
    group commits. Every write of these keys must go through the log (``append``,
    ``enqueue``, ``apply_side``): it keeps their committed values."""

    @property
    def namespace(self) -> str: ...

    @property
    def keys(self) -> Sequence[str]: ...

    def apply(self, current: Mapping[str, JsonValue | None]) -> Mapping[str, JsonValue] | str: ...


class SideWriteRefused(AstridError):
    """An entry's side write refused at commit time (e.g. the budget no longer allows it)."""

    code = "audit.side_write_refused"
    default_hint = "nothing was written for this entry; the others of its group were"


@dataclass
class CapabilityIndex:
    """Revoked token ids and token ids that authorized an allowed action (for a single-use
    token: spent), each with the seq of the entry that says so; the last revocation's id."""

    revoked: dict[str, int]
    used: dict[str, int]
    last_revocation: str | None = None

    def note(self, seq: int, entry_id: str, revoked: list[str], used: str | None) -> None:
        for token in revoked:
            self.revoked.setdefault(token, seq)
        if revoked:
            self.last_revocation = entry_id
        if used is not None:
            self.used.setdefault(used, seq)


def _cap_effects(
    kind: object, detail: object, authorization: object
) -> tuple[list[str], str | None]:
    """What an entry says about capabilities: the ids it revokes, the token it used."""
    if kind == OutcomeKind.CAPABILITY_REVOKED.value and isinstance(detail, dict):
        ids = cast(dict[str, Any], detail).get("capability_ids")
        if isinstance(ids, list):
            return [t for t in cast(list[object], ids) if isinstance(t, str)], None
    elif kind == OutcomeKind.ALLOWED.value and isinstance(authorization, dict):
        proof = cast(dict[str, Any], authorization).get("proof")
        if isinstance(proof, dict):
            token = cast(dict[str, Any], proof).get("token_id")
            if isinstance(token, str) and token:
                return [], token
    return [], None


def _ids_digest(ids: dict[str, int], below: int) -> str:
    # astrid-crypto is the one place that hashes (the same BLAKE3 hex as before).
    return content_hash("\n".join(sorted(t for t, seq in ids.items() if seq < below)).encode()).hex


def _seal_message(size: int, revoked: str, used: str, last: str | None) -> bytes:
    return f"astrid-capability-seal-v1\n{size}\n{revoked}\n{used}\n{last or ''}".encode()


@dataclass
class _Pending:
    chain: str
    action: JsonObject | None
    authorization: JsonObject | None
    outcome: Outcome  # as stored: redacted
    # The canonical JSON text of each as it is hashed ("null" for None), encoded before the
    # entry is queued: a value that cannot be encoded fails its own append, not the batch.
    chain_text: str
    action_text: str
    authorization_text: str
    outcome_text: str
    # Set by whichever task committed the batch holding this entry. A flag, not an event:
    # waiters wait on the commit lock, and find it set when they get the lock.
    done: bool = False
    queued: bool = False  # enqueued: nobody waits for it, so a failure is logged here
    side: SideWrite | None = None
    entry: AuditEntry | None = None
    error: BaseException | None = None


class AuditLog:
    def __init__(
        self,
        storage: Storage,
        key: KeyPair,
        *,
        checkpoint_every: int = 1000,
        witness: Witness | None = None,
    ) -> None:
        self.storage = storage
        self.key = key
        self.checkpoint_every = checkpoint_every
        # Every checkpoint is also sent here (outside the store) before the appends that
        # crossed it are acknowledged; None only for library use without one.
        self.witness = witness
        self._witnessed_size = -1  # the largest tree head the witness holds
        self._unwitnessed: Checkpoint | None = None  # signed, not yet accepted by the witness
        self.tree = TiledTree(storage)
        self._size = 0  # committed entries (the tree may briefly hold a batch being written)
        self._heads: dict[str, tuple[str, int]] = {}
        self._rotations: list[int] = []  # seqs of key-rotation entries
        self._caps: CapabilityIndex | None = None  # loaded at first use
        # Committed values of the keys side writes touch (the log is their only writer).
        self._side: dict[tuple[str, str], JsonValue | None] = {}
        self._queue: list[_Pending] = []
        # fast_acquire: no event-loop round trip when uncontended; contended, appends still batch.
        self._commit_lock = anyio.Lock(fast_acquire=True)
        self._opened = False
        self.redactor = Redactor(b"")
        self._concurrent = False  # the last batch carried more than one waiting append
        self._last_action: tuple[SensitiveAction, Redactor, int, JsonObject, str] | None = None
        self._authorization_texts: dict[Authorization, tuple[JsonObject, str]] = {}
        self._outcome_texts: dict[tuple[Any, ...], str] = {}
        self._outcome_texts_for: tuple[Redactor, int] | None = None  # redactor and generation
        self.trusted_keys: dict[str, PublicKey] = {key.key_id: key.public_key}

    @classmethod
    async def open(
        cls,
        storage: Storage,
        key: KeyPair,
        *,
        checkpoint_every: int = 1000,
        witness: Witness | None = None,
        retired_keys: Sequence[PublicKey] = (),
    ) -> AuditLog:
        """Load the log and check it against the newest witnessed tree head: a store that is
        shorter than (or disagrees with) what the witness saw is refused (VerificationError).

        ``retired_keys``: keys this one replaced (kept outside the store); a rotation entry
        in the log is trusted only if one of these or ``key`` signed it."""
        audit = cls(storage, key, checkpoint_every=checkpoint_every, witness=witness)
        for retired in retired_keys:
            audit.trusted_keys[retired.key_id] = retired
        await audit._load()
        return audit

    async def _load(self) -> None:
        salt = await self.storage.get(NS_META, "salt")
        if salt is None:
            salt = os.urandom(16).hex()
            await self.storage.compare_and_set(NS_META, "salt", None, salt)
            salt = await self.storage.get(NS_META, "salt")
        self.redactor = Redactor(bytes.fromhex(str(salt)))
        recorded = await self.storage.get(NS_META, "size")
        if recorded is not None and type(recorded) is not int:
            raise VerificationError(
                f"audit log: the size record is {str(recorded)[:40]!r}, not a number",
                hint=_DAMAGED_HINT,
            )
        size = recorded or 0
        layout = await self.storage.get(NS_META, "layout")
        if layout == LAYOUT:
            await self._load_edge(size)
        elif size == 0 and layout is None:
            await self.storage.compare_and_set(NS_META, "layout", None, LAYOUT)
        elif layout is None:
            await self._load_all(size)  # layout 1: read once, then store the indexes
        else:
            raise VerificationError(
                f"audit log: store layout {str(layout)[:20]!r} is not one this version reads",
                hint="upgrade Astrid to the version that wrote this store",
            )
        if self.witness is not None:
            await self._check_witness(self.witness.newest())
        self._opened = True

    async def _load_edge(self, size: int) -> None:
        """Open a layout-2 store in O(log n) reads: the tree's right edge and the rotations."""
        count = size % 256
        newest = (
            await self.storage.scan(NS_ENTRY, start=_key(size - count), limit=count + 1)
            if count
            else []
        )
        leaves: list[bytes] = []
        for offset, (row, raw) in enumerate(newest):
            seq = size - count + offset
            fields = raw if isinstance(raw, dict) else {}
            digest = fields.get("hash")
            if row != _key(seq) or fields.get("seq") != seq or not isinstance(digest, str):
                raise VerificationError(
                    f"audit log: stored entry {row} is not entry {seq} of {size} "
                    "(an entry was deleted, inserted or rewritten)",
                    hint=_DAMAGED_HINT,
                )
            try:
                leaves.append(leaf_hash(bytes.fromhex(digest)))
            except ValueError:
                raise VerificationError(
                    f"audit log: stored entry {row} has a malformed hash", hint=_DAMAGED_HINT
                ) from None
        if len(newest) > count:
            raise VerificationError(
                f"audit log: an entry is stored past the size record ({size})", hint=_DAMAGED_HINT
            )
        await self.tree.load(size, leaves)
        self._size = size
        rotations = await self.storage.get(NS_META, "rotations")
        if rotations is not None and (
            not isinstance(rotations, list) or not all(type(r) is int for r in rotations)
        ):
            raise VerificationError(
                "audit log: the key-rotation record is malformed", hint=_DAMAGED_HINT
            )
        for seq in rotations or []:
            assert isinstance(seq, int)
            raw = await self.storage.get(NS_ENTRY, _key(seq))
            try:
                entry = AuditEntry.model_validate(raw)
            except ValueError as exc:
                raise VerificationError(
                    f"audit log: key rotation entry {seq} is malformed "
                    f"({str(exc).splitlines()[0]})",
                    hint=_DAMAGED_HINT,
                ) from None
            self._trust_rotation(entry)
            self._rotations.append(seq)

    def _trust_rotation(self, entry: AuditEntry) -> None:
        """The new key is trusted only because a key already trusted signed this very entry:
        a rotation written into the store by someone else names their key."""
        if entry.outcome.kind is not OutcomeKind.KEY_ROTATION:
            raise VerificationError(
                f"audit log: entry {entry.seq} is listed as a key rotation but is not one",
                hint=_DAMAGED_HINT,
            )
        try:
            entry.check(self.trusted_keys)
        except VerificationError as exc:
            raise VerificationError(
                f"audit log: key rotation {exc.message}", hint=_DAMAGED_HINT
            ) from exc
        new = PublicKey.from_b64(str(entry.outcome.detail["new_public_key"]))
        self.trusted_keys[new.key_id] = new

    async def _load_all(self, size: int) -> None:
        """A layout-1 store: read every entry (as every start-up did before), then write the
        tiles and indexes in one transaction so that later starts read O(log n)."""
        writes: list[Put] = []
        caps = CapabilityIndex({}, {})
        for seq, (row, raw) in enumerate(await self.storage.scan(NS_ENTRY)):
            try:
                entry = AuditEntry.model_validate(raw)
            except ValueError as exc:
                raise VerificationError(
                    f"audit log: stored entry {row} is malformed ({str(exc).splitlines()[0]})",
                    hint=_DAMAGED_HINT,
                ) from None
            if entry.seq != seq:
                raise VerificationError(
                    f"audit log: entry at position {seq} has seq {entry.seq} "
                    "(an entry was deleted, inserted or reordered)",
                    hint=_DAMAGED_HINT,
                )
            self.tree.append_leaf_hash(leaf_hash(bytes.fromhex(entry.hash)))
            self._heads[entry.chain] = (entry.hash, entry.chain_seq)
            writes += self._index_writes(entry, caps, set())
            caps.note(entry.seq, str(entry.id), *self._effects(entry))
            if entry.outcome.kind is OutcomeKind.KEY_ROTATION:
                self._trust_rotation(entry)
                self._rotations.append(entry.seq)
        if len(self.tree) != size:
            raise VerificationError(
                f"audit log: {len(self.tree)} entries stored but the size record says {size}",
                hint=_DAMAGED_HINT,
            )
        self._size = size
        writes += self.tree.pending_writes()
        writes += [Put(NS_HEAD, chain, [h, n]) for chain, (h, n) in self._heads.items()]
        writes += [Put(NS_META, "rotations", list[JsonValue](self._rotations))]
        writes.append(Put(NS_META, "layout", LAYOUT))
        if not await self.storage.transaction(
            writes, expect=[Expect(NS_META, "size", size or None)]
        ):
            raise StorageError(
                "audit log: the store changed while its indexes were being written",
                hint="only one process may open the store; restart the daemon",
            )
        self.tree.trim()
        self._caps = caps
        await self._write_seal()

    def _index_writes(self, entry: AuditEntry, caps: CapabilityIndex, fresh: set[str]) -> list[Put]:
        """The id index row and the capability index rows for one entry. A capability row
        keeps the seq of the first entry that made it (the seal covers rows by seq), so a
        token already in ``caps``, or in ``fresh`` (the rows of this batch), gets none."""
        writes = [Put(NS_ID, str(entry.id), entry.seq)]
        revoked, used = self._effects(entry)
        for token in revoked:
            if token not in caps.revoked and f"r/{token}" not in fresh:
                fresh.add(f"r/{token}")
                writes.append(Put(NS_CAP, f"r/{token}", entry.seq))
        if used is not None and used not in caps.used and f"u/{used}" not in fresh:
            fresh.add(f"u/{used}")
            writes.append(Put(NS_CAP, f"u/{used}", entry.seq))
        return writes

    @staticmethod
    def _effects(entry: AuditEntry) -> tuple[list[str], str | None]:
        return _cap_effects(entry.outcome.kind.value, entry.outcome.detail, entry.authorization)

    async def capability_index(self) -> CapabilityIndex:
        """Every revoked token id and every token id that authorized an allowed action.

        Read from the capability index (O(tokens)), which is checked against its signed seal
        (written with every checkpoint): a row deleted or added under the seal's size fails
        with VerificationError. Entries after the seal's size (at most ``checkpoint_every``,
        one scan) are read as plain JSON, each seq in order: a revocation or spend in them
        cannot be deleted unnoticed either. Trusting them unverified is safe in this
        direction (an entry can only add revocations and spends, i.e. refuse more); ``audit
        verify`` is what proves the log itself."""
        async with self._commit_lock:
            return await self._load_caps()

    async def _load_caps(self) -> CapabilityIndex:
        if self._caps is not None:
            return self._caps
        caps = CapabilityIndex({}, {})
        for row, seq in await self.storage.scan(NS_CAP):
            if type(seq) is not int or not row.startswith(("r/", "u/")):
                raise VerificationError(
                    f"audit log: capability index row {row[:60]!r} is malformed",
                    hint=_DAMAGED_HINT,
                )
            (caps.revoked if row[0] == "r" else caps.used)[row[2:]] = seq
        sealed = self._check_seal(await self.storage.get(NS_META, "cap_seal"), caps)
        caps.last_revocation = sealed[1]
        tail = await self.storage.scan(NS_ENTRY, start=_key(sealed[0]), limit=self.size - sealed[0])
        if len(tail) != self.size - sealed[0]:
            raise VerificationError(
                f"audit log: {len(tail)} entries stored after {sealed[0]}, "
                f"{self.size - sealed[0]} expected",
                hint=_DAMAGED_HINT,
            )
        for offset, (row, stored) in enumerate(tail):
            raw = cast(dict[str, Any], stored) if isinstance(stored, dict) else {}
            seq = sealed[0] + offset
            if row != _key(seq) or raw.get("seq") != seq:
                raise VerificationError(
                    f"audit log: stored entry {row} is not entry {seq} "
                    "(an entry was deleted, inserted or rewritten)",
                    hint=_DAMAGED_HINT,
                )
            outcome = raw.get("outcome")
            fields = cast(dict[str, Any], outcome) if isinstance(outcome, dict) else {}
            revoked, used = _cap_effects(
                fields.get("kind"), fields.get("detail"), raw.get("authorization")
            )
            caps.note(seq, str(raw.get("id")), revoked, used)
        self._caps = caps
        return caps

    def _check_seal(self, seal: object, caps: CapabilityIndex) -> tuple[int, str | None]:
        """The size the seal covers and its last revocation (0, None: no seal yet)."""
        if seal is None:
            return 0, None
        fields = cast(dict[str, Any], seal) if isinstance(seal, dict) else {}
        size, key_id, signature = fields.get("size"), fields.get("key_id"), fields.get("signature")
        last = fields.get("last_revocation")
        key = self.trusted_keys.get(str(key_id))
        if (
            type(size) is not int
            or not 0 <= size <= self.size
            or key is None
            or not isinstance(signature, str)
            or not (last is None or isinstance(last, str))
        ):
            raise VerificationError(
                "audit log: the capability index seal is malformed or signed by an unknown key",
                hint=_DAMAGED_HINT,
            )
        revoked, used = _ids_digest(caps.revoked, size), _ids_digest(caps.used, size)
        try:
            key.verify(_seal_message(size, revoked, used, last), signature)
        except VerificationError:
            raise VerificationError(
                "audit log: the capability index differs from its signed seal (a revocation or "
                "a spend of a token was deleted or added in the store)",
                hint=_DAMAGED_HINT,
            ) from None
        return size, last

    async def _write_seal(self) -> None:
        """Sign the capability index as it is now (called with the commit lock held)."""
        caps = await self._load_caps()
        size = self.size
        revoked, used = _ids_digest(caps.revoked, size), _ids_digest(caps.used, size)
        last = caps.last_revocation
        seal: JsonObject = {
            "size": size,
            "key_id": self.key.key_id,
            "last_revocation": last,
            "signature": self.key.sign_b64(_seal_message(size, revoked, used, last)),
        }
        await self.storage.put(NS_META, "cap_seal", seal)

    async def _check_witness(self, newest: WitnessedHead | None) -> None:
        """The newest witnessed head only (start-up must not grow with the log); a full
        ``verify_storage`` checks every one."""
        if newest is None:
            return
        witnessed = newest.checkpoint.tree_size
        if 0 < witnessed <= self.size:  # read the tiles check_head needs (O(log n))
            await self.tree.run(
                lambda t: (t.root(witnessed), t.root(), t.consistency_proof(witnessed))
            )
        try:
            check_head(newest, self.tree, self.size, self.trusted_keys)
        except VerificationError as exc:
            raise VerificationError(f"audit log: {exc.message}", hint=_DAMAGED_HINT) from exc
        self._witnessed_size = newest.checkpoint.tree_size

    @property
    def size(self) -> int:
        return self._size

    # ------------------------------------------------------------------ writing

    async def append(
        self,
        outcome: Outcome,
        *,
        session_id: SessionId | None = None,
        action: SensitiveAction | None = None,
        authorization: Authorization | None = None,
        side: SideWrite | None = None,
    ) -> AuditEntry:
        """Append one entry; returns it once it is durable. Raises StorageError on failure,
        SideWriteRefused when ``side`` refused (nothing of this entry is written then)."""
        if not self._opened:
            await self._load()
        pending = self._pending(outcome, session_id, action, authorization)
        pending.side = side
        self._queue.append(pending)
        if self._concurrent and not self._commit_lock.locked():
            # Appends have been arriving together: let the other runnable tasks queue their
            # entries before this one commits, so one transaction carries them all. (A lone
            # writer never waits here: its batches are of one.)
            await anyio.lowlevel.checkpoint()
        async with self._commit_lock:
            if not pending.done:
                await self._commit_queue()
        if pending.error is not None:
            failure = pending.error
            if isinstance(failure, SideWriteRefused):
                raise failure
            # An AstridError's own hint names the fix (the storage's real cause, the witness).
            cause = getattr(failure, "hint", "") or "check the storage backend"
            raise StorageError(
                f"audit log write failed: {getattr(failure, 'message', failure)}",
                hint=f"the action was NOT performed (fail closed); {cause}",
                code=getattr(failure, "code", StorageError.code),
            ) from failure
        assert pending.entry is not None
        return pending.entry

    def enqueue(
        self,
        outcome: Outcome,
        *,
        session_id: SessionId | None = None,
        action: SensitiveAction | None = None,
        side: SideWrite | None = None,
    ) -> None:
        """Queue an entry that is written with the next ``append`` (in its transaction) or
        ``flush``, whichever comes first, instead of a transaction of its own.

        Only for the record of something that already happened (an action's outcome), never
        for a decision, which must be durable before the action runs. Until it is written it
        is only in memory: whoever enqueues must ``flush`` before it stops (the agent loop
        does at the end of every turn). A failed write fails the ``append`` that carried it
        (so the next decision is denied) and is logged."""
        if not self._opened:
            raise StorageError(
                "audit log is not open", hint="open it with AuditLog.open before enqueueing"
            )
        pending = self._pending(outcome, session_id, action, None)
        pending.queued = True
        pending.side = side
        self._queue.append(pending)

    async def flush(self) -> None:
        """Write every queued entry now. Raises StorageError if they could not be written."""
        if not self._queue:
            return
        async with self._commit_lock:
            batch = list(self._queue)
            if batch:
                await self._commit_queue()
        failed = next((item.error for item in batch if item.error is not None), None)
        if failed is not None:
            raise StorageError(
                f"audit log write failed: {failed}",
                hint="queued outcome records were lost; check the storage backend",
            ) from failed

    def _pending(
        self,
        outcome: Outcome,
        session_id: SessionId | None,
        action: SensitiveAction | None,
        authorization: Authorization | None,
    ) -> _Pending:
        action_json, action_text = (
            self._action_json(action) if action is not None else (None, "null")
        )
        authorization_json, authorization_text = (
            self._authorization_json(authorization) if authorization is not None else (None, "null")
        )
        stored, outcome_text = self._outcome_json(outcome)
        chain = str(session_id) if session_id is not None else SYSTEM_CHAIN
        return _Pending(
            chain=chain,
            action=action_json,
            authorization=authorization_json,
            outcome=stored,
            chain_text=entry_text(chain),
            action_text=action_text,
            authorization_text=authorization_text,
            outcome_text=outcome_text,
        )

    def _action_json(self, action: SensitiveAction) -> tuple[JsonObject, str]:
        """The action as stored, redacted, and its text. The last one is remembered: a
        decision and its outcome record the same (immutable) action object, one after the
        other."""
        redactor = self.redactor
        last = self._last_action
        if (
            last is not None
            and last[0] is action
            and last[1] is redactor
            and last[2] == redactor.generation
        ):
            return last[3], last[4]
        stored, text = action_record(redactor.value(action_to_json(action)))
        self._last_action = (action, redactor, redactor.generation, stored, text)
        return stored, text

    def _authorization_json(self, authorization: Authorization) -> tuple[JsonObject, str]:
        """An authorization is immutable all the way down and hashable, and the same one
        recurs (one token's proof, one reason), so each distinct value is dumped once."""
        cached = self._authorization_texts.get(authorization)
        if cached is None:
            dumped = authorization.model_dump(mode="json")
            cached = (dumped, entry_text(dumped))
            if len(self._authorization_texts) >= _TEXT_CACHE_SIZE:
                self._authorization_texts.clear()
            self._authorization_texts[authorization] = cached
        return cached

    def _outcome_json(self, outcome: Outcome) -> tuple[Outcome, str]:
        """The outcome as stored (redacted) and its text. A flat outcome that has no secret in
        it is looked up by value; the lookup is only valid for the redactor's secrets of the
        time, so learning a new secret empties it."""
        key = _outcome_key(outcome)
        if key is not None and self._outcome_texts_for == (
            self.redactor,
            self.redactor.generation,
        ):
            text = self._outcome_texts.get(key)
            if text is not None:
                return outcome, text
        redacted = self._redacted(outcome)
        text = entry_text(redacted.model_dump(mode="json"))
        if key is not None and redacted is outcome:  # only what redaction leaves as it is
            current = (self.redactor, self.redactor.generation)
            if self._outcome_texts_for != current or len(self._outcome_texts) >= _TEXT_CACHE_SIZE:
                self._outcome_texts.clear()
                self._outcome_texts_for = current
            self._outcome_texts[key] = text
        return redacted, text

    def _redacted(self, outcome: Outcome) -> Outcome:
        reason = self.redactor.text(outcome.reason)
        preview = self.redactor.text(outcome.output_preview)
        detail = self.redactor.value(outcome.detail)
        if (
            reason is outcome.reason
            and preview is outcome.output_preview
            and detail == outcome.detail
        ):
            return outcome  # nothing secret in it (the common case): no copy
        return outcome.model_copy(
            update={"reason": reason, "output_preview": preview, "detail": detail}
        )

    async def _commit_queue(self) -> None:
        batch, self._queue = self._queue, []
        if self._unwitnessed is not None:
            # A checkpoint the witness has not accepted yet: nothing more is acknowledged
            # until it has (fail closed), and nothing is written either.
            try:
                await self._witness(self._unwitnessed)
            except BaseException as exc:
                self._fail(batch, exc)
                if not isinstance(exc, Exception):
                    raise
                return
        self._concurrent = sum(1 for item in batch if not item.queued) > 1
        try:
            await self._read_heads({item.chain for item in batch})
            caps = await self._load_caps()
            await self._read_side(batch)
        except BaseException as exc:
            self._fail(batch, exc)
            if not isinstance(exc, Exception):
                raise
            return
        batch, side_state = self._apply_sides(batch)
        if not batch:
            return
        entries: list[AuditEntry] = []
        texts: list[str] = []
        # The heads this batch moves, over the committed ones (not a copy of every chain the
        # log has ever seen: a long-lived daemon has one per session).
        moved: dict[str, tuple[str, int]] = {}
        size = self.size
        now = int(time.time() * 1000)
        for offset, item in enumerate(batch):
            prev_hash, chain_seq = moved.get(item.chain) or self._heads.get(
                item.chain, (GENESIS, -1)
            )
            entry_id, seq = AuditEntryId.new(), size + offset
            digest, signature, text = seal_member_texts(
                {
                    "action": item.action_text,
                    "authorization": item.authorization_text,
                    "chain": item.chain_text,
                    "chain_seq": str(chain_seq + 1),
                    "id": entry_text(str(entry_id)),
                    "key_id": entry_text(self.key.key_id),
                    "outcome": item.outcome_text,
                    "prev_hash": entry_text(prev_hash),
                    "seq": str(seq),
                    "timestamp_ms": str(now),
                    "v": _VERSION_TEXT,
                },
                self.key,
            )
            # model_construct: every field was built right here from validated parts (the
            # outcome is a model, action/authorization are JSON dumps, the rest are ours), and
            # each member's text passed canonical JSON; validating again would only cost time.
            entry = AuditEntry.model_construct(
                v=FORMAT_VERSION,
                id=entry_id,
                seq=seq,
                chain=item.chain,
                chain_seq=chain_seq + 1,
                timestamp_ms=now,
                action=item.action,
                authorization=item.authorization,
                outcome=item.outcome,
                prev_hash=prev_hash,
                key_id=self.key.key_id,
                hash=digest,
                signature=signature,
            )
            moved[item.chain] = (digest, chain_seq + 1)
            entries.append(entry)
            texts.append(text)
        new_size = size + len(entries)
        writes: list[Put] = [
            Put(NS_ENTRY, _key(e.seq), EncodedJson(text))
            for e, text in zip(entries, texts, strict=True)
        ]
        # What opening the log would otherwise rebuild from every entry rides along: the
        # tiles that changed, the heads this batch moved, the id and capability indexes.
        tree_state = self.tree.snapshot()
        fresh: set[str] = set()
        rotations = list(self._rotations)
        for entry in entries:
            self.tree.append_leaf_hash(leaf_hash(bytes.fromhex(entry.hash)))
            writes += self._index_writes(entry, caps, fresh)
            if entry.outcome.kind is OutcomeKind.KEY_ROTATION:
                rotations.append(entry.seq)
        writes += self.tree.pending_writes()
        writes += [Put(NS_HEAD, chain, [h, n]) for chain, (h, n) in moved.items()]
        if len(rotations) != len(self._rotations):
            writes.append(Put(NS_META, "rotations", list[JsonValue](rotations)))
        writes.append(Put(NS_META, "size", new_size))
        expect = [Expect(NS_META, "size", size if size else None)]
        for (namespace, key), value in side_state.items():
            if value is not None:
                writes.append(Put(namespace, key, value))
            expect.append(Expect(namespace, key, self._side[(namespace, key)]))
        try:
            committed = await self.storage.transaction(writes, expect=expect)
            if not committed:
                stored = await self.storage.get(NS_META, "size")
                raise StorageError(
                    f"the stored audit log size is {stored}, this process expected {size}: a "
                    "write reported as failed (I/O error) landed after all, or something else "
                    "wrote to the store",
                    hint="restart the daemon (it reloads the log from the store), then run "
                    "`astrid audit verify`",
                )
        except BaseException as exc:  # fail closed: nothing in memory changes
            self.tree.restore(tree_state)
            for cached in side_state:
                self._side.pop(cached, None)  # re-read at the next use
            self._fail(batch, exc)
            if not isinstance(exc, Exception):
                raise
            return
        self._size = new_size
        self._rotations = rotations
        self._side.update(side_state)
        self.tree.trim()
        for entry in entries:
            caps.note(entry.seq, str(entry.id), *self._effects(entry))
        for item, entry in zip(batch, entries, strict=True):
            item.entry = entry
            item.done = True
        self._heads.update(moved)
        if (
            self.checkpoint_every
            and new_size // self.checkpoint_every > size // self.checkpoint_every
        ) or any(item.outcome.kind is OutcomeKind.SESSION_END for item in batch):
            try:
                await self._write_checkpoint()
            except BaseException as exc:
                # The entries are durable (and verify), but none is acknowledged while the
                # witness cannot hold the checkpoint over them: the actions do not run.
                for item in batch:
                    item.error = exc
                if not isinstance(exc, Exception):
                    raise

    async def _read_side(self, batch: Sequence[_Pending]) -> None:
        """Read (once, under the commit lock) the committed values of the batch's side keys."""
        for item in batch:
            if item.side is not None:
                for key in item.side.keys:
                    cached = (item.side.namespace, key)
                    if cached not in self._side:
                        self._side[cached] = await self.storage.get(*cached)

    def _apply_sides(
        self, batch: list[_Pending]
    ) -> tuple[list[_Pending], dict[tuple[str, str], JsonValue | None]]:
        """Each side write in the batch's order, over the values the ones before it left; an
        entry whose side write refuses (or fails) leaves the batch alone."""
        state: dict[tuple[str, str], JsonValue | None] = {}
        kept: list[_Pending] = []
        for item in batch:
            side = item.side
            if side is None:
                kept.append(item)
                continue
            namespace = side.namespace
            current = {
                key: state[(namespace, key)]
                if (namespace, key) in state
                else self._side[(namespace, key)]
                for key in side.keys
            }
            try:
                result = side.apply(current)
            except Exception as exc:
                result = f"{type(exc).__name__}: {exc}"
            if isinstance(result, str):
                item.error = SideWriteRefused(result)
                item.done = True
                if item.queued:
                    log.error("audit log: a queued side write refused: %s", result)
                continue
            for key, value in result.items():
                state[(namespace, key)] = value
            kept.append(item)
        return kept, state

    async def side_values(self, namespace: str, keys: Sequence[str]) -> dict[str, JsonValue | None]:
        """The committed values of side-write keys (what the next side write starts from,
        before any queued one is written)."""
        values: dict[str, JsonValue | None] = {}
        for key in keys:
            cached = (namespace, key)
            values[key] = (
                self._side[cached] if cached in self._side else await self.storage.get(*cached)
            )
        return values

    async def apply_side(self, side: SideWrite) -> Mapping[str, JsonValue]:
        """A side write without an entry, in a transaction of its own (for state that has no
        entry to ride with). Raises SideWriteRefused."""
        async with self._commit_lock:
            pending = _Pending("", None, None, Outcome(kind=OutcomeKind.DENIED), "", "", "", "")
            pending.side = side
            await self._read_side([pending])
            kept, state = self._apply_sides([pending])
            if not kept:
                assert pending.error is not None
                raise pending.error
            writes: list[Put] = []
            expect: list[Expect] = []
            for (namespace, key), value in state.items():
                if value is not None:
                    writes.append(Put(namespace, key, value))
                expect.append(Expect(namespace, key, self._side[(namespace, key)]))
            try:
                committed = await self.storage.transaction(writes, expect=expect)
            except BaseException:
                for cached in state:
                    self._side.pop(cached, None)
                raise
            if not committed:
                for cached in state:
                    self._side.pop(cached, None)
                raise StorageError(
                    f"{side.namespace} state changed outside the audit log",
                    hint="only the daemon may write the store; restart it",
                )
            self._side.update(state)
            return {key: value for (_, key), value in state.items() if value is not None}

    async def _read_heads(self, chains: set[str]) -> None:
        """The head of each chain this process has not appended to yet (one read each)."""
        for chain in chains - self._heads.keys():
            raw = await self.storage.get(NS_HEAD, chain)
            if raw is None:
                continue  # a new chain
            if (
                not isinstance(raw, list)
                or len(raw) != 2
                or not isinstance(raw[0], str)
                or type(raw[1]) is not int
            ):
                raise VerificationError(
                    f"audit log: the head record of chain {chain} is malformed",
                    hint=_DAMAGED_HINT,
                )
            self._heads[chain] = (raw[0], raw[1])

    def _fail(self, batch: list[_Pending], exc: BaseException) -> None:
        for item in batch:
            item.error = exc
            item.done = True
        lost = sum(1 for item in batch if item.queued)
        if lost:
            log.error("audit log: %d queued outcome record(s) were not written: %s", lost, exc)

    async def checkpoint(self, *, size: int | None = None, root: str | None = None) -> Checkpoint:
        """Sign, store and witness a checkpoint of the current tree (also done every N entries
        and at every session end). A stored checkpoint is never overwritten: if one of this
        size exists it is returned when it matches the tree, and reported when it does not.

        ``size`` and ``root``: sign only what a verifier just checked — the first ``size``
        entries, which must have Merkle ``root`` here too (else VerificationError)."""
        async with self._commit_lock:
            if size is not None:
                here = (await self.tree.aroot(size)).hex() if 0 < size <= self.size else ""
                if size > self.size or here != (root or ""):
                    raise VerificationError(
                        f"the stored log's first {size} entries differ from the log this "
                        "process wrote",
                        hint="the store was changed behind the daemon's back; stop it and run "
                        "`astrid audit verify --offline`",
                    )
            return await self._write_checkpoint(size)

    async def _write_checkpoint(self, size: int | None = None) -> Checkpoint:
        size = self.size if size is None else size
        cp = Checkpoint(
            tree_size=size,
            root=(await self.tree.aroot(size)).hex(),
            timestamp_ms=int(time.time() * 1000),
            key_id=self.key.key_id,
        ).sealed(self.key)
        key = _key(cp.tree_size)
        await self._write_seal()
        if not await self.storage.compare_and_set(
            NS_CHECKPOINT, key, None, cp.model_dump(mode="json")
        ):
            cp = self._same_tree(await self.storage.get(NS_CHECKPOINT, key), cp)
        await self._witness(cp)
        return cp

    def _same_tree(self, raw: object, fresh: Checkpoint) -> Checkpoint:
        """The checkpoint already stored at ``fresh``'s size, if it is intact and says the
        same; VerificationError (and the stored one untouched) otherwise."""
        try:
            stored = Checkpoint.model_validate(raw)
            stored.check(self.trusted_keys)
        except (ValueError, VerificationError) as exc:
            raise VerificationError(
                f"the stored checkpoint at size {fresh.tree_size} is corrupted: "
                f"{str(exc).splitlines()[0]}",
                hint="it was left as it is (checkpoints are never overwritten); examine the "
                "log with `astrid audit verify`",
            ) from None
        if (stored.tree_size, stored.root) != (fresh.tree_size, fresh.root):
            raise VerificationError(
                f"the stored checkpoint at size {fresh.tree_size} has another Merkle root "
                "than the log",
                hint="entries were rewritten; examine the log with `astrid audit verify`",
            )
        return stored

    async def _witness(self, cp: Checkpoint) -> None:
        """Hand ``cp`` to the witness unless it already holds a head this large. Until it
        has, nothing more is acknowledged (``_commit_queue`` retries it first)."""
        if self.witness is None or cp.tree_size <= self._witnessed_size:
            return
        owed = self._unwitnessed
        if owed is None or cp.tree_size > owed.tree_size:
            self._unwitnessed = owed = cp  # the largest head owed is the one that must land
        await self.witness.append(cp)
        self._witnessed_size = cp.tree_size
        if owed.tree_size <= cp.tree_size:
            self._unwitnessed = None

    async def rotate_key(self, new_key: KeyPair) -> AuditEntry:
        """Record the new key in an entry signed by the OLD key, then sign with the new one."""
        entry = await self.append(
            Outcome(
                kind=OutcomeKind.KEY_ROTATION,
                reason="runtime key rotated",
                detail={"new_public_key": new_key.public_key.b64, "new_key_id": new_key.key_id},
            )
        )
        self.key = new_key
        self.trusted_keys[new_key.key_id] = new_key.public_key
        return entry

    # ------------------------------------------------------------------ fail-closed helper

    @asynccontextmanager
    async def record(
        self,
        action: SensitiveAction,
        *,
        session_id: SessionId | None = None,
        authorization: Authorization | None = None,
    ) -> AsyncGenerator[Recording, None]:
        """Audit the decision BEFORE the body runs, and the result after.

        If the decision cannot be written, the body never runs (the append raises). If the
        body raises, a failure outcome is recorded and the exception propagates.
        """
        decision = await self.append(
            Outcome(
                kind=OutcomeKind.ALLOWED,
                reason=authorization.reason if authorization else "allowed",
            ),
            session_id=session_id,
            action=action,
            authorization=authorization,
        )
        rec = Recording(decision)
        try:
            yield rec
        except BaseException as exc:
            with anyio.CancelScope(shield=True):
                await self.append(
                    Outcome(
                        kind=OutcomeKind.EXECUTED,
                        success=False,
                        reason=f"{type(exc).__name__}: {exc}"[:500],
                        detail={"decision_entry": str(decision.id)},
                    ),
                    session_id=session_id,
                    action=action,
                )
            raise
        await self.append(rec.outcome(), session_id=session_id, action=action)

    # ------------------------------------------------------------------ reading

    async def entries(
        self,
        *,
        session_id: SessionId | str | None = None,
        since_ms: int | None = None,
        until_ms: int | None = None,
        action_kind: str | None = None,
        outcome: OutcomeKind | str | None = None,
        limit: int | None = None,
    ) -> list[AuditEntry]:
        found: list[AuditEntry] = []
        for _, raw in await self.storage.scan(NS_ENTRY):
            entry = AuditEntry.model_validate(raw)
            if session_id is not None and entry.chain != str(session_id):
                continue
            if since_ms is not None and entry.timestamp_ms < since_ms:
                continue
            if until_ms is not None and entry.timestamp_ms > until_ms:
                continue
            if action_kind is not None and (entry.action or {}).get("kind") != action_kind:
                continue
            if outcome is not None and entry.outcome.kind != outcome:
                continue
            found.append(entry)
        return found[-limit:] if limit else found

    async def get(self, entry_id: AuditEntryId | str) -> AuditEntry | None:
        """The entry with this id (two reads: the id index, then the entry)."""
        seq = await self.storage.get(NS_ID, str(entry_id)) if str(entry_id) else None
        if type(seq) is not int:
            return None
        raw = await self.storage.get(NS_ENTRY, _key(seq))
        if raw is None:
            return None
        entry = AuditEntry.model_validate(raw)
        return entry if str(entry.id) == str(entry_id) else None

    async def checkpoints(self) -> list[Checkpoint]:
        return [Checkpoint.model_validate(raw) for _, raw in await self.storage.scan(NS_CHECKPOINT)]

    async def stats(self) -> dict[str, Any]:
        by_outcome: dict[str, int] = {}
        by_action: dict[str, int] = {}
        by_risk: dict[str, int] = {}
        entries = await self.entries()
        for entry in entries:
            by_outcome[entry.outcome.kind.value] = by_outcome.get(entry.outcome.kind.value, 0) + 1
            if entry.action:
                kind = str(entry.action.get("kind"))
                by_action[kind] = by_action.get(kind, 0) + 1
            risk = (entry.outcome.detail or {}).get("risk")
            if isinstance(risk, str):
                by_risk[risk] = by_risk.get(risk, 0) + 1
        return {
            "entries": len(entries),
            "sessions": len({e.chain for e in entries}),
            "by_outcome": by_outcome,
            "by_action": by_action,
            "by_risk": by_risk,
        }

    async def inclusion_proof_for(
        self, entry_id: AuditEntryId | str, checkpoint: Checkpoint | None = None
    ) -> tuple[AuditEntry, list[str]]:
        """The entry and its O(log n) inclusion proof in ``checkpoint`` (default: a new one)."""
        entry = await self.get(entry_id)
        if entry is None:
            raise VerificationError(f"no audit entry {entry_id}")
        checkpoint = checkpoint or await self.checkpoint()
        if entry.seq >= checkpoint.tree_size:
            raise VerificationError(
                f"entry {entry_id} is newer than the checkpoint (size {checkpoint.tree_size})"
            )
        return entry, await self.inclusion_proof(entry.seq, checkpoint.tree_size)

    async def inclusion_proof(self, seq: int, tree_size: int | None = None) -> list[str]:
        """RFC 6962 inclusion proof of entry ``seq`` (O(log n) tile reads, cached)."""
        size = self.size if tree_size is None else tree_size
        if size > self.size:
            raise VerificationError(f"no tree of size {size}: the log has {self.size} entries")
        proof = await self.tree.run(lambda t: t.inclusion_proof(seq, size))
        return [p.hex() for p in proof]

    async def consistency_proof(self, old_size: int, new_size: int | None = None) -> list[str]:
        size = self.size if new_size is None else new_size
        if size > self.size:
            raise VerificationError(f"no tree of size {size}: the log has {self.size} entries")
        proof = await self.tree.run(lambda t: t.consistency_proof(old_size, size))
        return [p.hex() for p in proof]


class Recording:
    """Handed to the body of ``AuditLog.record``: say how the action went."""

    def __init__(self, decision: AuditEntry) -> None:
        self.decision = decision
        self._success = True
        self._output = ""
        self._reason = ""

    def success(self, output: str = "") -> None:
        self._success, self._output = True, output

    def failure(self, reason: str, output: str = "") -> None:
        self._success, self._reason, self._output = False, reason, output

    def outcome(self) -> Outcome:
        digest = content_hash(self._output.encode()).hex if self._output else None
        return Outcome(
            kind=OutcomeKind.EXECUTED,
            success=self._success,
            reason=self._reason,
            output_digest=digest,
            output_preview=self._output[:_PREVIEW],
            detail={"decision_entry": str(self.decision.id)},
        )
