"""astrid-audit: a tamper-evident audit log — signed, hash-chained, in an RFC 6962 Merkle tree.

Fails closed: if an entry cannot be written, ``append`` raises and the action must not run;
``AuditLog.record`` makes that the only way to use it.
"""

from ._entry import (
    FORMAT_VERSION,
    GENESIS,
    SYSTEM_CHAIN,
    AuditEntry,
    Checkpoint,
    Outcome,
    OutcomeKind,
)
from ._log import AuditLog, Recording, SideWrite, SideWriteRefused
from ._merkle import (
    MerkleTree,
    blake3_hash,
    leaf_hash,
    node_hash,
    root_from_leaves,
    sha256_hash,
    verify_consistency,
    verify_inclusion,
)
from ._redact import SECRET_PATTERNS, Redactor
from ._trail import AuditTrail, AuditUnavailable, Denial, capability_history
from ._verify import (
    VerifyReport,
    export_jsonl,
    read_export,
    stored_checkpoints,
    verify_entries,
    verify_export,
    verify_storage,
)
from ._witness import (
    CommandWitness,
    FileWitness,
    TreeHeadCache,
    Witness,
    WitnessedHead,
    Witnesses,
    check_head,
    parse_checkpoint,
)

__version__ = "0.1.0"

__all__ = [
    "AuditLog",
    "SideWrite",
    "SideWriteRefused",
    "Recording",
    "AuditTrail",
    "AuditUnavailable",
    "Denial",
    "capability_history",
    "AuditEntry",
    "Checkpoint",
    "Outcome",
    "OutcomeKind",
    "GENESIS",
    "SYSTEM_CHAIN",
    "FORMAT_VERSION",
    "MerkleTree",
    "leaf_hash",
    "node_hash",
    "root_from_leaves",
    "blake3_hash",
    "sha256_hash",
    "verify_inclusion",
    "verify_consistency",
    "Redactor",
    "SECRET_PATTERNS",
    "VerifyReport",
    "verify_entries",
    "verify_export",
    "verify_storage",
    "export_jsonl",
    "read_export",
    "stored_checkpoints",
    "Witness",
    "WitnessedHead",
    "FileWitness",
    "CommandWitness",
    "Witnesses",
    "TreeHeadCache",
    "check_head",
    "parse_checkpoint",
    "__version__",
]
