"""Exports that cannot be shortened silently, and a verifier that never crashes.

An export carries its signed checkpoints and an inclusion proof per entry; ``python -m
astrid_audit verify`` requires them. Every stripped, cut, empty or malformed export gives exactly
one "FAILED: …" line and exit 1 — Hypothesis throws mutated exports at it to make sure.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import anyio
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from astrid_audit import AuditLog, Checkpoint, Outcome, OutcomeKind, export_jsonl, read_export
from astrid_audit.__main__ import main
from astrid_core import SessionId, VerificationError
from astrid_core.storage import MemoryStorage
from astrid_crypto import KeyPair

KEY = KeyPair.generate()


async def _export(path: Path, n: int = 9, every: int = 4) -> Path:
    log = await AuditLog.open(MemoryStorage(), KEY, checkpoint_every=every)
    sessions = [SessionId.new(), SessionId.new()]
    for i in range(n):
        await log.append(
            Outcome(kind=OutcomeKind.DENIED, reason=f"step {i}"), session_id=sessions[i % 2]
        )
    head = await log.checkpoint()
    return export_jsonl(
        path, await log.entries(), await log.checkpoints(), [KEY.public_key], witnessed=[head]
    )


@pytest.fixture(scope="module")
def good(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    path = tmp_path_factory.mktemp("export") / "audit.jsonl"
    return anyio.run(_export, path).read_bytes()


@pytest.fixture(scope="module")
def pub(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("key") / "runtime.pub"
    path.write_text(KEY.public_key.b64 + "\n")
    return path


def _verify(
    capsys: pytest.CaptureFixture[str], path: Path, pub: Path, *extra: str
) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main(["verify", str(path), "--key", str(pub), *extra])
    out, err = capsys.readouterr()
    return code, out, err


def _failed(result: tuple[int, str, str]) -> str:
    code, _, err = result
    assert code == 1
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("FAILED: ")
    return lines[0]


def _lines(data: bytes) -> list[str]:
    return data.decode().splitlines()


def _write(tmp_path: Path, lines: list[str]) -> Path:
    path = tmp_path / "doctored.jsonl"
    path.write_text("".join(f"{line}\n" for line in lines))
    return path


def _kind(line: str) -> str:
    return str(json.loads(line)["type"])


def test_a_whole_export_verifies(
    tmp_path: Path, good: bytes, pub: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = _verify(capsys, _write(tmp_path, _lines(good)), pub)
    assert code == 0
    assert out.startswith("OK: 9 entries")
    assert "consistent with 1 witnessed tree heads" in out


def test_an_export_without_its_checkpoints_fails(
    tmp_path: Path, good: bytes, pub: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lines = [ln for ln in _lines(good) if _kind(ln) != "checkpoint"]
    line = _failed(_verify(capsys, _write(tmp_path, lines), pub))
    assert "carries no signed checkpoint" in line


def test_an_export_without_its_newest_checkpoint_fails(
    tmp_path: Path, good: bytes, pub: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lines = [ln for ln in _lines(good) if '"tree_size": 9' not in ln or _kind(ln) == "entry"]
    line = _failed(_verify(capsys, _write(tmp_path, lines), pub))
    assert "entries 8..8 are not covered by any signed checkpoint" in line


def test_an_export_without_its_inclusion_proofs_fails(
    tmp_path: Path, good: bytes, pub: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lines = []
    for ln in _lines(good):
        record = json.loads(ln)
        record.pop("inclusion", None)
        lines.append(json.dumps(record))
    line = _failed(_verify(capsys, _write(tmp_path, lines), pub))
    assert "entry 0 has no inclusion proof" in line


def test_an_export_with_its_tail_cut_fails(
    tmp_path: Path, good: bytes, pub: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lines = _lines(good)
    entries = [i for i, ln in enumerate(lines) if _kind(ln) == "entry"]
    del lines[entries[-2] : entries[-1] + 1]  # the last two entries
    line = _failed(_verify(capsys, _write(tmp_path, lines), pub))
    assert "entries 7..8 are missing" in line


def test_an_export_cut_back_to_an_older_checkpoint_fails_against_a_kept_head(
    tmp_path: Path, good: bytes, pub: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The most an attacker can do with an export alone: cut it at a checkpoint (8), drop the
    later checkpoints and recompute the proofs. Only a head kept elsewhere catches that."""
    entries, _, _ = read_export(_write(tmp_path, _lines(good)))
    log_checkpoints = [
        json.loads(ln)["checkpoint"] for ln in _lines(good) if _kind(ln) == "checkpoint"
    ]
    older = next(cp for cp in log_checkpoints if cp["tree_size"] == 8)
    newest = next(cp for cp in log_checkpoints if cp["tree_size"] == 9)

    cut = export_jsonl(
        tmp_path / "cut.jsonl", entries[:8], [Checkpoint.model_validate(older)], [KEY.public_key]
    )
    assert _verify(capsys, cut, pub)[0] == 0  # alone, it is a valid shorter log
    line = _failed(_verify(capsys, cut, pub, "--min-size", "9"))
    assert "entries 8..8 are missing" in line
    kept = tmp_path / "kept.json"
    kept.write_text(json.dumps({"checkpoint": newest}))
    line = _failed(_verify(capsys, cut, pub, "--checkpoint", str(kept)))
    assert "entries 8..8 are missing" in line
    assert "the checkpoint you kept saw a tree of 9 entries" in line


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        (b"", "is empty"),
        (b"\n\n", "is empty"),
        (
            b'{"type": "header", "format": "astrid-audit-export", "v": 1, "public_keys": []}\n',
            "carries no signed checkpoint",
        ),
        (b"not json\n", "not JSON"),
        (b'{"type": "entry"\n', "not JSON"),
        (b"[1, 2]\n", "must be a JSON object"),
        (b"\xff\xfe\n", "not UTF-8"),
        (b"[" * 100_000 + b"\n", "not JSON"),
    ],
)
def test_empty_and_malformed_files_fail_with_one_line(
    tmp_path: Path, pub: Path, capsys: pytest.CaptureFixture[str], content: bytes, fragment: str
) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_bytes(content)
    assert fragment in _failed(_verify(capsys, path, pub))


