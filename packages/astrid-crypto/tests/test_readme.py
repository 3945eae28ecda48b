from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path


def test_readme_example_runs() -> None:
    text = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    code = re.findall(r"```python\n(.*?)```", text, re.S)[0]
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert '{"action":"delete","cost_micros":1200,"path":"/tmp/old.txt"}' in out.stdout
