"""SealingKey: secrets sealed at rest under a private key file — round trip and every abuse."""

from __future__ import annotations

import base64
import os
import re
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from astrid_core import BadInputError, ConfigError, VerificationError
from astrid_crypto import SEALING_KEY_LENGTH, SealingKey, SealingKeyMissing

AAD = b"astrid test\x00record-1"

# Pins the stored form: base64(24-byte nonce || XChaCha20-Poly1305 ciphertext || 16-byte tag).
VECTOR_KEY = bytes(range(32))
VECTOR_AAD = b"astrid test vector\x00record-1"
VECTOR_SEALED = "ZGVmZ2hpamtsbW5vcHFyc3R1dnd4eXp7CBySnalrytbIYm7NdwedjtaXYAm+GzdhspU="


def write_key(path: Path, data: bytes, mode: int = 0o600) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    path.chmod(mode)


def test_round_trip_of_text_and_bytes(tmp_path: Path) -> None:
    key = SealingKey(tmp_path / "keys" / "k.key")
    sealed = key.seal("tok-SECRET-ü", aad=AAD)
    assert "tok-SECRET" not in sealed
    assert key.open_text(sealed, aad=AAD) == "tok-SECRET-ü"
    blob = os.urandom(100)
    assert key.open(key.seal(blob, aad=AAD), aad=AAD) == blob
    # A fresh nonce every time: equal secrets do not look equal in storage.
    assert key.seal("same", aad=AAD) != key.seal("same", aad=AAD)
    # Another instance on the same file (the next daemon start) opens it.
    assert SealingKey(key.path).open_text(sealed, aad=AAD) == "tok-SECRET-ü"


def test_the_stored_form_matches_the_vector(tmp_path: Path) -> None:
    path = tmp_path / "k.key"
    write_key(path, VECTOR_KEY)
    key = SealingKey(path)
    assert key.open_text(VECTOR_SEALED, aad=VECTOR_AAD) == "tok-VECTOR"
    fresh = base64.b64decode(key.seal("tok-VECTOR", aad=VECTOR_AAD))
    assert len(fresh) == 24 + len("tok-VECTOR") + 16


def test_other_associated_data_does_not_open(tmp_path: Path) -> None:
    key = SealingKey(tmp_path / "k.key", what="test key")
    sealed = key.seal("tok-SECRET", aad=AAD)
    for other in (b"", b"astrid test\x00record-2", AAD + b"\x00"):
        with pytest.raises(VerificationError, match="record X does not open with the test key"):
            key.open(sealed, aad=other, what="record X")


@pytest.mark.parametrize("where", [0, 23, 24, 30, -1])
def test_a_tampered_byte_does_not_open(tmp_path: Path, where: int) -> None:
    key = SealingKey(tmp_path / "k.key")
    raw = bytearray(base64.b64decode(key.seal("tok-SECRET", aad=AAD)))
    raw[where] ^= 0x01  # nonce, first ciphertext byte, tag
    with pytest.raises(VerificationError, match="does not open") as caught:
        key.open(base64.b64encode(bytes(raw)).decode(), aad=AAD)
    assert "edited in storage" in caught.value.hint


@pytest.mark.parametrize(
    ("sealed", "problem"),
    [
        ("not base64!", "record X is not sealed data (not base64)"),
        ("", "record X is 0 bytes, shorter than any sealed value (40)"),
        ("AAAA", "record X is 3 bytes, shorter than any sealed value (40)"),
        (base64.b64encode(b"x" * 39).decode(), "record X is 39 bytes, shorter than any"),
    ],
)
def test_garbage_is_a_verification_error_not_a_crash(
    tmp_path: Path, sealed: str, problem: str
) -> None:
    key = SealingKey(tmp_path / "k.key")
    key.seal("x", aad=AAD)
    with pytest.raises(VerificationError, match=re.escape(problem)) as caught:
        key.open(sealed, aad=AAD, what="record X", hint="enter it again")
    assert caught.value.hint == "enter it again"


def test_another_key_does_not_open(tmp_path: Path) -> None:
    sealed = SealingKey(tmp_path / "a.key").seal("tok-SECRET", aad=AAD)
    other = SealingKey(tmp_path / "b.key")
    other.seal("its own secret", aad=AAD)
    with pytest.raises(VerificationError, match="does not open"):
        other.open(sealed, aad=AAD)


