"""Protected paths: what in a writable tree makes the host run code later, kept out of reach.

A `.git` directory, `.envrc`, `.vscode`, `.github/workflows`, `.husky`... in the workspace are
read by the user's own tools on the host — git runs `core.fsmonitor`, hooks and filters from
`.git/config`, direnv loads `.envrc`, an editor runs `.vscode/tasks.json`. A sandboxed command
that could write them would run code outside the sandbox at the user's next `git status`.

Two layers, because a bind mount can only cover what exists:

1. **Existing** protected paths are bound read-only into the sandbox, each one **whole**
   (`.git` entirely, not just `.git/hooks` and `.git/config`), and a `.git` file's `gitdir:`
   and that directory's `commondir` too when they lie in a writable tree. A mount point cannot
   be renamed, removed or replaced from inside (EBUSY), so `mv .git x && cp -r x .git` fails
   and nothing under `.git` (hooks, config, commondir) can be created or changed.
2. **Missing** ones cannot be mounted without creating them on the host. `ProtectedSnapshot`
   records, before the command, the identity (device, inode, type) and a digest (every entry's
   metadata including ctime, which no unprivileged process can set, plus a SHA-256 of each
   small file's content) of each protected path; after the command it compares, and whatever
   was created or changed is **moved aside** (never deleted) into
   ``.astrid/quarantine/<time>-<random>/`` under a name no tool acts on (``dot-git``,
   ``dot-envrc``...), and reported. The sandbox's whole process tree is dead by then (pid
   namespace), so nothing can re-plant it between the check and the move.

Every operation here works beneath directory descriptors without following symbolic links:
a planted link cannot turn the snapshot or the move toward anything outside the tree.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import hashlib
import os
import re
import secrets
import stat
import time
from collections.abc import Generator, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from astrid_core import AstridError

from . import fs

__all__ = ["PROTECTED_PATHS", "ProtectedSnapshot", "Quarantined", "protected_bind_targets"]

# Relative to each writable tree (the workspace, declared write paths). Each makes the host
# run code or change behaviour later: git (hooks, config, fsmonitor, commondir, gitdir:),
# submodules, Astrid's own config, direnv, editor tasks, CI, husky and pre-commit hooks.
PROTECTED_PATHS = (
    ".git",
    ".gitmodules",
    ".astrid",
    ".envrc",
    ".vscode",
    ".github/workflows",
    ".husky",
    ".pre-commit-config.yaml",
)
QUARANTINE_DIR = ".astrid/quarantine"
# Inside an existing .git only these decide what git runs; objects, refs and the index do not
# (and hashing them would cost every command seconds in a large repository).
_GIT_DIR_PARTS = ("config", "config.worktree", "commondir", "hooks", "info")
_MAX_ENTRIES = 10_000
_MAX_SUBDIRECTORIES = 512  # a folder of more repositories: the first 512, by name
_MAX_HASHED_FILE = 1 << 20
_NOFOLLOW_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_RENAME_NOREPLACE = 1


@dataclass(frozen=True)
class Quarantined:
    """A protected path a confined command created or changed, and where it was moved."""

    path: str  # where it was found (absolute)
    moved_to: str  # where it is now (absolute); "" if it could not be moved
    change: str  # "created" or "changed"
    error: str = ""  # why it could not be moved

    def describe(self) -> str:
        if self.moved_to:
            return f"{self.path} ({self.change}) was moved to {self.moved_to}"
        return f"{self.path} ({self.change}) could NOT be moved aside: {self.error}"


# ------------------------------------------------------------------ bind targets (layer 1)


def protected_bind_targets(writable_roots: Iterable[str]) -> list[str]:
    """Real paths to bind read-only over the writable trees: each existing protected path
    (followed to its target when it is a symbolic link into a writable tree), and the git
    directories a `.git` file names (``gitdir:``, then ``commondir``) in a writable tree."""
    roots = [os.path.realpath(r) for r in writable_roots]
    targets: list[str] = []

    def inside(path: str) -> bool:
        return any(os.path.commonpath([path, r]) == r for r in roots)

    def add(path: str) -> None:
        if inside(path) and os.path.exists(path) and path not in targets:
            targets.append(path)

    for root in roots:
        with _opened_root(root) as fd:
            names = _names(fd) if fd is not None else []
        for name in names:
            path = os.path.join(root, name)
            if not os.path.lexists(path):
                continue
            target = os.path.realpath(path)
            add(target)
            if os.path.basename(name) != ".git":
                continue
            git_dirs = _linked_git_dirs(target) if os.path.isfile(target) else [target]
            for git_dir in git_dirs:
                add(git_dir)
                # What git follows out of it: hooks or config as symbolic links, and the
                # hooks directory its config names (husky's `.husky`, `scripts/hooks`).
                for part in _GIT_DIR_PARTS:
                    if os.path.islink(os.path.join(git_dir, part)):
                        add(os.path.realpath(os.path.join(git_dir, part)))
                hooks = _hooks_path(git_dir)
                if hooks:
                    add(os.path.realpath(os.path.join(os.path.dirname(path), hooks)))
    return targets


_HOOKS_PATH = re.compile(rb"^\s*hookspath\s*=\s*(.+?)\s*$", re.IGNORECASE | re.MULTILINE)


def _hooks_path(git_dir: str) -> str | None:
    """`core.hooksPath` as the repository's own config sets it (quotes stripped)."""
    try:
        with open(os.path.join(git_dir, "config"), "rb") as handle:
            found = _HOOKS_PATH.findall(handle.read(1 << 20))
    except OSError:
        return None
    if not found:
        return None
    value = found[-1].decode(errors="replace").strip('"')
    return os.path.expanduser(value) if value else None


