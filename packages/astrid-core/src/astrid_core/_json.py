"""The JSON value type shared by storage, actions and wire formats.

pydantic's JsonValue is a real recursive TypeAliasType, so models can use it as a field type
and pyright understands it; we re-export it rather than define a second one.
"""

from __future__ import annotations

from typing import TypeAlias

from pydantic import JsonValue

__all__ = ["JsonValue", "JsonObject"]

JsonObject: TypeAlias = dict[str, JsonValue]
