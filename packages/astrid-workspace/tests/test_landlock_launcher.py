"""The Landlock launcher, exercised with real child processes (python and node).

Layout per test: siblings A (read-only), B (writable), C (not granted, holds a secret) under
pytest's tmp_path, which itself lives under /tmp: so these tests also prove /tmp is not
granted wholesale.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest

import astrid_workspace
from astrid_workspace import SandboxStatus, landlock_abi, launcher_argv, sandbox_status

ABI = landlock_abi()
pytestmark = pytest.mark.skipif(ABI == 0, reason="kernel has no Landlock (landlock_abi() == 0)")

SECRET = "top-secret-token"

# Runs in the sandboxed child: performs each (op, arg) and reports "ok" or the errno name.
PROBE = r"""
import errno, json, os, socket, sys
def run(op, arg):
    if op == "read":
        return open(arg).read()
    if op == "write":
        with open(arg, "w") as f:
            f.write("written")
    elif op == "list":
        os.listdir(arg)
    elif op == "unlink":
        os.unlink(arg)
    elif op == "symlink_then_read":
        link, target = arg
        os.symlink(target, link)
        return open(link).read()
    elif op == "rename":
        os.rename(*arg)
    elif op == "link":
        os.link(*arg)
    elif op == "kill0":
        os.kill(arg, 0)
    elif op == "connect":
        with socket.create_connection(tuple(arg), timeout=5) as s:
            s.sendall(b"from-sandbox")
    elif op == "listen":
        with socket.create_server(("127.0.0.1", arg)):
            pass
    elif op == "udp":
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.sendto(b"from-sandbox", tuple(arg))
    return "ok"
out = []
for op, arg in json.loads(sys.argv[1]):
    try:
        out.append(run(op, arg))
    except OSError as exc:
        out.append(errno.errorcode.get(exc.errno or 0, type(exc).__name__))
