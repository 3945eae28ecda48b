"""The HTTP client of an MCP HTTP transport: every connection goes to the address checked.

The server's host is resolved **once**, when the client is made; each of its addresses is
checked; every connection of the client's life goes to those addresses (astrid_workspace's
pin — the same one a capsule's ``http_request`` uses). A DNS answer that changes later
(rebinding to 127.0.0.1, to a metadata address) is never asked for, so the client's
headers and tokens cannot be sent anywhere else than where the check said.

Which addresses pass: an IP literal in ``url`` is the admin's own choice; ``localhost`` must
be loopback; any other name must resolve to public addresses only, unless the server's
config says ``private_network = true`` (an internal server) — then any address, still pinned.
"""

from __future__ import annotations

import ipaddress
from typing import Any

import httpcore2
import httpx2
from mcp.shared._httpx_utils import MCP_DEFAULT_SSE_READ_TIMEOUT, MCP_DEFAULT_TIMEOUT

from astrid_workspace import (
    EgressRefused,
    IPAddress,
    PinnedAsyncBackend,
    Resolver,
    global_only,
    install_pin,
    pin_host,
    system_resolver,
)

from ._errors import ServerStartError
from .config import HttpTransport

__all__ = ["pinned_http_client"]


def _any(ip: IPAddress) -> bool:
    return True


def _loopback(ip: IPAddress) -> bool:
    return ip.is_loopback


async def pinned_http_client(
    transport: HttpTransport,
    *,
    server: str,
    auth: httpx2.Auth | None = None,
    resolver: Resolver | None = None,
) -> httpx2.AsyncClient:
    """An httpx2 client for `transport.url`, pinned to the addresses checked now."""
    url = httpx2.URL(transport.url)
    host = url.host
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        ipaddress.ip_address(host)
        allowed = _any  # an address the admin wrote in the config
    except ValueError:
        if host.lower().rstrip(".") == "localhost":
            allowed = _loopback
        else:
            allowed = _any if transport.private_network else global_only
    try:
        pin = await pin_host(
            host, port, resolver=resolver or system_resolver, address_allowed=allowed
        )
    except EgressRefused as exc:
        raise ServerStartError(
            f"MCP server {server!r}: {exc.reason}; not connecting",
            hint="for an internal server set private_network = true in its [[servers]] entry "
            "(the address is still pinned), or write its IP address in url",
        ) from exc
    http = httpx2.AsyncHTTPTransport(trust_env=False)  # no proxy from the environment
    install_pin(http, PinnedAsyncBackend(pin, httpcore2.AnyIOBackend(), httpcore2.ConnectError))
    kwargs: dict[str, Any] = {
        "timeout": httpx2.Timeout(MCP_DEFAULT_TIMEOUT, read=MCP_DEFAULT_SSE_READ_TIMEOUT),
        "headers": dict(transport.headers),
        "transport": http,
        "trust_env": False,
    }
    if auth is not None:
        kwargs["auth"] = auth
    return httpx2.AsyncClient(**kwargs)
