"""The client authenticates the daemon: attacks on a stale daemon.port, and state-file hygiene.

The fakes are real processes on real sockets: a squatter (user ``nobody`` when the tests run as
root) on the port a kill -9'd daemon left behind, and an impostor that even holds the lock and
answers the WebSocket upgrade, but does not know the token. Each records every byte it receives.
"""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from astrid_core import ConfigError, StorageError
from astrid_gateway._state import (
    DaemonLock,
    PortRecord,
    StatePaths,
    check_private_dir,
    client_proof,
    daemon_proof,
)
from astrid_gateway.client import (
    DaemonNotAuthentic,
    DaemonUnavailable,
    GatewayClient,
    locate_daemon,
)

from .conftest import DaemonProcess, spawn_daemon, wait_for

pytestmark = pytest.mark.anyio

# A listener that records every byte it is sent (hex lines on stdout: "conn" per connection,
# "data <hex>" per read). With --lock it first takes the flock on the given daemon.lock and
# writes a daemon.port naming itself; with --answer it replies to a WebSocket upgrade with a
# well-formed 101 carrying a proof it cannot compute correctly (it does not know the token).
_FAKE = textwrap.dedent(
    r"""
    import base64, fcntl, hashlib, json, os, pwd, socket, sys, threading
    port, lock_path = int(sys.argv[1]), sys.argv[3]
    as_nobody, answer = sys.argv[2] == "1", sys.argv[4] == "1"
    if lock_path:
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    if as_nobody:
        nobody = pwd.getpwnam("nobody")
        os.setgid(nobody.pw_gid); os.setuid(nobody.pw_uid)
    srv = socket.socket(); srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", port)); srv.listen(16)
    if lock_path:
        st = os.stat(lock_path)
        record = {"port": srv.getsockname()[1], "pid": os.getpid(), "lock": [st.st_dev, st.st_ino]}
        with open(os.path.join(os.path.dirname(lock_path), "daemon.port"), "w") as f:
            f.write(json.dumps(record))
    print("listening", srv.getsockname()[1], os.getuid(), flush=True)
    def serve(conn):
        print("conn", flush=True)
        buf = b""
        conn.settimeout(10)
        try:
            while True:
                data = conn.recv(65536)
                if not data:
                    break
                print("data", data.hex(), flush=True)
                buf += data
                if answer and b"\r\n\r\n" in buf and b"Upgrade" in buf and not buf.startswith(b"!"):
                    lines = buf.split(b"\r\n")
                    key = [l.split(b":", 1)[1].strip() for l in lines
                           if l.lower().startswith(b"sec-websocket-key:")][0]
                    guid = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
                    accept = base64.b64encode(hashlib.sha1(key + guid).digest())
                    conn.sendall(
                        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                        b"Connection: Upgrade\r\nSec-WebSocket-Accept: " + accept +
                        b"\r\nX-Astrid-Server-Nonce: " + b"ab" * 32 +
                        b"\r\nX-Astrid-Daemon-Pid: " + str(os.getpid()).encode() +
                        b"\r\nX-Astrid-Daemon-Proof: " + b"00" * 32 + b"\r\n\r\n")
                    buf = b"!" + buf
        except OSError:
            pass
        conn.close()
    while True:
        c, _ = srv.accept()
        threading.Thread(target=serve, args=(c,), daemon=True).start()
    """
)


class Fake:
    def __init__(self, proc: subprocess.Popen[str], port: int, uid: int) -> None:
        self.proc = proc
        self.port = port
        self.uid = uid

    def received(self) -> tuple[int, bytes]:
        """Stop the fake; (connections it accepted, every byte it was sent)."""
        self.proc.send_signal(signal.SIGTERM)
        out, _ = self.proc.communicate(timeout=10)
        connections = sum(1 for line in out.splitlines() if line == "conn")
        data = b"".join(
            bytes.fromhex(line.split()[1]) for line in out.splitlines() if line.startswith("data ")
        )
        return connections, data