print(json.dumps(out))
"""


@dataclass
class Dirs:
    a: Path  # granted read-only
    b: Path  # granted read-write
    c: Path  # not granted

    @property
    def public(self) -> Path:
        return self.a / "public.txt"

    @property
    def secret(self) -> Path:
        return self.c / "secret.txt"


@pytest.fixture
def dirs(tmp_path: Path) -> Dirs:
    d = Dirs(tmp_path / "A", tmp_path / "B", tmp_path / "C")
    for p in (d.a, d.b, d.c):
        p.mkdir()
    d.public.write_text("public data")
    d.secret.write_text(SECRET)
    return d


def run_sandboxed(
    command: list[str], read: list[Path], write: list[Path], *, network: bool = True
) -> subprocess.CompletedProcess[str]:
    argv = launcher_argv(command[0], command[1:], read, write, network=network)
    return subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)


def probe(dirs: Dirs, ops: list[tuple[str, object]], *, network: bool = True) -> list[str]:
    proc = run_sandboxed(
        [sys.executable, "-c", PROBE, json.dumps(ops)],
        read=[dirs.a],
        write=[dirs.b],
        network=network,
    )
    assert proc.returncode == 0, proc.stderr
    results: list[str] = json.loads(proc.stdout)
    return results


def test_reads_granted_dir_and_writes_writable_dir(dirs: Dirs) -> None:
    results = probe(dirs, [("read", str(dirs.public)), ("write", str(dirs.b / "new.txt"))])
    assert results == ["public data", "ok"]
    assert (dirs.b / "new.txt").read_text() == "written"


def test_read_only_dir_cannot_be_modified(dirs: Dirs) -> None:
    results = probe(
        dirs,
        [
            ("write", str(dirs.public)),
            ("write", str(dirs.a / "new.txt")),
            ("unlink", str(dirs.public)),
        ],
    )
    assert results == ["EACCES", "EACCES", "EACCES"]
    assert dirs.public.read_text() == "public data"
    assert not (dirs.a / "new.txt").exists()


def test_ungranted_dirs_are_unreadable(dirs: Dirs) -> None:
    results = probe(
        dirs, [("read", str(dirs.secret)), ("list", str(dirs.c)), ("list", str(Path.home()))]
    )
    assert results == ["EACCES", "EACCES", "EACCES"]


@pytest.mark.skipif(not os.access("/etc/shadow", os.R_OK), reason="/etc/shadow not readable here")
def test_etc_is_not_granted_wholesale(dirs: Dirs) -> None:
    # Readable by this (root) test process, so only the sandbox can make it fail.
    results = probe(dirs, [("read", "/etc/shadow"), ("read", "/etc/ssl/certs/ca-certificates.crt")])
    assert results[0] == "EACCES"
    assert results[1] != "EACCES"


def test_tmp_is_not_granted_outside_the_writable_dir(dirs: Dirs) -> None:
    stray = Path("/tmp") / f"astrid-sandbox-probe-{uuid.uuid4().hex}"
    sibling = dirs.a.parent / "D-created-by-child"
    results = probe(dirs, [("write", str(stray)), ("write", str(sibling)), ("list", "/tmp")])
    assert results == ["EACCES", "EACCES", "EACCES"]
    assert not stray.exists()
    assert not sibling.exists()


def test_symlink_in_writable_dir_does_not_escape(dirs: Dirs) -> None:
    (dirs.b / "to-secret").symlink_to(dirs.secret)
    (dirs.b / "to-c").symlink_to(dirs.c, target_is_directory=True)
    results = probe(
        dirs,
        [
            ("read", str(dirs.b / "to-secret")),
            ("write", str(dirs.b / "to-c" / "planted.txt")),
            ("symlink_then_read", [str(dirs.b / "made-inside"), str(dirs.secret)]),
        ],
    )
    assert results == ["EACCES", "EACCES", "EACCES"]
    assert not (dirs.c / "planted.txt").exists()


def test_dotdot_does_not_escape(dirs: Dirs) -> None:
    results = probe(
        dirs,
        [
            ("read", f"{dirs.b}/../C/secret.txt"),
            ("write", f"{dirs.b}/../C/planted.txt"),
            ("read", f"{dirs.a}/../A/public.txt"),
        ],
    )
    assert results == ["EACCES", "EACCES", "public data"]
    assert not (dirs.c / "planted.txt").exists()


def test_files_cannot_be_moved_or_linked_across_the_boundary(dirs: Dirs) -> None:
    (dirs.b / "out.txt").write_text("data")
    results = probe(
        dirs,
        [
            ("rename", [str(dirs.b / "out.txt"), str(dirs.c / "out.txt")]),
            ("link", [str(dirs.secret), str(dirs.b / "hardlink.txt")]),
        ],
    )
    # Landlock reports EXDEV when only the REFER right is missing, EACCES otherwise.
    assert results[0] in {"EACCES", "EXDEV"}
    assert results[1] in {"EACCES", "EXDEV"}
    assert (dirs.b / "out.txt").exists()
    assert not (dirs.b / "hardlink.txt").exists()


def test_network_is_not_restricted(dirs: Dirs) -> None:
    with socket.create_server(("127.0.0.1", 0)) as server:
        server.settimeout(10)
        port = server.getsockname()[1]
        results = probe(dirs, [("connect", ["127.0.0.1", port])])
        assert results == ["ok"]
        conn, _ = server.accept()
        with conn:
            assert conn.recv(100) == b"from-sandbox"


@pytest.mark.skipif(ABI < 4, reason="TCP rules need Landlock ABI >= 4")
def test_no_network_denies_every_tcp_connect_and_listen(dirs: Dirs) -> None:
    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]
        results = probe(
            dirs,
            [("connect", ["127.0.0.1", port]), ("listen", 0), ("read", str(dirs.public))],
            network=False,
        )
    # The filesystem grants are unchanged; only TCP is gone, for any port.
    assert results == ["EACCES", "EACCES", "public data"]


@pytest.mark.skipif(ABI < 4, reason="TCP rules need Landlock ABI >= 4")
def test_no_network_leaves_udp_as_documented(dirs: Dirs) -> None:
    # Landlock filters TCP only; the README says so. If a kernel ever filters UDP too, this
    # test fails and the documentation should be updated, not the test.
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as receiver:
        receiver.bind(("127.0.0.1", 0))
        receiver.settimeout(10)
        results = probe(dirs, [("udp", ["127.0.0.1", receiver.getsockname()[1]])], network=False)
        assert results == ["ok"]
        assert receiver.recv(100) == b"from-sandbox"


def test_no_network_without_landlock_is_refused_even_when_unsandboxed_is_allowed(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from astrid_workspace import _launcher as launcher

    monkeypatch.setattr(launcher, "landlock_abi", lambda: 0)  # a kernel without Landlock
    code = launcher.main(["--no-network", "--allow-unsandboxed", "--", sys.executable, "-V"])
    assert code == launcher.EXIT_SANDBOX_FAILURE
    assert "no network was asked for" in capsys.readouterr().err


@pytest.mark.skipif(ABI < 6, reason="signal scoping needs Landlock ABI >= 6")
def test_cannot_signal_processes_outside_the_sandbox(dirs: Dirs) -> None:
    # Allowed by Unix permissions (same uid), so only the Landlock scope can deny it.
    os.kill(os.getpid(), 0)
    assert probe(dirs, [("kill0", os.getpid())]) == ["EPERM"]


def test_node_runs_sandboxed(dirs: Dirs) -> None:
    node = shutil.which("node")
    assert node is not None, "node is expected on PATH in this environment"
    script = (
        "const fs = require('fs');"
        "console.log(fs.readFileSync(process.argv[1], 'utf8'));"
        "try { fs.readFileSync(process.argv[2]); console.log('LEAKED'); }"
        "catch (e) { console.log(e.code); }"
    )
    proc = run_sandboxed(
        [node, "-e", script, str(dirs.public), str(dirs.secret)], read=[dirs.a], write=[dirs.b]
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == ["public data", "EACCES"]


def test_venv_packages_import_inside_the_sandbox(dirs: Dirs) -> None:
    # The venv's editable installs are granted read-only along with the interpreter.
    code = "import astrid_workspace, ssl; ssl.create_default_context(); print('ok')"
    proc = run_sandboxed([sys.executable, "-c", code], read=[], write=[])
    assert (proc.returncode, proc.stdout.strip()) == (0, "ok"), proc.stderr


def test_exit_status_of_the_command_is_passed_through(dirs: Dirs) -> None:
    proc = run_sandboxed([sys.executable, "-c", "raise SystemExit(3)"], read=[], write=[])
    assert proc.returncode == 3


def test_command_not_found_exits_127() -> None:
    proc = run_sandboxed(["astrid-no-such-command-xyz"], read=[], write=[])
    assert proc.returncode == 127
    assert "command not found: astrid-no-such-command-xyz" in proc.stderr


def test_missing_paths_are_skipped_and_reported(dirs: Dirs) -> None:
    missing = dirs.a.parent / "does-not-exist"
    proc = run_sandboxed([sys.executable, "-c", "pass"], read=[missing], write=[])
    assert proc.returncode == 0, proc.stderr
    assert f"skipped paths that do not exist: {missing}" in proc.stderr


def test_usage_error_without_separator() -> None:
    argv = [sys.executable, "-m", "astrid_workspace", "true"]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 2
    assert "missing '--'" in proc.stderr


def test_launcher_argv_shape() -> None:
    argv = launcher_argv("node", ["server.js", "--x"], [Path("/r")], ["/w"], True)
    launcher = Path(astrid_workspace.__file__).with_name("_launcher.py")
    assert argv == [
        sys.executable,
        "-E",
        "-s",
        "-S",
        str(launcher),
        "--read=/r",
        "--write=/w",
        "--allow-unsandboxed",
        "--",
        "node",
        "server.js",
        "--x",
    ]


def test_sandbox_status_reports_the_abi() -> None:
    assert sandbox_status() == SandboxStatus(True, ABI, f"Landlock ABI {ABI}")
