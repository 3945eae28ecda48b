"""``$ASTRID_HOME/cache``, where the native launcher and the /etc copy live: private or unused.

Why: what is cached there runs (the launcher, before Landlock and seccomp) or becomes the
sandbox's /etc. A cache directory someone else owns or may write (``ASTRID_HOME=/tmp/astrid``
pre-created by another user, a ``chmod 777``) lets them plant an ``etc-<hash>`` copy (the hash
is computable from ``stat`` of public files) or swap the launcher between its check and its
use. So both directories on the way must be real directories of ours, writable by us alone.
"""

from __future__ import annotations

import contextlib
import os
import stat
from pathlib import Path

__all__ = ["private_cache"]


def private_cache() -> Path:
    """The cache directory (created 0700 if missing); OSError naming the problem if it or
    $ASTRID_HOME is a link, not ours, or writable by group or others."""
    home = os.environ.get("ASTRID_HOME") or os.path.join(os.path.expanduser("~"), ".astrid")
    cache = Path(home) / "cache"
    for directory in (cache.parent, cache):
        with contextlib.suppress(FileExistsError):
            directory.mkdir(mode=0o700)
        info = directory.lstat()
        if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.geteuid() or info.st_mode & 0o022:
            raise OSError(
                f"{directory} is not a directory of ours writable by us alone "
                f"(fix: chown $(id -u) {directory} && chmod 700 {directory})"
            )
    return cache
