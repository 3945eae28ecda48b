"""Absolute ``fs_read`` / ``fs_write`` entries (seed 001's ``/home/user/.gitconfig``): the
capsule reaches exactly the files outside the workspace that it declared and the user
accepted, and never one of the admin's denied paths however it asks — a direct grant of
``~/.ssh``, a glob over the whole home or disk, ``..``, ``/proc/self/root``, a symlink from the
workspace, a hard link, a symlink swapped in. The denied paths are the real ``SecurityPolicy``'s
defaults, with ``$HOME`` pointed at a fake home."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from astrid_approval import SecurityPolicy
from astrid_capsule.wasm import HostContext, HostGrants, WasmCapsule, WasmLimits, load_wasm_bytes
from astrid_crypto import hash_file

from .conftest import RecordingGuard

pytestmark = pytest.mark.anyio

KEY = "-----BEGIN OPENSSH PRIVATE KEY----- never leaves"


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "home" / "user"
    (home / ".ssh").mkdir(parents=True)
    (home / ".ssh" / "id_ed25519").write_text(KEY)
    (home / ".gitconfig").write_text("[user]\n\tname = Ada\n")
    monkeypatch.setenv("HOME", str(home))
    return home.resolve()


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    ws = tmp_path / "ws"
    ws.mkdir()
    return ws.resolve()


def capsule(
    module: Path,
    workspace: Path,
    guard: RecordingGuard,
    grants: HostGrants,
    *,
    policy: SecurityPolicy | None = None,
) -> WasmCapsule:
    policy = policy or SecurityPolicy()
    ctx = HostContext(
        capsule="github-agent",
        workspace=workspace,
        grants=grants,
        guard=guard,
        limits=WasmLimits(),
        denied_path=policy.denied_path,
        denied_link=policy.denied_link,
    )
    return WasmCapsule(
        "github-agent", load_wasm_bytes(module, str(hash_file(module)), dev_mode=False), ctx
    )


async def call(plugin: WasmCapsule, export: str, request: dict[str, Any]) -> dict[str, Any]:
    reply: dict[str, Any] = json.loads(await plugin.call(export, json.dumps(request)))
    return reply


async def test_a_declared_file_outside_the_workspace_is_read_and_nothing_else(
    wasm_modules: dict[str, Path], workspace: Path, home: Path, guard: RecordingGuard
) -> None:
    gitconfig = str(home / ".gitconfig")
    plugin = capsule(wasm_modules["fs_tool"], workspace, guard, HostGrants(fs_read=(gitconfig,)))
    try:
        reply = await call(plugin, "read", {"path": gitconfig})
        assert reply["ok"] is True, reply
        assert "name = Ada" in reply["value"]["text"]
        assert [a.resource for a in guard.seen] == [f"file://{gitconfig}"]  # the guard decided
        # Read-only: not written, not deleted, its folder not listed, its neighbours not read.
        for export, request in (
            ("write", {"path": gitconfig, "content": "x"}),
            ("unlink", {"path": gitconfig}),
            ("readdir", {"path": str(home)}),
            ("read", {"path": str(home / ".bashrc")}),
        ):
            reply = await call(plugin, export, request)
            assert reply["ok"] is False, (export, reply)
            assert "outside the workspace" in reply["error"]
    finally:
        plugin.close()


@pytest.mark.parametrize(
    ("grant", "path"),
    [
        ("{home}/.ssh/id_ed25519", "{home}/.ssh/id_ed25519"),
        ("{home}/.ssh/*", "{home}/.ssh/id_ed25519"),
        ("{home}/**", "{home}/.ssh/id_ed25519"),
        ("/**", "{home}/.ssh/id_ed25519"),
        ("{home}", "{home}/.ssh/id_ed25519"),
        ("{home}/**", "{home}/.gitconfig/../.ssh/id_ed25519"),
        ("{home}/**", "{home}//.ssh/./id_ed25519"),
        ("/**", "/proc/self/root{home}/.ssh/id_ed25519"),
        ("/**", "/etc/passwd"),
    ],
)
async def test_a_capsule_never_reads_a_denied_path_however_it_asks(
    wasm_modules: dict[str, Path],
    workspace: Path,
    home: Path,
    guard: RecordingGuard,
    grant: str,
    path: str,
) -> None:
    grants = HostGrants(fs_read=(grant.format(home=home),))
    plugin = capsule(wasm_modules["fs_tool"], workspace, guard, grants)
    try:
        for export in ("read", "exists", "stat"):
            reply = await call(plugin, export, {"path": path.format(home=home)})
            assert reply["ok"] is False, (export, reply)
            assert "denied path" in reply["error"] or "outside the workspace" in reply["error"]
            assert KEY not in json.dumps(reply)
        assert guard.seen == []  # refused before anyone could be asked to allow it
    finally:
        plugin.close()


async def test_links_to_a_denied_file_are_refused(
    wasm_modules: dict[str, Path],
    workspace: Path,
    home: Path,
    guard: RecordingGuard,
    tmp_path: Path,
) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    os.link(home / ".ssh" / "id_ed25519", shared / "hard")  # another name of the same file
    (shared / "soft").symlink_to(home / ".ssh" / "id_ed25519")
    (workspace / "key").symlink_to(home / ".ssh" / "id_ed25519")
    grants = HostGrants(fs_read=("key", f"{shared}/*"))
    plugin = capsule(wasm_modules["fs_tool"], workspace, guard, grants)
    try:
        for path in (f"{shared}/hard", f"{shared}/soft", "key", str(workspace / "key")):
            reply = await call(plugin, "read", {"path": path})
            assert reply["ok"] is False, (path, reply)
            assert KEY not in json.dumps(reply)
    finally:
        plugin.close()


async def test_without_a_denied_path_policy_nothing_outside_is_reachable(
    wasm_modules: dict[str, Path], workspace: Path, home: Path, guard: RecordingGuard
) -> None:
    gitconfig = str(home / ".gitconfig")
    module = wasm_modules["fs_tool"]
    ctx = HostContext(
        capsule="github-agent",
        workspace=workspace,
        grants=HostGrants(fs_read=(gitconfig,)),
        guard=guard,
        limits=WasmLimits(),
    )
    plugin = WasmCapsule(
        "github-agent", load_wasm_bytes(module, str(hash_file(module)), dev_mode=False), ctx
    )
    try:
        reply = await call(plugin, "read", {"path": gitconfig})
        assert reply["ok"] is False
        assert "no denied-path policy" in reply["error"]
    finally:
        plugin.close()


async def test_a_declared_file_outside_is_written_when_fs_write_names_it(
    wasm_modules: dict[str, Path], workspace: Path, home: Path, guard: RecordingGuard
) -> None:
    target = home / "notes.txt"
    grants = HostGrants(fs_write=(str(target),))
    plugin = capsule(wasm_modules["fs_tool"], workspace, guard, grants)
    try:
        reply = await call(plugin, "write", {"path": str(target), "content": "hello"})
        assert reply["ok"] is True, reply
        assert target.read_text() == "hello"
        reply = await call(
            plugin, "write", {"path": str(home / ".ssh" / "authorized_keys"), "content": "x"}
        )
        assert reply["ok"] is False
        assert not (home / ".ssh" / "authorized_keys").exists()
    finally:
        plugin.close()
