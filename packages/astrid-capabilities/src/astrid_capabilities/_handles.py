"""Opaque directory and file handles (as in seed 003, for VFS-style access).

A handle is only a random UUID. The canonical path and the permissions it carries are held
host-side in a ``HandleTable``; guest code that holds a handle can ask for a child of a granted
directory with a subset of its permissions, but it can never name a path it was not granted:
child names are single, checked segments, and an unknown or revoked handle resolves to nothing.
"""

from __future__ import annotations

import posixpath
import uuid
from collections.abc import Iterable
from dataclasses import dataclass

from astrid_core import BadInputError, CapabilityDenied, Permission

from ._pattern import check_resource_uri

__all__ = ["DirHandle", "FileHandle", "Handle", "HandleTable"]


@dataclass(frozen=True, slots=True)
class DirHandle:
    id: uuid.UUID

    def __str__(self) -> str:
        return str(self.id)


@dataclass(frozen=True, slots=True)
class FileHandle:
    id: uuid.UUID

    def __str__(self) -> str:
        return str(self.id)


Handle = DirHandle | FileHandle


@dataclass(frozen=True, slots=True)
class _Grant:
    path: str
    permissions: frozenset[Permission]
    parent: uuid.UUID | None
    is_dir: bool


def _canonical_path(path: str) -> str:
    if not isinstance(path, str) or not path.startswith("/") or path.startswith("//"):  # pyright: ignore[reportUnnecessaryIsInstance]
        raise BadInputError(f"handle path {path!r} must be an absolute path")
    if posixpath.normpath(path) != path:
        raise BadInputError(
            f"handle path {path!r} is not canonical (no '.', '..', '//' or trailing '/')",
            hint="resolve the path (symlinks and '..') before granting a handle",
        )
    check_resource_uri(f"file://{path}")  # same NUL / encoding / look-alike rules as patterns
    return path


class HandleTable:
    """Host-side map from opaque handles to canonical paths and permissions."""

    def __init__(self) -> None:
        self._grants: dict[uuid.UUID, _Grant] = {}

    def grant_dir(self, path: str, permissions: Iterable[Permission]) -> DirHandle:
        handle = DirHandle(uuid.uuid4())
        self._grants[handle.id] = _Grant(_canonical_path(path), frozenset(permissions), None, True)
        return handle

    def grant_file(self, path: str, permissions: Iterable[Permission]) -> FileHandle:
        handle = FileHandle(uuid.uuid4())
        self._grants[handle.id] = _Grant(_canonical_path(path), frozenset(permissions), None, False)
        return handle

    def _grant(self, handle: Handle) -> _Grant:
        grant = self._grants.get(handle.id)
        if grant is None:
            raise CapabilityDenied(f"handle {handle} is unknown or was revoked")
        if grant.is_dir != isinstance(handle, DirHandle):
            raise CapabilityDenied(f"handle {handle} is not a {type(handle).__name__}")
        return grant

    def _child(
        self, parent: DirHandle, name: str, permissions: Iterable[Permission], is_dir: bool
    ) -> _Grant:
        grant = self._grant(parent)
        if not isinstance(name, str) or not name or "/" in name or name in (".", ".."):  # pyright: ignore[reportUnnecessaryIsInstance]
            raise BadInputError(f"child name {name!r} must be one path segment, not '.' or '..'")
        wanted = frozenset(permissions)
        extra = wanted - grant.permissions
        if extra:
            raise CapabilityDenied(
                f"handle {parent} does not hold {sorted(p.value for p in extra)}",
                hint="a child handle can only carry a subset of its directory's permissions",
            )
        path = "/" + name if grant.path == "/" else f"{grant.path}/{name}"
        return _Grant(_canonical_path(path), wanted, parent.id, is_dir)

    def open_file(
        self, parent: DirHandle, name: str, permissions: Iterable[Permission]
    ) -> FileHandle:
        grant = self._child(parent, name, permissions, is_dir=False)
        handle = FileHandle(uuid.uuid4())
        self._grants[handle.id] = grant
        return handle

    def open_dir(
        self, parent: DirHandle, name: str, permissions: Iterable[Permission]
    ) -> DirHandle:
        grant = self._child(parent, name, permissions, is_dir=True)
        handle = DirHandle(uuid.uuid4())
        self._grants[handle.id] = grant
        return handle

    def resolve(self, handle: Handle, permission: Permission) -> str:
        """The canonical path behind ``handle`` if it holds ``permission``; else raise."""
        grant = self._grant(handle)
        if permission not in grant.permissions:
            raise CapabilityDenied(f"handle {handle} does not hold {permission.value}")
        return grant.path

    def permissions(self, handle: Handle) -> frozenset[Permission]:
        return self._grant(handle).permissions

    def revoke(self, handle: Handle) -> int:
        """Forget a handle and every handle opened through it; returns how many."""
        doomed = {handle.id}
        changed = True
        while changed:
            changed = False
            for key, grant in self._grants.items():
                if grant.parent in doomed and key not in doomed:
                    doomed.add(key)
                    changed = True
        removed = 0
        for key in doomed:
            removed += self._grants.pop(key, None) is not None
        return removed
