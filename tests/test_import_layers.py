"""The layer contract is real: a violation makes lint-imports fail, the real tree passes."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LINT_IMPORTS = shutil.which("lint-imports") or str(Path(sys.executable).parent / "lint-imports")


def _run(config: Path, cwd: Path, pythonpath: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": pythonpath}
    return subprocess.run(
        [LINT_IMPORTS, "--config", str(config)],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_real_tree_keeps_every_contract() -> None:
    out = subprocess.run([LINT_IMPORTS], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "0 broken" in out.stdout


def test_core_importing_crypto_breaks_the_layers_contract(tmp_path: Path) -> None:
    # A minimal copy of the two lowest layers, with astrid_core importing astrid_crypto.
    for name in ("astrid_core", "astrid_crypto"):
        package = tmp_path / name
        package.mkdir()
        (package / "__init__.py").write_text("")
    (tmp_path / "astrid_core" / "oops.py").write_text("import astrid_crypto\n")
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    layers = next(c for c in config["contracts"] if c["type"] == "layers")
    # The copy mirrors the real contract: crypto is a layer above core there too.
    assert layers["layers"].index("astrid_crypto") < layers["layers"].index("astrid_core")
    (tmp_path / ".importlinter").write_text(
        "[importlinter]\nroot_packages =\n    astrid_core\n    astrid_crypto\n\n"
        "[importlinter:contract:layers]\n"
        f"name = {layers['name']}\n"
        "type = layers\nlayers =\n    astrid_crypto\n    astrid_core\n"
    )
    out = _run(tmp_path / ".importlinter", tmp_path, str(tmp_path))
    assert out.returncode != 0, out.stdout
    assert "BROKEN" in out.stdout
    assert "astrid_core.oops -> astrid_crypto" in out.stdout
    (tmp_path / "astrid_core" / "oops.py").write_text("")
    assert _run(tmp_path / ".importlinter", tmp_path, str(tmp_path)).returncode == 0
