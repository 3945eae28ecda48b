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
from typing import Any

import anyio

from astrid_gateway.client import GatewayClient
from astrid_gateway.config_inputs import CONFIG_ENV
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
        assert "`astrid daemon restart`" in out.stderr  # an environment needs a new daemon
        assert "`astrid daemon reload`" not in out.stderr  # reload re-reads files, not env
        assert daemon.poll() is None
    finally:
        stop_daemon(daemon)


async def _new_session_model(home: Path) -> str:
    async with await GatewayClient.open(home, autostart=False) as client:
        info = await client.call("createSession", workspace=str(home))
        return str(info["model"])


async def _config_changes(home: Path) -> list[dict[str, Any]]:
    async with await GatewayClient.open(home, autostart=False) as client:
        export = await client.call("auditExport")
    records = [json.loads(line) for line in Path(export["path"]).read_text().splitlines()]
    return [
        r["entry"]["outcome"]
        for r in records
        if r["type"] == "entry" and r["entry"]["outcome"]["kind"] == "config_change"
    ]


def test_reload_applies_an_edited_file_in_the_running_daemon_and_audits_it(
    tmp_path: Path,
) -> None:
    home = tmp_path / "home"
    write_scripted_config(home, None, [{"text": "hi"}])
    daemon = start_daemon(home)
    try:
        assert anyio.run(_new_session_model, home) != "reloaded-model"
        with (home / "config.toml").open("a") as config:
            # model.model is read per session (live); the log level only at start.
            config.write('\n[logging]\nlevel = "DEBUG"\n')
        text = (
            (home / "config.toml")
            .read_text()
            .replace("[model]\n", '[model]\nmodel = "reloaded-model"\n', 1)
        )
        (home / "config.toml").write_text(text)

        told = run_cli(home, "status", "--json", env=_env())
        assert "the user config" in told.stderr
        assert "`astrid daemon reload`" in told.stderr

        out = run_cli(home, "daemon", "reload", env=_env())
        assert out.returncode == 0, out.stderr
        assert "applied (to sessions started from now on): model.model" in out.stdout
        assert "needs `astrid daemon restart`: logging.level" in out.stdout
        assert daemon.poll() is None  # the same daemon, not a new one

        assert anyio.run(_new_session_model, home) == "reloaded-model"
        [change] = anyio.run(_config_changes, home)
        assert change["detail"]["applied"] == ["model.model"]
        assert change["detail"]["needs_restart"] == ["logging.level"]

        # The file now matches what was read; what waits for a restart is still said.
        again = run_cli(home, "status", "--json", env=_env())
        assert "the user config" not in again.stderr
        assert "applied only on restart: logging.level" in again.stderr
    finally:
        stop_daemon(daemon)


def test_a_broken_file_on_reload_is_refused_and_the_daemon_keeps_its_config(
    tmp_path: Path,
) -> None:
    home = tmp_path / "home"
    write_scripted_config(home, None, [{"text": "hi"}])
    daemon = start_daemon(home)
    try:
        before = anyio.run(_new_session_model, home)
        good = (home / "config.toml").read_text()
        (home / "config.toml").write_text(good + '[model\nmodel = "x"\n')
        out = run_cli(home, "daemon", "reload", env=_env())
        assert out.returncode == 1
        lines = len(good.splitlines())
        assert "invalid TOML" in out.stderr
        assert f"(at line {lines + 1}, column 7)" in out.stderr
        assert daemon.poll() is None
        assert anyio.run(_new_session_model, home) == before
        assert anyio.run(_config_changes, home) == []
        # and it serves a fixed file again
        (home / "config.toml").write_text(good.replace("[model]\n", '[model]\nmodel = "m2"\n'))
        assert run_cli(home, "daemon", "reload", env=_env()).returncode == 0
        assert anyio.run(_new_session_model, home) == "m2"
    finally:
        stop_daemon(daemon)


def test_restart_replaces_the_daemon_with_one_from_this_shell(tmp_path: Path) -> None:
    home = tmp_path / "home"
    write_scripted_config(home, None, [{"text": "hi"}])
    try:
        before = _pid(run_cli(home, "status", "--json", env=_env()).stdout)
        out = run_cli(home, "daemon", "restart", env=_env(ASTRID_MODEL="from-this-shell"))
        assert out.returncode == 0, out.stderr
        after = _pid(
            run_cli(home, "status", "--json", env=_env(ASTRID_MODEL="from-this-shell")).stdout
        )
        assert f"daemon restarted (pid {after})" in out.stdout
        assert after != before
        status = json.loads(run_cli(home, "status", "--json", env=_env()).stdout)
        assert status["ephemeral"] is True  # an ephemeral daemon stays ephemeral
    finally:
        run_cli(home, "daemon", "stop", env=_env())
