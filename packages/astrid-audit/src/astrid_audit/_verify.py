"""Verification of a whole audit log or an exported one, with only trusted public keys.

Every entry's hash and signature, every per-session chain link, the sequence (deletion,
reordering, insertion), the Merkle root against every signed checkpoint (and against a
checkpoint the user saved elsewhere), and tail truncation. A key is trusted only if the caller
supplied it or a trusted key signed its rotation entry; a key that merely appears in the log is
never trusted. Any failure raises VerificationError naming the entry and the check.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self, cast

from astrid_core import AstridError, VerificationError
from astrid_core.storage import MemoryStorage, Storage
from astrid_crypto import PublicKey

from ._entry import GENESIS, AuditEntry, Checkpoint, OutcomeKind
from ._log import LAYOUT, NS_CHECKPOINT, NS_ENTRY, NS_HEAD, NS_META
from ._merkle import MerkleTree, leaf_hash, verify_inclusion
from ._tiles import NS_TILE, TiledTree
from ._witness import WitnessedHead, check_head, parse_checkpoint

__all__ = [
    "VerifyReport",
    "verify_entries",
    "verify_storage",
    "stored_checkpoints",
    "export_jsonl",
    "read_export",
    "verify_export",
]


@dataclass
class VerifyReport:
    entries: int = 0
    sessions: int = 0
    checkpoints: int = 0
    root: str = ""
    key_ids: list[str] = field(default_factory=list[str])
    witnessed: int = 0  # tree heads held outside the store (witnesses, kept heads) checked
    # The newest signed checkpoint the log was found consistent with (what a client keeps).
    head: Checkpoint | None = None

    def summary(self) -> str:
        return (
            f"OK: {self.entries} entries in {self.sessions} chains, {self.checkpoints} signed "
            f"checkpoints, consistent with {self.witnessed} witnessed tree heads, "
            f"Merkle root {self.root[:16]}…, keys {', '.join(self.key_ids)}"
        )


def verify_entries(
    entries: Sequence[AuditEntry],
    checkpoints: Sequence[Checkpoint],
    trusted_keys: Iterable[PublicKey],
    *,
    saved_checkpoint: Checkpoint | None = None,
    witnessed: Sequence[WitnessedHead] = (),
) -> VerifyReport:
    """Verify entries, and that the log extends every signed tree head: its own stored
    ``checkpoints``, a ``saved_checkpoint`` the user kept, and the ``witnessed`` heads held
    outside the store. A log shorter than any of them fails naming the missing entries."""
    keys = {k.key_id: k for k in trusted_keys}
    if not keys:
        raise VerificationError(
            "no trusted public key given", hint="pass the runtime's public key (astrid keys show)"
        )
    tree = MerkleTree()
    heads: dict[str, tuple[str, int]] = {}
    used_keys: set[str] = set()
    with _SignatureChecks() as signatures:
        for position, entry in enumerate(entries):
            try:
                key = _check_in_place(entry, position, keys, heads)
            except Exception:  # e.g. a tampered entry that does not even encode (BadInputError)
                signatures.raise_first_failure()  # one before this entry is the first failure
                raise
            signatures.add(entry, key)
            used_keys.add(entry.key_id)
            heads[entry.chain] = (entry.hash, entry.chain_seq)
            tree.append_leaf_hash(leaf_hash(bytes.fromhex(entry.hash)))
            if entry.outcome.kind is OutcomeKind.KEY_ROTATION:
                # The new key is trusted because a trusted key signed this very entry: that
                # signature is checked now, not in the background (nor are the ones before).
                signatures.raise_first_failure()
                new = PublicKey.from_b64(str(entry.outcome.detail["new_public_key"]))
                keys[new.key_id] = new
        signatures.raise_first_failure()
    tree_heads = [WitnessedHead(cp, "the log's own stored checkpoint") for cp in checkpoints]
    if saved_checkpoint is not None:
        tree_heads.append(WitnessedHead(saved_checkpoint, "the checkpoint you kept"))
    tree_heads.extend(witnessed)
    newest: Checkpoint | None = None
    # Largest first: a cut tail is named by the largest head that saw it, the whole range.
    tree_heads.sort(key=lambda h: -h.checkpoint.tree_size)
    for head in tree_heads:
        check_head(head, tree, len(entries), keys)
        if newest is None or head.checkpoint.tree_size > newest.tree_size:
            newest = head.checkpoint
    return VerifyReport(
        entries=len(entries),
        sessions=len(heads),
        checkpoints=len(checkpoints) + (saved_checkpoint is not None),
        root=tree.root().hex() if entries else "",
        key_ids=sorted(used_keys),
        witnessed=len(witnessed),
        head=newest,
    )


def _check_in_place(
    entry: AuditEntry, position: int, keys: dict[str, PublicKey], heads: dict[str, tuple[str, int]]
) -> PublicKey:
    """Everything about one entry but its signature: sequence, hash, trusted key, chain link."""
    if entry.seq != position:
        raise VerificationError(
            f"entry {entry.id}: sequence number {entry.seq} at position {position} "
            "(an entry was deleted, inserted or reordered)"
        )
    key = entry.check_content(keys)
    prev_hash, chain_seq = heads.get(entry.chain, (GENESIS, -1))
    if entry.prev_hash != prev_hash or entry.chain_seq != chain_seq + 1:
        raise VerificationError(
            f"entry {entry.seq} ({entry.id}): chain link to the previous entry of "
            f"{entry.chain} is broken"
        )
    return key


# Signatures are checked in batches of this many on worker threads, while the entries after
# them are hashed and linked here: libsodium releases the GIL, so on a machine with two cores
# verifying a large log takes about half as long.
_SIGNATURE_BATCH = 2048


class _SignatureChecks:
    """Entries' signatures, checked in the background in the order they were added. Only the
    first failure, in log order, is ever reported: the same one a check of each entry in turn
    would have stopped at."""

    def __init__(self) -> None:
        self._pool = ThreadPoolExecutor(max_workers=os.cpu_count() or 2)
        self._batch: list[tuple[AuditEntry, PublicKey]] = []
        self._submitted: list[Future[VerificationError | None]] = []

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)

    def add(self, entry: AuditEntry, key: PublicKey) -> None:
        self._batch.append((entry, key))
        if len(self._batch) >= _SIGNATURE_BATCH:
            self._submit()

    def raise_first_failure(self) -> None:
        """Wait for every signature added so far; raise the first failure among them."""
        self._submit()
        for future in self._submitted:  # batches in log order
            failure = future.result()
            if failure is not None:
                raise failure

    def _submit(self) -> None:
        if self._batch:
            batch, self._batch = self._batch, []
            self._submitted.append(self._pool.submit(_first_bad_signature, batch))


def _first_bad_signature(batch: list[tuple[AuditEntry, PublicKey]]) -> VerificationError | None:
    for entry, key in batch:
        try:
            entry.check_signature(key)
        except VerificationError as exc:
            return exc
    return None


def export_jsonl(
    path: Path,
    entries: Sequence[AuditEntry],
    checkpoints: Sequence[Checkpoint],
    public_keys: Sequence[PublicKey],
    *,
    witnessed: Sequence[Checkpoint] = (),
) -> Path:
    """Write entries, signed checkpoints (the log's own and the ``witnessed`` heads) and an
    inclusion proof of every entry in the newest checkpoint, which must cover every entry:
    an export is only verifiable whole (make a checkpoint first: ``AuditLog.checkpoint``)."""
    tree = MerkleTree()
    for entry in entries:
        tree.append_leaf_hash(leaf_hash(bytes.fromhex(entry.hash)))
    last = max(checkpoints, key=lambda c: c.tree_size, default=None)
    if last is None or last.tree_size != len(entries):
        raise VerificationError(
            f"no signed checkpoint covers all {len(entries)} entries to export",
            hint="sign one first (AuditLog.checkpoint) so the export cannot be shortened silently",
        )
    with path.open("w") as out:
        out.write(
            json.dumps(
                {
                    "type": "header",
                    "format": _EXPORT_FORMAT,
                    "v": 1,
                    "public_keys": [k.b64 for k in public_keys],
                }
            )
            + "\n"
        )
        for entry in entries:
            record: dict[str, Any] = {"type": "entry", "entry": entry.model_dump(mode="json")}
            record["inclusion"] = {
                "tree_size": last.tree_size,
                "proof": [p.hex() for p in tree.inclusion_proof(entry.seq, last.tree_size)],
            }
            out.write(json.dumps(record) + "\n")
        for cp in checkpoints:
            out.write(
                json.dumps({"type": "checkpoint", "checkpoint": cp.model_dump(mode="json")}) + "\n"
            )
        for cp in witnessed:
            document = {
                "type": "checkpoint",
                "source": "witness",
                "checkpoint": cp.model_dump(mode="json"),
            }
            out.write(json.dumps(document) + "\n")
    return path


_EXPORT_FORMAT = "astrid-audit-export"


@dataclass
class _Inclusion:
    tree_size: int
    proof: list[bytes]


@dataclass
class _Export:
    entries: list[AuditEntry] = field(default_factory=list[AuditEntry])
    inclusions: list[_Inclusion | None] = field(default_factory=list["_Inclusion | None"])
    checkpoints: list[Checkpoint] = field(default_factory=list[Checkpoint])
    witnessed: list[WitnessedHead] = field(default_factory=list[WitnessedHead])


def _bad(path: Path, number: int, what: str) -> VerificationError:
    return VerificationError(
        f"{path}:{number}: {what}",
        hint="the export was damaged or edited; export it again with `astrid audit export`",
    )


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _inclusion(value: object, path: Path, number: int) -> _Inclusion | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise _bad(path, number, "the inclusion proof is not an object")
    fields = cast("dict[str, Any]", value)
    size, proof = fields.get("tree_size"), fields.get("proof")
    if type(size) is not int or size < 0 or not isinstance(proof, list):
        raise _bad(path, number, "the inclusion proof needs a tree_size and a list of hashes")
    hashes: list[bytes] = []
    for item in cast("list[Any]", proof):
        if not isinstance(item, str) or len(item) != 64:
            raise _bad(path, number, "an inclusion proof hash is not 64 hex digits")
        try:
            hashes.append(bytes.fromhex(item))
        except ValueError:
            raise _bad(path, number, "an inclusion proof hash is not 64 hex digits") from None
    return _Inclusion(size, hashes)


def _read_export(path: Path) -> _Export:
    """Parse an export strictly: a header first, then entry and checkpoint records only.
    Any malformed line is one VerificationError naming the line."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise VerificationError(f"cannot read {path}: {exc.strerror or exc}") from exc
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise VerificationError(f"{path}: not UTF-8 text (byte {exc.start})") from None
    export = _Export()
    header = False
    for number, line in enumerate(text.split("\n"), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except (ValueError, RecursionError) as exc:
            raise _bad(path, number, f"not JSON ({_first_line(exc)})") from None
        if not isinstance(record, dict):
            raise _bad(path, number, "a record must be a JSON object")
        fields = cast("dict[str, Any]", record)
        kind = fields.get("type")
        if not header:
            if kind != "header" or fields.get("format") != _EXPORT_FORMAT or fields.get("v") != 1:
                raise _bad(path, number, f"not an {_EXPORT_FORMAT} v1 header")
            header = True
            continue
        try:
            if kind == "entry":
                export.entries.append(AuditEntry.model_validate(fields.get("entry")))
                export.inclusions.append(_inclusion(fields.get("inclusion"), path, number))
            elif kind == "checkpoint":
                raw = json.dumps(fields.get("checkpoint"))
                cp = parse_checkpoint(raw, f"{path}:{number}")
                if fields.get("source") == "witness":
                    export.witnessed.append(WitnessedHead(cp, f"the witness (line {number})"))
                else:
                    export.checkpoints.append(cp)
            else:
                raise _bad(path, number, f"unknown record type {str(kind)[:40]!r}")
        except VerificationError:
            raise
        except (ValueError, TypeError, AstridError, RecursionError) as exc:
            raise _bad(path, number, f"not a valid record ({_first_line(exc)})") from None
    if not header:
        raise VerificationError(f"{path} is empty: not an audit export")
    return export


def read_export(path: Path) -> tuple[list[AuditEntry], list[Checkpoint], list[dict[str, Any]]]:
    """Entries, checkpoints (the log's own and the witnessed ones) and each entry's inclusion
    proof (``{}`` when it has none) of an export. Raises VerificationError on any bad line."""
    export = _read_export(path)
    proofs: list[dict[str, Any]] = [
        {"tree_size": i.tree_size, "proof": [p.hex() for p in i.proof]} if i else {}
        for i in export.inclusions
    ]
    return export.entries, export.checkpoints + [h.checkpoint for h in export.witnessed], proofs


def verify_export(
    path: Path,
    trusted_keys: Iterable[PublicKey],
    *,
    saved_checkpoint: Checkpoint | None = None,
    min_size: int | None = None,
) -> VerifyReport:
    """Verify an export offline with only ``trusted_keys``. It must carry a signed checkpoint
    covering every entry and an inclusion proof of each entry in it; ``saved_checkpoint`` (a
    tree head you kept) and ``min_size`` catch an export cut back to an older checkpoint."""
    export = _read_export(path)
    entries = export.entries
    size = len(entries)
    if min_size is not None and size < min_size:
        raise VerificationError(
            f"entries {size}..{min_size - 1} are missing: you expected at least {min_size}",
            hint="the export was cut short; export the log again",
        )
    if not export.checkpoints:
        raise VerificationError(
            f"{path} carries no signed checkpoint: it cannot show it is complete",
            hint="the checkpoint records were stripped; export the log again",
        )
    covered = max(cp.tree_size for cp in export.checkpoints)
    if covered < size:
        raise VerificationError(
            f"entries {covered}..{size - 1} are not covered by any signed checkpoint",
            hint="the newest checkpoint was stripped; export the log again",
        )
    report = verify_entries(
        entries,
        export.checkpoints,
        trusted_keys,
        saved_checkpoint=saved_checkpoint,
        witnessed=export.witnessed,
    )
    by_size = {cp.tree_size: cp for cp in export.checkpoints}
    for entry, inclusion in zip(entries, export.inclusions, strict=True):
        if inclusion is None:
            raise VerificationError(
                f"entry {entry.seq} has no inclusion proof",
                hint="the proofs were stripped; export the log again",
            )
        cp = by_size.get(inclusion.tree_size)
        if cp is None:
            raise VerificationError(
                f"entry {entry.seq}: its inclusion proof names a checkpoint of size "
                f"{inclusion.tree_size} that the export does not carry"
            )
        verify_inclusion(
            leaf_hash(bytes.fromhex(entry.hash)),
            entry.seq,
            cp.tree_size,
            inclusion.proof,
            bytes.fromhex(cp.root),
        )
    return report


async def stored_checkpoints(storage: Storage) -> list[Checkpoint]:
    """The log's own checkpoints; a damaged one raises VerificationError naming it."""
    found: list[Checkpoint] = []
    for key, raw in await storage.scan(NS_CHECKPOINT):
        where = f"stored checkpoint {key}"
        try:
            cp = Checkpoint.model_validate(raw)
        except (ValueError, TypeError) as exc:
            raise VerificationError(
                f"{where} is corrupted ({_first_line(exc)})",
                hint="it was damaged or edited; verification never overwrites it — restore "
                "the store from a backup",
            ) from None
        if key != f"{cp.tree_size:012d}":
            raise VerificationError(f"{where} claims a tree of {cp.tree_size} entries")
        found.append(cp)
    return found


async def verify_storage(
    storage: Storage,
    trusted_keys: Iterable[PublicKey],
    *,
    saved_checkpoint: Checkpoint | None = None,
    witnessed: Sequence[WitnessedHead] = (),
    written: int | None = None,
) -> VerifyReport:
    """Verify the log as stored (without going through an AuditLog that could hide damage),
    against its own checkpoints and every ``witnessed`` tree head held outside the store.

    ``written``: how many entries the caller (the daemon) knows it wrote; fewer in the store
    is named before anything else."""
    entries: list[AuditEntry] = []
    for key, raw in await storage.scan(NS_ENTRY):
        try:
            entries.append(AuditEntry.model_validate(raw))
        except ValueError as exc:
            raise VerificationError(f"stored entry {key} is malformed: {exc}") from exc
    checkpoints = await stored_checkpoints(storage)
    report = verify_entries(
        entries,
        checkpoints,
        trusted_keys,
        saved_checkpoint=saved_checkpoint,
        witnessed=witnessed,
    )
    recorded = await storage.get(NS_META, "size")
    if recorded is not None and (type(recorded) is not int or recorded != len(entries)):
        raise VerificationError(
            f"the log's size record says {recorded} entries, {len(entries)} are present (truncated)"
        )
    if written is not None and len(entries) < written:
        raise VerificationError(
            f"entries {len(entries)}..{written - 1} are missing: this daemon wrote "
            f"{written} entries, the store holds {len(entries)}",
            hint="the store was changed behind the daemon's back; stop it and run "
            "`astrid audit verify --offline`",
        )
    if await storage.get(NS_META, "layout") == LAYOUT:
        await _check_indexes(storage, entries)
    return report


async def _check_indexes(storage: Storage, entries: Sequence[AuditEntry]) -> None:
    """The stored Merkle tiles and chain heads are exactly what the entries make (start-up
    and inclusion proofs use them instead of the entries)."""
    tree = TiledTree(MemoryStorage())
    heads: dict[str, list[object]] = {}
    for entry in entries:
        tree.append_leaf_hash(leaf_hash(bytes.fromhex(entry.hash)))
        heads[entry.chain] = [entry.hash, entry.chain_seq]
    expected = {w.key: w.value for w in tree.pending_writes()}
    stored = dict(await storage.scan(NS_TILE))
    for key in sorted(expected.keys() | stored.keys()):
        if stored.get(key) != expected.get(key):
            what = "missing" if key not in stored else "extra" if key not in expected else "wrong"
            raise VerificationError(
                f"Merkle tile {key} is {what}: it does not match the entries",
                hint="the store was changed; the entries verify, so restore the state "
                "directory from a backup, or remove the audit_tile rows and the layout record "
                "(audit_meta/layout) so that the next start rebuilds them from the entries",
            )
    stored_heads = dict(await storage.scan(NS_HEAD))
    for chain in sorted(heads.keys() | stored_heads.keys()):
        if stored_heads.get(chain) != heads.get(chain):
            raise VerificationError(
                f"the head record of chain {chain} does not match its newest entry",
                hint="the store was changed; restore the state directory from a backup",
            )
