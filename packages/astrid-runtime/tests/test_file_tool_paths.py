"""The built-in file tools against planted symlinks, racing flippers, hard links and a
workspace at ``~`` (issue #19 points 3, 4 and 8).

The grant is emulated as the interceptor would decide it: a call runs only when the path its
``action()`` resolved is inside the workspace; whatever a flipper does afterwards, nothing
outside may be read, listed or changed."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from astrid_approval import SecurityPolicy
from astrid_core import ApprovalOption, AstridError, JsonObject, SessionId
from astrid_runtime.config import load_config
from astrid_runtime.tools import (
    DeleteFile,
    EditFile,
    Glob,
    Grep,
    ListDirectory,
    ReadFile,
    Tool,
    ToolContext,
    WriteFile,
)
from astrid_workspace.testing import Flipper

from .conftest import Human, collect, open_runtime, turns

pytestmark = pytest.mark.anyio

SECRET = "SECRET-runtime-key"
ITERATIONS = 3000
SECONDS = 10.0


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    ws = tmp_path / "ws"
    (ws / "notes").mkdir(parents=True)
    (ws / "notes" / "x.md").write_text("hello\n")
    keys = tmp_path / "astrid-home" / "keys"
    keys.mkdir(parents=True)
    (keys / "runtime.key").write_text(SECRET)
    (keys / "x.md").write_text(SECRET)
    return tmp_path.resolve()


def context(workspace: Path, home: Path | None = None) -> ToolContext:
    policy = SecurityPolicy(home=str(home)) if home is not None else None
    return ToolContext(str(workspace), SessionId.new(), path_policy=policy)


async def granted(tool: Tool, args: JsonObject, ctx: ToolContext) -> str | None:
    """Run ``tool`` if a grant on the workspace covers what it resolved; None otherwise."""
    try:
        action = tool.action(args, ctx)
    except AstridError:
        return None  # refused while resolving (the path kept changing): nothing ran
    path = getattr(action, "path", "")
    if not (path + "/").startswith(ctx.workspace + "/"):
        return None  # the interceptor would have been asked about an outside path
    try:
        return await tool.run(args, action, ctx)
    except AstridError as exc:
        return f"refused: {exc.message}"
    except OSError as exc:
        return f"os error: {exc}"


async def race(tool: Tool, args: JsonObject, ctx: ToolContext) -> list[str]:
    results: list[str] = []
    deadline = time.monotonic() + SECONDS
    attempts = 0
    while attempts < ITERATIONS and time.monotonic() < deadline:
        attempts += 1
        result = await granted(tool, args, ctx)
        if result is not None:
            results.append(result)
    return results


def untouched(tree: Path) -> None:
    keys = tree / "astrid-home" / "keys"
    assert sorted(p.name for p in keys.iterdir()) == ["runtime.key", "x.md"]
    assert (keys / "runtime.key").read_text() == SECRET
    assert (keys / "x.md").read_text() == SECRET


# ---------------------------------------------------------------------- flippers


@pytest.mark.parametrize("kind", ["file", "dir"])
@pytest.mark.parametrize(
    ("tool", "args"),
    [
        (ReadFile(), {"path": "notes/x.md"}),
        (Grep(), {"pattern": "SECRET|hello", "path": "notes"}),
        (Grep(), {"pattern": "SECRET|hello", "path": "notes/x.md"}),
        (Glob(), {"pattern": "**/*", "path": "."}),
        (ListDirectory(), {"path": "notes"}),
    ],
    ids=["read", "grep-dir", "grep-file", "glob", "list"],
)
async def test_reads_raced_by_a_flipper_never_see_outside(
    tree: Path, kind: str, tool: Tool, args: JsonObject
) -> None:
    ctx = context(tree / "ws")
    keys = tree / "astrid-home" / "keys"
    flipped = tree / "ws" / "notes" / ("x.md" if kind == "file" else "")
    target = keys / "runtime.key" if kind == "file" else keys
    with Flipper(Path(str(flipped).rstrip("/")), target, kind):
        results = await race(tool, args, ctx)
    assert results, "no call ran"
    for result in results:
        assert SECRET not in result
        assert "runtime.key" not in result


@pytest.mark.parametrize("kind", ["file", "dir"])
@pytest.mark.parametrize(
    ("tool", "args"),
    [
        (WriteFile(), {"path": "notes/x.md", "content": "PWNED"}),
        (EditFile(), {"path": "notes/x.md", "old_string": "hello", "new_string": "PWNED"}),
        (DeleteFile(), {"path": "notes/x.md"}),
    ],
    ids=["write", "edit", "delete"],
)
async def test_writes_raced_by_a_flipper_never_touch_outside(
    tree: Path, kind: str, tool: Tool, args: JsonObject
) -> None:
    ctx = context(tree / "ws")
    keys = tree / "astrid-home" / "keys"
    flipped = tree / "ws" / "notes" / "x.md" if kind == "file" else tree / "ws" / "notes"
    target = keys / "x.md" if kind == "file" else keys
    with Flipper(flipped, target, kind):
        results = await race(tool, args, ctx)
    assert results, "no call ran"
    untouched(tree)


# ---------------------------------------------------------------------- planted symlinks


async def test_symlinks_planted_at_temporary_names_are_never_written_through(tree: Path) -> None:
    ctx = context(tree / "ws")
    notes = tree / "ws" / "notes"
    victim = tree / "astrid-home" / "keys" / "x.md"
    planted = [".x.md.astrid-tmp", ".astrid-0000000000000000.tmp", ".x.md.000000000000.astrid-tmp"]
    for name in planted:
        (notes / name).symlink_to(victim)
    await WriteFile().run(
        {"path": "notes/x.md", "content": "one"},
        WriteFile().action({"path": "notes/x.md", "content": "one"}, ctx),
        ctx,
    )
    args: JsonObject = {"path": "notes/x.md", "old_string": "one", "new_string": "two"}
    await EditFile().run(args, EditFile().action(args, ctx), ctx)
    assert (notes / "x.md").read_text() == "two"
    untouched(tree)
    assert all((notes / name).is_symlink() for name in planted)


async def test_a_symlink_swapped_in_between_decision_and_use_is_refused(tree: Path) -> None:
    ctx = context(tree / "ws")
    note = tree / "ws" / "notes" / "x.md"
    cases: list[tuple[Tool, JsonObject]] = [
        (ReadFile(), {"path": "notes/x.md"}),
        (WriteFile(), {"path": "notes/x.md", "content": "PWNED"}),
        (EditFile(), {"path": "notes/x.md", "old_string": SECRET, "new_string": "PWNED"}),
    ]
    for tool, args in cases:
        note.unlink(missing_ok=True)
        note.write_text("hello\n")
        action = tool.action(args, ctx)  # decided on the real file...
        note.unlink()
        note.symlink_to(tree / "astrid-home" / "keys" / "x.md")  # ...then swapped
        with pytest.raises(AstridError, match="changed after it was authorized"):
            await tool.run(args, action, ctx)
    untouched(tree)


# ---------------------------------------------------------------------- workspace at ~


@pytest.fixture
def home(tmp_path: Path) -> Path:
    home = (tmp_path / "home").resolve()
    for rel, text in {
        ".ssh/id_ed25519": "-----BEGIN OPENSSH PRIVATE KEY----- TOKEN",
        ".astrid/daemon.token": "TOKEN daemon",
        ".astrid/keys/runtime.key": "TOKEN runtime",
        ".aws/credentials": "TOKEN aws",
        ".kube/config": "TOKEN kube",
        "project/readme.md": "TOKEN is fine here",
    }.items():
        (home / rel).parent.mkdir(parents=True, exist_ok=True)
        (home / rel).write_text(text)
    return home


async def test_grep_glob_and_list_at_home_skip_the_denied_folders(home: Path) -> None:
    ctx = context(home, home)
    grep = await granted(Grep(), {"pattern": "TOKEN", "path": "."}, ctx)
    assert grep is not None
    assert "project/readme.md" in grep
    for leaked in ("id_ed25519", "daemon.token", "runtime.key", "credentials", ".kube"):
        assert leaked not in grep
    assert "skipped 4 entries under denied paths" in grep
    glob = await granted(Glob(), {"pattern": "**/*"}, ctx)
    assert glob is not None
    assert glob.splitlines()[0] == "project/readme.md"
    assert "id_ed25519" not in glob
    assert "skipped 4 entries under denied paths" in glob
    listing = await granted(ListDirectory(), {"path": "."}, ctx)
    assert listing is not None
    assert ".ssh" not in listing
    assert "project/" in listing
    assert "skipped 4 entries under denied paths" in listing


async def test_glob_entries_are_skipped_in_a_walk(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    (ws / "certs").mkdir(parents=True)
    (ws / "certs" / "server.pem").write_text("TOKEN pem")
    (ws / "app" / "sub").mkdir(parents=True)
    (ws / "app" / "sub" / ".env").write_text("TOKEN env")
    (ws / "app" / "main.py").write_text("TOKEN ok")
    policy = SecurityPolicy(home=str(tmp_path / "home"), denied_paths=("*.pem", "**/.env"))
    ctx = ToolContext(str(ws), SessionId.new(), path_policy=policy)
    grep = await granted(Grep(), {"pattern": "TOKEN"}, ctx)
    assert grep is not None
    assert grep.splitlines()[0] == "app/main.py:1:TOKEN ok"
    assert "skipped 2 entries" in grep


async def test_a_hard_link_to_a_denied_file_is_not_read_or_grepped(home: Path) -> None:
    ws = home / "project"
    os.link(home / ".ssh" / "id_ed25519", ws / "innocent.txt")
    ctx = context(ws, home)
    grep = await granted(Grep(), {"pattern": "PRIVATE"}, ctx)
    assert grep == "no matches"
    read = await granted(ReadFile(), {"path": "innocent.txt"}, ctx)
    assert read is not None
    assert "hard link to a denied file" in read
    assert "PRIVATE" not in read


# ---------------------------------------------------------------------- configuration


@pytest.mark.parametrize("key", ["denied_paths", "protected_paths"])
@pytest.mark.parametrize("entry", ["secrets/**", "./keys", "!~/.ssh"])
def test_relative_or_negated_entries_are_config_errors(
    tmp_path: Path, key: str, entry: str
) -> None:
    home = tmp_path / "home"
    home.mkdir()
    (home / "config.toml").write_text(f'[security]\n{key} = ["{entry}"]\n')
    with pytest.raises(AstridError) as raised:
        load_config(home, tmp_path, env={}, system_path=tmp_path / "none.toml")
    text = str(raised.value)
    assert f"security.{key}" in text
    assert entry in text
    assert "~/" in text or "lift" in text


def test_a_workspace_may_only_add_protected_paths(tmp_path: Path) -> None:
    home = tmp_path / "home"
    (home).mkdir()
    (home / "config.toml").write_text('[security]\nprotected_paths = ["~/admin"]\n')
    ws = tmp_path / "ws"
    (ws / ".astrid").mkdir(parents=True)
    (ws / ".astrid" / "config.toml").write_text('[security]\nprotected_paths = ["**/deploy"]\n')
    loaded = load_config(home, ws, env={}, system_path=tmp_path / "none.toml")
    assert loaded.config.security.protected_paths == ["~/admin", "**/deploy"]
    (ws / ".astrid" / "config.toml").write_text("[security]\nprotected_paths = []\n")
    loaded = load_config(home, ws, env={}, system_path=tmp_path / "none.toml")
    assert loaded.config.security.protected_paths == ["~/admin"]


# ---------------------------------------------------------------------- end to end (runtime)


async def test_autonomous_mode_asks_before_writing_a_git_hook(
    tmp_path: Path, workspace: Path
) -> None:
    (workspace / ".git" / "hooks").mkdir(parents=True)
    hook = workspace / ".git" / "hooks" / "pre-commit"
    script = turns(
        (
            "writing",
            [
                ("write_file", {"path": ".git/hooks/pre-commit", "content": "#!/bin/sh\nid\n"}),
                ("write_file", {"path": "notes.md", "content": "fine"}),
                ("write_file", {"path": ".git/config", "content": "[core]\nfsmonitor = id\n"}),
            ],
        ),
        ("ok", []),
    )
    runtime = await open_runtime(tmp_path, script, mode="autonomous")
    human = Human([ApprovalOption.DENY, ApprovalOption.DENY])
    runtime.set_frontend(human)  # type: ignore[arg-type]
    try:
        session = (await runtime.create_session(str(workspace))).session_id
        events = await collect(runtime, session, "set up hooks")
        results = [e for e in events if e["type"] == "tool_call_result"]
        assert [r["denied"] for r in results] == [True, False, True]
        assert not hook.exists()
        assert not (workspace / ".git" / "config").exists()
        assert (workspace / "notes.md").read_text() == "fine"
        assert len(human.asked) == 2  # the two protected writes, not the ordinary one
        assert all("protected" in " ".join(r.details) for r in human.asked)
    finally:
        await runtime.aclose()


async def test_a_session_at_home_greps_and_globs_without_the_keys(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    user_home = (tmp_path / "user").resolve()
    for rel, text in {
        ".ssh/id_ed25519": "TOKEN ssh key",
        ".aws/credentials": "TOKEN aws",
        "code/app.py": "TOKEN = 1",
    }.items():
        (user_home / rel).parent.mkdir(parents=True, exist_ok=True)
        (user_home / rel).write_text(text)
    monkeypatch.setenv("HOME", str(user_home))
    script = turns(
        (
            "looking",
            [
                ("grep", {"pattern": "TOKEN", "path": "."}),
                ("glob", {"pattern": "**/*"}),
                ("read_file", {"path": ".ssh/id_ed25519"}),
            ],
        ),
        ("ok", []),
    )
    runtime = await open_runtime(tmp_path, script, mode="autonomous")
    human = Human([ApprovalOption.ALLOW_ONCE] * 3)
    runtime.set_frontend(human)  # type: ignore[arg-type]
    try:
        session = (await runtime.create_session(str(user_home))).session_id
        events = await collect(runtime, session, "find tokens")
        grep, glob, read = [e for e in events if e["type"] == "tool_call_result"]
        assert "code/app.py" in grep["output"]
        assert "ssh" not in grep["output"]
        assert "aws" not in grep["output"]
        assert "skipped 2 entries under denied paths" in grep["output"]
        assert "id_ed25519" not in glob["output"]
        assert read["denied"] is True
        assert "TOKEN ssh key" not in json.dumps(events)
        assert human.asked == []  # denied by policy: nobody was even asked
    finally:
        await runtime.aclose()
