"""Audit format v2 (RFC 8785) next to v1: entries with floats are recorded and verify, also
for an outside implementation (rfc8785 + blake3 + plain PyNaCl); a v1 log written by the old
code keeps verifying in ``verify_storage`` (memory and SurrealDB embedded), the offline
verifier and a reopened AuditLog that goes on appending v2 entries to it."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import blake3
import nacl.signing
import pytest
import rfc8785

from astrid_audit import (
    AuditEntry,
    AuditLog,
    Checkpoint,
    Outcome,
    OutcomeKind,
    export_jsonl,
    verify_entries,
    verify_export,
    verify_storage,
)
from astrid_audit._entry import seal_body
from astrid_audit._log import NS_ENTRY
from astrid_audit._record import MAX_RECORDED_ACTION_BYTES, PREFIX_CHARS
from astrid_core import McpToolCall, SessionId, ShellCommand, VerificationError
from astrid_core.storage import Storage
from astrid_crypto import KeyPair, PublicKey, content_hash

pytestmark = pytest.mark.anyio

HERE = Path(__file__).parent
FIXTURES = HERE / "fixtures"
V1_KEY = PublicKey.from_b64((FIXTURES / "audit_v1.pub").read_text().strip())
SAFE = 2**53 - 1


def as_doubles(value: Any) -> Any:
    """Numbers as a JavaScript parser holds them (rfc8785 refuses Python ints beyond 2^53-1)."""
    if isinstance(value, dict):
        return {k: as_doubles(v) for k, v in value.items()}  # pyright: ignore[reportUnknownVariableType]
    if isinstance(value, list):
        return [as_doubles(v) for v in value]  # pyright: ignore[reportUnknownVariableType]
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > SAFE:
        return float(value)
    return value


def outside_check(record: dict[str, Any], public_key_b64: str) -> None:
    """Verify one stored v2 entry without astrid: JCS of everything but hash and signature,
    BLAKE3 of that is the hash, Ed25519 over the hash bytes."""
    assert record["v"] == 2
    body = {k: v for k, v in record.items() if k not in {"hash", "signature"}}
    digest = blake3.blake3(rfc8785.dumps(as_doubles(body))).hexdigest()
    assert digest == record["hash"]
    key = nacl.signing.VerifyKey(base64.b64decode(public_key_b64))
    key.verify(bytes.fromhex(digest), base64.b64decode(record["signature"]))


async def _load_v1(storage: Storage) -> None:
    data = json.loads((FIXTURES / "audit_v1_storage.json").read_text())
    for namespace, rows in data["rows"].items():
        for key, value in rows:
            await storage.put(namespace, key, value)


# ---------------------------------------------------------------------- vectors


def test_entry_v2_vector_is_reproduced_and_verifies_outside() -> None:
    vector = json.loads((HERE / "vectors" / "entry_v2.json").read_text())
    key = KeyPair(bytes(range(32)))
    digest, signature, text = seal_body(vector["body"], key)
    assert (digest, signature, text) == (vector["hash"], vector["signature"], vector["stored_text"])
    assert rfc8785.dumps(as_doubles(vector["body"])).decode() == vector["hashed_text"]
    assert content_hash(vector["hashed_text"].encode()).hex == vector["hash"]
    outside_check(json.loads(vector["stored_text"]), vector["public_key"])
    AuditEntry.model_validate_json(vector["stored_text"]).check({key.key_id: key.public_key})

    checkpoint = vector["checkpoint"]
    signed = rfc8785.dumps({k: v for k, v in checkpoint.items() if k != "signature"})
    nacl.signing.VerifyKey(base64.b64decode(vector["public_key"])).verify(
        signed, base64.b64decode(checkpoint["signature"])
    )
    Checkpoint.model_validate(checkpoint).check({key.key_id: key.public_key})


# ---------------------------------------------------------------------- v1 still verifies


async def test_v1_log_written_by_the_old_code_verifies(storage: Storage) -> None:
    await _load_v1(storage)
    report = await verify_storage(storage, [V1_KEY])
    assert report.entries == 7
    assert report.checkpoints == 2
    # Reopened, the log goes on in format v2 in the same chains and tree.
    key = KeyPair(bytes(range(32)))
    log = await AuditLog.open(storage, key)
    entry = await log.append(
        Outcome(kind=OutcomeKind.ALLOWED),
        action=McpToolCall(server="bank", tool="pay", args={"amount": 98.7}),
    )
    assert entry.v == 2
    await log.checkpoint()
    entries = await log.entries()
    assert [e.v for e in entries] == [1] * 7 + [2]
    mixed = await verify_storage(storage, [V1_KEY])
    assert mixed.entries == 8


def test_v1_export_verifies_offline() -> None:
    export = FIXTURES / "audit_v1.jsonl"
    assert verify_export(export, [V1_KEY]).entries == 7
    done = subprocess.run(
        [sys.executable, "-m", "astrid_audit", "verify", str(export), "--key", V1_KEY.b64],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "OK: 7 entries" in done.stdout


async def test_relabelling_an_entry_to_the_other_format_is_caught(storage: Storage) -> None:
    await _load_v1(storage)
    rows = await storage.scan(NS_ENTRY)
    name, raw = rows[1]
    assert isinstance(raw, dict)
    for version in (2, 3):
        await storage.put(NS_ENTRY, name, {**raw, "v": version})
        with pytest.raises(VerificationError, match=r"edited|format version"):
            await verify_storage(storage, [V1_KEY])


# ---------------------------------------------------------------------- v2 with floats


async def test_floats_are_recorded_and_verify_outside(storage: Storage, tmp_path: Path) -> None:
    key = KeyPair.generate()
    log = await AuditLog.open(storage, key)
    session = SessionId.new()
    call = McpToolCall(
        server="bank",
        tool="pay",
        args={"amount": 98.7, "ratio": 1e-7, "big": 1e21, "n": 2**53, "neg": -0.0, "x": [0.1]},
    )
    async with log.record(call, session_id=session) as rec:
        rec.success("paid")
    await log.checkpoint()
    report = await verify_storage(storage, [key.public_key])
    assert report.entries == 2
    for _, raw in await storage.scan(NS_ENTRY):
        assert isinstance(raw, dict)
        outside_check(raw, key.public_key.b64)  # pyright: ignore[reportUnknownArgumentType]
        assert raw["action"]["args"]["amount"] == 98.7  # type: ignore[index]
    export = export_jsonl(
        tmp_path / "audit.jsonl", await log.entries(), await log.checkpoints(), [key.public_key]
    )
    assert verify_export(export, [key.public_key]).entries == 2


async def test_tampering_with_a_float_is_caught(storage: Storage) -> None:
    key = KeyPair.generate()
    log = await AuditLog.open(storage, key)
    await log.append(
        Outcome(kind=OutcomeKind.ALLOWED),
        action=McpToolCall(server="bank", tool="pay", args={"amount": 98.7}),
    )
    name, raw = (await storage.scan(NS_ENTRY))[0]
    assert isinstance(raw, dict)
    edited = json.loads(json.dumps(raw))
    edited["action"]["args"]["amount"] = 98.70000000000002
    await storage.put(NS_ENTRY, name, edited)
    with pytest.raises(VerificationError, match="edited"):
        await verify_storage(storage, [key.public_key])


# ---------------------------------------------------------------------- elided actions


async def test_oversize_and_unsignable_actions_are_recorded_by_digest(
    storage: Storage,
) -> None:
    key = KeyPair.generate()
    log = await AuditLog.open(storage, key)
    line = "echo " + "A" * 1_100_000
    big = await log.append(
        Outcome(kind=OutcomeKind.POLICY_BLOCKED, reason="too large"),
        action=ShellCommand(command=line, cwd="/tmp"),
    )
    unsignable = await log.append(
        Outcome(kind=OutcomeKind.DENIED),
        action=McpToolCall(server="s", tool="t", args={"id": 2**64 + 1, "nan": float("nan")}),
    )
    for entry in (big, unsignable):
        assert entry.action is not None
        assert set(entry.action) == {"kind", "elided"}
    elided: Any = big.action["elided"]  # type: ignore[index]
    full = json.dumps(
        {"command": line, "cwd": "/tmp", "kind": "shell_command"},
        separators=(",", ":"),
        ensure_ascii=False,
    )
    assert elided["encoding"] == "rfc8785"
    assert elided["bytes"] == len(full.encode()) > MAX_RECORDED_ACTION_BYTES
    assert elided["blake3"] == content_hash(full.encode()).hex
    assert elided["prefix"] == full[:PREFIX_CHARS]
    other: Any = unsignable.action["elided"]  # type: ignore[index]
    assert other["encoding"] == "json-ascii"
    assert "beyond" in other["reason"] or "NaN" in other["reason"]
    assert "18446744073709551617" in other["prefix"]
    assert (await verify_storage(storage, [key.public_key])).entries == 2
    stored = sum(len(json.dumps(raw)) for _, raw in await storage.scan(NS_ENTRY))
    assert stored < 20_000  # the 1.1 MB line is not in the log


def test_verify_entries_refuses_an_unknown_version() -> None:
    key = KeyPair.generate()
    vector = json.loads((HERE / "vectors" / "entry_v2.json").read_text())
    body = {**vector["body"], "v": 3, "key_id": key.key_id}
    entry = AuditEntry.model_validate(body)
    with pytest.raises(VerificationError, match="format version 3"):
        verify_entries([entry], [], [key.public_key])