def test_the_key_is_created_0600_in_a_0700_directory_on_first_seal(tmp_path: Path) -> None:
    path = tmp_path / "home" / "keys" / "k.key"
    key = SealingKey(path)
    assert not path.exists()  # nothing is created before something is sealed
    key.seal("x", aad=AAD)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert len(path.read_bytes()) == SEALING_KEY_LENGTH
    assert [p.name for p in path.parent.iterdir()] == ["k.key"]  # no temp file left


def test_a_missing_key_with_sealed_data_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "k.key"
    key = SealingKey(path, what="test key", lost_hint="sign in again")
    sealed = key.seal("tok-SECRET", aad=AAD)
    path.unlink()
    with pytest.raises(SealingKeyMissing) as caught:
        SealingKey(path, what="test key", lost_hint="sign in again").open(
            sealed, aad=AAD, what="the tokens of 'lab'"
        )
    assert caught.value.message == (
        f"the tokens of 'lab' cannot be opened: the test key {path} that sealed it does not exist"
    )
    assert caught.value.hint == "restore the key file from backup, or sign in again"
    assert isinstance(caught.value, ConfigError)
    assert not path.exists()  # opening never creates a key


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604])
def test_a_key_readable_by_others_is_refused(tmp_path: Path, mode: int) -> None:
    path = tmp_path / "k.key"
    sealed = SealingKey(path).seal("x", aad=AAD)
    path.chmod(mode)
    for use in (
        lambda: SealingKey(path).open(sealed, aad=AAD),
        lambda: SealingKey(path).seal("y", aad=AAD),
    ):
        with pytest.raises(ConfigError, match="readable by group or others") as caught:
            use()
        assert f"chmod 600 {path}" in caught.value.hint


def test_a_symlinked_key_is_refused_even_to_a_private_file(tmp_path: Path) -> None:
    target = tmp_path / "elsewhere.key"
    write_key(target, os.urandom(SEALING_KEY_LENGTH))
    path = tmp_path / "keys" / "k.key"
    path.parent.mkdir()
    path.symlink_to(target)
    for use in (
        lambda: SealingKey(path).seal("x", aad=AAD),
        lambda: SealingKey(path).open("A" * 60, aad=AAD),
    ):
        with pytest.raises(ConfigError, match="is not a regular file"):
            use()
    # A dangling link is not replaced by a fresh key either.
    target.unlink()
    with pytest.raises(ConfigError, match="is not a regular file"):
        SealingKey(path).seal("x", aad=AAD)
    assert path.is_symlink()
    assert not target.exists()


@pytest.mark.parametrize("size", [0, 16, 31, 33, 64])
def test_a_key_of_the_wrong_length_is_refused(tmp_path: Path, size: int) -> None:
    path = tmp_path / "k.key"
    write_key(path, os.urandom(size))
    with pytest.raises(ConfigError, match=f"has {size} bytes; it must hold exactly 32"):
        SealingKey(path).seal("x", aad=AAD)


def test_text_sealed_as_bytes_is_named(tmp_path: Path) -> None:
    key = SealingKey(tmp_path / "k.key")
    with pytest.raises(BadInputError, match="sealed as bytes"):
        key.open_text(key.seal(b"\xff\xfe", aad=AAD), aad=AAD)


def test_repr_never_shows_the_key(tmp_path: Path) -> None:
    key = SealingKey(tmp_path / "k.key")
    key.seal("x", aad=AAD)
    raw = (tmp_path / "k.key").read_bytes()
    assert repr(key) == f"SealingKey({str(tmp_path / 'k.key')!r})"
    assert raw.hex() not in repr(key)
    assert base64.b64encode(raw).decode() not in repr(key)


def test_concurrent_first_seals_agree_on_one_key(tmp_path: Path) -> None:
    path = tmp_path / "keys" / "k.key"
    code = (
        "from astrid_crypto import SealingKey; "
        f"print(SealingKey({str(path)!r}).seal('tok', aad=b'a'))"
    )
    procs = [
        subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
        for _ in range(6)
    ]
    sealed = [p.communicate(timeout=60)[0].strip() for p in procs]
    key = SealingKey(path)
    assert [key.open_text(s, aad=b"a") for s in sealed] == ["tok"] * 6


def test_readme_sealing_example_runs() -> None:
    text = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    section = text.split("## Sealed secrets", 1)[1]
    code = re.findall(r"```python\n(.*?)```", section, re.S)[0]
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == ["sk-live-123", "refused: does not open"]
