"""Ed25519 key pairs (PyNaCl) and the on-disk key file format.

Key file: exactly the raw 32-byte seed, mode 0600. We refuse to load a key file that group or
others can read, or of the wrong length, because a leaked or truncated runtime key silently
breaks every guarantee built on signatures.
"""

from __future__ import annotations

import base64
import binascii
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Self

import nacl.bindings
import nacl.exceptions
import nacl.signing

from astrid_core import BadInputError, ConfigError, VerificationError

from ._hash import content_hash
from ._private_files import read_private_file, write_private_file

__all__ = ["KeyPair", "PublicKey", "b64encode", "b64decode", "SEED_LENGTH"]

SEED_LENGTH = 32
SIGNATURE_LENGTH = 64


def b64encode(data: bytes) -> str:
    """Standard padded base64, the encoding of keys and signatures in JSON."""
    return base64.b64encode(data).decode("ascii")


def b64decode(text: str, *, what: str = "value") -> bytes:
    try:
        return base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError, ValueError) as exc:
        raise BadInputError(f"{what} is not valid base64: {text[:60]!r}") from exc


@dataclass(frozen=True, slots=True)
class PublicKey:
    """An Ed25519 verify key. Equality and hashing are by the 32 raw bytes."""

    raw: bytes
    key_id: str = field(init=False, compare=False, repr=False)
    """Short stable id: first 16 hex chars of BLAKE3(raw key). Computed once: every audit
    entry and token names the key that signed it."""

    def __post_init__(self) -> None:
        if len(self.raw) != 32:
            raise BadInputError(f"an Ed25519 public key is 32 bytes, got {len(self.raw)}")
        object.__setattr__(self, "key_id", content_hash(self.raw).hex[:16])

    @classmethod
    def from_b64(cls, text: str) -> Self:
        return cls(b64decode(text, what="public key"))

    @property
    def b64(self) -> str:
        return b64encode(self.raw)

    def verify(self, message: bytes, signature: bytes | str) -> None:
        """Raise VerificationError unless ``signature`` is this key's signature on ``message``."""
        sig = b64decode(signature, what="signature") if isinstance(signature, str) else signature
        if len(sig) != SIGNATURE_LENGTH:
            raise VerificationError(f"signature has {len(sig)} bytes, expected {SIGNATURE_LENGTH}")
        try:
            nacl.signing.VerifyKey(self.raw).verify(message, sig)
        except nacl.exceptions.BadSignatureError as exc:
            raise VerificationError(
                f"signature does not verify under key {self.key_id}",
                hint="the data was modified, or signed by a different key",
            ) from exc

    def is_valid(self, message: bytes, signature: bytes | str) -> bool:
        try:
            self.verify(message, signature)
        except (VerificationError, BadInputError):
            return False
        return True

    def __repr__(self) -> str:
        return f"PublicKey({self.key_id})"


class KeyPair:
    """An Ed25519 signing key. The seed never leaves this object except through ``save``."""

    __slots__ = ("_secret", "_signing", "public_key")

    def __init__(self, seed: bytes) -> None:
        if len(seed) != SEED_LENGTH:
            raise BadInputError(f"an Ed25519 seed is {SEED_LENGTH} bytes, got {len(seed)}")
        self._signing = nacl.signing.SigningKey(seed)
        # libsodium's 64-byte secret key (seed || public key), for signing through the
        # bindings directly: SigningKey.sign wraps every signature in a SignedMessage.
        self._secret = nacl.bindings.crypto_sign_seed_keypair(seed)[1]
        self.public_key = PublicKey(bytes(self._signing.verify_key))

    @classmethod
    def generate(cls) -> KeyPair:
        return cls(os.urandom(SEED_LENGTH))

    def sign(self, message: bytes) -> bytes:
        return nacl.bindings.crypto_sign(message, self._secret)[: nacl.bindings.crypto_sign_BYTES]

    def sign_b64(self, message: bytes) -> str:
        return b64encode(self.sign(message))

    def verify(self, message: bytes, signature: bytes | str) -> None:
        self.public_key.verify(message, signature)

    @property
    def key_id(self) -> str:
        return self.public_key.key_id

    def __repr__(self) -> str:  # never print the seed
        return f"KeyPair({self.key_id})"

    # ------------------------------------------------------------------ files

    def save(self, path: str | os.PathLike[str], *, overwrite: bool = False) -> Path:
        """Write the seed atomically with mode 0600 (never briefly world-readable)."""
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        if target.exists() and not overwrite:
            raise ConfigError(
                f"key file {target} already exists",
                hint="keep it, or replace it with `astrid keys generate --force` "
                "(what the old key signed stops verifying)",
            )
        if not write_private_file(target, bytes(self._signing), replace=overwrite):
            raise ConfigError(
                f"key file {target} already exists",
                hint="keep it, or replace it with `astrid keys generate --force` "
                "(what the old key signed stops verifying)",
            )
        return target

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> KeyPair:
        """Load a seed file, refusing unsafe permissions or a wrong length."""
        seed = read_private_file(
            Path(path),
            length=SEED_LENGTH,
            what="key file",
            missing_hint="create one with `astrid keys generate` (or KeyPair.load_or_create)",
            exposed_hint="if others could read it, generate a new key",
            wrong_length_hint="restore it from backup or generate a new key with "
            "`astrid keys generate`",
        )
        return cls(seed)

    @classmethod
    def load_or_create(cls, path: str | os.PathLike[str]) -> KeyPair:
        target = Path(path)
        if target.exists():
            return cls.load(target)
        key = cls.generate()
        try:
            key.save(target)
        except ConfigError:  # another process created it first: use theirs
            return cls.load(target)
        return key