@pytest.fixture
def run_fake() -> Iterator[object]:
    fakes: list[Fake] = []

    def start(port: int, *, as_nobody: bool, lock: Path | None = None, answer: bool) -> Fake:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-c",
                _FAKE,
                str(port),
                "1" if as_nobody else "0",
                str(lock or ""),
                "1" if answer else "0",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert proc.stdout is not None
        line = proc.stdout.readline().split()
        assert line, proc.stderr.read() if proc.stderr else ""
        assert line[0] == "listening"
        fake = Fake(proc, int(line[1]), int(line[2]))
        fakes.append(fake)
        return fake

    yield start
    for fake in fakes:
        if fake.proc.poll() is None:
            fake.proc.kill()
            fake.proc.communicate(timeout=10)


def _kill9(daemon: DaemonProcess) -> int:
    port = daemon.port
    os.killpg(daemon.proc.pid, signal.SIGKILL)
    daemon.proc.wait(timeout=10)
    assert daemon.paths.port.exists()  # stale, as after a crash
    assert daemon.paths.token.exists()
    return port


def _stop(daemon_pid: int) -> None:
    """Stop a daemon the client library auto-started (our child: reap it)."""
    from astrid_gateway.client import _DETACHED  # pyright: ignore[reportPrivateUsage]

    proc = next(p for p in _DETACHED if p.pid == daemon_pid)
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=15)


async def test_squatter_on_stale_port_gets_nothing_and_client_says_why(
    tmp_path: Path, run_fake
) -> None:  # type: ignore[no-untyped-def]
    home = tmp_path / "home"
    old = spawn_daemon(home)
    port = _kill9(old)
    token = old.token
    squatter = run_fake(port, as_nobody=os.geteuid() == 0, answer=True)
    if os.geteuid() == 0:
        assert squatter.uid != 0  # really another user
    with pytest.raises(DaemonUnavailable) as info:
        await GatewayClient.open(home, autostart=False)
    message = info.value.message
    assert "stale" in message, message
    assert str(old.proc.pid) in message
    assert "exited without cleaning up" in message
    assert not isinstance(info.value, DaemonNotAuthentic)  # it never got that far: no contact

    # With auto-start, a fresh daemon replaces the stale files and the squatter still gets nothing.
    async with await GatewayClient.open(home, autostart=True) as client:
        status = await client.call("status")
    assert status["pid"] != old.proc.pid
    record = PortRecord.parse(StatePaths(home).port.read_text())
    assert record is not None
    assert record.port != port
    assert record.pid == status["pid"]
    connections, data = squatter.received()
    assert connections == 0
    assert data == b""
    assert token.encode() not in data
    _stop(status["pid"])


async def test_impostor_holding_the_lock_cannot_prove_the_token(tmp_path: Path, run_fake) -> None:  # type: ignore[no-untyped-def]
    # Worst case for the client: the process on the port passes every /proc check (it holds
    # daemon.lock and owns the socket) and speaks WebSocket, but it does not know the token.
    home = tmp_path / "home"
    paths = StatePaths(home)
    paths.ensure()
    token = "the-real-token-" + "x" * 30
    (home / "daemon.token").write_text(token + "\n")
    os.chmod(home / "daemon.token", 0o600)
    impostor = run_fake(0, as_nobody=False, lock=paths.lock, answer=True)
    wait_for(paths.port.exists, what="impostor's port file")
    assert locate_daemon(paths).record is not None  # the /proc checks pass
    with pytest.raises(DaemonNotAuthentic) as info:
        await GatewayClient.open(home, autostart=False)
    assert "could not prove" in info.value.message
    assert "no token and no request were sent" in info.value.message
    connections, data = impostor.received()
    assert connections == 1
    assert data.startswith(b"GET / HTTP/1.1")  # the upgrade with our nonce, then only a close
    assert token.encode() not in data
    for word in (b"Authorization", b"proof", b"astrid.", b"Bearer"):
        assert word not in data, word


