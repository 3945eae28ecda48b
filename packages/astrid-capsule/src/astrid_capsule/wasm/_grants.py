"""What a capsule may touch: declared in its manifest AND accepted by the user at install.

The engine only ever sees the intersection (computed by the installer). Paths are workspace-
relative gitwildmatch patterns, or absolute ones for files outside the workspace; hosts are
exact names or ``*.example.com`` suffixes.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import pathspec

__all__ = ["HostGrants"]


@dataclass(frozen=True)
class HostGrants:
    fs_read: tuple[str, ...] = ()
    fs_write: tuple[str, ...] = ()
    net: tuple[str, ...] = ()
    kv: bool = False
    config: Mapping[str, str] = field(default_factory=dict[str, str])
    # Only for tests against servers on 127.0.0.1: the private-address filter stays on
    # otherwise, whatever the manifest says.
    allow_private_network: bool = False

    def can_read(self, relative: str) -> bool:
        return _matches(_inside(self.fs_read + self.fs_write), relative)

    def can_read_absolute(self, path: str) -> bool:
        """Whether an absolute entry (``/home/user/.gitconfig``, a glob) grants ``path``."""
        return _matches(_outside(self.fs_read + self.fs_write), path.lstrip("/"))

    def can_write_absolute(self, path: str) -> bool:
        return _matches(_outside(self.fs_write), path.lstrip("/"))

    def can_list(self, relative: str) -> bool:
        """Whether the folder ``relative`` may be listed: it is readable itself, or a granted
        pattern names something inside it (``notes/**`` lets a capsule list ``notes``)."""
        if self.can_read(relative):
            return True
        inside = f"{relative}/" if relative else ""
        return any(
            pattern.startswith(inside) and not pattern.startswith("!")
            for pattern in _inside(self.fs_read + self.fs_write)
        )

    def visible(self, relative: str, names: Iterable[str]) -> list[str]:
        """The entries of the folder ``relative`` a listing shows: all of them when the folder
        is readable, else only those the capsule may read or list (names it may not touch are
        never disclosed)."""
        if self.can_read(relative):
            return list(names)
        prefix = f"{relative}/" if relative else ""
        return [n for n in names if self.can_read(prefix + n) or self.can_list(prefix + n)]

    def can_write(self, relative: str) -> bool:
        return _matches(_inside(self.fs_write), relative)

    def can_reach(self, host: str) -> bool:
        host = host.lower().rstrip(".")
        for allowed in self.net:
            allowed = allowed.lower().rstrip(".")
            if allowed.startswith("*.") and host.endswith(allowed[1:]) and host != allowed[2:]:
                return True
            if host == allowed:
                return True
        return False


def _inside(patterns: tuple[str, ...]) -> tuple[str, ...]:
    """Workspace patterns (an absolute entry is matched against absolute paths only)."""
    return tuple(p for p in patterns if not p.startswith("/"))


def _outside(patterns: tuple[str, ...]) -> tuple[str, ...]:
    """Absolute entries, anchored at ``/`` (gitwildmatch: a leading slash anchors)."""
    return tuple(p for p in patterns if p.startswith("/"))


def _matches(patterns: tuple[str, ...], relative: str) -> bool:
    if not patterns:
        return False
    spec = pathspec.PathSpec.from_lines("gitignore", patterns)
    return spec.match_file(relative)
