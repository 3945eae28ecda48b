"""The one address classifier: every spelling and every IPv6 wrapping of a non-public address."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given
from hypothesis import strategies as st

from astrid_core import AddressKind, classify_host, classify_ip, is_public_ip
from astrid_core.net import non_public_addresses, parse_ip_literal

SPELLINGS = [
    ("127.0.0.1", AddressKind.LOOPBACK),
    ("2130706433", AddressKind.LOOPBACK),
    ("0177.0.0.1", AddressKind.LOOPBACK),
    ("0x7f.1", AddressKind.LOOPBACK),
    ("0x7f000001", AddressKind.LOOPBACK),
    ("127.1", AddressKind.LOOPBACK),
    ("127.0.0.1.", AddressKind.LOOPBACK),
    ("\uff11\uff12\uff17\uff0e\uff10\uff0e\uff10\uff0e\uff11", AddressKind.LOOPBACK),
    ("\u2460\u2461\u2466.0.0.1", AddressKind.LOOPBACK),
    ("\uff4c\uff4f\uff43\uff41\uff4c\uff48\uff4f\uff53\uff54", AddressKind.LOOPBACK),
    ("[::1]", AddressKind.LOOPBACK),
    ("::127.0.0.1", AddressKind.LOOPBACK),
    ("::ffff:127.0.0.1", AddressKind.LOOPBACK),
    ("64:ff9b::7f00:1", AddressKind.LOOPBACK),
    ("2002:7f00:1::", AddressKind.LOOPBACK),
    ("localhost", AddressKind.LOOPBACK),
    ("LOCALHOST.", AddressKind.LOOPBACK),
    ("evil.localhost", AddressKind.LOOPBACK),
    ("10.0.0.1", AddressKind.PRIVATE),
    ("::ffff:192.168.0.1", AddressKind.PRIVATE),
    ("64:ff9b::a00:1", AddressKind.PRIVATE),
    ("2002:c0a8:1::", AddressKind.PRIVATE),
    ("64:ff9b:1::1", AddressKind.PRIVATE),
    ("fc00::1", AddressKind.PRIVATE),
    ("169.254.1.1", AddressKind.LINK_LOCAL),
    ("fe80::1%eth0", AddressKind.LINK_LOCAL),
    ("100.64.0.1", AddressKind.CGNAT),
    ("::100.64.0.1", AddressKind.CGNAT),
    ("224.0.0.1", AddressKind.MULTICAST),
    ("ff02::1", AddressKind.MULTICAST),
    ("169.254.169.254", AddressKind.METADATA),
    ("2852039166", AddressKind.METADATA),
    ("fd00:ec2::254", AddressKind.METADATA),
    ("64:ff9b::a9fe:a9fe", AddressKind.METADATA),
    ("2002:a9fe:a9fe::", AddressKind.METADATA),
    ("::ffff:169.254.169.254", AddressKind.METADATA),
    ("metadata.google.internal", AddressKind.METADATA),
    ("0.0.0.0", AddressKind.UNSPECIFIED),
    ("0", AddressKind.UNSPECIFIED),
    ("::", AddressKind.UNSPECIFIED),
]


@pytest.mark.parametrize(("host", "kind"), SPELLINGS)
def test_every_spelling_is_classified_without_dns(host: str, kind: AddressKind) -> None:
    assert classify_host(host, resolve=False)[0][1] is kind
    assert non_public_addresses(host, resolve=False)


@pytest.mark.parametrize(
    "host", ["8.8.8.8", "2606:4700:4700::1111", "::ffff:8.8.8.8", "64:ff9b::808:808"]
)
def test_public_addresses_stay_public(host: str) -> None:
    assert is_public_ip(host)
    assert non_public_addresses(host, resolve=False) == []


def test_names_are_not_addresses() -> None:
    assert parse_ip_literal("example.com") is None
    assert classify_host("example.invalid", resolve=False) == []
    with pytest.raises(ValueError, match="not an IP address"):
        classify_ip("example.com")


@given(st.integers(0, 2**32 - 1))
def test_an_ipv4_address_and_all_its_ipv6_wrappings_agree(value: int) -> None:
    v4 = ipaddress.IPv4Address(value)
    kind = classify_ip(v4)
    if kind is AddressKind.PUBLIC:
        return
    for wrapped in (
        ipaddress.IPv6Address(f"::ffff:{v4}"),
        ipaddress.IPv6Address(int(ipaddress.IPv6Address("64:ff9b::")) | value),
        ipaddress.IPv6Address((0x2002 << 112) | (value << 80)),
    ):
        assert classify_ip(wrapped) is not AddressKind.PUBLIC, wrapped
    assert classify_ip(str(value)) is kind  # the decimal spelling


@pytest.mark.parametrize("host", ["240.0.0.1", "255.255.255.255", "192.0.2.1", "2001:db8::1"])
def test_reserved_and_documentation_ranges_are_not_public(host: str) -> None:
    assert not is_public_ip(host)
