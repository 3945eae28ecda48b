"""What the approval prompt shows for edits and writes: the unified diff the call would make,
computed from the file as it is (without following symlinks), never the content of a file
outside the workspace, and capped in size."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from astrid_core import JsonObject, SessionId
from astrid_runtime.tools import EditFile, ToolContext, WriteFile


@pytest.fixture
def ws(tmp_path: Path) -> Path:
    workspace = tmp_path / "ws"
    workspace.mkdir()
    return workspace.resolve()


@pytest.fixture
def ctx(ws: Path) -> ToolContext:
    return ToolContext(str(ws), SessionId.new())


def preview(tool: EditFile | WriteFile, args: JsonObject, ctx: ToolContext) -> str:
    return tool.preview(args, tool.action(args, ctx), ctx)


def test_an_edit_shows_the_resulting_diff(ws: Path, ctx: ToolContext) -> None:
    (ws / "greet.py").write_text('def greet(n):\n    return f"Helo, {n}!"\n')
    text = preview(
        EditFile(), {"path": "greet.py", "old_string": "Helo", "new_string": "Hello"}, ctx
    )
    assert f"--- a{ws}/greet.py\n+++ b{ws}/greet.py\n" in text
    assert '-    return f"Helo, {n}!"\n+    return f"Hello, {n}!"\n' in text
    assert " def greet(n):\n" in text  # context line


def test_an_edit_that_will_fail_says_so(ws: Path, ctx: ToolContext) -> None:
    (ws / "a.txt").write_text("nothing here\n")
    text = preview(EditFile(), {"path": "a.txt", "old_string": "zzz", "new_string": "y"}, ctx)
    assert text.startswith("(old_string is not in the file: the edit will fail)")


def test_a_write_over_an_existing_file_and_a_new_file(ws: Path, ctx: ToolContext) -> None:
    (ws / "a.txt").write_text("one\ntwo\n")
    text = preview(WriteFile(), {"path": "a.txt", "content": "one\nthree\n"}, ctx)
    assert "-two\n+three\n" in text
    new = preview(WriteFile(), {"path": "sub/new.txt", "content": "hi\n"}, ctx)
    assert new.startswith("(new file)\n--- /dev/null\n")
    assert "+hi\n" in new


def test_a_file_outside_the_workspace_is_never_read(ws: Path, tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP SECRET\n")
    ctx = ToolContext(str(ws), SessionId.new())
    text = preview(WriteFile(), {"path": str(secret), "content": "x\n"}, ctx)
    assert "TOP SECRET" not in text
    assert "outside the workspace" in text


def test_a_symlink_in_the_workspace_is_not_followed(ws: Path, tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP SECRET\n")
    os.symlink(secret, ws / "link.txt")
    ctx = ToolContext(str(ws), SessionId.new())
    args: JsonObject = {"path": "link.txt", "content": "x\n"}
    # action() resolves the link to where it points: outside, so not read
    text = WriteFile().preview(args, WriteFile().action(args, ctx), ctx)
    assert "TOP SECRET" not in text


def test_a_huge_diff_is_capped(ws: Path, ctx: ToolContext) -> None:
    content = "".join(f"line {i}\n" for i in range(100_000))
    text = preview(WriteFile(), {"path": "big.txt", "content": content}, ctx)
    assert len(text) < 250_000
    assert "output truncated" in text
