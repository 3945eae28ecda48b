"""Is a host private? A thin face over ``astrid_core.net``, the one classifier every layer uses."""

from __future__ import annotations

from astrid_core.net import classify_host, classify_ip, non_public_addresses, parse_ip_literal

__all__ = ["host_addresses", "is_private_address", "private_addresses"]


def is_private_address(address: str) -> bool:
    """True for anything that is not a public address (loopback, private, link-local, CGNAT,
    multicast, metadata, unspecified, reserved, and IPv6 forms carrying any of them)."""
    parsed = parse_ip_literal(address)
    if parsed is None:
        raise ValueError(f"{address!r} is not an IP address")
    return classify_ip(parsed).value != "public"


def host_addresses(host: str, port: int = 0) -> list[str]:
    return [address for address, _ in classify_host(host, port)]


def private_addresses(host: str, port: int = 0, *, resolve: bool = True) -> list[str] | None:
    """Private addresses the host names; None if it names none (unresolvable, or a name
    when ``resolve`` is off: the policy decides on the name and never looks it up)."""
    return non_public_addresses(host, port, resolve=resolve)