async def test_unbelievable_lock_holder_is_reported_not_waited_for(
    tmp_path: Path, run_fake
) -> None:  # type: ignore[no-untyped-def]
    # An older astridd (port file without pid) holds the lock: a new daemon cannot start and the
    # old one cannot be verified. The client says so in seconds and contacts nobody.
    home = tmp_path / "home"
    paths = StatePaths(home)
    paths.ensure()
    old = run_fake(0, as_nobody=False, lock=paths.lock, answer=True)
    wait_for(paths.port.exists, what="old daemon's port file")
    paths.port.write_text(f"{old.port}\n")
    (home / "daemon.lock").write_text(str(old.proc.pid))
    started = time.monotonic()
    with pytest.raises(DaemonUnavailable) as info:
        await GatewayClient.open(home, autostart=True)
    assert time.monotonic() - started < 15
    assert f"another astridd (pid {old.proc.pid}) holds daemon.lock" in info.value.message
    assert "older astridd" in info.value.message
    assert f"kill {old.proc.pid}" in info.value.hint
    assert old.received() == (0, b"")


async def test_a_daemon_that_dies_under_a_client_is_reported_with_its_log(tmp_path: Path) -> None:
    daemon = spawn_daemon(tmp_path / "home")
    async with await GatewayClient.open(daemon.paths.root, autostart=False) as client:
        os.killpg(daemon.proc.pid, signal.SIGKILL)
        daemon.proc.wait(timeout=10)
        started = time.monotonic()

        async def call_until_it_fails() -> None:
            for _ in range(3):  # the first call may still be written before the close is seen
                await client.call("status", timeout=20)

        with pytest.raises(DaemonUnavailable) as info:
            await call_until_it_fails()
        assert time.monotonic() - started < 10
    assert str(daemon.paths.log) in info.value.hint


def test_proofs_are_bound_to_direction_port_and_pid() -> None:
    args = ("tok", "a" * 64, "b" * 64)
    base = daemon_proof(*args, 4000, 10)
    assert base != client_proof(*args, 4000, 10)  # a daemon proof is not a client proof
    assert base != daemon_proof(*args, 4001, 10)  # relayed from a daemon on another port
    assert base != daemon_proof(*args, 4000, 11)
    assert base != daemon_proof("tok2", *args[1:], 4000, 10)


def test_port_owned_by_another_process_is_not_believed(tmp_path: Path, run_fake) -> None:  # type: ignore[no-untyped-def]
    # A live daemon's port file, edited to name a port someone else listens on: the pid holds
    # the lock, but the socket on that port is not in its fd table.
    daemon = spawn_daemon(tmp_path / "home")
    try:
        other = run_fake(0, as_nobody=False, answer=False)
        record = PortRecord.parse(daemon.paths.port.read_text())
        assert record is not None
        daemon.paths.port.write_text(
            PortRecord(other.port, record.pid, record.lock_dev, record.lock_ino).dumps()
        )
        found = locate_daemon(daemon.paths)
        assert found.record is None
        assert "held by a process other than the daemon" in found.reason
        assert other.received() == (0, b"")
    finally:
        daemon.proc.send_signal(signal.SIGTERM)
        daemon.proc.wait(timeout=15)


def test_a_listener_that_cannot_receive_our_connection_is_ignored(daemon: DaemonProcess) -> None:
    # Another user binding [::1]:<daemon's port> cannot get our connection to 127.0.0.1, so it
    # must not make the client refuse a genuine daemon either (no denial of service).
    import socket

    try:
        squat = socket.socket(socket.AF_INET6)
    except OSError:
        pytest.skip("no IPv6 here")
    with squat:
        squat.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        try:
            squat.bind(("::1", daemon.port))
        except OSError:
            pytest.skip("cannot bind [::1]")
        squat.listen(1)
        found = locate_daemon(daemon.paths)
        assert found.record is not None, found.reason


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.168.1.10"])
def test_listens_on_loopback_only(tmp_path: Path, host: str) -> None:
    from astrid_core import AstridError
    from astrid_gateway.server import GatewayServer

    with pytest.raises(AstridError) as info:
        GatewayServer(StatePaths(tmp_path), host=host)
    assert "loopback only" in info.value.message
    assert "allow_remote" in info.value.hint


