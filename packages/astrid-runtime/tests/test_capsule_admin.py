"""The agent has no path to capsule administration: no tool installs or trusts a capsule, and
the policy keeps the agent from planting a publisher key or reading the secrets key. (The
admin itself is tested in astrid-capsule, tests/test_admin.py.)"""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest

from astrid_approval import SecurityPolicy
from astrid_runtime.config import load_config
from astrid_runtime.llm import ScriptedProvider
from astrid_runtime.runtime import AgentRuntime
from astrid_runtime.tools import default_tools

pytestmark = pytest.mark.anyio

# ---------------------------------------------------------------------- no agent path


_CAPSULE_ENTRY_POINTS = ("capsule_plan", "capsule_commit", "capsule_admin", "CapsuleInstaller")


async def test_the_agent_has_no_tool_that_installs_or_trusts_a_capsule(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    runtime = await AgentRuntime.open(
        home,
        config=load_config(home, env={}),
        provider=ScriptedProvider([]),
        storage_url="memory://",
    )
    try:
        offered = await runtime.list_tools()
        assert [t["name"] for t in offered] == [t.name for t in default_tools()]
        for tool in default_tools(subagents=True):
            assert "capsule" not in tool.name.lower()
            source = inspect.getsource(inspect.getmodule(type(tool)))  # type: ignore[arg-type]
            for entry in _CAPSULE_ENTRY_POINTS:
                assert entry not in source, f"tool {tool.name} reaches {entry}"
        # The runtime does have the admin, for the daemon's client methods only.
        assert (await runtime.capsule_list()) == []
    finally:
        await runtime.aclose()


def test_the_agent_cannot_plant_a_publisher_key_or_read_the_secrets_key(tmp_path: Path) -> None:
    home = tmp_path / "home"
    policy = SecurityPolicy(astrid_home=str(home))
    for path in (
        home / "keys" / "publishers" / "evil.pub",
        home / "keys" / "capsule-secrets.key",
        home / "daemon.token",
        home / "config.toml",  # an edited config would run hooks at the next start
        home / "state" / "000001.vlog",  # the audit database
        home / "capsules" / "notes" / "1" / "Capsule.toml",
        home,
    ):
        assert policy.denied_path(str(path)) is not None, path
