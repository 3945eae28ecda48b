"""``capsule_workspace_paths``: accepted patterns become the directories an MCP server's
sandbox and roots may reach — never outside the workspace, never an absolute entry."""

from __future__ import annotations

import os
from pathlib import Path

from astrid_capsule.manifest import Capabilities
from astrid_capsule.mcp_host import capsule_workspace_paths


def test_accepted_patterns_become_workspace_directories(tmp_path: Path) -> None:
    workspace = Path(os.path.realpath(tmp_path))
    (workspace / "out").mkdir()
    (workspace / "escape").symlink_to("/etc")
    granted = Capabilities(
        fs_read=("docs/**", "src/a/*.py", "notes/todo.txt", "escape/**", "!private"),
        fs_write=("out/**", "out/sub/**"),
    )
    read, write = capsule_workspace_paths(granted, str(workspace))
    assert read == [str(workspace / p) for p in ("docs", "notes/todo.txt", "out", "src/a")]
    assert write == [str(workspace / "out")]
    # A pattern that matches at any depth opens the workspace itself.
    anywhere, _ = capsule_workspace_paths(Capabilities(fs_read=("*.md",)), str(workspace))
    assert anywhere == [str(workspace)]


def test_absolute_entries_never_reach_a_servers_sandbox(tmp_path: Path) -> None:
    workspace = Path(os.path.realpath(tmp_path))
    granted = Capabilities(fs_read=("/home/user/.gitconfig", "/**"), fs_write=("/tmp/x",))
    assert capsule_workspace_paths(granted, str(workspace)) == ([], [])
