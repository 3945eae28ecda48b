"""Content hashing and safe copying of capsule directory trees."""

from __future__ import annotations

import os
import shutil
import stat
from pathlib import Path

from astrid_crypto import ContentHash, canonical_json, content_hash, hash_file

from .manifest import ManifestError

__all__ = ["tree_hash", "copy_tree", "SIGNATURE_NAME", "MAX_CAPSULE_BYTES", "MAX_CAPSULE_FILES"]

SIGNATURE_NAME = "SIGNATURE.json"
MAX_CAPSULE_BYTES = 256 * 1024 * 1024
MAX_CAPSULE_FILES = 10_000


def _files(root: Path) -> list[Path]:
    found: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        dirnames.sort()
        for name in sorted(filenames):
            path = Path(dirpath) / name
            mode = path.lstat().st_mode
            if stat.S_ISLNK(mode):
                # A symlink could point anywhere after install; capsules ship plain files.
                raise ManifestError(
                    [f"{path.relative_to(root)}: symlinks are not allowed in a capsule"]
                )
            if not stat.S_ISREG(mode):
                raise ManifestError([f"{path.relative_to(root)}: only regular files are allowed"])
            if path.relative_to(root).as_posix() != SIGNATURE_NAME:
                found.append(path)
        for name in dirnames:
            if (Path(dirpath) / name).is_symlink():
                raise ManifestError([f"{name}: symlinked directories are not allowed in a capsule"])
    if len(found) > MAX_CAPSULE_FILES:
        raise ManifestError([f"capsule has {len(found)} files; the limit is {MAX_CAPSULE_FILES}"])
    return found


def tree_hash(root: Path) -> ContentHash:
    """BLAKE3 of the canonical list of (relative path, file hash): the capsule's identity."""
    entries = [[p.relative_to(root).as_posix(), hash_file(p).hex] for p in _files(root)]
    return content_hash(canonical_json(entries))


def copy_tree(source: Path, destination: Path) -> None:
    """Copy regular files only (refusing links and devices) and enforce the size limit."""
    total = 0
    for path in _files(source):
        total += path.stat().st_size
        if total > MAX_CAPSULE_BYTES:
            raise ManifestError([f"capsule is larger than {MAX_CAPSULE_BYTES} bytes"])
        target = destination / path.relative_to(source)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, target)
    signature = source / SIGNATURE_NAME
    if signature.is_file() and not signature.is_symlink():
        shutil.copyfile(signature, destination / SIGNATURE_NAME)
