"""Secrets a capsule declares (``[env.X] secret = true``), encrypted at rest.

Values are sealed by astrid-crypto's ``SealingKey`` (XChaCha20-Poly1305) under a 32-byte key
in ``<home>/keys/capsule-secrets.key`` (mode 0600, created on first use). The key lives under
``keys/``, which the security policy denies to the agent, and apart from the database: a copy
of the database, a backup of it or an audit export holds no readable secret. The associated
data binds each ciphertext to its capsule and name, so a value moved to another entry in
storage fails to open instead of leaking into the wrong capsule.

What this does not protect against: anyone who can read the whole home directory (the user
themselves, root) reads the key as well. An OS keyring would not change that for a headless
daemon running as the same user.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from astrid_core import JsonObject, NotFoundError
from astrid_core.storage import Storage
from astrid_crypto import SealingKey

__all__ = ["CapsuleSecrets", "SECRETS_KEY_FILE"]

SECRETS_KEY_FILE = Path("keys") / "capsule-secrets.key"
_NAMESPACE = "capsule_secrets"


class CapsuleSecrets:
    def __init__(self, storage: Storage, key_path: Path) -> None:
        self.storage = storage
        self.key_path = key_path
        self._key = SealingKey(
            key_path,
            what="capsule secrets key",
            lost_hint="reinstall the capsules whose secrets it sealed",
            exposed_hint="if others could read it, change the secrets it guards",
        )

    async def names(self, capsule: str) -> list[str]:
        return sorted(await self._sealed(capsule))

    async def store(self, capsule: str, values: Mapping[str, str]) -> None:
        """Seal ``values`` and merge them with what the capsule already has."""
        if not values:
            return
        sealed = await self._sealed(capsule)
        for name, value in values.items():
            sealed[name] = self._key.seal(value, aad=_aad(capsule, name))
        record: JsonObject = {"v": 1, "values": dict(sealed)}
        await self.storage.put(_NAMESPACE, capsule, record)

    async def reveal(self, capsule: str, name: str) -> str:
        """The plaintext, for the engine that hands it to the capsule (never to the agent)."""
        sealed = await self._sealed(capsule)
        if name not in sealed:
            raise NotFoundError(f"capsule {capsule!r} has no stored secret {name!r}")
        return self._key.open_text(
            sealed[name],
            aad=_aad(capsule, name),
            what=f"secret {name!r} of capsule {capsule!r}",
            hint="it was edited in storage or sealed under another key; "
            "reinstall the capsule to enter it again",
        )

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


def _aad(capsule: str, name: str) -> bytes:
    # Unchanged since v1: values sealed before astrid-crypto owned the sealing still open.
    return f"astrid capsule secret v1\x00{capsule}\x00{name}".encode()