def _linked_git_dirs(git_file: str) -> list[str]:
    """The directory a `.git` file's ``gitdir:`` names, and the one its ``commondir`` names."""
    try:
        with open(git_file, "rb") as handle:
            line = handle.read(4096).split(b"\n", 1)[0].decode(errors="replace")
    except OSError:
        return []
    if not line.startswith("gitdir:"):
        return []
    git_dir = os.path.realpath(os.path.join(os.path.dirname(git_file), line[7:].strip()))
    found = [git_dir]
    with contextlib.suppress(OSError):
        with open(os.path.join(git_dir, "commondir"), "rb") as handle:
            common = handle.read(4096).split(b"\n", 1)[0].decode(errors="replace").strip()
        if common:
            found.append(os.path.realpath(os.path.join(git_dir, common)))
    return found


# ------------------------------------------------------------------ snapshot (layer 2)

_Identity = tuple[int, int, int]  # (device, inode, file type)
# (identity of each component that exists, digest of where the walk ended or None if the
# last component does not exist)
_State = tuple[tuple[_Identity, ...], str | None]
_MISSING: _State = ((), None)


class ProtectedSnapshot:
    """The protected paths of some writable trees as they are now; `settle` after the command
    moves aside whatever was created or changed."""

    def __init__(self, roots: Iterable[str]) -> None:
        self.roots = tuple(dict.fromkeys(os.path.realpath(r) for r in roots))
        self._before: dict[tuple[str, str], _State] = {}
        self._subdirectories: dict[str, set[str]] = {}
        for root in self.roots:
            with _opened_root(root) as fd:
                if fd is None:
                    continue
                self._subdirectories[root] = set(_subdirectories(fd, limit=None))
                for name in _names(fd):
                    self._before[root, name] = _state(fd, name)

    def settle(self) -> tuple[Quarantined, ...]:
        """Compare with now; move aside each protected path created or changed since."""
        found: list[Quarantined] = []
        for root in self.roots:
            with _opened_root(root) as fd:
                if fd is None:
                    continue
                changed: list[tuple[str, str]] = []
                # A subdirectory the command made is checked even beyond the first 512 by
                # name: else 512 new folders named `0..` would hide a new `zzz/.git`.
                seen = self._subdirectories.get(root, set())
                fresh = [d for d in _subdirectories(fd, limit=None) if d not in seen]
                names = dict.fromkeys(
                    [
                        *(n for r, n in self._before if r == root),
                        *_names(fd),
                        *(f"{d}/{p}" for d in fresh for p in PROTECTED_PATHS),
                    ]
                )
                for name in names:
                    before = self._before.get((root, name), _MISSING)
                    after = _state(fd, name)
                    if after[1] is None or after == before:
                        continue  # absent now, or exactly as it was
                    unit = _unit(name, before, after)
                    change = "created" if before[1] is None or unit != name else "changed"
                    if all(u != unit for u, _ in changed):
                        changed.append((unit, change))
                if changed:
                    found += _quarantine(fd, root, changed)
        return tuple(found)


