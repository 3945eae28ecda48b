"""MCP servers run confined like bash (issue #20): attacks from a compromised server."""

from __future__ import annotations

import shutil
import socket
import time
import uuid
from pathlib import Path

import pytest

from astrid_mcp import SecureMcpClient

from .conftest import RuleGuard, lab_config

pytestmark = [
    pytest.mark.anyio,
    pytest.mark.skipif(shutil.which("bwrap") is None, reason="needs bubblewrap"),
]


def _sandboxed(tmp_path: Path, **sandbox: object) -> object:
    return lab_config(tmp_path, sandbox={"enabled": True, "read_paths": [str(tmp_path)], **sandbox})


async def test_a_server_cannot_drive_a_host_unix_socket_server(tmp_path: Path) -> None:
    path = tmp_path / "tmux-0" / "default"  # tmux, docker.sock, D-Bus, ssh-agent stand-in
    path.parent.mkdir()
    with socket.socket(socket.AF_UNIX) as listener:
        listener.bind(str(path))
        listener.listen(1)
        listener.settimeout(0.3)
        async with SecureMcpClient(_sandboxed(tmp_path), guard=RuleGuard()) as client:  # type: ignore[arg-type]
            result = await client.call_tool("unix_connect", {"path": str(path)})
        assert result.text.startswith("refused"), result.text
        with pytest.raises(TimeoutError):
            listener.accept()


async def test_a_servers_detached_grandchild_dies_with_the_server(tmp_path: Path) -> None:
    marker = f"5{uuid.uuid4().int % 1000}.75"
    async with SecureMcpClient(_sandboxed(tmp_path), guard=RuleGuard()) as client:  # type: ignore[arg-type]
        assert (await client.call_tool("spawn_detached", {"marker": marker})).text == "started"
    needle = f"sleep\0{marker}".encode()

    def alive() -> list[str]:
        found = []
        for entry in Path("/proc").iterdir():
            try:
                if entry.name.isdigit() and needle in (entry / "cmdline").read_bytes():
                    found.append(entry.name)
            except OSError:
                continue
        return found

    deadline = time.monotonic() + 5
    while alive() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert alive() == []


async def test_a_servers_environment_holds_no_host_secrets(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-host-secret")
    monkeypatch.setenv("SSH_AUTH_SOCK", "/tmp/agent.sock")
    async with SecureMcpClient(_sandboxed(tmp_path), guard=RuleGuard()) as client:  # type: ignore[arg-type]
        for name in ("ANTHROPIC_API_KEY", "SSH_AUTH_SOCK"):
            assert "sk-ant" not in (await client.call_tool("env_probe", {"name": name})).text
            assert "agent.sock" not in (await client.call_tool("env_probe", {"name": name})).text


async def test_a_servers_connections_are_network_requests_of_the_session_guard(
    tmp_path: Path,
) -> None:
    # Not a static list alone: a listed host goes to the session's Guard (the interceptor,
    # which decides and audits as for bash); an unlisted one is refused without asking.
    from astrid_core import NetworkRequest

    guard = RuleGuard()
    config = _sandboxed(tmp_path, net=["listed.test"])
    async with SecureMcpClient(config, guard=guard) as client:  # type: ignore[arg-type]
        listed = await client.call_tool("proxy_connect", {"host": "listed.test", "port": 443})
        other = await client.call_tool("proxy_connect", {"host": "other.test", "port": 443})
    asked = [a for a in guard.seen if isinstance(a, NetworkRequest)]
    assert [(a.host, a.port) for a in asked] == [("listed.test", 443)]
    assert "403" not in listed.text  # allowed by both (then it cannot resolve: 502)
    assert "403" in other.text


async def test_a_listed_host_the_session_guard_denies_does_not_leave(tmp_path: Path) -> None:
    from astrid_core import Authorization, DenialLayer, NetworkRequest

    class DenyNetwork(RuleGuard):
        async def authorize(self, action: object, reason: str) -> Authorization:
            if isinstance(action, NetworkRequest):
                self.seen.append(action)
                return Authorization.deny(DenialLayer.POLICY, "network denied by the session")
            return await super().authorize(action, reason)

    guard = DenyNetwork()
    config = _sandboxed(tmp_path, net=["listed.test"])
    async with SecureMcpClient(config, guard=guard) as client:  # type: ignore[arg-type]
        answer = await client.call_tool("proxy_connect", {"host": "listed.test", "port": 443})
    assert "403" in answer.text
    assert any(isinstance(a, NetworkRequest) for a in guard.seen)
