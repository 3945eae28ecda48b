"""Each package declares exactly what its code imports, every dependency is bounded, and
Astrid's code uses one HTTP client (httpx2): the claims of the README's "What each package
pulls in"."""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = sorted(p for p in (ROOT / "packages").iterdir() if (p / "pyproject.toml").exists())

# Import name -> distribution name, where they differ.
DISTRIBUTION = {
    "nacl": "pynacl",
    "telegram": "python-telegram-bot",
    "tree_sitter": "tree-sitter",
    "tree_sitter_bash": "tree-sitter-bash",
    "pydantic_core": "pydantic-core",
}
# A package's own private C/helper modules found beside its sources, not distributions.
LOCAL = {"_bridge", "_grants", "_landlock", "_seccomp"}


def _declared(pyproject: Path) -> dict[str, str]:
    project = tomllib.loads(pyproject.read_text())["project"]
    found: dict[str, str] = {}
    for spec in project.get("dependencies", []):
        name = re.split(r"[<>=!~\[; ]", spec, maxsplit=1)[0].lower().replace("_", "-")
        found[name] = spec
    for specs in project.get("optional-dependencies", {}).values():
        for spec in specs:
            found[re.split(r"[<>=!~\[; ]", spec, maxsplit=1)[0].lower()] = spec
    return found


def _imported(package: Path) -> set[str]:
    names: set[str] = set()
    for source in (package / "src").rglob("*.py"):
        for node in ast.walk(ast.parse(source.read_text())):
            if isinstance(node, ast.Import):
                names |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module.split(".")[0])
    own = package.name.replace("-", "_")
    names -= set(sys.stdlib_module_names) | {"__future__", own} | LOCAL
    return {DISTRIBUTION.get(name, name.replace("_", "-")) for name in names}


@pytest.mark.parametrize("package", PACKAGES, ids=lambda p: p.name)
def test_a_package_declares_exactly_what_it_imports(package: Path) -> None:
    declared = set(_declared(package / "pyproject.toml"))
    imported = _imported(package)
    assert imported - declared == set(), "imported but not declared"
    if package.name != "astrid":  # the meta-package declares every part on purpose
        assert declared - imported == set(), "declared but never imported"


@pytest.mark.parametrize("package", PACKAGES, ids=lambda p: p.name)
def test_every_dependency_has_both_bounds(package: Path) -> None:
    for name, spec in _declared(package / "pyproject.toml").items():
        assert ">=" in spec, f"{name} has no lower bound: {spec}"
        assert "<" in spec.replace("<=", ""), f"{name} has no upper bound: {spec}"


def test_astrid_code_uses_one_http_client() -> None:
    for package in PACKAGES:
        assert "httpx" not in _imported(package), package.name
        assert "httpcore" not in _imported(package), package.name
