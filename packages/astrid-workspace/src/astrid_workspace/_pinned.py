"""Resolve once, check every address, connect only to those: the pin for HTTP clients.

The egress proxy does this for sandboxed processes; Astrid's own HTTP clients (MCP HTTP
transports, a capsule's ``http_request``) need the same: an HTTP library resolves the name
again for every connection, so an answer that changes between the check and the connection
(DNS rebinding) would reach whatever the second answer names — 127.0.0.1 with the client's
credentials in the headers.

`pin_host` does the check and returns a `Pin`; `PinnedAsyncBackend` / `PinnedSyncBackend`
are httpcore (or httpcore2) network backends that connect to the pinned addresses only, and
only for the pinned host. They take the library's own backend and error class, so this
module imports no HTTP library. TLS still verifies the host name: only the TCP address is
fixed.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from ._proxy import (
    AddressPredicate,
    EgressRefused,
    IPAddress,
    Resolver,
    check_host_name,
    global_only,
    system_resolver,
)

__all__ = [
    "Pin",
    "PinnedAsyncBackend",
    "PinnedSyncBackend",
    "install_pin",
    "pin_host",
    "pin_host_sync",
]


@dataclass(frozen=True)
class Pin:
    """A host and the addresses it was checked at; connections go to these alone."""

    host: str
    addresses: tuple[str, ...]


def _check(host: str, shown: str, addresses: Sequence[IPAddress], allowed: AddressPredicate) -> Pin:
    if not addresses:
        raise EgressRefused(f"{shown} has no address", status=502)
    refused = [a for a in addresses if not allowed(a)]
    if refused:
        raise EgressRefused(
            f"{shown} resolves to {', '.join(map(str, refused))}, which is not allowed here "
            "(loopback, private or otherwise non-public)"
        )
    return Pin(host, tuple(str(a) for a in addresses))


def _literal_or_name(host: str) -> tuple[str, IPAddress | None]:
    checked = check_host_name(host)
    if isinstance(checked, str):
        return checked, None
    return str(checked), checked


async def pin_host(
    host: str,
    port: int,
    *,
    resolver: Resolver = system_resolver,
    address_allowed: AddressPredicate = global_only,
) -> Pin:
    """Check the name, resolve it **once**, check **every** address. An IP literal is
    checked as it is. Raises `EgressRefused`."""
    name, literal = _literal_or_name(host)
    if literal is not None:
        return _check(host.lower(), name, [literal], address_allowed)
    try:
        addresses = list(await resolver(name, port))
    except OSError as exc:
        raise EgressRefused(f"cannot resolve {name}: {exc}", status=502) from exc
    return _check(host.lower(), name, addresses, address_allowed)


SyncResolver = Callable[[str, int], Sequence[IPAddress]]


def system_resolver_sync(host: str, port: int) -> list[IPAddress]:
    found: list[IPAddress] = []
    for info in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM):
        address = ipaddress.ip_address(str(info[4][0]).split("%", 1)[0])
        if address not in found:
            found.append(address)
    return found


def pin_host_sync(
    host: str,
    port: int,
    *,
    resolver: SyncResolver = system_resolver_sync,
    address_allowed: AddressPredicate = global_only,
) -> Pin:
    """`pin_host` for synchronous callers (a capsule's host function)."""
    name, literal = _literal_or_name(host)
    if literal is not None:
        return _check(host.lower(), name, [literal], address_allowed)
    try:
        addresses = list(resolver(name, port))
    except OSError as exc:
        raise EgressRefused(f"cannot resolve {name}: {exc}", status=502) from exc
    return _check(host.lower(), name, addresses, address_allowed)


def _same_host(pin: Pin, host: str | bytes) -> bool:
    text = host.decode("ascii", "replace") if isinstance(host, bytes) else host
    return text.lower().strip("[]") == pin.host.strip("[]")


class PinnedAsyncBackend:
    """An async httpcore/httpcore2 network backend: the pinned host's checked addresses only."""

    def __init__(self, pin: Pin, inner: Any, connect_error: type[Exception]) -> None:
        self.pin = pin
        self._inner = inner
        self._error = connect_error

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Any = None,
    ) -> Any:
        if not _same_host(self.pin, host):
            raise self._error(f"{host} is not the host that was checked ({self.pin.host})")
        failure: Exception | None = None
        for address in self.pin.addresses:  # these, and only these, were checked
            try:
                return await self._inner.connect_tcp(
                    address, port, timeout, local_address, socket_options
                )
            except self._error as exc:
                failure = exc
        raise failure or self._error(f"{host} has no checked address")

    async def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Any = None
    ) -> Any:
        raise self._error("unix sockets are not reachable through a pinned client")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


class PinnedSyncBackend:
    """The synchronous twin of `PinnedAsyncBackend`."""

    def __init__(self, pin: Pin, inner: Any, connect_error: type[Exception]) -> None:
        self.pin = pin
        self._inner = inner
        self._error = connect_error

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Any = None,
    ) -> Any:
        if not _same_host(self.pin, host):
            raise self._error(f"{host} is not the host that was checked ({self.pin.host})")
        failure: Exception | None = None
        for address in self.pin.addresses:
            try:
                return self._inner.connect_tcp(
                    address, port, timeout, local_address, socket_options
                )
            except self._error as exc:
                failure = exc
        raise failure or self._error(f"{host} has no checked address")

    def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Any = None
    ) -> Any:
        raise self._error("unix sockets are not reachable through a pinned client")

    def sleep(self, seconds: float) -> None:
        self._inner.sleep(seconds)


def install_pin(transport: Any, backend: PinnedAsyncBackend | PinnedSyncBackend) -> None:
    """Put `backend` under an httpx/httpx2 HTTP transport (its connection pool's backend)."""
    pool = transport._pool
    pool._network_backend = backend
