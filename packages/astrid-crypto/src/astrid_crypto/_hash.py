"""BLAKE3 content hashes, lowercase hex on the wire."""

from __future__ import annotations

import hmac
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Self

import blake3

from astrid_core import BadInputError, VerificationError

__all__ = ["ContentHash", "content_hash", "hash_file", "HASH_HEX_LENGTH"]

HASH_HEX_LENGTH = 64
_HEX = re.compile(r"^[0-9a-f]{64}$")
_CHUNK = 1 << 20


@dataclass(frozen=True, slots=True)
class ContentHash:
    """A 32-byte BLAKE3 digest. ``str()`` gives lowercase hex."""

    digest: bytes

    def __post_init__(self) -> None:
        if len(self.digest) != 32:
            raise BadInputError(f"a BLAKE3 digest is 32 bytes, got {len(self.digest)}")

    @classmethod
    def from_hex(cls, text: str) -> Self:
        if not _HEX.match(text):
            raise BadInputError(
                f"not a BLAKE3 hash: {text[:80]!r}",
                hint="expected 64 lowercase hex characters",
            )
        return cls(bytes.fromhex(text))

    @property
    def hex(self) -> str:
        return self.digest.hex()

    def __str__(self) -> str:
        return self.hex

    def verify_equals(self, other: ContentHash | str, *, what: str = "content") -> None:
        """Raise VerificationError unless the two hashes are equal (constant time)."""
        expected = other if isinstance(other, ContentHash) else ContentHash.from_hex(other)
        if not hmac.compare_digest(self.digest, expected.digest):
            raise VerificationError(
                f"{what} hash mismatch: expected {expected.hex}, got {self.hex}",
                hint="the file changed since its hash was recorded; do not load it",
            )


def content_hash(data: bytes) -> ContentHash:
    return ContentHash(blake3.blake3(data).digest())


def hash_file(path: str | os.PathLike[str]) -> ContentHash:
    """Hash a file in 1 MiB chunks: memory use does not grow with file size."""
    hasher = blake3.blake3()
    with Path(path).open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            hasher.update(chunk)
    return ContentHash(hasher.digest())
