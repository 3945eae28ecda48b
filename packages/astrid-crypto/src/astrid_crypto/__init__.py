"""astrid-crypto: Ed25519 keys and signatures, BLAKE3 hashes, canonical JSON, sealed secrets.

Small on purpose: every signature and hash in Astrid goes through these few functions.
"""

from ._canonical import (
    CANONICAL_V1,
    CANONICAL_V2,
    CANONICAL_VERSIONS,
    canonical_json,
    canonical_loads,
    canonical_text,
)
from ._hash import HASH_HEX_LENGTH, ContentHash, content_hash, hash_file
from ._keys import SEED_LENGTH, KeyPair, PublicKey, b64decode, b64encode
from ._private_files import read_private_file, write_private_file
from ._sealed import SEALING_KEY_LENGTH, SealingKey, SealingKeyMissing

__version__ = "0.1.0"

__all__ = [
    "KeyPair",
    "PublicKey",
    "b64encode",
    "b64decode",
    "SEED_LENGTH",
    "read_private_file",
    "write_private_file",
    "SealingKey",
    "SealingKeyMissing",
    "SEALING_KEY_LENGTH",
    "ContentHash",
    "content_hash",
    "hash_file",
    "HASH_HEX_LENGTH",
    "canonical_json",
    "canonical_loads",
    "canonical_text",
    "CANONICAL_V1",
    "CANONICAL_V2",
    "CANONICAL_VERSIONS",
    "__version__",
]
