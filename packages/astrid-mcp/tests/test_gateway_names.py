"""The gateway's namespaced names: injective, within the cap, and never a readable look-alike."""

from __future__ import annotations

import re

from hypothesis import given, settings
from hypothesis import strategies as st

from astrid_mcp.gateway_names import MAX_NAME, namespaced, parse

# Names as servers may send them: separators, underscores at the edges, dots, unicode, long.
_pieces = st.text(alphabet=st.sampled_from("ab_-.Z9é/ "), min_size=1, max_size=80)
_ALLOWED = re.compile(r"[A-Za-z0-9_-]{1,64}")


def test_the_classic_collision_gets_two_names() -> None:
    assert namespaced("a__b", "c") != namespaced("a", "b__c")
    assert namespaced("a", "b__c") == "a__b__c"
    assert parse("a__b__c") == ("a", "b__c")
    assert parse(namespaced("a__b", "c")) is None  # hashed: looked up, never guessed


def test_length_caps_do_not_merge_names() -> None:
    long = "t" * 70
    assert namespaced("srv", long + "1") != namespaced("srv", long + "2")
    assert len(namespaced("srv", long + "1")) <= MAX_NAME


@settings(max_examples=3000)
@given(_pieces, _pieces, _pieces, _pieces)
def test_different_pairs_never_share_a_name(s1: str, t1: str, s2: str, t2: str) -> None:
    if (s1, t1) != (s2, t2):
        assert namespaced(s1, t1) != namespaced(s2, t2)


@settings(max_examples=2000)
@given(_pieces, _pieces)
def test_every_name_is_valid_for_clients_and_readable_ones_parse_back(
    server: str, tool: str
) -> None:
    name = namespaced(server, tool)
    assert _ALLOWED.fullmatch(name), name
    parsed = parse(name)
    assert parsed is None or parsed == (server, tool)


@settings(max_examples=2000)
@given(_pieces, _pieces)
def test_a_hashed_name_never_parses_as_a_readable_one(server: str, tool: str) -> None:
    # If it did, some (server', tool') would have it as its readable name: a collision.
    name = namespaced(server, tool)
    if parse(name) is None:
        _, _, rest = name.partition("__")
        assert rest.startswith("_") or "__" not in name
