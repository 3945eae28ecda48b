"""The embedded Telegram bot runs wherever a daemon starts, not only under ``astridd``.

It is an installed daemon companion (entry-point group ``astrid.daemon_companions``), so the
daemon the CLI auto-starts polls the Bot API as soon as ``[telegram]`` has a token. The Bot
API here is the fake server of astrid_telegram.testing, reached through ``[telegram] base_url``.
"""

from __future__ import annotations

import time
from pathlib import Path

from astrid_gateway.testing import run_cli, write_scripted_config
from astrid_telegram.testing import FakeBotApi


def test_the_auto_started_daemon_runs_the_configured_bot(tmp_path: Path) -> None:
    home = tmp_path / "home"
    write_scripted_config(home, None, [{"text": "hi"}])
    with FakeBotApi() as api:
        with (home / "config.toml").open("a") as config:
            config.write(
                f'[telegram]\nbot_token = "{api.token}"\nallowed_user_ids = [42]\n'
                f'base_url = "{api.base_url}"\n'
            )
        try:
            status = run_cli(home, "status")
            assert status.returncode == 0, status.stderr
            deadline = time.monotonic() + 30
            while not api.calls_to("getUpdates") and time.monotonic() < deadline:
                time.sleep(0.1)
            assert api.calls_to("getUpdates"), "the auto-started daemon never polled Telegram"
        finally:
            run_cli(home, "daemon", "stop")
