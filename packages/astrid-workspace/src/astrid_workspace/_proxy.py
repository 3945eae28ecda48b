"""The egress proxy: the only way out of a sandbox, one authorized connection at a time.

A confined command has its own network namespace with no route anywhere; its one door is a
loopback port bridged to this proxy's unix socket. The proxy speaks HTTP (CONNECT, and plain
requests with an absolute URI) and SOCKS5 on the same socket, and for every connection:

1. checks the host *name* is well formed (NUL, non-ASCII, odd numeric spellings such as
   ``2130706433`` or ``127.1`` are refused) — no lookup yet;
2. asks the interceptor through the core `Guard` protocol (a `NetworkRequest`): denied hosts,
   approval per host, audit — a name that is denied or not approved is never resolved here,
   since a lookup alone can carry data out in the name;
3. resolves the name **once**, checks **every** address with the address predicate (by
   default: only globally routable addresses; an admin may allow an exact ``host:port``);
4. connects to an address it checked — never resolving again, so DNS rebinding cannot swap
   the address between the check and the connection.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import re
import secrets
import socket
from collections.abc import AsyncGenerator, Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass

import anyio
import anyio.abc
import anyio.to_thread
from anyio.streams.buffered import BufferedByteReceiveStream

from astrid_core import Guard, NetworkRequest
from astrid_core.net import is_public_ip

from ._bridge import HANDOVER, relay
from ._confine import PROXY_PORT

__all__ = [
    "EgressProxy",
    "EgressRefused",
    "IPAddress",
    "AddressPredicate",
    "Resolver",
    "global_only",
    "system_resolver",
    "check_host_name",
]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
AddressPredicate = Callable[[IPAddress], bool]
Resolver = Callable[[str, int], Awaitable[Sequence[IPAddress]]]

_HEAD_LIMIT = 16 * 1024
_CHUNK = 256 * 1024
_LABEL = re.compile(r"[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?")
_NUMERIC_LOOKING = re.compile(r"(?:0x[0-9a-f]*|[0-9]+)")


class EgressRefused(Exception):
    """A connection the proxy refuses; `reason` is what the client is told."""

    def __init__(self, reason: str, *, status: int = 403, socks: int = 2) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status
        self.socks = socks


def global_only(ip: IPAddress) -> bool:
    """The default address predicate: only public addresses, as the one classifier
    (``astrid_core.net``) judges them — loopback, private, link-local, CGNAT, metadata
    (169.254.169.254, 192.0.0.192, fd00:ec2::254), multicast and their IPv4-mapped,
    IPv4-compatible, NAT64 and 6to4 forms are refused."""
    return is_public_ip(ip)


async def system_resolver(host: str, port: int) -> list[IPAddress]:
    infos = await anyio.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    found: list[IPAddress] = []
    for info in infos:
        address = ipaddress.ip_address(str(info[4][0]).split("%", 1)[0])
        if address not in found:
            found.append(address)
    return found


def check_host_name(host: str) -> str | IPAddress:
    """The host as an IP literal or a lower-case DNS name; `EgressRefused` if malformed."""
    literal = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    with contextlib.suppress(ValueError):
        return ipaddress.ip_address(literal)
    name = host.lower().removesuffix(".")
    if not name or len(name) > 253 or not name.isascii():
        raise EgressRefused(f"malformed host name {host!r}", status=400, socks=4)
    labels = name.split(".")
    if not all(_LABEL.fullmatch(label) for label in labels):
        raise EgressRefused(f"malformed host name {host!r}", status=400, socks=4)
    if _NUMERIC_LOOKING.fullmatch(labels[-1]):
        # No top-level domain is numeric: this is an address in an odd spelling (2130706433,
        # 0x7f000001, 127.1) that a resolver would turn into an IP behind the policy's back.
        raise EgressRefused(f"host {host!r} is not a name nor a plain IP address", status=400)
    return name


class EgressProxy:
    """HTTP CONNECT + SOCKS5 proxy on a unix socket, authorizing each connection."""

    def __init__(
        self,
        guard: Guard,
        *,
        address_allowed: AddressPredicate = global_only,
        resolver: Resolver = system_resolver,
        allowed_exact: Iterable[str] = (),
        who: str = "a sandboxed command",
        connect_timeout: float = 15.0,
    ) -> None:
        self.guard = guard
        self.address_allowed = address_allowed
        self.resolver = resolver
        self.allowed_exact = frozenset(a.lower() for a in allowed_exact)
        self.who = who
        self.connect_timeout = connect_timeout
        self._socket_path: str | None = None

    @property
    def socket_path(self) -> str:
        if self._socket_path is None:
            raise RuntimeError("the egress proxy is not serving")
        return self._socket_path

    @staticmethod
    def proxy_environment() -> dict[str, str]:
        """What a confined command needs to find the proxy (bridged to loopback inside)."""
        http = f"http://127.0.0.1:{PROXY_PORT}"
        socks = f"socks5h://127.0.0.1:{PROXY_PORT}"
        env = {"HTTP_PROXY": http, "HTTPS_PROXY": http, "ALL_PROXY": socks, "NO_PROXY": ""}
        return env | {name.lower(): value for name, value in env.items()}

    @contextlib.asynccontextmanager
    async def serving(self, directory: str) -> AsyncGenerator[EgressProxy]:
        """Serve on a fresh, randomly named 0600 socket in `directory` until the block ends."""
        path = os.path.join(directory, f"astrid-egress-{secrets.token_hex(8)}.sock")
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        listener = await anyio.create_unix_listener(path)
        os.chmod(path, 0o600)
        self._socket_path = path
        try:
            async with anyio.create_task_group() as group:
                group.start_soon(self._accept, listener, group)
                try:
                    yield self
                finally:
                    # Closed before the cancel: a cancelled accept would leave its reader
                    # callback behind on asyncio (InvalidStateError noise).
                    await listener.aclose()
                    group.cancel_scope.cancel()
        finally:
            await listener.aclose()
            self._socket_path = None
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)

    async def _accept(self, listener: anyio.abc.SocketListener, group: anyio.abc.TaskGroup) -> None:
        while True:
            try:
                client = await listener.accept()
            except (anyio.ClosedResourceError, anyio.BrokenResourceError, OSError):
                return
            group.start_soon(self._handle, client)

    # ------------------------------------------------------------ the resolve-check-pin path

    async def open_connection(
        self, host: str, port: int, *, method: str = "CONNECT", url: str | None = None
    ) -> anyio.abc.SocketStream:
        """Authorize, resolve once, check every address, connect to a checked one."""
        checked = check_host_name(host)
        if not 0 < port < 65536:
            raise EgressRefused(f"port {port} is out of range", status=400)
        shown = f"[{checked}]" if isinstance(checked, ipaddress.IPv6Address) else str(checked)
        scheme = {443: "https", 80: "http"}.get(port, "tcp")
        try:
            request = NetworkRequest(method=method, url=url or f"{scheme}://{shown}:{port}")
        except ValueError as exc:
            raise EgressRefused(f"bad request: {exc}", status=400) from exc
        authorization = await self.guard.authorize(request, f"egress proxy: {self.who}")
        if not authorization.allowed:
            raise EgressRefused(f"{shown}:{port} denied: {authorization.reason}")
        if isinstance(checked, str):
            try:
                addresses = list(await self.resolver(checked, port))
            except OSError as exc:
                raise EgressRefused(
                    f"cannot resolve {checked}: {exc}", status=502, socks=4
                ) from exc
        else:
            addresses = [checked]
        if not addresses:
            raise EgressRefused(f"{shown} has no address", status=502, socks=4)
        exact = f"{shown}:{port}".lower() in self.allowed_exact
        refused = [a for a in addresses if not (exact or self.address_allowed(a))]
        if refused:
            raise EgressRefused(
                f"{shown} resolves to {', '.join(map(str, refused))}, which sandboxed commands "
                "may not reach (loopback, private or otherwise non-public); an admin can allow "
                f"exactly {shown}:{port}"
            )
        failure: OSError | None = None
        for address in addresses:  # pinned: these, and only these, were checked
            try:
                with anyio.fail_after(self.connect_timeout):
                    return await anyio.connect_tcp(str(address), port)
            except OSError as exc:  # TimeoutError included
                failure = exc
        raise EgressRefused(f"cannot connect to {shown}:{port}: {failure}", status=502, socks=5)

    # ------------------------------------------------------------ protocols

    async def _handle(self, client: anyio.abc.ByteStream) -> None:
        try:
            client, first = await _handed_over(client)
        except (OSError, anyio.EndOfStream, anyio.BrokenResourceError, ValueError):
            return
        reader = BufferedByteReceiveStream(client)
        async with client:
            try:
                if not first:
                    first = await reader.receive_exactly(1)
                if first == b"\x05":
                    upstream = await self._socks5(client, reader)
                else:
                    reader.feed_data(first)
                    upstream = await self._http(client, reader)
            except EgressRefused:
                return
            except (anyio.IncompleteRead, anyio.EndOfStream, anyio.DelimiterNotFound, OSError):
                return
            except Exception:
                return
            async with upstream:
                await _relay(client, reader, upstream)

    async def _http(
        self, client: anyio.abc.ByteStream, reader: BufferedByteReceiveStream
    ) -> anyio.abc.SocketStream:
        head = await reader.receive_until(b"\r\n\r\n", _HEAD_LIMIT)
        line, _, rest = head.partition(b"\r\n")
        try:
            method, target, version = line.decode("ascii").split(" ")
            target_info = _http_target(method, target)
        except (UnicodeDecodeError, ValueError) as exc:
            await _http_reply(client, 400, f"bad proxy request: {exc}")
            raise EgressRefused("bad request", status=400) from exc
        try:
            upstream = await self.open_connection(
                target_info.host, target_info.port, method=method, url=target_info.url
            )
        except EgressRefused as exc:
            await _http_reply(client, exc.status, exc.reason)
            raise
        if method.upper() == "CONNECT":
            await client.send(b"HTTP/1.1 200 Connection established\r\n\r\n")
            return upstream
        # A plain request: forward it in origin form, without the proxy's own headers.
        headers = [
            h
            for h in rest.split(b"\r\n")
            if h and not h.lower().startswith((b"proxy-", b"connection:"))
        ]
        origin = f"{method} {target_info.path} {version}\r\n".encode("ascii")
        await upstream.send(origin + b"\r\n".join([*headers, b"Connection: close"]) + b"\r\n\r\n")
        return upstream

    async def _socks5(
        self, client: anyio.abc.ByteStream, reader: BufferedByteReceiveStream
    ) -> anyio.abc.SocketStream:
        count = (await reader.receive_exactly(1))[0]
        methods = await reader.receive_exactly(count)
        if 0 not in methods:
            await client.send(b"\x05\xff")
            raise EgressRefused("no acceptable SOCKS auth method")
        await client.send(b"\x05\x00")
        version, command, _, kind = await reader.receive_exactly(4)
        if kind == 1:
            host = str(ipaddress.IPv4Address(await reader.receive_exactly(4)))
        elif kind == 4:
            host = str(ipaddress.IPv6Address(await reader.receive_exactly(16)))
        elif kind == 3:
            raw = await reader.receive_exactly((await reader.receive_exactly(1))[0])
            host = raw.decode("latin-1")  # checked (ASCII only, no NUL) before anything else
        else:
            await _socks_reply(client, 8)
            raise EgressRefused("bad SOCKS address type")
        port = int.from_bytes(await reader.receive_exactly(2), "big")
        if version != 5 or command != 1:
            await _socks_reply(client, 7)  # only CONNECT: no BIND, no UDP ASSOCIATE
            raise EgressRefused("only SOCKS5 CONNECT is served")
        try:
            upstream = await self.open_connection(host, port)
        except EgressRefused as exc:
            await _socks_reply(client, exc.socks)
            raise
        await _socks_reply(client, 0)
        return upstream


async def _handed_over(client: anyio.abc.ByteStream) -> tuple[anyio.abc.ByteStream, bytes]:
    """The stream to serve and its first byte (b"" if not read yet).

    A sandbox's bridge does not relay: it sends one byte HANDOVER with the accepted TCP
    socket itself (SCM_RIGHTS) and lets go, so every byte of the connection crosses one
    relay (ours), not two. Anything else on the unix socket is served as it is.
    """
    if not isinstance(client, anyio.abc.UNIXSocketStream):
        return client, b""
    data, fds = await client.receive_fds(1, 4)
    if not data:
        raise anyio.EndOfStream
    if data != HANDOVER or len(fds) != 1:
        for fd in fds:
            os.close(fd)
        if data == HANDOVER:
            raise ValueError("a handover without exactly one socket")
        return client, data
    sock = socket.socket(fileno=fds[0])
    if sock.type != socket.SOCK_STREAM or sock.family not in (socket.AF_INET, socket.AF_INET6):
        sock.close()
        raise ValueError("a handover of something other than a TCP socket")
    await client.aclose()
    return await anyio.abc.SocketStream.from_socket(sock), b""


@dataclass(frozen=True)
class _HttpTarget:
    host: str
    port: int
    url: str
    path: str


def _http_target(method: str, target: str) -> _HttpTarget:
    if method.upper() == "CONNECT":
        host, port = _split_host_port(target)
        scheme = {443: "https", 80: "http"}.get(port, "tcp")
        return _HttpTarget(host, port, f"{scheme}://{target}", "")
    from urllib.parse import urlsplit

    parts = urlsplit(target)
    if parts.scheme != "http" or not parts.hostname:
        raise ValueError("a plain proxy request needs an absolute http:// URL")
    host = parts.netloc.rpartition("@")[2]
    host, port = _split_host_port(host if ":" in host.rpartition("]")[2] else f"{host}:80")
    path = parts.path or "/"
    if parts.query:
        path += f"?{parts.query}"
    return _HttpTarget(host, port, target, path)


def _split_host_port(target: str) -> tuple[str, int]:
    host, sep, port = target.rpartition(":")
    if not sep or not port.isdigit():
        raise ValueError(f"expected host:port, got {target!r}")
    return host, int(port)


async def _http_reply(client: anyio.abc.ByteStream, status: int, reason: str) -> None:
    body = f"Astrid egress proxy: {reason}\n".encode()
    phrase = {400: "Bad Request", 403: "Forbidden", 502: "Bad Gateway"}.get(status, "Error")
    head = f"HTTP/1.1 {status} {phrase}\r\nContent-Length: {len(body)}\r\nConnection: close\r\n"
    with contextlib.suppress(OSError, anyio.BrokenResourceError, anyio.ClosedResourceError):
        await client.send(head.encode() + b"Content-Type: text/plain\r\n\r\n" + body)


async def _socks_reply(client: anyio.abc.ByteStream, code: int) -> None:
    with contextlib.suppress(OSError, anyio.BrokenResourceError, anyio.ClosedResourceError):
        await client.send(bytes([5, code, 0, 1, 0, 0, 0, 0, 0, 0]))


_RELAYS = anyio.CapacityLimiter(4096)


async def _relay(
    client: anyio.abc.ByteStream,
    reader: BufferedByteReceiveStream,
    upstream: anyio.abc.SocketStream,
) -> None:
    """Relay until either side ends: kernel-side (splice, in worker threads) when both ends
    are sockets, else through the event loop."""
    client_sock = client.extra(anyio.abc.SocketAttribute.raw_socket, None)  # noqa: S610
    upstream_sock = upstream.extra(anyio.abc.SocketAttribute.raw_socket, None)  # noqa: S610
    if client_sock is None or upstream_sock is None:
        await _relay_streams(client, reader, upstream)
        return
    if reader.buffer:  # what the client sent after its request, already read from the socket
        await upstream.send(bytes(reader.buffer))
    a = socket.socket(fileno=os.dup(client_sock.fileno()))
    b = socket.socket(fileno=os.dup(upstream_sock.fileno()))
    a.setblocking(True)
    b.setblocking(True)
    try:
        # Its own limiter: the default one (40 threads) would stall the 41st connection.
        await anyio.to_thread.run_sync(relay, a, b, abandon_on_cancel=True, limiter=_RELAYS)
    finally:
        for sock in (a, b):  # wakes the worker threads if the proxy stops first
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)


async def _relay_streams(
    client: anyio.abc.ByteStream,
    reader: BufferedByteReceiveStream,
    upstream: anyio.abc.SocketStream,
) -> None:
    async def pump(receive: Callable[[], Awaitable[bytes]], send: anyio.abc.ByteStream) -> None:
        with contextlib.suppress(
            anyio.EndOfStream, anyio.BrokenResourceError, anyio.ClosedResourceError, OSError
        ):
            while True:
                await send.send(await receive())
        with contextlib.suppress(OSError, anyio.BrokenResourceError, anyio.ClosedResourceError):
            await send.send_eof()

    async def from_client() -> bytes:
        return await reader.receive(_CHUNK)

    async def from_upstream() -> bytes:
        return await upstream.receive(_CHUNK)

    async with anyio.create_task_group() as group:
        group.start_soon(pump, from_client, upstream)
        await pump(from_upstream, client)
        group.cancel_scope.cancel()
