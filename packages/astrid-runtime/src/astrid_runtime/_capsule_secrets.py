"""Secrets a capsule declares (``[env.X] secret = true``), encrypted at rest.

Values are sealed with XChaCha20-Poly1305 (libsodium, through PyNaCl) under a 32-byte key in
``<home>/keys/capsule-secrets.key`` (mode 0600, created on first use). The key lives under
``keys/``, which the security policy denies to the agent, and apart from the database: a copy
of the database, a backup of it or an audit export holds no readable secret. The associated
data binds each ciphertext to its capsule and name, so a value moved to another entry in
storage fails to open instead of leaking into the wrong capsule.

What this does not protect against: anyone who can read the whole home directory (the user
themselves, root) reads the key as well. An OS keyring would not change that for a headless
daemon running as the same user.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import nacl.exceptions
import nacl.secret
import nacl.utils

from astrid_core import JsonObject, NotFoundError, VerificationError
from astrid_core.storage import Storage
from astrid_crypto import b64decode, b64encode, read_private_file

__all__ = ["CapsuleSecrets", "SECRETS_KEY_FILE"]

SECRETS_KEY_FILE = Path("keys") / "capsule-secrets.key"
_NAMESPACE = "capsule_secrets"
_KEY_BYTES = nacl.secret.Aead.KEY_SIZE


class CapsuleSecrets:
    def __init__(self, storage: Storage, key_path: Path) -> None:
        self.storage = storage
        self.key_path = key_path
        self._box: nacl.secret.Aead | None = None

    async def names(self, capsule: str) -> list[str]:
        return sorted(await self._sealed(capsule))

    async def store(self, capsule: str, values: Mapping[str, str]) -> None:
        """Seal ``values`` and merge them with what the capsule already has."""
        if not values:
            return
        sealed = await self._sealed(capsule)
        box = self._key()
        for name, value in values.items():
            ciphertext = box.encrypt(value.encode("utf-8"), _aad(capsule, name))
            sealed[name] = b64encode(bytes(ciphertext))
        record: JsonObject = {"v": 1, "values": dict(sealed)}
        await self.storage.put(_NAMESPACE, capsule, record)

    async def reveal(self, capsule: str, name: str) -> str:
        """The plaintext, for the engine that hands it to the capsule (never to the agent)."""
        sealed = await self._sealed(capsule)
        if name not in sealed:
            raise NotFoundError(f"capsule {capsule!r} has no stored secret {name!r}")
        try:
            plain = self._key().decrypt(b64decode(sealed[name]), _aad(capsule, name))
        except nacl.exceptions.CryptoError as exc:
            raise VerificationError(
                f"secret {name!r} of capsule {capsule!r} does not open with this key",
                hint="it was edited in storage or sealed under another key; "
                "reinstall the capsule to enter it again",
            ) from exc
        return plain.decode("utf-8")

    async def delete(self, capsule: str) -> None:
        await self.storage.delete(_NAMESPACE, capsule)

    async def _sealed(self, capsule: str) -> dict[str, str]:
        record = await self.storage.get(_NAMESPACE, capsule)
        if not isinstance(record, dict):
            return {}
        values = record.get("values")
        if not isinstance(values, dict):
            return {}
        return {str(k): str(v) for k, v in values.items()}

    def _key(self) -> nacl.secret.Aead:
        if self._box is None:
            self._box = nacl.secret.Aead(_load_or_create_key(self.key_path))
        return self._box


def _aad(capsule: str, name: str) -> bytes:
    return f"astrid capsule secret v1\x00{capsule}\x00{name}".encode()


def _load_or_create_key(path: Path) -> bytes:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    try:
        # O_EXCL: created with mode 0600 from the start, never briefly readable by others.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return _read_key(path)
    try:
        os.write(fd, nacl.utils.random(_KEY_BYTES))
        os.fsync(fd)
    finally:
        os.close(fd)
    return _read_key(path)


def _read_key(path: Path) -> bytes:
    return read_private_file(
        path,
        length=_KEY_BYTES,
        what="capsule secrets key",
        missing_hint="reinstall the capsules whose secrets it sealed",
        exposed_hint="if others could read it, change the secrets it guards",
        wrong_length_hint="restore it from backup; without it stored capsule secrets cannot "
        "be read",
        follow_symlinks=False,  # a key swapped for a link could point anywhere
    )
