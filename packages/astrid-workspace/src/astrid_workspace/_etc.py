"""The sandbox's /etc as one read-only bind: a copy of the few /etc entries commands need.

Why: bubblewrap binding each of ~20 /etc files costs every confined command a mount each
(several milliseconds together); one directory bound at /etc costs one. What is in it is
exactly what was bound before (`SYSTEM_READ_PATHS` under /etc that exist: the dynamic linker's
config, TLS roots, name resolution, passwd/group, time zone) — never /etc/shadow, SSH host keys
or /etc/ssl/private.

Where: ``$ASTRID_HOME/cache/etc-<hash>``, the hash of each listed entry's identity (path,
inode, size, mtime and ctime; for a directory its own, which a file added, removed or replaced
by rename changes): when one changes, the next command gets a fresh copy under a new name
(built aside, then renamed into place; old copies are removed a day later). A file edited in
place *inside* a listed directory (not replaced) is picked up at the next change of the
directory itself. $ASTRID_HOME
is masked in every sandbox, so no confined command can change the copy. Files are copied
following links (a /etc/resolv.conf that links into /run is copied as its content); inside
directories links are kept as links (the CA bundle's links point into /usr, which is mounted).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import tempfile
import time
from pathlib import Path

from ._cache import private_cache
from ._grants import SYSTEM_READ_PATHS

__all__ = ["etc_view"]

_KEEP_OLD_SECONDS = 24 * 3600  # longer than any command's timeout


def _entries() -> list[str]:
    return [p for p in SYSTEM_READ_PATHS if p.startswith("/etc/") and os.path.exists(p)]


def _signature(entries: list[str]) -> str:
    """Identity of each entry and, for a directory, of each entry directly in it (a package
    update or an editor replaces files by renaming, which changes the directory's mtime)."""
    h = hashlib.sha256()
    for entry in entries:
        info = os.stat(entry)
        h.update(f"{entry}\0{info.st_ino}\0{info.st_size}\0{info.st_mtime_ns}\0".encode())
        h.update(f"{info.st_ctime_ns}\0{info.st_mode}\n".encode())
    return h.hexdigest()[:16]


def _build(target: Path, entries: list[str]) -> None:
    target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    temporary = Path(tempfile.mkdtemp(prefix=".etc-", dir=target.parent))
    try:
        os.chmod(temporary, 0o755)  # noqa: S103 - it is /etc: what it holds is world-readable
        for entry in entries:
            destination = temporary / entry.removeprefix("/etc/")
            destination.parent.mkdir(parents=True, exist_ok=True)
            if os.path.isdir(entry):
                shutil.copytree(entry, destination, symlinks=True)
            else:
                shutil.copy2(entry, destination)  # follows a link: its content
        os.rename(temporary, target)
    except FileExistsError:
        pass  # another process built the same view meanwhile
    except OSError:
        if target.is_dir():
            return
        raise
    finally:
        if temporary.exists():
            shutil.rmtree(temporary, ignore_errors=True)


def _collect_old(cache: Path, keep: str) -> None:
    # Not at once: a command started a moment ago may still have an older copy bound.
    cutoff = time.time() - _KEEP_OLD_SECONDS
    for old in cache.glob("etc-*"):
        with contextlib.suppress(OSError):
            if old.name != keep and old.stat().st_mtime < cutoff:
                shutil.rmtree(old)


def etc_view() -> str | None:
    """The host path of the current /etc copy (built if needed); None if it cannot be made
    (then the caller binds each entry as before)."""
    try:
        cache = private_cache()
        entries = _entries()
        name = f"etc-{_signature(entries)}"
        target = cache / name
        if not target.is_dir():
            _build(target, entries)
            _collect_old(cache, name)
    except OSError:
        return None
    return str(target)
