from __future__ import annotations

import re
from pathlib import Path

import pytest

README = Path(__file__).parent.parent / "README.md"


def test_readme_example_runs(capsys: pytest.CaptureFixture[str]) -> None:
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), re.DOTALL)
    assert blocks, "README has no python example"
    # Executing our own README is the point: the example must not rot.
    exec(compile(blocks[0], str(README), "exec"), {"__name__": "__readme__"})  # noqa: S102
    assert "revoked" in capsys.readouterr().out


def test_readme_names_existing_tests() -> None:
    text = README.read_text()
    here = Path(__file__).parent
    sources = {p.name: p.read_text() for p in here.glob("test_*.py")}
    for module, name in re.findall(r"`(test_\w+\.py)::(\w+)`", text):
        assert module in sources, module
        assert f"def {name}(" in sources[module], (module, name)
    for module in re.findall(r"`(test_\w+\.py)`", text):
        assert module in sources, module
    for name in re.findall(r"`(test_\w+)`", text):
        assert any(f"def {name}(" in src for src in sources.values()), name
