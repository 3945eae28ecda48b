"""Is a host private? IP literals in every spelling, and what names resolve to."""

from __future__ import annotations

import ipaddress
import socket

__all__ = ["host_addresses", "is_private_address", "private_addresses"]

_METADATA_HOSTS = frozenset({"metadata.google.internal", "metadata", "instance-data"})


def _literal(host: str) -> list[str] | None:
    host = host.strip("[]")
    try:
        return [str(ipaddress.ip_address(host))]
    except ValueError:
        pass
    # inet_aton accepts the legacy spellings browsers and curl accept too:
    # "2130706433", "0x7f.1", "0177.0.0.1", "127.1".
    if host and all(c in "0123456789abcdefxABCDEFX." for c in host):
        try:
            return [socket.inet_ntoa(socket.inet_aton(host))]
        except OSError:
            return None
    return None


def is_private_address(address: str) -> bool:
    ip = ipaddress.ip_address(address)
    if isinstance(ip, ipaddress.IPv6Address):
        mapped = ip.ipv4_mapped or ip.sixtofour
        if mapped is not None:
            ip = mapped
    return not ip.is_global or ip.is_multicast


def host_addresses(host: str, port: int = 0) -> list[str]:
    literal = _literal(host)
    if literal is not None:
        return literal
    try:
        infos = socket.getaddrinfo(host, port or None, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError):
        return []
    return sorted({str(info[4][0]) for info in infos})


def private_addresses(host: str, port: int = 0) -> list[str] | None:
    """Private addresses the host names; None if it cannot be resolved at all."""
    if host.lower().rstrip(".") in _METADATA_HOSTS or host.lower() == "localhost":
        return [host]
    addresses = host_addresses(host, port)
    if not addresses:
        return None
    return [a for a in addresses if is_private_address(a)]
