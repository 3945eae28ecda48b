from __future__ import annotations

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from astrid_capabilities import ResourcePattern, check_resource_uri, escape_glob
from astrid_core import BadInputError


@pytest.mark.parametrize(
    ("pattern", "uri", "expected"),
    [
        ("mcp://filesystem/read_file", "mcp://filesystem/read_file", True),
        ("mcp://filesystem/read_file", "mcp://filesystem/read_files", False),
        ("mcp://filesystem/*", "mcp://filesystem/write_file", True),
        ("mcp://filesystem/*", "mcp://other/write_file", False),
        ("mcp://*/read_*", "mcp://github/read_issue", True),
        ("mcp://*/read_*", "mcp://github/write_issue", False),
        ("file:///home/user/**", "file:///home/user/a/b/c.txt", True),
        ("file:///home/user/**", "file:///home/user", False),
        ("file:///home/user/**", "file:///home/username/x", False),
        ("file:///home/*/notes", "file:///home/ann/notes", True),
        ("file:///home/*/notes", "file:///home/ann/x/notes", False),
        ("file:///tmp/*.txt", "file:///tmp/a.txt", True),
        # gitignore would let "a.txt" cover "a.txt/x"; a capability must not.
        ("file:///tmp/*.txt", "file:///tmp/a.txt/x", False),
        ("file:///tmp/a", "file:///tmp/a/b", False),
        ("file:///**", "file:///etc/passwd", True),
        ("file:///**", "mcp://x/y", False),
        ("net://*.example.com:443", "net://api.example.com:443", True),
        ("net://*.example.com:443", "net://api.example.com:80", False),
        # "rooted" file:///x and authority file://x never cover each other
        ("file://*", "file:///etc", False),
        ("file:///x?", "file:///xy", True),
        ("file:///x?", "file:///x/", False),
    ],
)
def test_matching(pattern: str, uri: str, expected: bool) -> None:
    assert ResourcePattern(pattern).matches(uri) is expected


def test_exact_pattern_does_no_glob_work() -> None:
    pattern = ResourcePattern("mcp://filesystem/read_file")
    assert pattern.exact
    assert pattern.wildcard_count == 0
    assert pattern.bucket == "mcp://filesystem/read_file"


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("file:///tmp/../etc/passwd", "'..' segment"),
        ("file:///tmp/./x", "'.' segment"),
        ("file:///tmp//x", "empty segment"),
        ("file:///tmp/x/", "empty segment"),
        ("file:///tmp/\x00x", "NUL"),
        ("file:///tmp/\nx", "control character"),
        ("file:///tmp/%2e%2e/etc", "lowercase hex"),
        ("file:///tmp/%2E%2E/etc", "encodes '.'"),
        ("file:///tmp%2Fetc", "separator"),
        ("file:///tmp%5Cetc", "separator"),
        ("file:///tmp/%C0%AE%C0%AE/etc", "overlong"),
        ("file:///tmp/%E0%80%AE", "overlong"),
        ("file:///tmp/%252E%252E", "separator"),
        ("file:///tmp/100%", "not followed by two hex digits"),
        ("file:///tmp/%41", "encodes 'A'"),
        ("file:///tmp/\uff0e\uff0e/etc", "look-alike"),
        ("/tmp/x", "scheme"),
        ("FILE:///tmp", "scheme"),
        ("mcp://", "empty segment"),
        ("file:///tmp/\ud800", "surrogate"),
    ],
)
def test_hostile_uris_rejected_at_match_time(text: str, problem: str) -> None:
    with pytest.raises(BadInputError) as info:
        check_resource_uri(text)
    assert problem in info.value.message
    assert not ResourcePattern("file:///**").matches(text)
    assert not ResourcePattern("mcp://**").matches(text)


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("file:///tmp/../**", "'..' segment"),
        ("file:///tmp/%2e%2e/**", "lowercase hex"),
        ("file:///tmp/%2F/*", "separator"),
        ("file:///tmp//*", "empty segment"),
        ("file:///tmp/x[!a]y", "character classes"),
        ("file:///tmp/\\q", "not an escape"),
        ("file:///tmp/x\\", "lone backslash"),
        ("file:///tmp/* ", "whitespace"),
        ("file:///tmp/\x00*", "NUL"),
        ("*://x", "scheme"),
    ],
)
def test_hostile_patterns_rejected_at_creation(text: str, problem: str) -> None:
    with pytest.raises(BadInputError) as info:
        ResourcePattern(text)
    assert problem in info.value.message
    assert info.value.hint


@pytest.mark.parametrize("name", ["*", "**", "?", "a*b", "[x]", "x\\y", "]"])
def test_literal_escapes_glob_metacharacters(name: str) -> None:
    literal = ResourcePattern.literal(f"file:///tmp/{name}")
    assert literal.exact
    assert literal.matches(f"file:///tmp/{name}")
    for other in ["file:///tmp/x", "file:///tmp/anything", "file:///tmp/a/b", "file:///tmp/ab"]:
        if other != f"file:///tmp/{name}":
            assert not literal.matches(other)


def test_literal_refuses_hostile_uri() -> None:
    with pytest.raises(BadInputError, match=r"'\.\.' segment"):
        ResourcePattern.literal("file:///tmp/../etc/passwd")


def test_root_uri() -> None:
    assert check_resource_uri("file:///").path == ""
    assert ResourcePattern.literal("file:///").matches("file:///")
    assert not ResourcePattern("file:///**").matches("file:///")


segment = st.text(
    alphabet=st.characters(blacklist_categories=("Cs", "Cc"), blacklist_characters="/%"),
    min_size=1,
    max_size=8,
)
paths = st.lists(segment, min_size=1, max_size=4).map(lambda s: "file:///" + "/".join(s))


@given(paths, paths)
def test_literal_matches_exactly_its_own_path(path: str, other: str) -> None:
    try:
        check_resource_uri(path)
    except BadInputError:
        assume(False)
    pattern = ResourcePattern.literal(path)
    assert pattern.matches(path)
    assert pattern.matches(other) is (other == path)
    assert pattern.matches(path + "/x") is False


@given(st.text(max_size=20))
def test_escape_glob_round_trips_through_exact(text: str) -> None:
    uri = "mcp://s/" + text
    try:
        check_resource_uri(uri)
    except BadInputError:
        assume(False)
    pattern = ResourcePattern(escape_glob(uri))
    assert pattern.exact
    assert pattern.literal_prefix == uri


@pytest.mark.parametrize(
    ("written", "fixed"),
    [
        ("mcp://filesystem:read_file", "'mcp://filesystem/read_file'"),
        ("mcp://filesystem:*", "'mcp://filesystem/*'"),
        ("mcp://*:read_*", "'mcp://*/read_*'"),
        ("mcp://filesystem", "'mcp://filesystem/*'"),
    ],
)
def test_the_seeds_mcp_colon_spelling_is_refused_with_the_right_one(
    written: str, fixed: str
) -> None:
    # The seed documents mcp://server:tool; our tools are mcp://server/tool. Accepting the
    # seed's form would mint grants that grant nothing (and block lists that block nothing).
    with pytest.raises(BadInputError, match="matches no MCP tool") as caught:
        ResourcePattern(written)
    assert fixed in (caught.value.hint or "")
    corrected = ResourcePattern(fixed.strip("'"))
    assert corrected.matches("mcp://filesystem/read_file")
