"""A TOML value for a JSON value (a tool's JSON Schema goes into Capsule.toml as is).

TOML has no null: a null inside a schema (rare; e.g. ``"default": null``) is dropped, which
the schema's meaning survives (JSON Schema treats an absent keyword as no constraint).
"""

from __future__ import annotations

import json
import math
from typing import Any

__all__ = ["toml_value"]


def toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value) or math.isinf(value):
            raise ValueError("NaN and infinity have no place in a manifest")
        return repr(value)
    if isinstance(value, str):
        return _string(value)
    if isinstance(value, list | tuple):
        items: list[Any] = list(value)  # pyright: ignore[reportUnknownArgumentType]
        return "[" + ", ".join(toml_value(v) for v in items if v is not None) + "]"
    if isinstance(value, dict):
        pairs: dict[Any, Any] = value  # pyright: ignore[reportUnknownVariableType]
        body = ", ".join(
            f"{_string(str(k))} = {toml_value(v)}" for k, v in pairs.items() if v is not None
        )
        return "{ " + body + " }" if body else "{}"
    raise ValueError(f"no TOML form for {type(value).__name__}")


def _string(text: str) -> str:
    # JSON's escapes are TOML basic-string escapes (\n, \", \\, \u00XX for controls); TOML
    # also refuses DEL raw, and a lone surrogate (JS strings can hold one) is not text at all.
    clean = text.encode("utf-8", "replace").decode("utf-8")
    return json.dumps(clean, ensure_ascii=False).replace("\x7f", "\\u007f")
