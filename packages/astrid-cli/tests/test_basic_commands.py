"""The astrid command as a user runs it: a real subprocess, a private ASTRID_HOME."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest


def astrid(home: Path, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "ASTRID_HOME": str(home)}
    return subprocess.run(
        [sys.executable, "-m", "astrid_cli", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
    )


def test_version_and_help(tmp_path: Path) -> None:
    out = astrid(tmp_path, "--version")
    assert out.returncode == 0
    assert "astrid, version 0.1.0" in out.stdout
    helptext = astrid(tmp_path, "--help").stdout
    for command in ("daemon", "keys", "status"):
        assert command in helptext


def test_version_does_not_import_heavy_libraries(tmp_path: Path) -> None:
    code = (
        "import sys; from astrid_cli.main import main\n"
        "try:\n    main(['--version'])\nexcept SystemExit:\n    pass\n"
        "heavy = [m for m in ('anthropic', 'openai', 'mcp', 'websockets', 'rich', 'pydantic',"
        " 'nacl', 'surrealdb', 'extism', 'telegram') if m in sys.modules]\n"
        "print(heavy)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout.strip().endswith("[]"), out.stdout


def test_daemon_status_when_not_running_exits_3(tmp_path: Path) -> None:
    out = astrid(tmp_path, "daemon", "status", "--json")
    assert out.returncode == 3
    assert json.loads(out.stdout) == {"running": False}


def test_status_autostarts_daemon_then_stop(tmp_path: Path) -> None:
    out = astrid(tmp_path, "status", "--json")
    assert out.returncode == 0, out.stderr
    status = json.loads(out.stdout)
    assert status["running"] is True
    assert status["ephemeral"] is True
    shown = astrid(tmp_path, "status")  # for a person: labelled lines, not a dict dump
    assert shown.returncode == 0, shown.stderr
    assert f"pid {status['pid']}" in shown.stdout
    assert status["runtime"]["runtime_key_id"] in shown.stdout
    assert "0 waiting, 0 deferred" in shown.stdout
    assert "{'" not in shown.stdout
    stopped = astrid(tmp_path, "daemon", "stop")
    assert stopped.returncode == 0, stopped.stderr


def test_keys_generate_show_and_refuse_overwrite(tmp_path: Path) -> None:
    missing = astrid(tmp_path, "keys", "show")
    assert missing.returncode == 1
    assert "does not exist" in missing.stderr
    assert "astrid keys generate" in missing.stderr
    made = astrid(tmp_path, "keys", "generate")
    assert made.returncode == 0, made.stderr
    key_file = tmp_path / "keys" / "runtime.key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    shown = json.loads(astrid(tmp_path, "keys", "show", "--json").stdout)
    assert shown["key_id"] in made.stdout
    again = astrid(tmp_path, "keys", "generate")
    assert again.returncode == 1
    assert "--force" in again.stderr


def test_keys_show_refuses_world_readable_key(tmp_path: Path) -> None:
    assert astrid(tmp_path, "keys", "generate").returncode == 0
    key_file = tmp_path / "keys" / "runtime.key"
    key_file.chmod(0o644)
    out = astrid(tmp_path, "keys", "show")
    assert out.returncode == 1
    assert "chmod 600" in out.stderr


@pytest.mark.parametrize("args", [["nope"], ["keys", "nope"], ["daemon", "run", "--port", "x"]])
def test_usage_errors_exit_2(tmp_path: Path, args: list[str]) -> None:
    out = astrid(tmp_path, *args)
    assert out.returncode == 2


def test_server_confinement_words() -> None:
    from astrid_cli._support import server_confinement

    running = {"state": "running", "sandboxed": True}
    assert server_confinement(running) == "sandboxed"
    assert server_confinement({**running, "network": False}) == "sandboxed, no TCP"
    assert server_confinement({**running, "sandboxed": False}) == "NOT sandboxed"
    assert server_confinement({"state": "failed", "sandboxed": False}) == ""
    layers = "namespaces (bubblewrap), Landlock ABI 7, seccomp, network: none"
    assert server_confinement({**running, "confinement": layers}) == layers
