"""Capsule file host functions under a racing flipper and planted symlinks (issue #19).

A capsule granted ``notes/**`` must never read or write anything else: not when a symlink is
swapped in between the host's check and its use, and not when one waits at a temporary name.
The old host (realpath, authorize, then ``Path.read_bytes``) fails seven of these tests: it
returned the key in 43 (file flipper) and 87 (folder flipper) of 3000 raced reads when they were
run against it, and wrote through ``notes/.x.md.astrid-tmp``."""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path
from typing import Any

import pytest

from astrid_approval import SecurityPolicy
from astrid_capsule.wasm import HostContext, HostGrants, WasmCapsule, WasmLimits, load_wasm_bytes
from astrid_crypto import hash_file
from astrid_workspace.testing import Flipper

from .conftest import RecordingGuard

pytestmark = pytest.mark.anyio

SECRET = "SECRET-runtime-key"
ITERATIONS = 3000
SECONDS = 10.0


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    ws = tmp_path / "ws"
    (ws / "notes").mkdir(parents=True)
    (ws / "notes" / "x.md").write_text("hello\n")
    secret = tmp_path / "astrid-home" / "keys"
    secret.mkdir(parents=True)
    (secret / "runtime.key").write_text(SECRET)
    (secret / "x.md").write_text(SECRET)  # the same name as the note, for directory flips
    return tmp_path


def capsule(wasm_modules: dict[str, Path], tree: Path, guard: RecordingGuard) -> WasmCapsule:
    module = wasm_modules["fs_tool"]
    context = HostContext(
        capsule="notes",
        workspace=tree / "ws",
        grants=HostGrants(fs_read=("notes/**",), fs_write=("notes/**",)),
        guard=guard,
        limits=WasmLimits(),
    )
    return WasmCapsule(
        "notes", load_wasm_bytes(module, str(hash_file(module)), dev_mode=False), context
    )


async def call(plugin: WasmCapsule, export: str, request: dict[str, Any]) -> dict[str, Any]:
    reply = json.loads(await plugin.call(export, json.dumps(request)))
    assert isinstance(reply, dict)
    return reply  # pyright: ignore[reportUnknownVariableType]


async def race(plugin: WasmCapsule, export: str, request: dict[str, Any]) -> list[dict[str, Any]]:
    replies: list[dict[str, Any]] = []
    deadline = time.monotonic() + SECONDS
    while len(replies) < ITERATIONS and time.monotonic() < deadline:
        replies.append(await call(plugin, export, request))
    return replies


def restore(tree: Path) -> None:
    notes = tree / "ws" / "notes"
    if notes.is_symlink():
        notes.unlink()
    notes.mkdir(exist_ok=True)
    note = notes / "x.md"
    if note.is_dir() and not note.is_symlink():
        shutil.rmtree(note)  # fs_mkdir made notes/x.md/sub: inside the grant, fine
    if not note.is_file() or note.is_symlink():
        note.unlink(missing_ok=True)
        note.write_text("hello\n")


def untouched(tree: Path) -> None:
    keys = tree / "astrid-home" / "keys"
    assert sorted(p.name for p in keys.iterdir()) == ["runtime.key", "x.md"]
    assert (keys / "runtime.key").read_text() == SECRET
    assert (keys / "x.md").read_text() == SECRET


async def test_read_raced_by_a_file_symlink_flipper_never_returns_the_key(
    wasm_modules: dict[str, Path], tree: Path, guard: RecordingGuard
) -> None:
    plugin = capsule(wasm_modules, tree, guard)
    target = tree / "astrid-home" / "keys" / "runtime.key"
    with Flipper(tree / "ws" / "notes" / "x.md", target):
        replies = await race(plugin, "read", {"path": "notes/x.md"})
    leaked = [r for r in replies if SECRET in json.dumps(r)]
    assert leaked == [], f"{len(leaked)} of {len(replies)} reads returned the key"
    assert any(r["ok"] for r in replies)  # the race ran both ways
    assert any(not r["ok"] for r in replies)


async def test_read_raced_by_a_directory_symlink_flipper_never_returns_the_key(
    wasm_modules: dict[str, Path], tree: Path, guard: RecordingGuard
) -> None:
    plugin = capsule(wasm_modules, tree, guard)
    with Flipper(tree / "ws" / "notes", tree / "astrid-home" / "keys", "dir"):
        replies = await race(plugin, "read", {"path": "notes/x.md"})
    leaked = [r for r in replies if SECRET in json.dumps(r)]
    assert leaked == [], f"{len(leaked)} of {len(replies)} reads returned the key"


