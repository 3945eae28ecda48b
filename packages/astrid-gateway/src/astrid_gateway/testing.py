"""Helpers for end-to-end tests against a real ``astridd`` subprocess and the real CLI.

They ship with the gateway so that every package's tests (and users' own) start, drive and
stop the daemon the same way: a state directory with a scripted model, ``astridd`` in its own
session (so that stopping it also stops the MCP servers it spawned), a bounded wait for its
port file, and the CLI as a separate process, as a person would run it. The CLI is run as
``python -m astrid_cli`` in a subprocess, so this module does not import it.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from astrid_core import AstridError

from .protocol import PORT_FILE

__all__ = [
    "DaemonStartError",
    "write_scripted_config",
    "start_daemon",
    "stop_daemon",
    "run_cli",
]

DAEMON_LOG = "daemon.log"  # in the state directory, next to what the daemon writes there


class DaemonStartError(AstridError):
    """A test daemon exited, or did not come up in time."""

    code = "gateway.test_daemon"
    default_hint = "the daemon's own output is in the message; fix what it complains about"


def write_scripted_config(
    home: Path,
    workspace: Path | None,
    turns: Sequence[Mapping[str, object]],
    mode: str = "guided",
) -> None:
    """Write ``config.toml`` choosing the scripted model, which answers with ``turns`` in
    order, and (when given) the workspace root and its approval mode."""
    home.mkdir(parents=True, exist_ok=True)
    script = home / "script.json"
    script.write_text(json.dumps({"turns": list(turns)}))
    config = f'[model]\nprovider = "scripted"\nscript = {_toml(script)}\n'
    if workspace is not None:
        config += f"[workspace]\nroot = {_toml(workspace)}\nmode = {_toml(mode)}\n"
    (home / "config.toml").write_text(config)


def start_daemon(home: Path, *, timeout: float = 30.0) -> subprocess.Popen[bytes]:
    """Start ``astridd`` on ``home`` and return once its port file exists.

    Its output is appended to ``home/daemon.log``. Stop it with :func:`stop_daemon`.
    """
    home.mkdir(parents=True, exist_ok=True)
    log_path = home / DAEMON_LOG
    with log_path.open("ab") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "astrid_gateway", "--state-dir", str(home)],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: stop_daemon signals all of it
        )
    deadline = time.monotonic() + timeout
    while not (home / PORT_FILE).exists():
        if proc.poll() is not None:
            raise DaemonStartError(
                f"astridd exited with code {proc.returncode} before writing {PORT_FILE}; "
                f"its output:\n{log_path.read_text()}"
            )
        if time.monotonic() > deadline:
            stop_daemon(proc)
            raise DaemonStartError(
                f"astridd did not write {PORT_FILE} within {timeout:g} s; "
                f"its output:\n{log_path.read_text()}"
            )
        time.sleep(0.05)
    return proc


def stop_daemon(proc: subprocess.Popen[bytes], *, timeout: float = 20.0) -> bool:
    """SIGTERM the daemon's process group and wait; SIGKILL it if that takes longer than
    ``timeout``. Returns False only when it had to be killed."""
    if proc.poll() is not None:
        return True
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        return False
    return True


def run_cli(
    home: Path,
    *args: str,
    env: Mapping[str, str] | None = None,
    stdin: str | None = None,
    cwd: Path | None = None,
    timeout: float = 120.0,
    new_session: bool = False,
) -> subprocess.CompletedProcess[str]:
    """Run ``astrid ARGS`` with ``ASTRID_HOME=home`` and capture its text output.

    ``env`` is the whole environment (default: this process's). ``stdin`` is sent as input
    (``None``: inherited). ``new_session`` detaches it from the controlling terminal, so that
    prompts which would open ``/dev/tty`` (getpass) read ``stdin`` instead.
    """
    return subprocess.run(
        [sys.executable, "-m", "astrid_cli", *args],
        input=stdin,
        capture_output=True,
        text=True,
        env={**(os.environ if env is None else env), "ASTRID_HOME": str(home)},
        timeout=timeout,
        start_new_session=new_session,
        cwd=cwd,
    )


def _toml(value: object) -> str:
    # A JSON string is a valid TOML basic string: a path with a quote or backslash stays intact.
    return json.dumps(str(value), ensure_ascii=False)
