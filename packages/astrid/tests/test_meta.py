"""The meta-package installs every part and exposes both entry points."""

from __future__ import annotations

import importlib
import importlib.metadata
import subprocess
import sys

PARTS = [
    "astrid_core",
    "astrid_crypto",
    "astrid_capabilities",
    "astrid_audit",
    "astrid_workspace",
    "astrid_approval",
    "astrid_mcp",
    "astrid_capsule",
    "astrid_runtime",
    "astrid_gateway",
    "astrid_cli",
    "astrid_telegram",
]


def test_every_part_imports() -> None:
    for name in PARTS:
        importlib.import_module(name)


def test_entry_points() -> None:
    scripts = {ep.name: ep.value for ep in importlib.metadata.entry_points(group="console_scripts")}
    assert scripts["astridd"] == "astrid._daemon:main"
    assert scripts["astrid"] == "astrid_cli.main:main"


def test_astridd_help_mentions_loopback() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "astrid._daemon", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0
    assert "127.0.0.1" in out.stdout
