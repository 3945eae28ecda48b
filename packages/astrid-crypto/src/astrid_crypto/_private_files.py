"""Secret key files: written complete and owner-only from their first byte, read only when
they are still that (a regular file, owner-only, of exactly the expected length)."""

from __future__ import annotations

import os
import stat
import tempfile
from pathlib import Path

from astrid_core import ConfigError

__all__ = ["read_private_file", "write_private_file"]


def read_private_file(
    path: Path,
    *,
    length: int,
    what: str,
    missing_hint: str,
    exposed_hint: str,
    wrong_length_hint: str,
    follow_symlinks: bool = True,
) -> bytes:
    """The bytes of a secret key file, refusing anything but a regular file of exactly
    ``length`` bytes that only its owner, the current user, can read. One check for every key
    Astrid keeps.

    The checks and the read are of one open file (``fstat`` on the descriptor), so the file
    cannot be swapped between them; ``follow_symlinks=False`` refuses a link at ``path``."""
    flags = os.O_RDONLY | os.O_CLOEXEC | (0 if follow_symlinks else os.O_NOFOLLOW)
    try:
        fd = os.open(path, flags | os.O_NONBLOCK)  # a FIFO planted there must not block us
    except FileNotFoundError as exc:
        raise ConfigError(f"{what} {path} does not exist", hint=missing_hint) from exc
    except OSError as exc:
        if not follow_symlinks and os.path.islink(path):
            raise ConfigError(
                f"{what} {path} is not a regular file (it is a symbolic link)",
                hint="put the key file itself there: a link could point anywhere",
            ) from exc
        raise ConfigError(f"{what} {path} cannot be opened: {exc.strerror or exc}") from exc
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise ConfigError(f"{what} {path} is not a regular file")
        if info.st_mode & 0o077:
            raise ConfigError(
                f"{what} {path} is readable by group or others "
                f"(mode {stat.S_IMODE(info.st_mode):o})",
                hint=f"run `chmod 600 {path}`; {exposed_hint}",
            )
        if info.st_uid != os.geteuid():
            # Someone else's file: they can rewrite (or read) our key whatever its mode says.
            raise ConfigError(
                f"{what} {path} belongs to uid {info.st_uid}, not to you (uid {os.geteuid()})",
                hint=f"if the key is really yours, run `chown {os.geteuid()} {path}`; "
                f"otherwise remove it and make a new one: {exposed_hint}",
            )
        data = os.read(fd, length + 1)
    finally:
        os.close(fd)
    if len(data) != length:
        size = info.st_size
        raise ConfigError(
            f"{what} {path} has {size} bytes; it must hold exactly {length}",
            hint=wrong_length_hint,
        )
    return data


def _fsync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_private_file(path: Path, data: bytes, *, replace: bool) -> bool:
    """Write ``data`` to ``path``, complete and 0600 from its first byte; False when ``path``
    exists and ``replace`` is off (then nothing is written).

    The bytes go to a temporary file (mkstemp creates it 0600) that is then published: with
    ``link()`` when not replacing, which fails atomically if the name exists (of two processes
    creating a key at once, the second keeps the first one's), else with ``rename()``. The
    folder is created 0700 if missing."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd, tmp_name = tempfile.mkstemp(prefix=".key-", dir=path.parent)
    try:
        try:
            os.fchmod(fd, 0o600)
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        if replace:
            os.replace(tmp_name, path)
        else:
            try:
                os.link(tmp_name, path)
            except FileExistsError:
                return False
        _fsync_directory(path.parent)  # the new name is durable too, not only the bytes
        return True
    finally:
        if os.path.lexists(tmp_name):
            os.unlink(tmp_name)
