"""``astrid keys rotate`` through a real daemon: audited, and the log still verifies."""

from __future__ import annotations

import json
from pathlib import Path

from .test_basic_commands import astrid


def test_keys_rotate_is_audited_and_the_log_verifies_across_a_restart(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir(mode=0o700)
    try:
        before = astrid(home, "status", "--json")
        assert before.returncode == 0, before.stderr
        old_id = json.loads(before.stdout)["runtime"]["runtime_key_id"]
        rotated = astrid(home, "keys", "rotate", "--json")
        assert rotated.returncode == 0, rotated.stderr
        result = json.loads(rotated.stdout)
        assert result["old_key_id"] == old_id != result["new_key_id"]
        shown = json.loads(astrid(home, "keys", "show", "--json").stdout)
        assert shown["key_id"] == result["new_key_id"]  # the key file was replaced
        assert (home / "keys" / "retired" / f"{old_id}.pub").is_file()
        assert astrid(home, "daemon", "stop").returncode == 0
        verified = astrid(home, "audit", "verify")  # a new daemon, on the rotated key
        assert verified.returncode == 0, verified.stdout + verified.stderr
    finally:
        astrid(home, "daemon", "stop")
