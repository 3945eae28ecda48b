"""Test helpers for attacks on file access: a symlink flipper.

``Flipper`` swaps a path between a real file (or directory) and a symlink to a target outside,
as fast as it can, in its own process (real parallelism, no GIL), bounded in time. Race tests
of the built-in file tools, of capsule host functions and of ``astrid_workspace.fs`` use it:
run the operation thousands of times while it flips and check nothing outside was touched.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

_SCRIPT = r"""
import os, sys, time
path, target, kind, seconds = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])
link, real = path + ".flip-link", path + ".flip-real"
deadline = time.monotonic() + seconds
laps = 0
while time.monotonic() < deadline and laps < 2_000_000:
    try:
        if os.path.lexists(link):
            os.unlink(link)
        os.symlink(target, link)
        if kind == "dir" and os.path.isdir(path) and not os.path.islink(path):
            os.rename(path, real)  # a directory cannot be renamed over: move it aside
        os.rename(link, path)  # now a symlink
    except OSError:
        pass
    try:
        if kind == "dir":
            os.makedirs(real, exist_ok=True)
            with open(os.path.join(real, "x.md"), "w") as handle:
                handle.write("hello\n")
            if os.path.islink(path):
                os.unlink(path)
        else:
            with open(real, "w") as handle:
                handle.write("hello\n")
        os.rename(real, path)  # now real again
    except OSError:
        pass
    laps += 1
"""


__all__ = ["Flipper"]


class Flipper:
    """Swaps ``path`` between a real file (``kind="file"``) or directory (``"dir"``) and a
    symlink to ``target`` until the ``with`` block ends or ``seconds`` pass. ``script`` replaces
    the flipping program (it gets ``path target kind seconds`` as arguments)."""

    def __init__(
        self,
        path: Path,
        target: Path,
        kind: str = "file",
        seconds: float = 30,
        *,
        script: str = _SCRIPT,
    ) -> None:
        self.args = [sys.executable, "-c", script, str(path), str(target), kind, str(seconds)]
        self.process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Flipper:
        self.process = subprocess.Popen(self.args)
        time.sleep(0.05)
        return self

    def __exit__(self, *exc: object) -> None:
        assert self.process is not None
        self.process.kill()  # our own child, by its handle
        self.process.wait(10)
