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
