"""Descriptor-based file access: use exactly what was authorized, never a name looked up again.

A path is authorized by name, then used; between the two, anyone who can write a directory on
the way (the agent's own shell, a capsule, a cloned repository) can swap a component for a
symbolic link and make "the same name" mean ``~/.ssh/id_ed25519``. Every function here therefore
works beneath a directory descriptor and resolves the rest of the path **without following any
symbolic link and without leaving that directory**:

* ``openat2(2)`` with ``RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS`` (Linux
  5.6+, through ``ctypes``: the kernel checks every component in one atomic lookup);
* where ``openat2`` is missing (older kernels, seccomp filters that refuse it), a walk that opens
  one component at a time with ``O_NOFOLLOW`` relative to the previous descriptor.

Callers pass paths that were fully resolved when they were authorized (``realpath``), so any
symbolic link met on the way appeared *after* the decision: it is refused with
:class:`PathChanged`, never followed. A new file is written to a temporary name created with
``O_CREAT | O_EXCL | O_NOFOLLOW`` in the target directory's descriptor (a link planted at that
name makes the create fail; we pick another random name) and renamed into place with
``renameat`` on the same descriptor, so readers see the old file or the new one, never half.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import secrets
import stat
from collections.abc import Callable, Generator
from dataclasses import dataclass
from typing import cast

from astrid_core import BadInputError, NotFoundError, SecurityDenied

__all__ = [
    "disable_openat2_for_tests",
    "PathChanged",
    "DirEntry",
    "open_root",
    "open_beneath",
    "open_parent",
    "read_bytes",
    "write_atomic",
    "unlink",
    "make_dirs",
    "stat_beneath",
    "exists",
    "list_dir",
    "relative_parts",
    "openat2_available",
    "TEMP_SUFFIX",
]

# openat2(2) resolve flags (linux/openat2.h).
_RESOLVE_NO_MAGICLINKS = 0x02
_RESOLVE_NO_SYMLINKS = 0x04
_RESOLVE_BENEATH = 0x08
_SYS_OPENAT2 = 437  # the same number on every architecture (it is newer than the unification)
_RESOLVE = _RESOLVE_BENEATH | _RESOLVE_NO_SYMLINKS | _RESOLVE_NO_MAGICLINKS

_CLOEXEC = os.O_CLOEXEC
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | _CLOEXEC
# O_NONBLOCK: opening a FIFO someone planted must not hang us; regular files ignore it.
_READ_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | _CLOEXEC
_CREATE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | _CLOEXEC
_PATH_FLAGS = getattr(os, "O_PATH", os.O_RDONLY) | os.O_NOFOLLOW | _CLOEXEC
TEMP_SUFFIX = ".astrid-tmp"
_TEMP_ATTEMPTS = 16
_EAGAIN_RETRIES = 8


class PathChanged(SecurityDenied):
    """A symbolic link (or a path leaving the directory) appeared after the path was
    authorized; it was refused, not followed."""

    code = "security.path_changed"


class _OpenHow(ctypes.Structure):
    _fields_ = [
        ("flags", ctypes.c_uint64),
        ("mode", ctypes.c_uint64),
        ("resolve", ctypes.c_uint64),
    ]


@dataclass
class _Openat2:
    syscall: Callable[..., int] | None
    works: bool | None = None  # None: not tried yet


def _load_openat2() -> _Openat2:
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        function = libc.syscall
    except (OSError, AttributeError):
        return _Openat2(None, False)
    function.restype = ctypes.c_long
    return _Openat2(cast("Callable[..., int]", function))


_OPENAT2 = _load_openat2()


def openat2_available() -> bool:
    """True when this process resolves paths with ``openat2`` (else the O_NOFOLLOW walk)."""
    if _OPENAT2.works is None:
        fd = os.open("/", _DIR_FLAGS)
        try:
            with contextlib.suppress(OSError):
                os.close(_openat2(fd, ".", _DIR_FLAGS, 0))
        finally:
            os.close(fd)
    return bool(_OPENAT2.works)


def disable_openat2_for_tests() -> Callable[[], None]:
    """Force the portable walk (tests run both paths); returns a function that undoes it."""
    previous = _OPENAT2.works
    _OPENAT2.works = False
    return lambda: setattr(_OPENAT2, "works", previous)


def _openat2(dir_fd: int, path: str, flags: int, mode: int) -> int:
    """openat2 beneath ``dir_fd``; raises _Unsupported when the kernel does not offer it."""
    if _OPENAT2.syscall is None or _OPENAT2.works is False:
        raise _Unsupported
    how = _OpenHow(flags | _CLOEXEC, mode if flags & os.O_CREAT else 0, _RESOLVE)
    result = _OPENAT2.syscall(
        _SYS_OPENAT2,
        ctypes.c_int(dir_fd),
        ctypes.c_char_p(os.fsencode(path)),
        ctypes.byref(how),
        ctypes.c_size_t(ctypes.sizeof(how)),
    )
    if result >= 0:
        _OPENAT2.works = True
        return result
    code = ctypes.get_errno()
    if code in (errno.ENOSYS, errno.EPERM) and _OPENAT2.works is None:
        # Missing, or refused by a seccomp filter (which answers EPERM or ENOSYS): walk instead.
        _OPENAT2.works = False
        raise _Unsupported
    if code == errno.E2BIG or (code == errno.EINVAL and _OPENAT2.works is None):
        _OPENAT2.works = False
        raise _Unsupported
    _OPENAT2.works = True
    raise OSError(code, os.strerror(code), path)


class _Unsupported(Exception):
    pass


# ---------------------------------------------------------------------- paths


def relative_parts(rel: str) -> list[str]:
    """The components of a path relative to a directory descriptor, refusing what could leave
    it (``..``, an absolute path) or is not a path at all (NUL). ``""`` and ``"."`` name the
    directory itself and give ``[]``."""
    if "\x00" in rel:
        raise BadInputError("path contains a NUL byte")
    if rel.startswith("/"):
        raise BadInputError(f"{rel!r} is absolute; expected a path relative to the directory")
    parts = [p for p in rel.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise PathChanged(
            f"{rel!r} contains '..'; paths are resolved before they are authorized",
            hint="pass the resolved path that was authorized",
        )
    return parts


def _changed(rel: str, what: str = "a symbolic link appeared in it") -> PathChanged:
    return PathChanged(
        f"{rel} changed after it was authorized ({what}); not followed",
        hint="call again so the new target is checked",
    )


def _translate(exc: OSError, rel: str, dir_fd: int | None = None) -> Exception:
    if exc.errno == errno.ELOOP:
        return _changed(rel)
    if exc.errno == errno.EXDEV:
        return _changed(rel, "it now leads outside the directory")
    if exc.errno == errno.ENOENT:
        return NotFoundError(f"no such file or directory: {rel}")
    if exc.errno == errno.ENOTDIR:
        where = _not_a_directory(dir_fd, rel) if dir_fd is not None else None
        if where == "link":
            return _changed(rel)
        return BadInputError(f"{rel}: {where or 'a component'} is not a directory")
    return exc


def _not_a_directory(dir_fd: int, rel: str) -> str | None:
    """Which component of ``rel`` is not a directory ("link" for a symlink), for the error."""
    parts = relative_parts(rel)
    for index in range(len(parts)):
        try:
            info = os.stat("/".join(parts[: index + 1]), dir_fd=dir_fd, follow_symlinks=False)
        except OSError:
            return None
        if stat.S_ISLNK(info.st_mode):
            return "link"
        if not stat.S_ISDIR(info.st_mode):
            return "/".join(parts[: index + 1])
    return None


def _walk_open(dir_fd: int, parts: list[str], flags: int, mode: int, rel: str) -> int:
    """The portable resolution: one component at a time, each opened with O_NOFOLLOW."""
    current = os.dup(dir_fd)
    try:
        for part in parts[:-1]:
            child = os.open(part, _DIR_FLAGS, dir_fd=current)
            os.close(current)
            current = child
        last = parts[-1] if parts else "."
        return os.open(last, flags | os.O_NOFOLLOW | _CLOEXEC, mode, dir_fd=current)
    except OSError as exc:
        # ELOOP is how O_NOFOLLOW reports a link as the last component; a link in the middle
        # gives ENOTDIR with O_DIRECTORY|O_NOFOLLOW: _translate tells the two apart.
        raise _translate(exc, rel, dir_fd) from None
    finally:
        os.close(current)


def open_beneath(dir_fd: int, rel: str, flags: int = _READ_FLAGS, mode: int = 0o666) -> int:
    """Open ``rel`` beneath ``dir_fd`` without following a symbolic link anywhere on the way.

    ``flags`` are ``os.open`` flags (``O_NOFOLLOW`` and ``O_CLOEXEC`` are always added).
    Raises :class:`PathChanged` for a symlink or an escape, ``NotFoundError`` when missing."""
    parts = relative_parts(rel)
    flags |= os.O_NOFOLLOW | _CLOEXEC
    for _ in range(_EAGAIN_RETRIES):
        try:
            return _openat2(dir_fd, "/".join(parts) or ".", flags, mode)
        except _Unsupported:
            return _walk_open(dir_fd, parts, flags, mode, rel)
        except OSError as exc:
            # EAGAIN: the kernel saw a rename race during a RESOLVE_BENEATH lookup; look again.
            if exc.errno != errno.EAGAIN:
                raise _translate(exc, rel, dir_fd) from None
    raise _changed(rel, "it kept being renamed while it was looked up")


def open_root(path: str) -> int:
    """A directory descriptor for the absolute, already resolved ``path``, reached from ``/``
    without following symbolic links (one that appears in it is refused)."""
    if not os.path.isabs(path):
        raise BadInputError(f"{path!r} is not an absolute path")
    root = os.open("/", _DIR_FLAGS)
    try:
        return open_beneath(root, path.lstrip("/"), os.O_RDONLY | os.O_DIRECTORY)
    finally:
        os.close(root)


def open_parent(dir_fd: int, rel: str, *, create: bool = False) -> tuple[int, str]:
    """(descriptor of ``rel``'s directory, ``rel``'s last component). ``create`` makes missing
    directories on the way, each one beneath the previous descriptor."""
    parts = relative_parts(rel)
    if not parts:
        raise BadInputError("the path names the directory itself, not an entry in it")
    parent = "/".join(parts[:-1])
    if not create:
        return open_beneath(dir_fd, parent, os.O_RDONLY | os.O_DIRECTORY), parts[-1]
    current = os.dup(dir_fd)
    try:
        for part in parts[:-1]:
            with contextlib.suppress(FileExistsError):
                os.mkdir(part, 0o777, dir_fd=current)
            child = open_beneath(current, part, os.O_RDONLY | os.O_DIRECTORY)
            os.close(current)
            current = child
    except BaseException:
        os.close(current)
        raise
    return current, parts[-1]


@contextlib.contextmanager
def _parent(dir_fd: int, rel: str, *, create: bool = False) -> Generator[tuple[int, str]]:
    fd, name = open_parent(dir_fd, rel, create=create)
    try:
        yield fd, name
    finally:
        os.close(fd)


# ---------------------------------------------------------------------- operations


def read_bytes(
    dir_fd: int,
    rel: str,
    limit: int,
    *,
    check: Callable[[os.stat_result], None] | None = None,
) -> bytes:
    """The content of regular file ``rel`` (at most ``limit`` bytes, else BadInputError).

    ``check`` sees the ``fstat`` of the opened file before a byte is read (e.g. to refuse a
    hard link to a denied file): it judges the file actually opened, not a name."""
    fd = open_beneath(dir_fd, rel, _READ_FLAGS)
    with os.fdopen(fd, "rb") as handle:
        info = os.fstat(handle.fileno())
        if not stat.S_ISREG(info.st_mode):
            kind = "a directory" if stat.S_ISDIR(info.st_mode) else "not a regular file"
            raise BadInputError(f"{rel} is {kind}")
        if check is not None:
            check(info)
        data = handle.read(limit + 1)
    if len(data) > limit:
        raise BadInputError(f"{rel} is over the {limit}-byte limit")
    return data


def write_atomic(
    dir_fd: int,
    rel: str,
    data: bytes,
    *,
    create_parents: bool = False,
    check: Callable[[os.stat_result], None] | None = None,
) -> None:
    """Replace ``rel`` with ``data`` atomically; an existing file keeps its permission bits
    (and owner where we may set it). ``check`` sees the existing file's ``lstat``."""
    with _parent(dir_fd, rel, create=create_parents) as (parent, name):
        try:
            old: os.stat_result | None = os.stat(name, dir_fd=parent, follow_symlinks=False)
        except FileNotFoundError:
            old = None
        if old is not None:
            if stat.S_ISLNK(old.st_mode):
                raise _changed(rel, "it is now a symbolic link")
            if not stat.S_ISREG(old.st_mode):
                raise BadInputError(f"{rel} exists and is not a regular file; not replaced")
            if check is not None:
                check(old)
        tmp, fd = _create_temp(parent, name)
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                if old is not None:
                    os.fchmod(handle.fileno(), stat.S_IMODE(old.st_mode))
                    if (old.st_uid, old.st_gid) != (os.geteuid(), os.getegid()):
                        with contextlib.suppress(PermissionError):
                            os.fchown(handle.fileno(), old.st_uid, old.st_gid)
                os.fsync(handle.fileno())
            # renameat on the same descriptor: a link planted at ``name`` meanwhile is replaced
            # itself (rename never follows the destination), never written through.
            os.rename(tmp, name, src_dir_fd=parent, dst_dir_fd=parent)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp, dir_fd=parent)
            raise
        os.fsync(parent)  # the rename itself survives a crash


