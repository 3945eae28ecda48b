"""Small secrets sealed for storage: XChaCha20-Poly1305 under a private key file.

A ``SealingKey`` owns one 32-byte key file (raw bytes, mode 0600 inside a 0700 directory,
created on first seal). ``seal`` returns standard base64 of ``nonce || ciphertext || tag``;
``open`` takes it back. Every call names *associated data*: bytes that are authenticated
but not stored, which the caller derives from where the value lives (its record, owner,
name). A ciphertext copied into another record then fails to open instead of handing one
owner's secret to another, and any edited byte fails the same way.

The key sits apart from the database: a copy of the database, a backup of it or an export
holds nothing readable. Anyone who can read the key file (the user, root) can read the
secrets too; this guards data at rest, not a compromised account.
"""

from __future__ import annotations

import os
from pathlib import Path

import nacl.exceptions
import nacl.secret
import nacl.utils

from astrid_core import BadInputError, ConfigError, VerificationError

from ._keys import b64decode, b64encode
from ._private_files import read_private_file, write_private_file

__all__ = ["SealingKey", "SealingKeyMissing", "SEALING_KEY_LENGTH"]

SEALING_KEY_LENGTH = nacl.secret.Aead.KEY_SIZE
_SHORTEST_SEALED = nacl.secret.Aead.NONCE_SIZE + nacl.secret.Aead.MACBYTES
_DEFAULT_OPEN_HINT = (
    "it was edited in storage, copied from another record, or sealed under another key;"
    " enter the secret again"
)


class SealingKeyMissing(ConfigError):
    """Sealed data exists but the key file that sealed it does not: it can never be opened."""

    code = "crypto.sealing_key_missing"


class SealingKey:
    """A key file that seals and opens small secrets, bound to associated data.

    ``what`` names the key in errors ("capsule secrets key"); ``lost_hint`` says what to do
    when the key is gone or damaged (the secrets it sealed are lost with it), ``exposed_hint``
    what to do when others could read it.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        what: str = "sealing key",
        lost_hint: str = "enter the secrets it sealed again",
        exposed_hint: str = "if others could read it, change the secrets it guards",
    ) -> None:
        self.path = Path(path)
        self.what = what
        self.lost_hint = lost_hint
        self.exposed_hint = exposed_hint
        self._aead: nacl.secret.Aead | None = None

    def __repr__(self) -> str:  # never the key
        return f"SealingKey({str(self.path)!r})"

    # ------------------------------------------------------------------ sealing

    def seal(self, plaintext: bytes | str, *, aad: bytes) -> str:
        """Base64 of the sealed ``plaintext`` (text is UTF-8). Creates the key file if needed."""
        data = plaintext.encode("utf-8") if isinstance(plaintext, str) else plaintext
        return b64encode(bytes(self._key(create=True).encrypt(data, aad)))

    def open(
        self, sealed: str, *, aad: bytes, what: str = "sealed value", hint: str | None = None
    ) -> bytes:
        """The plaintext of ``sealed``; VerificationError (``what`` names it, ``hint`` says what
        to do) if it was altered, moved to other associated data, or sealed under another key;
        SealingKeyMissing if there is no key file. Never creates the key file."""
        hint = hint if hint is not None else _DEFAULT_OPEN_HINT
        try:
            raw = b64decode(sealed, what=what)
        except BadInputError as exc:
            raise VerificationError(f"{what} is not sealed data (not base64)", hint=hint) from exc
        if len(raw) < _SHORTEST_SEALED:
            raise VerificationError(
                f"{what} is {len(raw)} bytes, shorter than any sealed value ({_SHORTEST_SEALED})",
                hint=hint,
            )
        aead = self._key(create=False, sealed_what=what)
        try:
            return aead.decrypt(raw, aad)
        except nacl.exceptions.CryptoError as exc:
            raise VerificationError(
                f"{what} does not open with the {self.what} {self.path}", hint=hint
            ) from exc

    def open_text(
        self, sealed: str, *, aad: bytes, what: str = "sealed value", hint: str | None = None
    ) -> str:
        plain = self.open(sealed, aad=aad, what=what, hint=hint)
        try:
            return plain.decode("utf-8")
        except UnicodeDecodeError as exc:  # authentic, so sealed as bytes: a caller's mix-up
            raise BadInputError(f"{what} was sealed as bytes, not text") from exc

    # ------------------------------------------------------------------ the key file

    def _key(self, *, create: bool, sealed_what: str = "") -> nacl.secret.Aead:
        if self._aead is None:
            if not os.path.lexists(self.path):
                if not create:
                    raise SealingKeyMissing(
                        f"{sealed_what} cannot be opened: the {self.what} {self.path} that"
                        " sealed it does not exist",
                        hint=f"restore the key file from backup, or {self.lost_hint}",
                    )
                # Of two processes creating it at once, the second reads the first one's key.
                write_private_file(self.path, nacl.utils.random(SEALING_KEY_LENGTH), replace=False)
            self._aead = nacl.secret.Aead(self._read())
        return self._aead

    def _read(self) -> bytes:
        return read_private_file(
            self.path,
            length=SEALING_KEY_LENGTH,
            what=self.what,
            missing_hint=f"restore it from backup, or {self.lost_hint}",
            exposed_hint=self.exposed_hint,
            wrong_length_hint=f"restore it from backup, or delete it and {self.lost_hint}",
            follow_symlinks=False,  # a key swapped for a link could point anywhere
        )
