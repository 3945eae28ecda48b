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
        # JSON string escapes are valid TOML basic-string escapes (\uXXXX, \n, \", \\).
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, list | tuple):
        items: list[Any] = list(value)  # pyright: ignore[reportUnknownArgumentType]
        return "[" + ", ".join(toml_value(v) for v in items if v is not None) + "]"
    if isinstance(value, dict):
        pairs: dict[Any, Any] = value  # pyright: ignore[reportUnknownVariableType]
        body = ", ".join(
            f"{json.dumps(str(k), ensure_ascii=False)} = {toml_value(v)}"
            for k, v in pairs.items()
            if v is not None
        )
        return "{ " + body + " }" if body else "{}"
    raise ValueError(f"no TOML form for {type(value).__name__}")
