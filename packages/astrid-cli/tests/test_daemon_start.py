"""Starting the daemon from the CLI: failures surface at once, in the daemon's own words, and
every ``--json`` failure is a JSON object; a person on a terminal sees that a daemon starts."""

from __future__ import annotations

import json
import os
import pty
import select
import subprocess
import sys
import time
from pathlib import Path

import pytest

BROKEN_TOML = '[model]\nprovider = "scripted\n'  # unterminated string: line 2, column 21


def astrid(home: Path, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "ASTRID_HOME": str(home)}
    return subprocess.run(
        [sys.executable, "-m", "astrid_cli", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
    )


@pytest.fixture
def broken_home(tmp_path: Path) -> Path:
    home = tmp_path / "home"
    home.mkdir(mode=0o700)
    (home / "config.toml").write_text(BROKEN_TOML)
    return home


def test_broken_config_is_reported_at_once_with_line_and_column(broken_home: Path) -> None:
    # No timing: the start-up timeout's own message ("did not come up") must not appear, the
    # daemon's exit must (a timed bound failed on a loaded host).
    out = astrid(broken_home, "status")
    assert out.returncode == 1
    assert "the daemon exited while starting" in out.stderr
    assert "invalid TOML" in out.stderr
    assert "line 2, column 21" in out.stderr
    assert "did not come up" not in out.stderr
    assert "astrid config validate" in out.stderr  # the daemon's own hint
    assert not (broken_home / "daemon.port").exists()


def test_broken_config_with_json_prints_a_json_error(broken_home: Path) -> None:
    out = astrid(broken_home, "status", "--json")
    assert out.returncode == 1
    error = json.loads(out.stdout)["error"]
    assert error["code"] == "gateway.start_failed"
    assert "line 2, column 21" in error["message"]
    assert error["hint"]


@pytest.mark.parametrize(
    "args",
    [
        ["status", "--json", "--no-such-flag"],  # usage error
        ["sessions", "show", "--json", "not-a-session"],  # error from the daemon side
    ],
)
def test_every_json_failure_is_a_json_object(broken_home: Path, args: list[str]) -> None:
    out = astrid(broken_home, *args)
    assert out.returncode != 0
    error = json.loads(out.stdout)["error"]
    assert set(error) == {"code", "message", "hint"}
    assert error["message"]


def test_stale_port_file_means_not_running(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir(mode=0o700)
    (home / "daemon.port").write_text(json.dumps({"port": 9, "pid": 999999, "lock": [0, 0]}))
    out = astrid(home, "daemon", "status")
    assert out.returncode == 3, out.stderr
    assert "stale" in out.stdout
    assert json.loads(astrid(home, "daemon", "status", "--json").stdout) == {"running": False}


def test_a_terminal_sees_that_the_daemon_is_starting(broken_home: Path) -> None:
    # stderr on a pseudo-terminal, as a person runs it; stdout captured.
    master, slave = pty.openpty()
    env = {**os.environ, "ASTRID_HOME": str(broken_home)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "astrid_cli", "status"],
        stdout=subprocess.PIPE,
        stderr=slave,
        env=env,
    )
    os.close(slave)
    seen = b""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        ready, _, _ = select.select([master], [], [], 0.5)
        if ready:
            try:
                chunk = os.read(master, 4096)
            except OSError:
                break
            if not chunk:
                break
            seen += chunk
        elif proc.poll() is not None:
            break
    os.close(master)
    proc.wait(timeout=30)
    assert proc.stdout is not None
    proc.stdout.close()
    text = seen.decode(errors="replace")
    assert "starting the Astrid daemon…" in text
    assert "\r\x1b[K" in text  # erased before the error is printed
    assert "line 2, column 21" in text


def test_no_status_line_when_stderr_is_not_a_terminal(broken_home: Path) -> None:
    out = astrid(broken_home, "status")
    assert "starting the Astrid daemon" not in out.stderr


def test_status_shows_the_rotated_log_and_logs_is_private(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir(mode=0o700)
    (home / "config.toml").write_text("[logging]\nmax_bytes = 100000\nbackups = 5\n")
    out = astrid(home, "status", "--json")
    try:
        assert out.returncode == 0, out.stderr
        status = json.loads(out.stdout)
        assert status["log"] == f"{home / 'logs' / 'astridd.log'} (rotated at 100000 bytes, 5 kept)"
        assert (home / "logs").stat().st_mode & 0o777 == 0o700
        assert "astridd listening" in (home / "logs" / "astridd.log").read_text()
        shown = astrid(home, "status")
        assert "rotated at 100000 bytes" in shown.stdout
    finally:
        astrid(home, "daemon", "stop")
