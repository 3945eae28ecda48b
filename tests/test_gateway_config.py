"""[gateway] keys do what they say: port and ephemeral_idle_seconds reach the daemon however it
starts; allow_remote = true is refused at once, with the way to do it safely."""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path

from astrid_gateway.testing import run_cli, write_scripted_config


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _running(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def test_port_and_idle_time_reach_the_auto_started_daemon(tmp_path: Path) -> None:
    home = tmp_path / "home"
    write_scripted_config(home, None, [{"text": "hi"}])
    port = _free_port()
    with (home / "config.toml").open("a") as config:
        config.write(f"[gateway]\nport = {port}\nephemeral_idle_seconds = 1.0\n")
    out = run_cli(home, "status", "--json")
    assert out.returncode == 0, out.stderr
    status = json.loads(out.stdout)
    assert json.loads((home / "daemon.port").read_text())["port"] == port
    pid = int(status["pid"])
    # Idle for 1 s (not the default 30 s), the ephemeral daemon leaves by itself.
    deadline = time.monotonic() + 20
    while _running(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _running(pid), "the ephemeral daemon ignored [gateway] ephemeral_idle_seconds"


def test_allow_remote_is_refused_with_the_safe_way(tmp_path: Path) -> None:
    home = tmp_path / "home"
    write_scripted_config(home, None, [{"text": "hi"}])
    with (home / "config.toml").open("a") as config:
        config.write("[gateway]\nallow_remote = true\n")
    out = run_cli(home, "status")
    assert out.returncode != 0
    assert "allow_remote = true is refused: astridd serves no TLS" in out.stderr
    assert "ssh -L" in out.stderr
