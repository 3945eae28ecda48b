"""The native launcher: `_launcher.c` built with the system `cc` on first use, then reused.

Why: the Python launcher costs every confined command a Python start-up (15-20 ms on an idle
machine, far more under load); the C one starts in about a millisecond and does the same
steps (bridge, Landlock, rlimits, the seccomp program built in Python, exec).

Where: ``$ASTRID_HOME/cache/launcher-<sha256 of the source, 16 hex>`` (default
``~/.astrid``), next to a ``.sha256`` file holding the binary's own hash. $ASTRID_HOME is
masked in every sandbox, so no confined command can replace the binary; the binary is bound
read-only to ``/run/astrid-launcher`` in the sandbox's private /run.

Verified: before each use the binary must be a regular file owned by us, writable by no one
else, with the SHA-256 recorded when it was built (rechecked whenever its inode, size, mtime
or ctime change). At build it must answer ``--version``. Any failure (no `cc`, a compile
error, a mismatch) falls back to the Python launcher, and `status` says which is in force
and why. ``ASTRID_SANDBOX_LAUNCHER=python`` forces the Python one.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import stat
import subprocess
import tempfile
from functools import lru_cache
from pathlib import Path

from ._cache import private_cache
from ._seccomp import build_program, seccomp_supported

__all__ = ["NATIVE_INSIDE", "native_launcher", "native_status", "seccomp_hex"]

NATIVE_INSIDE = "/run/astrid-launcher"
_SOURCE = Path(__file__).with_name("_launcher.c")
_VERSION = b"astrid-launcher 2\n"
_verified: dict[str, tuple[int, int, int, int, int]] = {}
_failure: dict[str, str] = {}


@lru_cache(maxsize=1)
def _source_hash() -> str:
    return hashlib.sha256(_SOURCE.read_bytes()).hexdigest()[:16]


def _file_hash(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _build(binary: Path) -> None:
    cc = shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")
    if cc is None:
        raise OSError("no C compiler (cc) on PATH")
    for directory in (binary.parent.parent, binary.parent):  # $ASTRID_HOME is private
        with contextlib.suppress(FileExistsError):
            directory.mkdir(mode=0o700)
    fd, temporary = tempfile.mkstemp(prefix=".launcher-", dir=binary.parent)
    os.close(fd)
    try:
        compiled = subprocess.run(
            [cc, "-O2", "-o", temporary, str(_SOURCE)],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        if compiled.returncode != 0:
            raise OSError(f"cc failed: {compiled.stderr.strip()[:300]}")
        answer = subprocess.run(
            [temporary, "--version"], capture_output=True, timeout=10, check=False
        )
        if answer.stdout != _VERSION:
            raise OSError("the built launcher does not answer --version")
        os.chmod(temporary, 0o700)
        digest = hashlib.sha256(Path(temporary).read_bytes()).hexdigest()
        sidecar = binary.with_suffix(".sha256")
        sidecar.with_suffix(".tmp").write_text(digest)
        os.replace(sidecar.with_suffix(".tmp"), sidecar)
        os.replace(temporary, binary)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)


def _verify(binary: Path) -> None:
    info = binary.lstat()
    if not stat.S_ISREG(info.st_mode) or info.st_uid != os.geteuid() or info.st_mode & 0o022:
        raise OSError(f"{binary} is not a regular file of ours, writable by us alone")
    key = (info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns, info.st_ctime_ns)
    if _verified.get(str(binary)) == key:
        return
    expected = binary.with_suffix(".sha256").read_text().strip()
    if _file_hash(binary) != expected:
        raise OSError(f"{binary} does not match the hash recorded when it was built")
    _verified[str(binary)] = key


def native_launcher() -> str | None:
    """The verified native launcher's host path, building it on first use; None: use the
    Python launcher (`native_status` says why)."""
    if os.environ.get("ASTRID_SANDBOX_LAUNCHER") == "python":
        _failure["reason"] = "ASTRID_SANDBOX_LAUNCHER=python"
        return None
    if not seccomp_supported():
        _failure["reason"] = "no seccomp program for this architecture"
        return None
    try:
        binary = private_cache() / f"launcher-{_source_hash()}"
        if not binary.exists():
            _build(binary)
        _verify(binary)
    except (OSError, subprocess.SubprocessError) as exc:
        _failure["reason"] = str(exc)
        return None
    _failure.pop("reason", None)
    return str(binary)


def native_status() -> str:
    """Which launcher confined commands start with, for `status`."""
    if native_launcher() is not None:
        return "native launcher"
    return f"Python launcher ({_failure.get('reason', 'native one unavailable')})"


@lru_cache(maxsize=1)
def seccomp_hex() -> str:
    """The seccomp program as the native launcher takes it: struct sock_filter records."""
    return "".join(f"{c:04x}{jt:02x}{jf:02x}{k:08x}" for c, jt, jf, k in build_program())