def _create_temp(parent: int, name: str) -> tuple[str, int]:
    """A fresh temporary file beside ``name``: O_EXCL|O_NOFOLLOW, so anything already at the
    chosen name (a planted symlink included) makes us choose again, never write through it."""
    for _ in range(_TEMP_ATTEMPTS):
        tmp = f".{name[:100]}.{secrets.token_hex(6)}{TEMP_SUFFIX}"
        try:
            return tmp, os.open(tmp, _CREATE_FLAGS, 0o666, dir_fd=parent)
        except FileExistsError:
            continue
    raise SecurityDenied(
        f"could not create a temporary file beside {name} ({_TEMP_ATTEMPTS} names were taken)",
        hint="remove stray *.astrid-tmp entries from that directory",
    )


def unlink(dir_fd: int, rel: str, *, check: Callable[[os.stat_result], None] | None = None) -> None:
    """Remove the file (or symbolic link itself) ``rel``; never a directory, never a target."""
    with _parent(dir_fd, rel) as (parent, name):
        try:
            info = os.stat(name, dir_fd=parent, follow_symlinks=False)
        except FileNotFoundError:
            raise NotFoundError(f"no such file: {rel}") from None
        if stat.S_ISDIR(info.st_mode):
            raise BadInputError(f"{rel} is a directory; only files are removed")
        if check is not None:
            check(info)
        try:
            os.unlink(name, dir_fd=parent)
        except IsADirectoryError:  # swapped for a directory meanwhile: still not removed
            raise BadInputError(f"{rel} is a directory; only files are removed") from None


