"""The bash tool under the Landlock launcher: defence in depth behind the policy.

The policy already refuses `cat ~/.ssh/id_rsa`; these tests run commands the policy cannot
judge (a path computed at run time, a script reading a file) and show that the kernel still
stops them outside the workspace, while normal work inside it keeps working.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from astrid_core import ConfigError, SessionId, ShellCommand
from astrid_mcp.sandbox import landlock_abi
from astrid_runtime.config import load_config
from astrid_runtime.tools import ToolContext
from astrid_runtime.tools._bash import Bash

pytestmark = pytest.mark.anyio


@pytest.fixture
def sandboxed(tmp_path: Path) -> ToolContext:
    if landlock_abi() == 0:
        pytest.skip("this kernel has no Landlock; the bash sandbox cannot be shown here")
    workspace = tmp_path / "ws"
    workspace.mkdir()
    return ToolContext(str(workspace), SessionId.new(), sandbox_bash=True)


async def bash(ctx: ToolContext, command: str) -> str:
    return await Bash().run({"command": command}, ShellCommand(command=command, cwd=ctx.cwd), ctx)


async def test_work_inside_the_workspace_still_works(sandboxed: ToolContext) -> None:
    assert await bash(sandboxed, "echo hi > f.txt && cat f.txt") == "hi"
    assert await bash(sandboxed, "python3 -c 'print(6 * 7)'") == "42"
    assert await bash(sandboxed, 'touch "$TMPDIR/scratch" && echo ok') == "ok"


async def test_reads_and_writes_outside_are_stopped_by_the_kernel(
    sandboxed: ToolContext, tmp_path: Path
) -> None:
    secret = tmp_path / "elsewhere" / "secret.txt"
    secret.parent.mkdir()
    secret.write_text("do not read")
    # The path is assembled at run time: no static parser could have seen it.
    out = await bash(sandboxed, f"cat $(echo {secret.parent})/$(echo secret.txt)")
    assert "do not read" not in out
    assert "Permission denied" in out
    out = await bash(sandboxed, f"echo pwned > {tmp_path}/dropped.txt")
    assert "Permission denied" in out
    assert not (tmp_path / "dropped.txt").exists()
    out = await bash(sandboxed, "ln -s / root_link && cat root_link/etc/shadow")
    assert "Permission denied" in out


async def test_unsandboxed_context_is_unchanged(tmp_path: Path) -> None:
    ctx = ToolContext(str(tmp_path), SessionId.new())
    (tmp_path / "a.txt").write_text("plain")
    assert await bash(ctx, f"cat {tmp_path}/a.txt") == "plain"


def test_a_workspace_cannot_turn_the_bash_sandbox_off(tmp_path: Path) -> None:
    workspace = tmp_path / "ws"
    (workspace / ".astrid").mkdir(parents=True)
    (workspace / ".astrid" / "config.toml").write_text("[security]\nsandbox_bash = false\n")
    with pytest.raises(ConfigError, match="sandbox_bash = false would unsandbox"):
        load_config(tmp_path / "home", workspace, env={})
    assert load_config(tmp_path / "home", env={}).config.security.sandbox_bash is True
