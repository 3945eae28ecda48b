from __future__ import annotations

from typing import Any

import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from astrid_capabilities import (
    ArgEquals,
    ArgMatches,
    CapabilityToken,
    MaxCalls,
    NotAfter,
    Permission,
    ResourcePattern,
    TokenScope,
    WideningError,
    pattern_within,
)
from astrid_core import AuditEntryId, CapabilityDenied, SessionId, VerificationError
from astrid_crypto import KeyPair

AUDIT = AuditEntryId.parse("00000000-0000-4000-8000-000000000001")
NOW = 1_800_000_000
KEY = KeyPair(bytes(range(32)))


def parent(pattern: str = "file:///home/me/**", **kw: Any) -> CapabilityToken:
    kw.setdefault("scope", TokenScope.PERSISTENT)
    perms = kw.pop("permissions", [Permission.READ, Permission.WRITE])
    return CapabilityToken.issue(
        KEY, ResourcePattern(pattern), perms, approval_audit_id=AUDIT, now=NOW, **kw
    )


def test_valid_attenuation_is_linked_and_signed() -> None:
    p = parent(ttl_seconds=3600, caveats=[ArgEquals("a", 1)])
    child = p.attenuate(
        KEY,
        permissions=[Permission.READ],
        resource=ResourcePattern("file:///home/me/docs/**"),
        ttl_seconds=60,
        caveats=[MaxCalls(2)],
        now=NOW,
    )
    assert child.parent_id == p.id
    assert child.id != p.id
    assert child.permissions == {Permission.READ}
    assert child.expires_at == NOW + 60
    assert child.caveats == (ArgEquals("a", 1), MaxCalls(2))
    child.verify([KEY.public_key])


@pytest.mark.parametrize(
    ("changes", "problem"),
    [
        ({"permissions": [Permission.READ, Permission.DELETE]}, "permissions ['delete']"),
        ({"resource": ResourcePattern("file:///home/**")}, "is not within"),
        ({"resource": ResourcePattern("file:///**")}, "is not within"),
        ({"resource": ResourcePattern.literal("file:///etc/passwd")}, "is not within"),
        ({"ttl_seconds": 7200}, "expire after its parent"),
    ],
)
def test_widening_raises(changes: dict[str, Any], problem: str) -> None:
    p = parent(ttl_seconds=3600)
    with pytest.raises(WideningError) as info:
        p.attenuate(KEY, now=NOW, **changes)
    assert problem in info.value.message
    assert isinstance(info.value, CapabilityDenied)
    assert "narrow" in info.value.hint


def test_session_parent_cannot_have_persistent_child() -> None:
    p = parent(scope=TokenScope.SESSION, session_id=SessionId.new())
    with pytest.raises(WideningError, match="must be session-scoped"):
        p.attenuate(KEY, scope=TokenScope.PERSISTENT, now=NOW)
    sub = p.attenuate(KEY, session_id=SessionId.new(), now=NOW)  # the sub-agent's session
    assert sub.scope is TokenScope.SESSION


def test_single_use_parent_cannot_be_delegated() -> None:
    with pytest.raises(WideningError, match="single-use token cannot be delegated"):
        parent(single_use=True).attenuate(KEY, now=NOW)


def test_child_of_unlimited_parent_has_no_expiry_unless_given() -> None:
    assert parent().attenuate(KEY, now=NOW).expires_at is None


def test_signed_by_untrusted_key_is_detected() -> None:
    attacker = KeyPair.generate()
    child = parent().attenuate(attacker, now=NOW)
    with pytest.raises(VerificationError, match="not a trusted issuer"):
        child.verify([KEY.public_key])


PATTERNS = [
    "file:///**",
    "file:///home/**",
    "file:///home/me/**",
    "file:///home/me/*",
    "file:///home/me/*.txt",
    "file:///home/me/docs/**",
    "file:///home/*/notes",
    "file:///home/me/notes.txt",
    "file:///home/me/a?",
    "file:///etc/**",
    "file:///home/me/**/x",
    "mcp://**",
    "mcp://fs/*",
    "mcp://fs/read_*",
]
URIS = [
    "file:///home/me/notes.txt",
    "file:///home/me/docs/a",
    "file:///home/me/docs/a/b.txt",
    "file:///home/me/ab",
    "file:///home/you/notes",
    "file:///home/me/x",
    "file:///home/me/q/x",
    "file:///etc/passwd",
    "file:///home",
    "mcp://fs/read_file",
    "mcp://fs/write_file",
    "mcp://other/read_file",
]
perm_sets = st.sets(st.sampled_from(list(Permission)), min_size=1, max_size=4)
caveat_lists = st.lists(
    st.one_of(
        st.builds(ArgEquals, st.sampled_from(["a", "b"]), st.integers(0, 3)),
        st.builds(ArgMatches, st.sampled_from(["host"]), st.sampled_from(["*.x", "y"])),
        st.builds(MaxCalls, st.integers(1, 5)),
        st.builds(NotAfter, st.integers(NOW, NOW + 100)),
    ),
    max_size=3,
)


@settings(max_examples=300, deadline=None)
@given(
    parent_pattern=st.sampled_from(PATTERNS),
    child_pattern=st.sampled_from(PATTERNS),
    parent_perms=perm_sets,
    child_perms=perm_sets,
    parent_ttl=st.one_of(st.none(), st.integers(1, 1000)),
    child_ttl=st.one_of(st.none(), st.integers(1, 2000)),
    parent_caveats=caveat_lists,
    extra_caveats=caveat_lists,
)
def test_attenuation_never_widens(
    parent_pattern: str,
    child_pattern: str,
    parent_perms: set[Permission],
    child_perms: set[Permission],
    parent_ttl: int | None,
    child_ttl: int | None,
    parent_caveats: list[Any],
    extra_caveats: list[Any],
) -> None:
    p = parent(
        parent_pattern, permissions=parent_perms, ttl_seconds=parent_ttl, caveats=parent_caveats
    )
    try:
        child = p.attenuate(
            KEY,
            permissions=child_perms,
            resource=ResourcePattern(child_pattern),
            ttl_seconds=child_ttl,
            caveats=extra_caveats,
            now=NOW,
        )
    except WideningError:
        event("refused")
        return
    event("attenuated")
    assert child.permissions <= p.permissions
    for uri in URIS:
        if child.resource.matches(uri):
            assert p.resource.matches(uri), (child_pattern, parent_pattern, uri)
    if p.expires_at is not None:
        assert child.expires_at is not None
        assert child.expires_at <= p.expires_at
    assert all(c in child.caveats for c in p.caveats)


def test_pattern_within_is_conservative() -> None:
    within = pattern_within
    assert within(ResourcePattern("mcp://fs/read_*"), ResourcePattern("mcp://fs/*"))
    assert not within(ResourcePattern("mcp://fs/**"), ResourcePattern("mcp://fs/*"))
    assert not within(ResourcePattern("file:///a/*/b"), ResourcePattern("file:///a/*"))
    assert within(ResourcePattern("file:///a/*/b"), ResourcePattern("file:///a/**"))
    assert not within(ResourcePattern("file:///a*/b"), ResourcePattern("file:///a/**"))
