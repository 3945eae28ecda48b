"""What a plugin registers (names, descriptions, schemas) goes into Capsule.toml as data: it can
never add a key, a table or a permission."""

from __future__ import annotations

import tomllib
from collections.abc import Callable
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from astrid_capsule.manifest import load_manifest
from astrid_openclaw import CompileResult
from astrid_openclaw._toml import toml_value

Compiled = Callable[[str], CompileResult]
json_values = st.recursive(
    st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)


@given(json_values)
def test_any_json_value_round_trips_through_toml(value: Any) -> None:
    assert tomllib.loads(f"x = {toml_value(value)}")["x"] == value


@given(st.text())
def test_no_string_escapes_its_value(text: str) -> None:
    parsed = tomllib.loads(f"a = {toml_value(text)}\nb = 1\n")
    assert parsed == {"a": text, "b": 1}


def test_hostile_tool_names_and_descriptions_stay_data(compiled: Compiled) -> None:
    result = compiled("names")
    manifest = load_manifest(result.capsule_dir)
    assert manifest.capabilities.net == ()  # the description's "net" is text, not a grant
    assert [t.name for t in manifest.tool] == ["web_search", "web_search_1"]
    assert [t.export for t in manifest.tool] == ["tool_0", "tool_1"]
    assert manifest.tool[0].description.startswith('x"\n[capabilities]')
    assert list(manifest.tool[0].input_schema["properties"]) == ['k"]\n[capabilities]']
    assert "tool 'web.search' is named 'web_search' in the capsule" in result.notes
