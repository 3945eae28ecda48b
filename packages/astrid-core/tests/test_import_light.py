"""`import astrid_core` must stay light: no crypto, database, LLM, MCP or WASM SDK."""

from __future__ import annotations

import json
import subprocess
import sys

HEAVY = ["surrealdb", "nacl", "blake3", "anthropic", "openai", "mcp", "extism", "telegram"]


def _modules_after(code: str) -> set[str]:
    out = subprocess.run(
        [sys.executable, "-c", f"{code}\nimport sys, json; print(json.dumps(sorted(sys.modules)))"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return {name.split(".")[0] for name in json.loads(out)}


def test_import_astrid_core_is_light() -> None:
    loaded = _modules_after("import astrid_core, astrid_core.storage")
    assert "astrid_core" in loaded
    assert loaded.isdisjoint(HEAVY), loaded & set(HEAVY)


def test_surrealdb_loads_only_with_its_backend() -> None:
    loaded = _modules_after("import astrid_core.storage._surreal")
    assert "surrealdb" in loaded  # proves the check above can see it


def test_names_load_at_first_use() -> None:
    """`from astrid_core import ConfigError` (what the CLI's quick commands and the gateway
    client need) builds none of the pydantic models: `astrid status` imports only what it uses."""
    loaded = _modules_after("from astrid_core import AstridError, ConfigError, StorageError")
    assert "pydantic" not in loaded
    full = _modules_after("from astrid_core import FileRead")
    assert "pydantic" in full  # proves the check above can see it


def test_an_unknown_name_is_an_attribute_error() -> None:
    import pytest

    import astrid_core

    with pytest.raises(AttributeError, match="no attribute 'Nope'"):
        _ = astrid_core.Nope  # type: ignore[attr-defined]
    assert "FileRead" in dir(astrid_core)