@pytest.mark.parametrize("export", ["write", "unlink", "mkdir"])
async def test_writes_raced_by_a_flipper_never_touch_anything_outside(
    wasm_modules: dict[str, Path], tree: Path, guard: RecordingGuard, export: str
) -> None:
    plugin = capsule(wasm_modules, tree, guard)
    request: dict[str, Any] = {"path": "notes/x.md", "content": "PWNED"}
    if export == "mkdir":
        request = {"path": "notes/x.md/sub"}
    with Flipper(tree / "ws" / "notes", tree / "astrid-home" / "keys", "dir"):
        await race(plugin, export, request)
    untouched(tree)
    restore(tree)  # the flipper may have been stopped with notes/ as its symlink
    with Flipper(tree / "ws" / "notes" / "x.md", tree / "astrid-home" / "keys" / "x.md"):
        await race(plugin, export, request)
    untouched(tree)


@pytest.mark.parametrize("export", ["readdir", "stat", "exists"])
async def test_metadata_raced_by_a_flipper_reveals_nothing_outside(
    wasm_modules: dict[str, Path], tree: Path, guard: RecordingGuard, export: str
) -> None:
    plugin = capsule(wasm_modules, tree, guard)
    path = "notes" if export == "readdir" else "notes/x.md"
    (tree / "astrid-home" / "keys" / "big").write_text("y" * 4321)
    with Flipper(tree / "ws" / "notes", tree / "astrid-home" / "keys", "dir"):
        replies = await race(plugin, export, {"path": path})
    for reply in replies:
        assert "runtime.key" not in json.dumps(reply)
        assert "big" not in json.dumps(reply)


async def test_symlinks_planted_at_temporary_names_are_never_written_through(
    wasm_modules: dict[str, Path], tree: Path, guard: RecordingGuard
) -> None:
    """``notes/.x.md.astrid-tmp`` is the name the old host wrote first, following symlinks:
    a link planted there (by a cloned repository, or by bash) overwrote $ASTRID_HOME files."""
    plugin = capsule(wasm_modules, tree, guard)
    config = tree / "astrid-home" / "config.toml"
    config.write_text("[hooks]\n")
    notes = tree / "ws" / "notes"
    for name in (".x.md.astrid-tmp", ".new.md.astrid-tmp"):
        (notes / name).symlink_to(config)
    for path in ("notes/x.md", "notes/new.md"):
        reply = await call(plugin, "write", {"path": path, "content": "[hooks]\nstart = 'id'"})
        assert reply["ok"] is True, reply
    assert config.read_text() == "[hooks]\n"
    assert (notes / "x.md").read_text() == "[hooks]\nstart = 'id'"
    assert (notes / ".x.md.astrid-tmp").is_symlink()
    assert not [p for p in notes.iterdir() if p.name.endswith(".astrid-tmp") and not p.is_symlink()]


async def test_a_link_swapped_in_after_the_decision_is_refused(
    wasm_modules: dict[str, Path], tree: Path
) -> None:
    """Deterministic: the Guard itself swaps the note for a symlink while it decides."""
    note = tree / "ws" / "notes" / "x.md"

    class SwappingGuard(RecordingGuard):
        async def authorize(self, action: Any, reason: str) -> Any:
            decision = await super().authorize(action, reason)
            note.unlink(missing_ok=True)
            note.symlink_to(tree / "astrid-home" / "keys" / "runtime.key")
            return decision

    plugin = capsule(wasm_modules, tree, SwappingGuard())
    reply = await call(plugin, "read", {"path": "notes/x.md"})
    assert reply["ok"] is False
    assert "changed after it was authorized" in reply["error"]
    note.unlink()
    note.write_text("hello\n")
    reply = await call(plugin, "write", {"path": "notes/x.md", "content": "PWNED"})
    untouched(tree)
    os.unlink(note)


async def test_a_hard_link_to_a_denied_file_is_refused(
    wasm_modules: dict[str, Path], tree: Path, guard: RecordingGuard
) -> None:
    keys = tree / "astrid-home" / "keys"
    os.link(keys / "runtime.key", tree / "ws" / "notes" / "innocent.md")
    plugin = capsule(wasm_modules, tree, guard)
    policy = SecurityPolicy(home=str(tree / "home"), denied_paths=(str(keys),))
    plugin.context.denied_link = policy.denied_link
    reply = await call(plugin, "read", {"path": "notes/innocent.md"})
    assert reply["ok"] is False
    assert "hard link to a denied file" in reply["error"]
    reply = await call(plugin, "write", {"path": "notes/innocent.md", "content": "PWNED"})
    assert reply["ok"] is False
    untouched(tree)


async def test_a_listing_leaves_denied_entries_out(
    wasm_modules: dict[str, Path], tree: Path, guard: RecordingGuard
) -> None:
    notes = tree / "ws" / "notes"
    (notes / "server.pem").write_text("key")
    plugin = capsule(wasm_modules, tree, guard)
    policy = SecurityPolicy(home=str(tree / "home"), denied_paths=("*.pem",))
    plugin.context.denied_path = policy.denied_path
    reply = await call(plugin, "readdir", {"path": "notes"})
    assert reply["ok"] is True, reply
    assert reply["value"]["entries"] == ["x.md"]