def make_dirs(dir_fd: int, rel: str) -> None:
    """``mkdir -p`` beneath ``dir_fd``; an existing symlink on the way is refused."""
    if not relative_parts(rel):
        return
    with _parent(dir_fd, rel, create=True) as (parent, name):
        with contextlib.suppress(FileExistsError):
            os.mkdir(name, 0o777, dir_fd=parent)
        os.close(open_beneath(parent, name, os.O_RDONLY | os.O_DIRECTORY))


def stat_beneath(dir_fd: int, rel: str) -> os.stat_result:
    """The ``fstat`` of what ``rel`` names, reached without following symbolic links."""
    fd = open_beneath(dir_fd, rel, _PATH_FLAGS)
    try:
        info = os.fstat(fd)
    finally:
        os.close(fd)
    if stat.S_ISLNK(info.st_mode):  # O_PATH|O_NOFOLLOW opens the link itself
        raise _changed(rel, "it is now a symbolic link")
    return info


def exists(dir_fd: int, rel: str) -> bool:
    try:
        stat_beneath(dir_fd, rel)
    except NotFoundError:
        return False
    return True


@dataclass(frozen=True)
class DirEntry:
    name: str
    kind: str  # "file", "dir", "link" or "other" (from lstat: a link is never followed)


def list_dir(dir_fd: int, rel: str, limit: int = 100_000) -> list[DirEntry]:
    """The entries of directory ``rel`` (sorted by name, at most ``limit``)."""
    fd = open_beneath(dir_fd, rel, os.O_RDONLY | os.O_DIRECTORY)
    entries: list[DirEntry] = []
    try:
        with os.scandir(fd) as iterator:
            for entry in iterator:
                if entry.is_symlink():
                    kind = "link"
                elif entry.is_dir(follow_symlinks=False):
                    kind = "dir"
                elif entry.is_file(follow_symlinks=False):
                    kind = "file"
                else:
                    kind = "other"
                entries.append(DirEntry(entry.name, kind))
                if len(entries) >= limit:
                    break
    finally:
        os.close(fd)
    return sorted(entries, key=lambda e: e.name)