@contextlib.contextmanager
def _opened_root(root: str) -> Generator[int | None]:
    try:
        fd: int | None = fs.open_root(root)
    except (OSError, AstridError):  # gone, not absolute, or a symbolic link on the way
        fd = None
    try:
        yield fd
    finally:
        if fd is not None:
            os.close(fd)


def _subdirectories(root_fd: int, limit: int | None = _MAX_SUBDIRECTORIES) -> list[str]:
    """The real directories directly in a tree (a folder of repositories), except the
    protected ones themselves; symbolic links are not followed."""
    skip = {p.split("/")[0] for p in PROTECTED_PATHS}
    found: list[str] = []
    with contextlib.suppress(OSError), os.scandir(root_fd) as entries:
        for entry in entries:
            if entry.name not in skip and entry.is_dir(follow_symlinks=False):
                found.append(entry.name)
    return sorted(found)[:limit]


def _names(root_fd: int) -> list[str]:
    """The protected paths of a tree, relative to it: at its root and one level down."""
    names: list[str] = list(PROTECTED_PATHS)
    for sub in _subdirectories(root_fd):
        names += [f"{sub}/{p}" for p in PROTECTED_PATHS]
    return names


def _identity(info: os.stat_result) -> _Identity:
    return (info.st_dev, info.st_ino, stat.S_IFMT(info.st_mode))


def _state(root_fd: int, name: str) -> _State:
    """Identity of each existing component of `name` beneath `root_fd`, and the digest of
    the last one (None when it does not exist). A component that is not a real directory
    (a symbolic link, a file) ends the walk: its identity and digest are the state."""
    parts = name.split("/")
    identities: list[_Identity] = []
    current = os.dup(root_fd)
    try:
        for i, part in enumerate(parts):
            try:
                info = os.stat(part, dir_fd=current, follow_symlinks=False)
            except FileNotFoundError:
                return tuple(identities), None
            identities.append(_identity(info))
            if i == len(parts) - 1 or not stat.S_ISDIR(info.st_mode):
                return tuple(identities), _digest(
                    current, part, info, git=part == ".git" and i == len(parts) - 1
                )
            child = os.open(part, _NOFOLLOW_DIR, dir_fd=current)
            os.close(current)
            current = child
    except OSError as exc:  # unreadable or swapped meanwhile: a state of its own
        return tuple(identities), f"unreadable: errno {exc.errno}"
    finally:
        os.close(current)
    return tuple(identities), None


def _unit(name: str, before: _State, after: _State) -> str:
    """What to move: the shallowest component of the protected path that is new or not what
    it was (for ``sub/.git``, never ``sub`` itself: a new project keeps its files)."""
    parts = name.split("/")
    first = 0 if name in PROTECTED_PATHS else 1
    for i, identity in enumerate(after[0]):
        if i >= first and (i >= len(before[0]) or before[0][i] != identity):
            return "/".join(parts[: i + 1])
    return "/".join(parts[: len(after[0])])


def _digest(dir_fd: int, name: str, info: os.stat_result, *, git: bool) -> str:
    h = hashlib.sha256()
    budget = [_MAX_ENTRIES]
    if stat.S_ISDIR(info.st_mode):
        fd = os.open(name, _NOFOLLOW_DIR, dir_fd=dir_fd)
        try:
            if git:
                for part in _GIT_DIR_PARTS:
                    try:
                        sub = os.stat(part, dir_fd=fd, follow_symlinks=False)
                    except FileNotFoundError:
                        h.update(f"{part}:-\n".encode())
                        continue
                    _entry(h, fd, part, part, sub, budget)
            else:
                _tree(h, fd, "", budget)
        finally:
            os.close(fd)
    else:
        _entry(h, dir_fd, name, name, info, budget)
    return h.hexdigest()


def _entry(
    h: Any, dir_fd: int, name: str, rel: str, info: os.stat_result, budget: list[int]
) -> None:
    budget[0] -= 1
    if budget[0] < 0:
        return
    h.update(
        f"{rel}\0{info.st_mode:o}\0{info.st_ino}\0{info.st_size}\0{info.st_mtime_ns}\0"
        f"{info.st_ctime_ns}\0{info.st_nlink}\n".encode(errors="surrogateescape")
    )
    if stat.S_ISLNK(info.st_mode):
        h.update(os.fsencode(os.readlink(name, dir_fd=dir_fd)) + b"\n")
    elif stat.S_ISREG(info.st_mode) and info.st_size <= _MAX_HASHED_FILE:
        fd = os.open(
            name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=dir_fd
        )
        try:
            h.update(hashlib.sha256(os.read(fd, _MAX_HASHED_FILE + 1)).digest())
        finally:
            os.close(fd)
    elif stat.S_ISDIR(info.st_mode):
        fd = os.open(name, _NOFOLLOW_DIR, dir_fd=dir_fd)
        try:
            _tree(h, fd, rel, budget)
        finally:
            os.close(fd)


