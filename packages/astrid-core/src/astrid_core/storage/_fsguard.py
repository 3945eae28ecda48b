"""The one-process-per-directory rule and the watch on the state directory, for every on-disk
backend: an exclusive ``flock`` on ``<dir>.lock`` holding the owner's pid, and the directory held
open so that one ``lstat`` per write notices it being deleted or replaced under a running process.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from .._errors import StorageError

__all__ = ["DirectoryLock", "DirectoryWatch", "lock_path"]


class DirectoryWatch:
    """The state directory held open; notices it being deleted or replaced by its path."""

    def __init__(self, directory: Path) -> None:
        self.path = directory
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC | os.O_NOFOLLOW)
        st = os.fstat(fd)
        self._fd: int | None = fd
        self.identity = (st.st_dev, st.st_ino)

    def problem(self) -> str | None:
        """None while the path still names the directory we hold; else what happened."""
        try:
            st = os.lstat(self.path)  # lstat: a symlink put in its place is a replacement
        except FileNotFoundError:
            return "was deleted"
        except OSError as exc:
            return f"can no longer be examined ({exc.strerror})"
        if (st.st_dev, st.st_ino) != self.identity:
            return "was replaced (its path now names another file or directory)"
        return None

    def close(self) -> None:
        if self._fd is not None:
            fd, self._fd = self._fd, None
            os.close(fd)


def lock_path(directory: Path) -> Path:
    return directory.with_name(directory.name + ".lock")


class DirectoryLock:
    """An exclusive flock on ``<dir>.lock``; the OS drops it when the process dies."""

    def __init__(self, directory: Path) -> None:
        self.path = lock_path(directory)
        self._fd: int | None = None

    def acquire(self) -> None:
        try:
            # O_NOFOLLOW: a planted symlink must not make us truncate some other file.
            flags = os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW
            fd = os.open(self.path, flags, 0o600)
        except OSError as exc:
            raise StorageError(
                f"cannot open lock file {self.path}: {exc}",
                hint="check that the lock file is a regular file you own, in a writable directory",
            ) from exc
        try:
            # flock (not POSIX fcntl locks) so a second opener in the *same* process is refused
            # too: flock locks belong to the open file description, not to the process.
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip() or "unknown"
            os.close(fd)
            raise StorageError(
                f"storage directory {self.path.with_suffix('')} is in use by another opener "
                f"(pid {holder}, lock file {self.path})",
                hint=f"stop process {holder} (or close the other storage) first; only one "
                "process may open a storage directory",
            ) from None
        except BaseException:
            os.close(fd)
            raise
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode("ascii"), 0)
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            fd, self._fd = self._fd, None
            os.close(fd)  # closing the descriptor drops the flock
