"""`astrid config paths|validate|show`: local, no daemon; problems name file, key and limit."""

from __future__ import annotations

import json
from pathlib import Path

from .test_basic_commands import astrid


def test_paths_validate_show(tmp_path: Path) -> None:
    home, workspace = tmp_path / "home", tmp_path / "ws"
    home.mkdir()
    (workspace / ".astrid").mkdir(parents=True)
    (home / "config.toml").write_text(
        '[budget]\nsession_limit_micros = 5000000\n[model]\napi_key = "sk-secret"\n'
    )
    paths = astrid(home, "config", "paths", "--workspace", str(workspace))
    assert paths.returncode == 0, paths.stderr
    assert f"user       present  {home / 'config.toml'}" in paths.stdout
    assert "workspace  absent" in paths.stdout

    valid = astrid(home, "config", "validate")
    assert valid.returncode == 0, valid.stderr
    assert "configuration is valid" in valid.stdout

    shown = json.loads(astrid(home, "config", "show", "--json").stdout)
    assert shown["budget.session_limit_micros"] == {
        "value": 5000000,
        "source": str(home / "config.toml"),
    }
    assert shown["model.api_key"]["value"] == "********"
    assert "sk-secret" not in astrid(home, "config", "show").stdout


def test_loosening_workspace_layer_is_refused_with_every_problem(tmp_path: Path) -> None:
    home, workspace = tmp_path / "home", tmp_path / "ws"
    home.mkdir()
    (workspace / ".astrid").mkdir(parents=True)
    (workspace / ".astrid" / "config.toml").write_text(
        '[workspace]\nmode = "autonomous"\n[security]\nsandbox_bash = false\n'
    )
    result = astrid(home, "config", "validate", "--workspace", str(workspace))
    assert result.returncode == 1
    assert "workspace.mode = 'autonomous' is looser than 'safe'" in result.stderr
    assert "security.sandbox_bash = false would unsandbox the bash tool" in result.stderr


def test_malformed_toml_names_the_file(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    (home / "config.toml").write_text("[budget\nsession_limit_micros = 1\n")
    result = astrid(home, "config", "validate")
    assert result.returncode == 1
    assert str(home / "config.toml") in result.stderr


def test_init_writes_a_valid_tighten_only_layer(tmp_path: Path) -> None:
    home, workspace = tmp_path / "home", tmp_path / "ws"
    home.mkdir()
    workspace.mkdir()
    created = astrid(home, "init", str(workspace))
    assert created.returncode == 0, created.stderr
    assert (workspace / ".astrid" / "config.toml").exists()
    valid = astrid(home, "config", "validate", "--workspace", str(workspace))
    assert valid.returncode == 0, valid.stderr
    again = astrid(home, "init", str(workspace))
    assert again.returncode == 1
    assert "already exists" in again.stderr
    assert "--force" in again.stderr


def test_init_user_writes_every_key_commented_and_each_line_uncomments_cleanly(
    tmp_path: Path,
) -> None:
    home = tmp_path / "home"
    created = astrid(home, "init", "--user")
    assert created.returncode == 0, created.stderr
    config = home / "config.toml"
    assert config.stat().st_mode & 0o777 == 0o600  # it may come to hold an API key
    text = config.read_text()
    # Nothing is set: the file changes no value until a line is uncommented.
    shown = json.loads(astrid(home, "config", "show", "--json").stdout)
    assert all(entry["source"] != str(config) for entry in shown.values())
    assert "# max_turns = 25" in text
    assert "[runtime]" in text

    # Uncommenting a line takes effect and keeps the file valid.
    config.write_text(text.replace("# max_turns = 25", "max_turns = 7"))
    assert astrid(home, "config", "validate").returncode == 0
    shown = json.loads(astrid(home, "config", "show", "--json").stdout)
    assert shown["runtime.max_turns"] == {"value": 7, "source": str(config)}

    again = astrid(home, "init", "--user")
    assert again.returncode != 0
    assert "--force" in again.stderr + again.stdout
    assert "max_turns = 7" in config.read_text()  # a refused init loses nothing
