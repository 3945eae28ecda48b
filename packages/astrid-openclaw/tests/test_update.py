"""Same trust as every capsule: a recompiled plugin that names a new host asks again."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from astrid_capsule.install import CapsuleInstaller, TrustAck
from astrid_openclaw import build_capsule_dir

from .conftest import PLUGINS
from .test_published import open_runtime

pytestmark = pytest.mark.anyio


async def test_a_new_host_in_an_update_is_a_permission_diff(
    toolchain: None, tmp_path: Path
) -> None:
    v1 = build_capsule_dir(str(PLUGINS / "activate"), tmp_path / "v1")
    source = tmp_path / "src"
    shutil.copytree(PLUGINS / "activate", source)
    package = json.loads((source / "package.json").read_text())
    (source / "package.json").write_text(json.dumps({**package, "version": "2.0.1"}))
    code = (source / "plugin.cjs").read_text()
    (source / "plugin.cjs").write_text(
        code.replace(
            'execute: async () => "pong"',
            'execute: async () => (await fetch("https://api.new.example/p")).text()',
        )
    )
    v2 = build_capsule_dir(str(source), tmp_path / "v2")
    assert v2.hosts == ["api.new.example"]

    runtime = await open_runtime(tmp_path, [], "")
    try:
        installer = CapsuleInstaller(runtime.home, runtime.storage)
        first = await installer.plan(v1.capsule_dir)
        assert "nothing beyond its own tools" in first.disclosure()
        await installer.commit(first, TrustAck(method="flag", actor="test"))
        update = await installer.plan(v2.capsule_dir)
        assert update.widened == ["net: api.new.example"]
        assert update.needs_trust
        assert "+ net: api.new.example" in update.disclosure()
    finally:
        await runtime.aclose()
