"""One answer to "may an agent reach this address?", shared by every layer that connects.

Policy (``NetworkRequest``), the bash analysis, capsule HTTP and MCP HTTP all ask the same
question, so they must not disagree: an address is *public* only when nothing below says
otherwise. Every spelling a resolver or ``curl`` accepts is recognised — decimal
(``2130706433``), octal (``0177.0.0.1``), hex (``0x7f.1``), short forms (``127.1``), bracketed
IPv6 with a zone (``[fe80::1%eth0]``), trailing dots — and IPv6 forms that carry an IPv4
address (IPv4-mapped ``::ffff:127.0.0.1``, IPv4-compatible ``::127.0.0.1``, NAT64
``64:ff9b::/96``, 6to4 ``2002::/16``, Teredo ``2001::/32``) are judged by the address they carry.
Standard library only (``ipaddress``, ``socket``).
"""

from __future__ import annotations

import ipaddress
import socket
import unicodedata
from enum import StrEnum

__all__ = [
    "AddressKind",
    "IPAddress",
    "parse_ip_literal",
    "classify_ip",
    "classify_host",
    "is_public_ip",
    "non_public_addresses",
]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class AddressKind(StrEnum):
    PUBLIC = "public"
    LOOPBACK = "loopback"
    PRIVATE = "private"
    LINK_LOCAL = "link-local"
    CGNAT = "carrier-grade NAT"
    MULTICAST = "multicast"
    METADATA = "cloud metadata"
    UNSPECIFIED = "unspecified"
    RESERVED = "reserved"


_METADATA_IPS = frozenset(
    ipaddress.ip_address(a)
    for a in (
        "169.254.169.254",  # AWS, GCP, Azure, OpenStack, ...
        "169.254.169.253",  # AWS DNS
        "169.254.170.2",  # AWS ECS task metadata
        "169.254.169.123",  # AWS time
        "100.100.100.200",  # Alibaba
        "192.0.0.192",  # Oracle
        "fd00:ec2::254",  # AWS IPv6
        "fd00:ec2::253",
        "fd00:ec2::123",
    )
)
_METADATA_NAMES = frozenset(
    {
        "metadata.google.internal",
        "metadata.goog",
        "metadata",
        "instance-data",
        "instance-data.ec2.internal",
    }
)
_CGNAT = ipaddress.ip_network("100.64.0.0/10")
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_NAT64_LOCAL = ipaddress.ip_network("64:ff9b:1::/48")  # RFC 8215: local-use, never public
_SIX_TO_FOUR = ipaddress.ip_network("2002::/16")
_TEREDO = ipaddress.ip_network("2001::/32")
_THIS_NETWORK = ipaddress.ip_network("0.0.0.0/8")
_LEGACY_CHARS = frozenset("0123456789abcdefxABCDEFX.")


def parse_ip_literal(host: str) -> IPAddress | None:
    """The address ``host`` spells, in any form a resolver accepts; None for a name."""
    # Resolvers and curl map look-alike digits and dots first (IDNA/NFKC): fullwidth 127.0.0.1
    text = unicodedata.normalize("NFKC", host).strip().replace("\u3002", ".").rstrip(".")
    if text.startswith("[") and text.endswith("]"):
        text = text[1:-1]
    if "%" in text:  # an IPv6 zone ("fe80::1%eth0") does not change the address
        text = text.split("%", 1)[0]
    if not text:
        return None
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        pass
    # inet_aton accepts the legacy spellings browsers, curl and libc accept too:
    # "2130706433", "0x7f.1", "0177.0.0.1", "127.1".
    if all(c in _LEGACY_CHARS for c in text):
        try:
            return ipaddress.IPv4Address(socket.inet_aton(text))
        except OSError:
            return None
    return None


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip in _TEREDO and ip.teredo is not None:
        server, client = ip.teredo
        return client if not _public_v4(client) else server
    packed = int(ip)
    if ip in _NAT64:
        return ipaddress.IPv4Address(packed & 0xFFFFFFFF)
    if packed >> 32 == 0 and packed > 1:  # IPv4-compatible ::a.b.c.d (deprecated, still routed)
        return ipaddress.IPv4Address(packed & 0xFFFFFFFF)
    return None


