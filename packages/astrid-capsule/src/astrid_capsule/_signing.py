"""Publisher signatures on capsules (the seeds' "registry signatures").

``SIGNATURE.json`` = ``{"v": 1, "publisher": <b64 public key>, "capsule": name, "version": v,
"content_hash": <tree hash>, "signature": <b64 Ed25519 over canonical JSON of the rest>}``.
Verification uses the user's trusted publisher keys only, never the key in the file alone.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from astrid_core import VerificationError
from astrid_crypto import ContentHash, KeyPair, PublicKey, canonical_json

from ._tree import SIGNATURE_NAME

__all__ = ["sign_capsule", "verify_capsule_signature", "PublisherInfo"]


@dataclass(frozen=True)
class PublisherInfo:
    signed: bool
    key_id: str | None = None
    trusted: bool = False


def _body(name: str, version: str, tree: ContentHash, publisher: PublicKey) -> dict[str, Any]:
    return {
        "v": 1,
        "publisher": publisher.b64,
        "capsule": name,
        "version": version,
        "content_hash": tree.hex,
    }


def sign_capsule(root: Path, key: KeyPair, name: str, version: str, tree: ContentHash) -> None:
    body = _body(name, version, tree, key.public_key)
    body["signature"] = key.sign_b64(canonical_json(body))
    (root / SIGNATURE_NAME).write_text(json.dumps(body, indent=2) + "\n")


def verify_capsule_signature(
    root: Path, name: str, version: str, tree: ContentHash, trusted: Sequence[PublicKey]
) -> PublisherInfo:
    """Unsigned → PublisherInfo(signed=False). A present but bad signature raises."""
    path = root / SIGNATURE_NAME
    if not path.exists():
        return PublisherInfo(signed=False)
    try:
        claimed = json.loads(path.read_text())
        signature = claimed.pop("signature")
        publisher = PublicKey.from_b64(claimed["publisher"])
    except (ValueError, KeyError, TypeError) as exc:
        raise VerificationError(f"{SIGNATURE_NAME} is malformed: {exc}") from exc
    if claimed != _body(name, version, tree, publisher):
        raise VerificationError(
            f"{SIGNATURE_NAME} does not describe this capsule (name, version or content changed)",
            hint="the capsule was modified after it was signed; do not install it",
        )
    publisher.verify(canonical_json(claimed), signature)  # raises VerificationError
    return PublisherInfo(signed=True, key_id=publisher.key_id, trusted=publisher in trusted)