@pytest.mark.parametrize(
    "proof",
    [["zz" * 32], ["00" * 31], [7], "00" * 32, None],
)
def test_malformed_proof_hex_fails_with_one_line(
    tmp_path: Path, good: bytes, pub: Path, capsys: pytest.CaptureFixture[str], proof: object
) -> None:
    lines = _lines(good)
    record = json.loads(lines[1])
    record["inclusion"]["proof"] = proof
    lines[1] = json.dumps(record)
    line = _failed(_verify(capsys, _write(tmp_path, lines), pub))
    assert ":2:" in line


def test_a_malformed_kept_checkpoint_fails_with_one_line(
    tmp_path: Path, good: bytes, pub: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    kept = tmp_path / "kept.json"
    kept.write_text('{"checkpoint": {"tree_size": "many"}}')
    path = _write(tmp_path, _lines(good))
    assert "not a signed checkpoint" in _failed(
        _verify(capsys, path, pub, "--checkpoint", str(kept))
    )


_MUTATIONS = st.one_of(
    st.tuples(st.just("flip"), st.integers(0, 10**6), st.integers(1, 255)),
    st.tuples(st.just("cut"), st.integers(0, 10**6), st.just(0)),
    st.tuples(st.just("drop_line"), st.integers(0, 100), st.just(0)),
    st.tuples(st.just("dup_line"), st.integers(0, 100), st.just(0)),
    st.tuples(st.just("swap_lines"), st.integers(0, 100), st.integers(0, 100)),
)


def _mutate(data: bytes, mutation: tuple[str, int, int]) -> bytes:
    kind, at, arg = mutation
    if not data:
        return data
    if kind == "flip":
        i = at % len(data)
        return data[:i] + bytes([data[i] ^ arg]) + data[i + 1 :]
    if kind == "cut":
        return data[: at % len(data)]
    lines = data.split(b"\n")
    i, j = at % len(lines), arg % len(lines)
    if kind == "drop_line":
        del lines[i]
    elif kind == "dup_line":
        lines.insert(i, lines[i])
    else:
        lines[i], lines[j] = lines[j], lines[i]
    return b"\n".join(lines)


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(mutations=st.lists(_MUTATIONS, min_size=1, max_size=3))
def test_mutated_exports_fail_with_one_line_or_still_hold_every_entry(
    tmp_path: Path,
    good: bytes,
    pub: Path,
    capsys: pytest.CaptureFixture[str],
    mutations: list[tuple[str, int, int]],
) -> None:
    data = good
    for mutation in mutations:
        data = _mutate(data, mutation)
    path = tmp_path / "mutated.jsonl"
    path.write_bytes(data)
    code, out, err = _verify(capsys, path, pub)
    if code == 0:  # benign (a dropped older checkpoint, whitespace): every entry, unchanged
        entries, _, _ = read_export(path)
        original, _, _ = read_export(_write(tmp_path, _lines(good)))
        assert [e.hash for e in entries] == [e.hash for e in original]
        assert out.startswith("OK: 9 entries")
    else:
        _failed((code, out, err))


def test_the_command_prints_one_line_and_exits_1(tmp_path: Path, good: bytes, pub: Path) -> None:
    lines = _lines(good)
    record = json.loads(lines[2])
    record["inclusion"]["proof"][0] = "not hex at all"
    path = _write(tmp_path, lines)
    path.write_text(path.read_text().replace(lines[2], json.dumps(record)))
    bad = subprocess.run(
        [sys.executable, "-m", "astrid_audit", "verify", str(path), "--key", str(pub)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert bad.returncode == 1
    assert bad.stderr.count("\n") == 1
    assert bad.stderr.startswith("FAILED: ")
    assert "Traceback" not in bad.stderr


def test_export_refuses_entries_no_checkpoint_covers(tmp_path: Path) -> None:
    async def go() -> None:
        log = await AuditLog.open(MemoryStorage(), KEY, checkpoint_every=100)
        await log.append(Outcome(kind=OutcomeKind.DENIED, reason="x"))
        with pytest.raises(VerificationError, match="no signed checkpoint covers all 1"):
            export_jsonl(tmp_path / "x.jsonl", await log.entries(), [], [KEY.public_key])

    anyio.run(go)