def _tree(h: Any, fd: int, rel: str, budget: list[int]) -> None:
    with os.scandir(fd) as entries:
        listed = sorted(entries, key=lambda e: e.name)
    for entry in listed:
        if budget[0] <= 0:
            h.update(b"...truncated\n")  # ctime of the entries seen still tells a change
            return
        child = f"{rel}/{entry.name}" if rel else entry.name
        _entry(h, fd, entry.name, child, entry.stat(follow_symlinks=False), budget)


# ------------------------------------------------------------------ quarantine


def _rename_noreplace(src_fd: int, src: str, dst_fd: int, dst: str) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    renameat2 = getattr(libc, "renameat2", None)
    if renameat2 is not None:
        rc = renameat2(
            ctypes.c_int(src_fd), os.fsencode(src), ctypes.c_int(dst_fd), os.fsencode(dst),
            ctypes.c_uint(_RENAME_NOREPLACE),
        )  # fmt: skip
        if rc == 0:
            return
        err = ctypes.get_errno()
        if err not in (errno.ENOSYS, errno.EINVAL):
            raise OSError(err, os.strerror(err), dst)
    # No renameat2: the destination is a fresh directory of our own with a random name.
    if os.path.lexists(os.path.join(f"/proc/self/fd/{dst_fd}", dst)):
        raise FileExistsError(errno.EEXIST, "destination exists", dst)
    os.rename(src, dst, src_dir_fd=src_fd, dst_dir_fd=dst_fd)


def _inert(unit: str) -> str:
    """A name no tool acts on: ``.git`` -> ``dot-git``, ``.github/workflows`` ->
    ``dot-github--workflows``."""
    return "--".join(("dot-" + p[1:]) if p.startswith(".") else p for p in unit.split("/"))


def _quarantine(root_fd: int, root: str, changed: Sequence[tuple[str, str]]) -> list[Quarantined]:
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()) + "-" + secrets.token_hex(3)
    results: list[Quarantined] = []
    pending = list(changed)
    held: list[tuple[str, str, str]] = []  # (unit, change, temporary name at the root)
    # A planted .astrid goes first, to a temporary name: the quarantine lives inside .astrid.
    for unit, change in [c for c in pending if c[0] == ".astrid"]:
        temporary = f".astrid-quarantined-{secrets.token_hex(6)}"
        try:
            _rename_noreplace(root_fd, unit, root_fd, temporary)
            held.append((unit, change, temporary))
        except OSError as exc:
            results.append(Quarantined(os.path.join(root, unit), "", change, str(exc)))
        pending.remove((unit, change))
    try:
        fs.make_dirs(root_fd, f"{QUARANTINE_DIR}/{stamp}")
        where = f"{QUARANTINE_DIR}/{stamp}"
    except (OSError, fs.PathChanged):
        where = f".astrid-quarantine-{stamp}"  # .astrid is not a plain directory: beside it
        os.mkdir(where, 0o700, dir_fd=root_fd)
    dest_fd = fs.open_beneath(root_fd, where, os.O_RDONLY | os.O_DIRECTORY)
    try:
        moves = [(t, u, c) for u, c, t in held] + [(u, u, c) for u, c in pending]
        for source, unit, change in moves:
            found = os.path.join(root, unit)
            try:
                parent_fd, last = fs.open_parent(root_fd, source)
                try:
                    _rename_noreplace(parent_fd, last, dest_fd, _inert(unit))
                finally:
                    os.close(parent_fd)
                moved = os.path.join(root, where, _inert(unit))
                results.append(Quarantined(found, moved, change))
            except (OSError, fs.PathChanged) as exc:
                results.append(Quarantined(found, "", change, str(exc)))
        os.fsync(dest_fd)
        os.fsync(root_fd)
    finally:
        os.close(dest_fd)
    return results
