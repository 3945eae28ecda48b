"""Canonical JSON: the only byte forms Astrid ever signs or hashes, one per format version.

- **v2** (``CANONICAL_V2``, every new token, audit entry and checkpoint): RFC 8785, the JSON
  Canonicalization Scheme, in ``_jcs``. Floats are signed (as the shortest round-trip
  ECMAScript form); NaN, Infinity and integers beyond ±(2^53 - 1) are refused.
- **v1** (``CANONICAL_V1``, data written before v2, still verified): UTF-8, object keys sorted
  by code point, no insignificant whitespace, integers of any size, **no floats**. Kept
  byte-for-byte so that old logs and tokens keep verifying. v1 is not JCS: it sorts by code
  point and writes integers beyond 2^53 exactly.

Every signed structure carries its version (``v``) inside the signed bytes, so a signature
made over one form can never be presented as the other.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from typing import Any, Final

from astrid_core import BadInputError

from ._jcs import jcs_text

__all__ = [
    "canonical_json",
    "canonical_loads",
    "canonical_text",
    "CANONICAL_V1",
    "CANONICAL_V2",
    "CANONICAL_VERSIONS",
]

CANONICAL_V1: Final = 1
CANONICAL_V2: Final = 2
CANONICAL_VERSIONS: Final = frozenset({CANONICAL_V1, CANONICAL_V2})

# One encoder for every call: json.dumps with any non-default option builds a new JSONEncoder
# each time, which was a measurable share of an audit append. No circular-reference check:
# _plainly_valid/_check walk every value first, and a cycle stops them (RecursionError).
_ENCODER = json.JSONEncoder(
    sort_keys=True, separators=(",", ":"), ensure_ascii=False, check_circular=False
)


def _make_encode() -> Callable[[Any], str]:
    """``_ENCODER.encode``, minus the C encoder it builds on every call (about half its cost on
    a small value). The arguments are the ones JSONEncoder.iterencode passes for the options
    above; a test checks the output against JSONEncoder's. Without the C accelerator (another
    Python implementation), JSONEncoder itself."""
    # Not in typeshed (an implementation detail of CPython's json, stable since 2.6).
    make: Callable[..., Callable[[Any, int], Iterable[str]]] | None = getattr(
        json.encoder, "c_make_encoder", None
    )
    if make is None:
        return _ENCODER.encode
    encoder = make(
        None,  # markers: no circular check
        _ENCODER.default,
        json.encoder.encode_basestring,  # ensure_ascii=False
        None,  # indent
        ":",
        ",",
        True,  # sort_keys
        False,  # skipkeys
        True,  # allow_nan: never reached, floats are refused before encoding
    )

    def encode(value: Any) -> str:
        if isinstance(value, str):
            return json.encoder.encode_basestring(value)
        return "".join(encoder(value, 0))

    return encode


_encode = _make_encode()


def _check(value: Any, path: str) -> None:
    if value is None or isinstance(value, bool | str):
        return
    if isinstance(value, int):
        return
    if isinstance(value, float):
        raise BadInputError(
            f"canonical JSON refuses the float {value!r} at {path}",
            hint="format v1 has no floats: sign new data as format v2 (RFC 8785), which does",
        )
    if isinstance(value, dict):
        for key, item in value.items():  # type: ignore[reportUnknownVariableType]
            if not isinstance(key, str):
                raise BadInputError(
                    f"canonical JSON needs string keys; got {type(key).__name__} at {path}"  # type: ignore[reportUnknownArgumentType]
                )
            _check(item, f"{path}.{key}")
        return
    if isinstance(value, list | tuple):
        for index, item in enumerate(value):  # type: ignore[reportUnknownVariableType]
            _check(item, f"{path}[{index}]")
        return
    raise BadInputError(
        f"canonical JSON cannot encode {type(value).__name__} at {path}",
        hint="convert it to str, int, bool, None, list or dict first",
    )


def _plainly_valid(value: Any) -> bool:
    """Fast pre-check without path strings; on False, ``_check`` runs to accept or explain."""
    kind: type[Any] = type(value)  # pyright: ignore[reportUnknownVariableType]
    if kind is str or kind is int or kind is bool or value is None:
        return True
    if kind is dict:
        for key, item in value.items():
            if type(key) is not str or not _plainly_valid(item):
                return False
        return True
    if kind is list or kind is tuple:
        return all(_plainly_valid(item) for item in value)
    return False


def canonical_json(value: Any, version: int = CANONICAL_V1) -> bytes:
    """Encode ``value`` in canonical JSON format ``version``, or raise BadInputError naming
    the offending path. New signed data uses ``CANONICAL_V2``; v1 is for verifying old data."""
    return _utf8(_checked_text(value, version))


def canonical_text(value: Any, version: int = CANONICAL_V1) -> str:
    """``canonical_json(value, version)`` as text: for a caller that assembles a canonical
    object from the texts of its members (the audit log does, to hash and store an entry from
    one serialization and to reuse the text of a part it has encoded before)."""
    text = _checked_text(value, version)
    _utf8(text)
    return text


def _checked_text(value: Any, version: int) -> str:
    if version == CANONICAL_V2 and type(version) is int:
        return jcs_text(value, _encode)
    if version != CANONICAL_V1 or type(version) is not int:
        raise BadInputError(
            f"unknown canonical JSON format version {version!r}",
            hint="this Astrid reads format versions 1 and 2; upgrade it to read newer data",
        )
    if not _plainly_valid(value):
        _check(value, "$")
    return _encode(value)


def _utf8(text: str) -> bytes:
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError as exc:  # lone surrogates cannot be UTF-8
        raise BadInputError(f"canonical JSON needs valid Unicode text: {exc.reason}") from exc


def canonical_loads(data: bytes) -> Any:
    """Decode canonical JSON (or any JSON), refusing NaN/Infinity."""

    def _no_constants(name: str) -> Any:
        raise BadInputError(f"JSON constant {name} is not allowed")

    try:
        return json.loads(data.decode("utf-8"), parse_constant=_no_constants)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BadInputError(f"not valid UTF-8 JSON: {exc}") from exc
