"""`astrid mcp install-client`: a dry run shows the diff; --write moves the servers, keeps
everything else, backs the client file up, and is idempotent."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

from .test_basic_commands import astrid


def test_dry_run_then_write_moves_servers_and_keeps_the_rest(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    (home / "config.toml").write_text('[[servers]]\nname = "github"\ncommand = "/bin/gh-mcp"\n')
    client = tmp_path / "claude_desktop_config.json"
    original = {
        "globalShortcut": "Ctrl+Space",
        "mcpServers": {
            "filesystem": {
                "command": "npx",
                "args": ["-y", "@modelcontextprotocol/server-filesystem", "/home/me/docs"],
                "env": {"TOKEN": 'quo"te'},
            },
            "github": {"command": "/other/github"},
            "remote docs": {"url": "https://mcp.example.com/mcp", "headers": {"X-Key": "k"}},
        },
    }
    client.write_text(json.dumps(original))

    dry = astrid(home, "mcp", "install-client", "claude-desktop", "--config", str(client))
    assert dry.returncode == 0, dry.stderr
    assert '+    "astrid": {' in dry.stdout
    assert '+name = "filesystem"' in dry.stdout
    assert "github: already in" in dry.stderr
    assert json.loads(client.read_text()) == original  # a dry run writes nothing

    wrote = astrid(
        home, "mcp", "install-client", "claude-desktop", "--config", str(client), "--write"
    )
    assert wrote.returncode == 0, wrote.stderr
    after = json.loads(client.read_text())
    assert after["mcpServers"] == {"astrid": {"command": "astrid", "args": ["mcp", "serve"]}}
    assert after["globalShortcut"] == "Ctrl+Space"
    assert json.loads((tmp_path / "claude_desktop_config.json.astrid-backup").read_text()) == (
        original
    )
    servers = {s["name"]: s for s in tomllib.loads((home / "config.toml").read_text())["servers"]}
    assert servers["github"]["command"] == "/bin/gh-mcp"  # Astrid's own entry wins
    assert servers["filesystem"]["args"][-1] == "/home/me/docs"
    assert servers["filesystem"]["env"] == {"TOKEN": 'quo"te'}
    assert servers["remote-docs"]["url"] == "https://mcp.example.com/mcp"
    assert (home / "config.toml").stat().st_mode & 0o077 == 0

    again = astrid(
        home, "mcp", "install-client", "claude-desktop", "--config", str(client), "--write"
    )
    assert again.returncode == 0, again.stderr
    assert "nothing to change" in again.stdout


def test_a_broken_client_file_is_a_clear_error_and_is_left_alone(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    client = tmp_path / "mcp.json"
    client.write_text('{"mcpServers": {')
    out = astrid(home, "mcp", "install-client", "cursor", "--config", str(client), "--write")
    assert out.returncode == 1
    assert "is not valid JSON (line 1" in out.stderr
    assert client.read_text() == '{"mcpServers": {'
