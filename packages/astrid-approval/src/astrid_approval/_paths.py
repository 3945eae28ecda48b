"""Path normalization: what a path *really* names, before any policy looks at it.

``~`` is expanded, relative paths are joined to the workspace, symlinks are resolved for the
part of the path that exists, and ``..`` is resolved for the rest — so a file that does not
exist yet is judged by where it would be created. Look-alike characters (Unicode that changes
under NFKC, invisible format characters, bidi overrides) do not bypass anything at the OS
level, but they can fool the human reading the approval prompt, so they are flagged and such a
path is never auto-allowed.
"""

from __future__ import annotations

import os
import re
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path

from astrid_core import BadInputError

__all__ = ["NormalizedPath", "normalize_path", "is_within", "is_within_resolved"]


@dataclass(frozen=True)
class NormalizedPath:
    path: str
    warnings: tuple[str, ...] = field(default_factory=tuple)


_ASCII_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_INVISIBLE = ("path contains invisible or control characters",)


def _warnings(raw: str) -> tuple[str, ...]:
    if raw.isascii():  # the common case: no look-alikes; of Cc/Cf, ASCII has only Cc
        return _INVISIBLE if _ASCII_CONTROL.search(raw) else ()
    found: list[str] = []
    if any(unicodedata.category(c) in ("Cf", "Cc") for c in raw):
        found.append("path contains invisible or control characters")
    if unicodedata.normalize("NFKC", raw) != raw:
        found.append("path contains look-alike (compatibility) characters")
    elif any(ord(c) > 127 for c in raw):
        found.append("path contains non-ASCII characters; check it carefully")
    return tuple(found)


def normalize_path(
    raw: str, workspace: str | Path, home: str | Path | None = None
) -> NormalizedPath:
    if not raw or "\x00" in raw:
        raise BadInputError(
            f"invalid path {raw!r}", hint="paths must be non-empty without NUL bytes"
        )
    home_dir = str(home) if home is not None else os.path.expanduser("~")
    text = raw
    if text == "~" or text.startswith("~/"):
        text = home_dir + text[1:]
    candidate = text if os.path.isabs(text) else os.path.join(str(workspace), text)
    # realpath resolves symlinks of every existing component and '..' lexically afterwards:
    # "/ws/link-to-etc/../etc/passwd" and "/ws/new/../../etc/x" both come out as what they name.
    resolved = os.path.realpath(candidate)
    return NormalizedPath(resolved, _warnings(raw))


def is_within(path: str, root: str) -> bool:
    """True when the normalized ``path`` is ``root`` or below it (``root`` is resolved first)."""
    return is_within_resolved(path, os.path.realpath(root))


def is_within_resolved(path: str, resolved_root: str) -> bool:
    """``is_within`` for a root that is already resolved (the policy resolves its roots once)."""
    return path == resolved_root or path.startswith(resolved_root.rstrip("/") + "/")
