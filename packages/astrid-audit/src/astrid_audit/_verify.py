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
from typing import Any, Self

from astrid_core import VerificationError
from astrid_core.storage import Storage
from astrid_crypto import PublicKey

from ._entry import GENESIS, AuditEntry, Checkpoint, OutcomeKind
from ._log import NS_CHECKPOINT, NS_ENTRY, NS_META
from ._merkle import MerkleTree, leaf_hash, verify_inclusion

__all__ = [
    "VerifyReport",
    "verify_entries",
    "verify_storage",
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

    def summary(self) -> str:
        return (
            f"OK: {self.entries} entries in {self.sessions} chains, {self.checkpoints} signed "
            f"checkpoints, Merkle root {self.root[:16]}…, keys {', '.join(self.key_ids)}"
        )


def verify_entries(
    entries: Sequence[AuditEntry],
    checkpoints: Sequence[Checkpoint],
    trusted_keys: Iterable[PublicKey],
    *,
    saved_checkpoint: Checkpoint | None = None,
) -> VerifyReport:
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
    all_checkpoints = list(checkpoints) + ([saved_checkpoint] if saved_checkpoint else [])
    for cp in all_checkpoints:
        cp.check(keys)
        if cp.tree_size > len(entries):
            raise VerificationError(
                f"checkpoint says the log had {cp.tree_size} entries, "
                f"only {len(entries)} are present "
                "(the tail was truncated)"
            )
        if tree.root(cp.tree_size).hex() != cp.root:
            raise VerificationError(
                f"checkpoint at size {cp.tree_size}: Merkle root does not match the entries"
            )
    return VerifyReport(
        entries=len(entries),
        sessions=len(heads),
        checkpoints=len(all_checkpoints),
        root=tree.root().hex() if entries else "",
        key_ids=sorted(used_keys),
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
) -> Path:
    """Write entries, checkpoints and an inclusion proof of every entry in the last checkpoint."""
    tree = MerkleTree()
    for entry in entries:
        tree.append_leaf_hash(leaf_hash(bytes.fromhex(entry.hash)))
    last = max(checkpoints, key=lambda c: c.tree_size, default=None)
    with path.open("w") as out:
        out.write(
            json.dumps(
                {
                    "type": "header",
                    "format": "astrid-audit-export",
                    "v": 1,
                    "public_keys": [k.b64 for k in public_keys],
                }
            )
            + "\n"
        )
        for entry in entries:
            record: dict[str, Any] = {"type": "entry", "entry": entry.model_dump(mode="json")}
            if last is not None and entry.seq < last.tree_size:
                record["inclusion"] = {
                    "tree_size": last.tree_size,
                    "proof": [p.hex() for p in tree.inclusion_proof(entry.seq, last.tree_size)],
                }
            out.write(json.dumps(record) + "\n")
        for cp in checkpoints:
            out.write(
                json.dumps({"type": "checkpoint", "checkpoint": cp.model_dump(mode="json")}) + "\n"
            )
    return path


def read_export(path: Path) -> tuple[list[AuditEntry], list[Checkpoint], list[dict[str, Any]]]:
    entries: list[AuditEntry] = []
    checkpoints: list[Checkpoint] = []
    proofs: list[dict[str, Any]] = []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            if record["type"] == "entry":
                entries.append(AuditEntry.model_validate(record["entry"]))
                proofs.append(record.get("inclusion") or {})
            elif record["type"] == "checkpoint":
                checkpoints.append(Checkpoint.model_validate(record["checkpoint"]))
        except (ValueError, KeyError, TypeError) as exc:
            raise VerificationError(f"{path}:{number}: not a valid export record ({exc})") from exc
    return entries, checkpoints, proofs


def verify_export(
    path: Path, trusted_keys: Iterable[PublicKey], *, saved_checkpoint: Checkpoint | None = None
) -> VerifyReport:
    entries, checkpoints, proofs = read_export(path)
    keys = list(trusted_keys)
    report = verify_entries(entries, checkpoints, keys, saved_checkpoint=saved_checkpoint)
    by_size = {cp.tree_size: cp for cp in checkpoints}
    for entry, inclusion in zip(entries, proofs, strict=True):
        if inclusion:
            cp = by_size.get(int(inclusion["tree_size"]))
            if cp is None:
                raise VerificationError(
                    f"entry {entry.seq}: its inclusion proof names an unknown checkpoint"
                )
            verify_inclusion(
                leaf_hash(bytes.fromhex(entry.hash)),
                entry.seq,
                cp.tree_size,
                [bytes.fromhex(p) for p in inclusion["proof"]],
                bytes.fromhex(cp.root),
            )
    return report


async def verify_storage(
    storage: Storage,
    trusted_keys: Iterable[PublicKey],
    *,
    saved_checkpoint: Checkpoint | None = None,
) -> VerifyReport:
    """Verify the log as stored (without going through an AuditLog that could hide damage)."""
    entries: list[AuditEntry] = []
    for key, raw in await storage.scan(NS_ENTRY):
        try:
            entries.append(AuditEntry.model_validate(raw))
        except ValueError as exc:
            raise VerificationError(f"stored entry {key} is malformed: {exc}") from exc
    checkpoints = [Checkpoint.model_validate(raw) for _, raw in await storage.scan(NS_CHECKPOINT)]
    report = verify_entries(entries, checkpoints, trusted_keys, saved_checkpoint=saved_checkpoint)
    recorded = await storage.get(NS_META, "size")
    if recorded is not None and int(recorded) != len(entries):  # type: ignore[arg-type]
        raise VerificationError(
            f"the log's size record says {recorded} entries, {len(entries)} are present (truncated)"
        )
    return report
