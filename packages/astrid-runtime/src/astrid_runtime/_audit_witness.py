"""Where the audit log's signed tree heads are witnessed, and verifying the log offline.

The witness lives outside ``$ASTRID_HOME/state`` (``[audit] witness``, optionally also a
``[audit] witness_command``): whoever can edit the store must not be able to edit the record of
what the store once held. ``verify_offline`` examines a stopped daemon's store directly.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from astrid_audit import (
    CommandWitness,
    FileWitness,
    TreeHeadCache,
    VerifyReport,
    Witness,
    WitnessedHead,
    Witnesses,
    verify_storage,
)
from astrid_core import ConfigError, NotFoundError, VerificationError
from astrid_core.storage import open_storage, state_url
from astrid_crypto import KeyPair

from .config import AstridConfig, load_config

__all__ = ["audit_witness", "client_head_cache", "verify_offline", "OfflineReport"]

STATE_DIR = "state"


def _witness_path(home: Path, config: AstridConfig) -> Path:
    path = Path(os.path.abspath(home / Path(config.audit.witness).expanduser()))
    state = Path(os.path.abspath(home / STATE_DIR))
    if path == state or state in path.parents:
        raise ConfigError(
            f"[audit] witness {path} is inside the state directory {state}",
            hint="the witness must live outside $ASTRID_HOME/state (whoever can edit the store "
            'must not reach it); keep the default "witness/checkpoints" or use another device',
        )
    return path


def audit_witness(home: Path, config: AstridConfig) -> Witnesses:
    """The witnesses configured under ``[audit]``: the file, then the command if any."""
    witnesses: list[Witness] = [FileWitness(_witness_path(home, config))]
    if config.audit.witness_command:
        witnesses.append(CommandWitness(config.audit.witness_command))
    return Witnesses(witnesses)


def client_head_cache(home: Path, client: str) -> TreeHeadCache:
    """Where the client ``client`` (``cli``, ``telegram``) keeps the last tree head it verified:
    ``$ASTRID_HOME/witness/client-<client>.json``, beside (not inside) the daemon's witness."""
    return TreeHeadCache(home / "witness" / f"client-{client}.json")


@dataclass(frozen=True)
class OfflineReport:
    report: VerifyReport
    witnessed_by: list[str]


async def verify_offline(home: Path, *, client: str = "cli") -> OfflineReport:
    """Verify the store under ``home`` directly (the daemon must be stopped: this takes the
    store's lock), against the witness and the tree head ``client`` kept. Signs and writes
    nothing in the store; on success the client's kept head moves to the newest verified one."""
    loaded = load_config(home)
    config = loaded.config
    key_path = home / config.keys.runtime_key
    if not key_path.exists():
        raise NotFoundError(
            f"no runtime key at {key_path}",
            hint="verify an export instead: python -m astrid_audit verify FILE --key PUB",
        )
    key = KeyPair.load(key_path)
    witness = audit_witness(home, config)
    cache = client_head_cache(home, client)
    heads: list[WitnessedHead] = witness.heads()
    kept = cache.load()
    if kept is not None:
        heads.append(kept)
    state = home / STATE_DIR
    if not state.is_dir():
        newest = max((h.checkpoint.tree_size for h in heads), default=0)
        raise VerificationError(
            f"the state directory {state} is missing"
            + (f": entries 0..{newest - 1} are missing (witnessed)" if newest else ""),
            hint="restore $ASTRID_HOME/state from a backup",
        )
    storage = await open_storage(state_url(state, config.storage.backend))
    try:
        report = await verify_storage(storage, [key.public_key], witnessed=heads)
    finally:
        await storage.aclose()
    if report.head is not None:
        cache.save(report.head)
    return OfflineReport(report, sorted({h.source for h in heads}))
