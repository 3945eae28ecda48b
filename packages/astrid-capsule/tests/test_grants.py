"""Folder listings: a folder with something granted inside may be listed, and a listing never
discloses the name of an entry the capsule may not touch."""

from __future__ import annotations

from astrid_capsule.wasm import HostGrants


def test_a_folder_with_a_grant_inside_may_be_listed() -> None:
    grants = HostGrants(fs_read=("notes/**",))
    assert not grants.can_read("notes")  # the folder itself is not a file the grant names
    assert grants.can_list("notes")
    assert grants.can_list("")  # the workspace root, to find notes/
    assert not grants.can_list("src")
    assert not grants.can_list("notes-old")  # a prefix of the name is not the folder
    assert not grants.can_list("x/notes")  # nor a folder of that name elsewhere


def test_a_negated_pattern_grants_no_listing() -> None:
    grants = HostGrants(fs_read=("!secret/**",))
    assert not grants.can_list("secret")


def test_a_listing_shows_only_what_may_be_read_or_listed() -> None:
    grants = HostGrants(fs_read=("notes/*.md", "docs/guide/**"))
    assert grants.visible("notes", ["a.md", "b.txt", "c.md"]) == ["a.md", "c.md"]
    assert grants.visible("", ["notes", "docs", "secret.txt", ".env"]) == ["notes", "docs"]
    assert grants.visible("docs", ["guide", "internal"]) == ["guide"]


def test_a_readable_folder_lists_everything_in_it() -> None:
    grants = HostGrants(fs_read=("notes/**",))
    assert grants.visible("notes", ["a.md", "sub", "b.txt"]) == ["a.md", "sub", "b.txt"]
    assert grants.visible("notes/sub", ["x"]) == ["x"]


def test_write_grants_count_for_listing_too() -> None:
    grants = HostGrants(fs_write=("out/**",))
    assert grants.can_list("out")
    assert grants.visible("", ["out", "src"]) == ["out"]
