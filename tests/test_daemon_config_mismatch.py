"""A CLI whose configuration differs from the running daemon's is told, never silently ignored.

An ephemeral daemon (auto-started, exits when idle) is restarted with the command's
configuration; a persistent one (``astridd`` / ``astrid daemon run``) is never restarted behind
the user's back: the command says what differs and how to apply it. Values are compared as
digests keyed with the daemon token, so a secret never crosses the connection.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from astrid_gateway._config_inputs import CONFIG_ENV
from astrid_gateway.testing import run_cli, start_daemon, stop_daemon, write_scripted_config


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in CONFIG_ENV}
    env.update(extra)
    return env


def _pid(out: str) -> int:
    return int(json.loads(out)["pid"])


def test_an_ephemeral_daemon_is_restarted_when_the_command_brings_another_config(
    tmp_path: Path,
) -> None:
    home = tmp_path / "home"
    write_scripted_config(home, None, [{"text": "hi"}])
    try:
        first = run_cli(home, "status", "--json", env=_env())
        assert first.returncode == 0, first.stderr
        before = _pid(first.stdout)

        same = run_cli(home, "status", "--json", env=_env())
        assert _pid(same.stdout) == before
        assert "restarting" not in same.stderr

        # A key set in this shell only: the daemon that ignored it is replaced, and the
        # message names the variable, never its value.
        keyed = run_cli(home, "status", "--json", env=_env(OPENAI_API_KEY="sk-this-shell-only"))
        assert keyed.returncode == 0, keyed.stderr
        assert f"restarting the ephemeral daemon (pid {before})" in keyed.stderr
        assert "OPENAI_API_KEY is set here; the daemon started with unset" in keyed.stderr
        assert "sk-this-shell-only" not in keyed.stderr + keyed.stdout
        after_key = _pid(keyed.stdout)
        assert after_key != before

        # An edit of config.toml after the daemon started counts too.
        with (home / "config.toml").open("a") as config:
            config.write("[runtime]\nmax_turns = 5\n")
        edited = run_cli(home, "status", "--json", env=_env(OPENAI_API_KEY="sk-this-shell-only"))
        assert "the user config" in edited.stderr
        assert _pid(edited.stdout) != after_key
    finally:
        run_cli(home, "daemon", "stop", env=_env())


def test_a_persistent_daemon_is_never_restarted_only_reported(tmp_path: Path) -> None:
    home = tmp_path / "home"
    write_scripted_config(home, None, [{"text": "hi"}])
    daemon = start_daemon(home)
    try:
        out = run_cli(home, "status", "--json", env=_env(ASTRID_MODEL="another-model"))
        assert out.returncode == 0, out.stderr
        assert _pid(out.stdout) == daemon.pid  # the same daemon answered
        assert f"warning: the running daemon (pid {daemon.pid})" in out.stderr
        assert "ASTRID_MODEL is set here" in out.stderr
        assert "`astrid daemon stop`" in out.stderr
        assert daemon.poll() is None
    finally:
        stop_daemon(daemon)