def _public_v4(ip: ipaddress.IPv4Address) -> bool:
    return _classify_plain(ip) is AddressKind.PUBLIC


def _classify_plain(ip: IPAddress) -> AddressKind:
    if ip in _METADATA_IPS:
        return AddressKind.METADATA
    if ip.is_unspecified or (isinstance(ip, ipaddress.IPv4Address) and ip in _THIS_NETWORK):
        return AddressKind.UNSPECIFIED
    if ip.is_loopback:
        return AddressKind.LOOPBACK
    if ip.is_link_local:
        return AddressKind.LINK_LOCAL
    if isinstance(ip, ipaddress.IPv4Address) and ip in _CGNAT:
        return AddressKind.CGNAT
    if ip.is_multicast:
        return AddressKind.MULTICAST
    if isinstance(ip, ipaddress.IPv6Address) and ip in _NAT64_LOCAL:
        return AddressKind.PRIVATE
    if ip.is_private:
        return AddressKind.PRIVATE
    if ip.is_reserved or not ip.is_global:
        return AddressKind.RESERVED
    return AddressKind.PUBLIC


def classify_ip(ip: IPAddress | str) -> AddressKind:
    """What kind of address ``ip`` is; an IPv6 form carrying an IPv4 address is judged by
    the IPv4 address (``::ffff:127.0.0.1`` is loopback, ``2002:a9fe:a9fe::`` is metadata)."""
    address = parse_ip_literal(ip) if isinstance(ip, str) else ip
    if address is None:
        raise ValueError(f"{ip!r} is not an IP address")
    if isinstance(address, ipaddress.IPv6Address):
        if address in _METADATA_IPS:
            return AddressKind.METADATA
        inner = _embedded_ipv4(address)
        if inner is not None:
            kind = _classify_plain(inner)
            if kind is not AddressKind.PUBLIC:
                return kind
            if address in _NAT64 or address.ipv4_mapped is not None:
                return AddressKind.PUBLIC  # a translation of a public IPv4 address
    return _classify_plain(address)


def is_public_ip(ip: IPAddress | str) -> bool:
    return classify_ip(ip) is AddressKind.PUBLIC


def _name_kind(host: str) -> AddressKind | None:
    name = unicodedata.normalize("NFKC", host).strip().lower().rstrip(".")
    if name == "localhost" or name.endswith(".localhost") or name == "localhost.localdomain":
        return AddressKind.LOOPBACK
    if name in _METADATA_NAMES:
        return AddressKind.METADATA
    if name in ("ip6-localhost", "ip6-loopback"):
        return AddressKind.LOOPBACK
    return None


def classify_host(
    host: str, port: int = 0, *, resolve: bool = True
) -> list[tuple[str, AddressKind]]:
    """Every address ``host`` names with its kind. Names the system resolves are resolved
    (``resolve``); ``localhost``, ``*.localhost`` and metadata names are judged without DNS.
    An empty list means the name does not resolve (or ``resolve`` is off)."""
    literal = parse_ip_literal(host)
    if literal is not None:
        return [(str(literal), classify_ip(literal))]
    named = _name_kind(host)
    if named is not None:
        return [(host, named)]
    if not resolve:
        return []
    try:
        infos = socket.getaddrinfo(host.rstrip("."), port or None, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError, ValueError):
        return []
    found: dict[str, AddressKind] = {}
    for info in infos:
        address = str(info[4][0])
        parsed = parse_ip_literal(address)
        found[address] = classify_ip(parsed) if parsed is not None else AddressKind.RESERVED
    return sorted(found.items())


def non_public_addresses(host: str, port: int = 0, *, resolve: bool = True) -> list[str] | None:
    """The non-public addresses ``host`` names (``"127.0.0.1 (loopback)"``), [] when all are
    public, None when it names nothing (unresolvable)."""
    classified = classify_host(host, port, resolve=resolve)
    if not classified:
        return None
    return [f"{a} ({k.value})" for a, k in classified if k is not AddressKind.PUBLIC]
