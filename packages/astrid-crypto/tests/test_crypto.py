"""astrid-crypto: keys, key files, signatures, hashes and canonical JSON — including abuse."""

from __future__ import annotations

import json
import math
import os
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from astrid_core import BadInputError, ConfigError, VerificationError
from astrid_crypto import (
    ContentHash,
    KeyPair,
    PublicKey,
    _canonical,
    canonical_json,
    canonical_loads,
    canonical_text,
    content_hash,
    hash_file,
)

VECTORS = Path(__file__).parent / "vectors"

# ---------------------------------------------------------------------- vectors


def test_key_and_signature_vectors() -> None:
    for case in json.loads((VECTORS / "keys.json").read_text()):
        key = KeyPair(bytes.fromhex(case["seed_hex"]))
        assert key.public_key.b64 == case["public_key_b64"]
        assert key.key_id == case["key_id"]
        for sig in case["signatures"]:
            message = bytes.fromhex(sig["message_hex"])
            assert key.sign_b64(message) == sig["signature_b64"]  # Ed25519 is deterministic
            PublicKey.from_b64(case["public_key_b64"]).verify(message, sig["signature_b64"])


def test_hash_vectors_including_official_blake3_empty() -> None:
    cases = json.loads((VECTORS / "hashes.json").read_text())
    assert (
        cases[0]["blake3_hex"] == "af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262"
    )
    for case in cases:
        assert content_hash(bytes.fromhex(case["input_hex"])).hex == case["blake3_hex"]


def test_canonical_vectors() -> None:
    for case in json.loads((VECTORS / "canonical.json").read_text()):
        assert canonical_json(case["value"]).decode() == case["canonical_utf8"]


def test_generator_reproduces_committed_vectors(tmp_path: Path) -> None:
    before = {p.name: p.read_text() for p in VECTORS.glob("*.json")}
    subprocess.run([sys.executable, str(VECTORS / "generate.py")], check=True, timeout=60)
    after = {p.name: p.read_text() for p in VECTORS.glob("*.json")}
    assert before == after


# ---------------------------------------------------------------------- signatures


def test_sign_and_verify_and_every_forgery_fails() -> None:
    key, other = KeyPair.generate(), KeyPair.generate()
    signature = key.sign(b"message")
    key.verify(b"message", signature)
    with pytest.raises(VerificationError, match="does not verify"):
        key.verify(b"messagE", signature)
    with pytest.raises(VerificationError):
        other.verify(b"message", signature)
    tampered = bytearray(signature)
    tampered[10] ^= 1
    with pytest.raises(VerificationError):
        key.verify(b"message", bytes(tampered))
    for wrong_length in (signature[:63], signature + b"\x00", b""):
        with pytest.raises(VerificationError, match="bytes, expected 64"):
            key.verify(b"message", wrong_length)


def test_bad_base64_signature_is_bad_input() -> None:
    key = KeyPair.generate()
    with pytest.raises(BadInputError, match="not valid base64"):
        key.verify(b"m", "***not base64***")
    assert key.public_key.is_valid(b"m", "***") is False


def test_public_key_validation() -> None:
    with pytest.raises(BadInputError, match="32 bytes"):
        PublicKey(b"short")
    with pytest.raises(BadInputError, match="not valid base64"):
        PublicKey.from_b64("!!")
    key = KeyPair.generate()
    assert PublicKey.from_b64(key.public_key.b64) == key.public_key
    assert "seed" not in repr(key)


# ---------------------------------------------------------------------- key files


def test_key_file_is_created_0600_atomically(tmp_path: Path) -> None:
    path = tmp_path / "keys" / "runtime.key"
    key = KeyPair.generate()
    key.save(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len(path.read_bytes()) == 32
    assert KeyPair.load(path).public_key == key.public_key
    assert [p.name for p in path.parent.iterdir()] == ["runtime.key"]  # no temp file left


def test_save_refuses_to_overwrite_without_asking(tmp_path: Path) -> None:
    path = tmp_path / "runtime.key"
    KeyPair.generate().save(path)
    with pytest.raises(ConfigError, match="already exists"):
        KeyPair.generate().save(path)
    replacement = KeyPair.generate()
    replacement.save(path, overwrite=True)
    assert KeyPair.load(path).public_key == replacement.public_key


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o644, 0o660, 0o666])
def test_refuse_key_readable_by_others(tmp_path: Path, mode: int) -> None:
    path = tmp_path / "runtime.key"
    KeyPair.generate().save(path)
    path.chmod(mode)
    with pytest.raises(ConfigError, match="readable by group or others") as info:
        KeyPair.load(path)
    assert "chmod 600" in info.value.hint


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to give a file to another user")
def test_refuse_key_owned_by_another_user(tmp_path: Path) -> None:
    # Mode 0600 but owned by nobody: that user can replace the key at will.
    path = tmp_path / "runtime.key"
    KeyPair.generate().save(path)
    os.chown(path, 65534, 65534)
    with pytest.raises(ConfigError, match="belongs to uid 65534") as info:
        KeyPair.load(path)
    assert f"chown {os.geteuid()} {path}" in info.value.hint


