"""BLAKE3 digests of arbitrary JSON from servers."""

from __future__ import annotations

from typing import Any

from astrid_core import BadInputError
from astrid_crypto import canonical_json, content_hash

__all__ = ["json_digest"]


def json_digest(value: Any) -> tuple[str, int]:
    """(hex digest, canonical size in bytes) of a JSON value.

    Canonical JSON refuses floats (they have no single spelling) but schemas and results from
    servers carry them (e.g. "maximum": 1.5), so floats are spelled with repr() for hashing only.
    Most values (every tool call's result) hold no float, and are encoded as they are; the
    copy with floats spelled out is made only for a value that canonical JSON refuses.
    """
    try:
        encoded = canonical_json(value)
    except BadInputError:
        encoded = canonical_json(_floats_as_text(value))
    return content_hash(encoded).hex, len(encoded)


def _floats_as_text(value: Any) -> Any:
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, dict):
        return {str(k): _floats_as_text(v) for k, v in value.items()}  # pyright: ignore[reportUnknownVariableType]
    if isinstance(value, list):
        return [_floats_as_text(v) for v in value]  # pyright: ignore[reportUnknownVariableType]
    return value
