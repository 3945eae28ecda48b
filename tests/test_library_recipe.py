"""The README's library recipe, run verbatim: wheels built here, installed in a fresh venv.

It proves that ``astrid-capabilities`` installs and works with no package index holding any
Astrid package (the names come only from the wheels the recipe names), and that its README
example runs against the installed wheels, not against this checkout.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
CAPS_README = ROOT / "packages" / "astrid-capabilities" / "README.md"


def recipe() -> str:
    text = README.read_text()
    match = re.search(r"<!-- library-recipe:[^>]*-->\n```bash\n(.*?)```", text, re.DOTALL)
    assert match, "README lost its library recipe (the block after <!-- library-recipe -->)"
    return match.group(1)


@pytest.mark.slow
def test_the_readme_library_recipe_works_in_a_fresh_venv(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VIRTUAL_ENV", "PYTHON"))}
    env["HOME"] = str(home)
    env["PATH"] = os.pathsep.join(
        p for p in env.get("PATH", "").split(os.pathsep) if ".venv" not in p
    )
    done = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", recipe()],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "astrid-capabilities ready" in done.stdout

    python = home / "astrid-caps" / "bin" / "python"
    example = re.findall(r"```python\n(.*?)```", CAPS_README.read_text(), re.DOTALL)[0]
    ran = subprocess.run(
        [str(python), "-c", example],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert ran.returncode == 0, ran.stdout + ran.stderr
    where = subprocess.run(
        [str(python), "-c", "import astrid_core, astrid_capabilities as c; print(c.__file__)"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert str(home / "astrid-caps") in where.stdout, where.stdout + where.stderr
    # Nothing of the monorepo's own environment is in the venv: it holds only what pip put there.
    freeze = subprocess.run(
        [str(python), "-m", "pip", "freeze"], env=env, capture_output=True, text=True, timeout=60
    ).stdout
    names = {line.split("==")[0].split(" @ ")[0].lower() for line in freeze.splitlines()}
    assert {"astrid-core", "astrid-crypto", "astrid-capabilities"} <= names
    assert not names & {"astrid-runtime", "astrid-approval", "mcp", "anthropic"}
    # Honest metadata: the declared licence expression, and both licence texts in the wheel.
    meta = subprocess.run(
        [
            str(python),
            "-c",
            "from importlib.metadata import files, metadata as m; "
            "print(m('astrid-capabilities')['License-Expression']); "
            "print(sorted(f.name for f in files('astrid-capabilities') if 'LICENSE' in f.name))",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    ).stdout
    assert "MIT OR Apache-2.0" in meta
    assert "['LICENSE-APACHE', 'LICENSE-MIT']" in meta
