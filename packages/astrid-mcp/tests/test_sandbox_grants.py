"""What the launch plan lets a sandboxed server read: untrusted servers get no grant from args
outside their working directory (a workspace could otherwise name any secret file)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from astrid_mcp import McpServerConfig
from astrid_mcp._launch import plan_launch
from astrid_workspace import landlock_abi


def _cat(tmp_path: Path, *, trusted: bool) -> subprocess.CompletedProcess[str]:
    secret = tmp_path / "secrets" / "id_rsa"
    secret.parent.mkdir(exist_ok=True)
    secret.write_text("PRIVATE KEY")
    cwd = tmp_path / "ws"
    cwd.mkdir(exist_ok=True)
    config = McpServerConfig.model_validate(
        {
            "name": "cat",
            "command": "/bin/cat",
            "args": [str(secret)],
            "cwd": str(cwd),
            "trusted": trusted,
        }
    )
    plan = plan_launch(config)
    assert plan.sandboxed
    return subprocess.run(
        plan.argv, cwd=plan.cwd, env=plan.env, capture_output=True, text=True, check=False
    )


@pytest.fixture(autouse=True)
def _needs_landlock() -> None:
    if landlock_abi() == 0:
        pytest.skip("this kernel has no Landlock")


def test_untrusted_server_cannot_read_a_file_named_in_its_args(tmp_path: Path) -> None:
    done = _cat(tmp_path, trusted=False)
    assert "PRIVATE KEY" not in done.stdout
    assert "Permission denied" in done.stderr or "No such file" in done.stderr  # not mounted


def test_trusted_server_may_read_what_the_admin_named(tmp_path: Path) -> None:
    done = _cat(tmp_path, trusted=True)
    assert done.stdout == "PRIVATE KEY"
