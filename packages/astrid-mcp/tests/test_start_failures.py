"""Servers that cannot start: each gives an error that names the problem and the fix."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from astrid_crypto import hash_file
from astrid_mcp import ExecutableHashMismatch, McpServerConfig, SecureMcpClient, ServerStartError
from astrid_mcp._launch import plan_launch

from .conftest import RuleGuard, broken_config, lab_config

pytestmark = pytest.mark.anyio


async def test_server_that_exits_at_start_shows_its_stderr() -> None:
    with pytest.raises(ServerStartError, match="missing configuration file /nowhere") as info:
        async with SecureMcpClient(broken_config("exit"), guard=RuleGuard()):
            pass
    assert "broken-exit" in str(info.value)
    assert info.value.hint


async def test_garbage_on_stdout_is_named() -> None:
    with pytest.raises(ServerStartError, match="not JSON-RPC") as info:
        async with SecureMcpClient(
            broken_config("garbage", startup_timeout_s=2), guard=RuleGuard()
        ):
            pass
    assert "hello from a server that logs to stdout" in str(info.value)


async def test_server_that_never_answers_initialize_times_out() -> None:
    with pytest.raises(ServerStartError, match="did not answer initialize within 1 s"):
        async with SecureMcpClient(broken_config("silent", startup_timeout_s=1), guard=RuleGuard()):
            pass


async def test_schema_invalid_initialize_result_is_refused() -> None:
    with pytest.raises(ServerStartError, match="broken-badresult"):
        async with SecureMcpClient(broken_config("badresult"), guard=RuleGuard()):
            pass


async def test_missing_executable() -> None:
    config = McpServerConfig.model_validate({"name": "ghost", "command": "no-such-mcp-server-xyz"})
    with pytest.raises(ServerStartError, match="executable not found: 'no-such-mcp-server-xyz'"):
        async with SecureMcpClient(config, guard=RuleGuard()):
            pass


async def test_hash_mismatch_refuses_to_launch(tmp_path: Path) -> None:
    config = lab_config(tmp_path, blake3="0" * 64, env={"LAB_STATE": str(tmp_path)})
    with pytest.raises(ExecutableHashMismatch, match="expected 0000") as info:
        async with SecureMcpClient(config, guard=RuleGuard()):
            pass
    assert "blake3" in info.value.hint


async def test_matching_hash_launches(tmp_path: Path) -> None:
    expected = hash_file(sys.executable).hex
    config = lab_config(tmp_path, blake3=f"blake3:{expected}")
    async with SecureMcpClient(config, guard=RuleGuard()) as client:
        assert (await client.call_tool("echo", {"text": "pinned"})).text == "pinned"


def test_hash_is_checked_on_the_file_that_will_run(tmp_path: Path) -> None:
    # A script on PATH is resolved once; the plan runs that path, never a second lookup.
    script = tmp_path / "bin" / "fake-server"
    script.parent.mkdir()
    script.write_text("#!/bin/sh\nexit 0\n")
    script.chmod(0o755)
    config = McpServerConfig.model_validate(
        {
            "name": "fake",
            "command": str(script),
            "blake3": hash_file(script).hex,
            "sandbox": {"enabled": False},
            "trusted": True,
        }
    )
    assert plan_launch(config).argv == [str(script)]
    script.write_text("#!/bin/sh\necho pwned\n")
    with pytest.raises(ExecutableHashMismatch):
        plan_launch(config)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"name": "a/b", "command": "x"}, "name"),
        ({"name": "x"}, "needs `command`"),
        ({"name": "x", "command": "y", "url": "http://h"}, "either `command` or `url`"),
        ({"name": "x", "url": "ftp://h/x"}, "http"),
        ({"name": "x", "url": "https://user:pw@h/x"}, "credentials"),
        ({"name": "x", "command": "y", "blake3": "abc"}, "64 lowercase hex"),
        ({"name": "x", "command": "y", "env": {"BAD-NAME": "1"}}, "environment variable"),
        ({"name": "x", "command": "y", "bogus": 1}, "bogus"),
        ({"name": "x", "command": "y", "sandbox": False}, "not trusted, so it must run sandboxed"),
        (
            {"name": "x", "command": "y", "sandbox": {"allow_unsandboxed": True}},
            "must run sandboxed",
        ),
    ],
)
def test_bad_config_is_explained(fields: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        McpServerConfig.model_validate(fields)
