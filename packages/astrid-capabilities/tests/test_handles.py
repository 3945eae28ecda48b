from __future__ import annotations

import uuid

import pytest

from astrid_capabilities import FileHandle, HandleTable, Permission
from astrid_core import BadInputError, CapabilityDenied

R, W = Permission.READ, Permission.WRITE


def test_handles_are_opaque_and_resolve_host_side() -> None:
    table = HandleTable()
    home = table.grant_dir("/home/me", [R, W])
    assert "/home" not in repr(home)
    assert "/home" not in str(home)
    notes = table.open_file(home, "notes.txt", [R])
    assert table.resolve(notes, R) == "/home/me/notes.txt"
    assert table.permissions(notes) == {R}
    with pytest.raises(CapabilityDenied, match="does not hold write"):
        table.resolve(notes, W)


def test_child_cannot_gain_permissions_or_escape() -> None:
    table = HandleTable()
    docs = table.grant_dir("/home/me/docs", [R])
    with pytest.raises(CapabilityDenied, match=r"does not hold \['write'\]") as info:
        table.open_file(docs, "a.txt", [R, W])
    assert "subset" in info.value.hint
    for name in ("..", ".", "a/b", "", "../../etc/passwd"):
        with pytest.raises(BadInputError, match="one path segment"):
            table.open_dir(docs, name, [R])
    for name in ("%2E%2E", "a\x00b", "\uff0e\uff0e"):
        with pytest.raises(BadInputError):
            table.open_file(docs, name, [R])


def test_forged_and_revoked_handles_resolve_to_nothing() -> None:
    table = HandleTable()
    root = table.grant_dir("/srv", [R])
    sub = table.open_dir(root, "data", [R])
    leaf = table.open_file(sub, "x", [R])
    with pytest.raises(CapabilityDenied, match="unknown or was revoked"):
        table.resolve(FileHandle(uuid.uuid4()), R)
    with pytest.raises(CapabilityDenied, match="is not a FileHandle"):
        table.resolve(FileHandle(sub.id), R)  # a directory's id dressed up as a file handle
    assert table.revoke(root) == 3
    with pytest.raises(CapabilityDenied, match="unknown or was revoked"):
        table.resolve(leaf, R)


@pytest.mark.parametrize("path", ["relative", "/a/../b", "/a/", "//a", "/a/./b", "/a//b"])
def test_grant_requires_canonical_absolute_path(path: str) -> None:
    with pytest.raises(BadInputError, match=r"absolute|canonical"):
        HandleTable().grant_dir(path, [R])


def test_root_directory_children() -> None:
    table = HandleTable()
    root = table.grant_dir("/", [R])
    assert table.resolve(table.open_file(root, "etc", [R]), R) == "/etc"