@pytest.mark.parametrize("size", [0, 31, 33, 64])
def test_refuse_key_of_wrong_length(tmp_path: Path, size: int) -> None:
    path = tmp_path / "runtime.key"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    os.write(fd, b"k" * size)
    os.close(fd)
    with pytest.raises(ConfigError, match=f"has {size} bytes"):
        KeyPair.load(path)


def test_missing_key_file_and_directory(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist") as info:
        KeyPair.load(tmp_path / "nope.key")
    assert "astrid keys generate" in info.value.hint
    (tmp_path / "dir.key").mkdir(mode=0o700)
    with pytest.raises(ConfigError, match="not a regular file"):
        KeyPair.load(tmp_path / "dir.key")


def test_symlinked_key_is_checked_at_its_target(tmp_path: Path) -> None:
    real = tmp_path / "real.key"
    KeyPair.generate().save(real)
    link = tmp_path / "link.key"
    link.symlink_to(real)
    assert KeyPair.load(link).public_key == KeyPair.load(real).public_key
    real.chmod(0o644)
    with pytest.raises(ConfigError, match="readable by group or others"):
        KeyPair.load(link)


def test_load_or_create_race_ends_with_one_key(tmp_path: Path) -> None:
    path = tmp_path / "keys" / "runtime.key"
    code = (
        "from astrid_crypto import KeyPair; "
        f"print(KeyPair.load_or_create({str(path)!r}).public_key.b64)"
    )
    procs = [
        subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
        for _ in range(6)
    ]
    outputs = {p.communicate(timeout=60)[0].strip() for p in procs}
    assert len(outputs) == 1
    assert KeyPair.load(path).public_key.b64 in outputs


# ---------------------------------------------------------------------- hashes


@pytest.mark.parametrize("size", [0, 1, (1 << 20) - 1, 1 << 20, (1 << 20) + 1, 3 * (1 << 20) + 7])
def test_streaming_file_hash_matches(tmp_path: Path, size: int) -> None:
    data = os.urandom(size)
    path = tmp_path / "f"
    path.write_bytes(data)
    assert hash_file(path) == content_hash(data)


@pytest.mark.parametrize("text", ["", "abc", "A" * 64, "g" * 64, "0" * 63, "0" * 65])
def test_content_hash_from_hex_rejects_non_canonical(text: str) -> None:
    with pytest.raises(BadInputError, match="not a BLAKE3 hash"):
        ContentHash.from_hex(text)


def test_verify_equals() -> None:
    a, b = content_hash(b"a"), content_hash(b"b")
    a.verify_equals(a.hex)
    with pytest.raises(VerificationError, match="hash mismatch"):
        a.verify_equals(b, what="module")


# ---------------------------------------------------------------------- canonical JSON


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        ({"a": 1.5}, "float 1.5 at $.a"),
        ({"a": [math.nan]}, "float nan at $.a[0]"),
        ({"a": {"b": math.inf}}, "float inf at $.a.b"),
        ({1: "x"}, "string keys"),
        ({"a": b"bytes"}, "cannot encode bytes at $.a"),
        ({"a": {1, 2}}, "cannot encode set"),
        ({"a": object()}, "cannot encode object"),
        ({"a": "\ud800"}, "valid Unicode"),
    ],
)
def test_canonical_json_refuses(value: Any, fragment: str) -> None:
    with pytest.raises(BadInputError) as info:
        canonical_json(value)
    assert fragment in info.value.message


def test_canonical_loads_refuses_constants_and_bad_utf8() -> None:
    with pytest.raises(BadInputError, match="NaN"):
        canonical_loads(b'{"a": NaN}')
    with pytest.raises(BadInputError, match="UTF-8"):
        canonical_loads(b"\xff")


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)


@given(JSON)
def test_round_trip(value: Any) -> None:
    assert canonical_loads(canonical_json(value)) == value


@given(st.dictionaries(st.text(max_size=6), st.integers(), max_size=8))
def test_stable_under_key_order(value: dict[str, int]) -> None:
    reordered = dict(reversed(list(value.items())))
    assert canonical_json(value) == canonical_json(reordered)


