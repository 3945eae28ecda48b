"""Canonical JSON: the only byte form Astrid ever signs or hashes.

UTF-8, object keys sorted by code point, no insignificant whitespace, no floats. Floats are
refused outright because two implementations can print the same float differently, and a
signature must never depend on that; amounts are integers (micro-dollars) or strings.
"""

from __future__ import annotations

import json
from typing import Any

from astrid_core import BadInputError

__all__ = ["canonical_json", "canonical_loads", "canonical_members"]

# One encoder for every call: json.dumps with any non-default option builds a new JSONEncoder
# each time, which was a measurable share of an audit append.
_ENCODER = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _check(value: Any, path: str) -> None:
    if value is None or isinstance(value, bool | str):
        return
    if isinstance(value, int):
        return
    if isinstance(value, float):
        raise BadInputError(
            f"canonical JSON refuses the float {value!r} at {path}",
            hint="use an integer (e.g. micro-units) or a string for numbers that are signed",
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


def canonical_json(value: Any) -> bytes:
    """Encode ``value`` canonically, or raise BadInputError naming the offending path."""
    if not _plainly_valid(value):
        _check(value, "$")
    text = _ENCODER.encode(value)
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError as exc:  # lone surrogates cannot be UTF-8
        raise BadInputError(f"canonical JSON needs valid Unicode text: {exc.reason}") from exc


def canonical_members(value: dict[str, Any], groups: tuple[tuple[str, ...], ...]) -> list[str]:
    """The canonical ``"key":value,...`` text (no braces) of each group of ``value``'s keys.

    For a caller that splices extra members between groups: when the groups are consecutive
    in code point order, ``"{" + ",".join(result) + "}"`` is exactly ``canonical_json(value)``
    (the audit log hashes that, and stores it with its hash and signature spliced in). The
    whole value is checked once, as ``canonical_json`` would."""
    if not _plainly_valid(value):
        _check(value, "$")
    texts = [_ENCODER.encode({k: value[k] for k in keys})[1:-1] for keys in groups]
    try:
        for text in texts:
            text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise BadInputError(f"canonical JSON needs valid Unicode text: {exc.reason}") from exc
    return texts


def canonical_loads(data: bytes) -> Any:
    """Decode canonical JSON (or any JSON), refusing NaN/Infinity."""

    def _no_constants(name: str) -> Any:
        raise BadInputError(f"JSON constant {name} is not allowed")

    try:
        return json.loads(data.decode("utf-8"), parse_constant=_no_constants)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BadInputError(f"not valid UTF-8 JSON: {exc}") from exc