# ---------------------------------------------------------------------- hygiene


@pytest.mark.parametrize("name", ["daemon.lock", "daemon.port", "daemon.pid", "daemon.token"])
def test_planted_symlink_never_truncates_its_target(tmp_path: Path, name: str) -> None:
    home = tmp_path / "home"
    home.mkdir(mode=0o700)
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    (home / name).symlink_to(victim)
    paths = StatePaths(home)
    if name == "daemon.lock":
        with pytest.raises(ConfigError) as info:
            DaemonLock(paths).acquire()
        assert "symbolic link" in info.value.message
        assert "rm " in info.value.hint
    else:
        daemon = spawn_daemon(home)
        daemon.proc.send_signal(signal.SIGTERM)
        daemon.proc.wait(timeout=15)
        if name == "daemon.token":
            assert not (home / name).is_symlink()  # replaced by the daemon's own file
    assert victim.read_text() == "precious\n"


def test_lock_file_is_never_followed_by_the_holder_pid_reader(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir(mode=0o700)
    secret = tmp_path / "secret"
    secret.write_text("4242")
    (home / "daemon.lock").symlink_to(secret)
    assert DaemonLock(StatePaths(home)).holder_pid() is None


@pytest.mark.parametrize("target", ["home", "keys"])
def test_group_or_world_writable_home_or_keys_is_refused(tmp_path: Path, target: str) -> None:
    home = tmp_path / "home"
    home.mkdir(mode=0o700)
    loose = home if target == "home" else home / "keys"
    loose.mkdir(exist_ok=True)
    os.chmod(loose, 0o777)  # noqa: S103 - the attack under test
    with pytest.raises(ConfigError) as info:
        DaemonLock(StatePaths(home)).acquire()
    assert "writable by group or others" in info.value.message
    assert info.value.hint == f"run `chmod 700 {loose}`"
    # The daemon itself says the same and does not start.
    out = subprocess.run(
        [sys.executable, "-m", "astrid_gateway", "--state-dir", str(home)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 2
    assert f"astridd: hint: run `chmod 700 {loose}`" in out.stderr
    assert not (home / "daemon.port").exists()


async def test_client_refuses_a_writable_home(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir(mode=0o700)
    os.chmod(home, 0o770)  # noqa: S103 - the attack under test
    with pytest.raises(ConfigError) as info:
        await GatewayClient.open(home, autostart=False)
    assert "chmod 700" in info.value.hint


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to hand a folder to another user")
def test_home_owned_by_another_user_is_refused(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir(mode=0o700)
    os.chown(home, 65534, 65534)
    with pytest.raises(ConfigError) as info:
        check_private_dir(home)
    assert "belongs to uid 65534" in info.value.message
    assert "chown" in info.value.hint


def test_logs_folder_is_private(tmp_path: Path) -> None:
    paths = StatePaths(tmp_path / "home")
    paths.ensure()
    paths.logs.mkdir(mode=0o755)
    os.chmod(paths.logs, 0o755)  # noqa: S103 - what older versions left
    paths.ensure_logs()
    assert stat.S_IMODE(paths.logs.stat().st_mode) == 0o700


def test_second_lock_holder_still_refused_cleanly(daemon: DaemonProcess) -> None:
    with pytest.raises(StorageError) as info:
        DaemonLock(daemon.paths).acquire()
    assert str(daemon.proc.pid) in info.value.message


def test_daemon_removes_stale_port_file_when_it_takes_the_lock(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir(mode=0o700)
    (home / "daemon.port").write_text(json.dumps({"port": 1, "pid": 1, "lock": [0, 0]}))
    lock = DaemonLock(StatePaths(home))
    lock.acquire()
    try:
        assert not (home / "daemon.port").exists()
    finally:
        lock.release()