@given(JSON, JSON)
def test_distinct_values_distinct_encodings(a: Any, b: Any) -> None:
    if canonical_loads(canonical_json(a)) != canonical_loads(canonical_json(b)):
        assert canonical_json(a) != canonical_json(b)


_canonical_inputs = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(), st.just(b"raw")),
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.tuples(inner),
        st.dictionaries(st.one_of(st.text(), st.integers()), inner, max_size=4),
    ),
    max_leaves=12,
)


@given(_canonical_inputs)
def test_canonical_fast_path_agrees_with_the_detailed_check(value: Any) -> None:
    from astrid_crypto._canonical import _check  # pyright: ignore[reportPrivateUsage]

    def verdict(func: Any) -> str:
        try:
            func()
        except BadInputError as exc:
            return exc.message
        return "ok"

    detailed = verdict(lambda: _check(value, "$"))
    encoded = verdict(lambda: canonical_json(value))
    if detailed == "ok":  # types are fine; only a lone surrogate can still be refused
        assert encoded == "ok" or "valid Unicode" in encoded
    else:
        assert encoded == detailed


def read_secret(path: Path, *, follow_symlinks: bool = True) -> bytes:
    """``read_private_file`` for a 32-byte test secret."""
    from astrid_crypto import read_private_file

    return read_private_file(
        path,
        length=32,
        what="secret",
        missing_hint="m",
        exposed_hint="e",
        wrong_length_hint="w",
        follow_symlinks=follow_symlinks,
    )


def test_a_key_that_must_not_be_a_link_refuses_one(tmp_path: Path) -> None:
    real = tmp_path / "real.key"
    fd = os.open(real, os.O_WRONLY | os.O_CREAT, 0o600)
    os.write(fd, b"k" * 32)
    os.close(fd)
    link = tmp_path / "link.key"
    link.symlink_to(real)

    assert read_secret(real) == b"k" * 32
    assert read_secret(link) == b"k" * 32
    with pytest.raises(ConfigError, match=r"secret .* is not a regular file"):
        read_secret(link, follow_symlinks=False)


def test_a_key_path_holding_a_fifo_or_an_oversize_file_is_refused_without_hanging(
    tmp_path: Path,
) -> None:
    fifo = tmp_path / "fifo.key"
    os.mkfifo(fifo, 0o600)
    with pytest.raises(ConfigError, match="is not a regular file"):
        read_secret(fifo)  # opened non-blocking: no writer needed to get an answer
    big = tmp_path / "big.key"
    fd = os.open(big, os.O_WRONLY | os.O_CREAT, 0o600)
    os.write(fd, b"k" * 1_000_000)
    os.close(fd)
    with pytest.raises(ConfigError, match="has 1000000 bytes; it must hold exactly 32"):
        read_secret(big)


def test_write_private_file_never_replaces_unless_asked(tmp_path: Path) -> None:
    from astrid_crypto import write_private_file

    target = tmp_path / "keys" / "k.key"
    assert write_private_file(target, b"first", replace=False)
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert stat.S_IMODE(target.parent.stat().st_mode) == 0o700
    assert not write_private_file(target, b"second", replace=False)
    assert target.read_bytes() == b"first"
    assert write_private_file(target, b"third", replace=True)
    assert target.read_bytes() == b"third"
    assert [p.name for p in target.parent.iterdir()] == ["k.key"]  # no temporary left behind


@given(st.dictionaries(st.text(min_size=1, max_size=6), JSON, min_size=1, max_size=8))
def test_an_object_assembled_from_member_texts_is_the_canonical_text(value: dict[str, Any]) -> None:
    members = [f"{canonical_text(key)}:{canonical_text(value[key])}" for key in sorted(value)]
    joined = "{" + ",".join(members) + "}"
    assert joined == canonical_text(value)
    assert joined.encode() == canonical_json(value)


def test_canonical_text_refuses_what_canonical_json_refuses() -> None:
    with pytest.raises(BadInputError, match="float"):
        canonical_text({"a": 1.5})
    with pytest.raises(BadInputError, match="Unicode"):
        canonical_text({"a": "\ud800"})
    with pytest.raises(BadInputError, match="string keys"):
        canonical_text({1: "a"})


@given(JSON)
def test_the_reused_c_encoder_writes_what_json_dumps_writes(value: Any) -> None:
    expected = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    assert _canonical._encode(value) == expected


def test_the_c_encoder_is_in_use_on_cpython() -> None:
    # Otherwise the property above would only be testing JSONEncoder against itself.
    assert _canonical._encode != _canonical._ENCODER.encode
