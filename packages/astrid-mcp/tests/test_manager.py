"""McpServerManager: many servers, crashes, restarts with backoff, clean shutdown."""

from __future__ import annotations

import os
from pathlib import Path

import anyio
import pytest

from astrid_core import AstridError
from astrid_mcp import McpServerManager, ServerStartError, ServerState, ServerUnavailable
from astrid_workspace import landlock_abi

from .conftest import RuleGuard, broken_config, lab_config

pytestmark = pytest.mark.anyio

FAST_RESTART = {"initial_backoff_s": 0.1, "max_backoff_s": 0.2, "max_restarts": 2}


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie still answers kill(0); look at its state.
    stat = Path(f"/proc/{pid}/stat")
    return stat.exists() and stat.read_text().split(")")[-1].split()[0] != "Z"


async def _wait_for(predicate: object, seconds: float = 10) -> None:
    with anyio.fail_after(seconds):
        while not predicate():  # type: ignore[operator]
            await anyio.sleep(0.05)


async def test_a_broken_server_does_not_affect_the_others(tmp_path: Path) -> None:
    configs = [
        lab_config(tmp_path),
        broken_config("exit"),
        broken_config("silent", startup_timeout_s=1),
    ]
    async with McpServerManager(configs, guard=RuleGuard(), log_dir=tmp_path / "logs") as manager:
        await manager.start_all()
        states = {s.name: s.state for s in manager.status()}
        assert states == {
            "lab": ServerState.RUNNING,
            "broken-exit": ServerState.FAILED,
            "broken-silent": ServerState.FAILED,
        }
        [exit_status] = manager.status("broken-exit")
        assert "missing configuration file" in exit_status.last_error
        result = await manager.client("lab").call_tool("echo", {"text": "fine"})
        assert result.text == "fine"
        with pytest.raises(ServerUnavailable, match="broken-exit' is failed"):
            manager.client("broken-exit")
        with pytest.raises(ServerStartError, match="missing configuration file"):
            await manager.start("broken-exit")
    assert (tmp_path / "logs" / "broken-exit.stderr.log").exists()


async def test_crash_is_restarted_with_backoff(tmp_path: Path) -> None:
    config = lab_config(tmp_path, restart=FAST_RESTART)
    async with McpServerManager([config], guard=RuleGuard()) as manager:
        client = await manager.start("lab")
        with pytest.raises(ServerUnavailable):
            await client.call_tool("crash", {})
        await _wait_for(lambda: manager.status("lab")[0].restarts == 1)
        await _wait_for(lambda: manager.status("lab")[0].state is ServerState.RUNNING)
        again = manager.client("lab")
        assert again is not client
        assert (await again.call_tool("echo", {"text": "back"})).text == "back"
        assert any("restart 1" in event for event in manager.status("lab")[0].history)


async def test_restart_budget_runs_out(tmp_path: Path) -> None:
    config = lab_config(tmp_path, restart=FAST_RESTART)
    async with McpServerManager([config], guard=RuleGuard()) as manager:
        await manager.start("lab")
        for expected in (1, 2, 3):
            await _wait_for(lambda: manager.status("lab")[0].state is ServerState.RUNNING)
            with pytest.raises(AstridError):
                await manager.client("lab").call_tool("crash", {})
            if expected < 3:
                await _wait_for(lambda e=expected: manager.status("lab")[0].restarts == e)
        await _wait_for(lambda: manager.status("lab")[0].state is ServerState.FAILED)
        assert "giving up after 2 restarts" in manager.status("lab")[0].history[-1]


async def test_stop_leaves_no_orphans(tmp_path: Path) -> None:
    async with McpServerManager([lab_config(tmp_path)], guard=RuleGuard()) as manager:
        client = await manager.start("lab")
        child = int((await client.call_tool("spawn_child", {})).text)
        assert _alive(child)
        await manager.stop("lab")
        assert manager.status("lab")[0].state is ServerState.STOPPED
        await _wait_for(lambda: not _alive(child))


async def test_leaving_the_manager_stops_everything(tmp_path: Path) -> None:
    async with McpServerManager([lab_config(tmp_path)], guard=RuleGuard()) as manager:
        client = await manager.start("lab")
        child = int((await client.call_tool("spawn_child", {})).text)
    await _wait_for(lambda: not _alive(child))


async def test_explicit_restart_and_health_check(tmp_path: Path) -> None:
    async with McpServerManager([lab_config(tmp_path)], guard=RuleGuard()) as manager:
        first = await manager.start("lab")
        assert await manager.health_check() == {"lab": True}
        second = await manager.restart("lab")
        assert second is not first
        assert (await second.call_tool("echo", {"text": "x"})).text == "x"


async def test_duplicate_and_unknown_names(tmp_path: Path) -> None:
    with pytest.raises(AstridError, match="configured twice"):
        McpServerManager([lab_config(tmp_path), lab_config(tmp_path)], guard=RuleGuard())
    async with McpServerManager([lab_config(tmp_path)], guard=RuleGuard()) as manager:
        with pytest.raises(AstridError, match="no MCP server named 'nope'"):
            await manager.start("nope")


_CANCEL_DURING_START = """
import sys, anyio
sys.path.insert(0, {tests!r})
from conftest import RuleGuard, lab_config
from pathlib import Path
from astrid_mcp import McpServerManager

async def main(delay):
    async with anyio.create_task_group() as tg:
        async def run():
            async with McpServerManager([lab_config(Path({state!r}))], guard=RuleGuard()) as m:
                await m.start_all()
                await anyio.sleep_forever()
        tg.start_soon(run)
        await anyio.sleep(delay)
        tg.cancel_scope.cancel()

for delay in (0.05, 0.3, 0.8, 1.5, 3.0):
    anyio.run(main, delay)
print("clean")
"""


def test_cancelling_while_servers_start_does_not_hang(tmp_path: Path) -> None:
    # Regression: unwinding a connection while a CancelledError was in flight linked that error
    # to itself, and anyio spun forever at 100% CPU (a daemon that never exited).
    import subprocess
    import sys

    script = _CANCEL_DURING_START.format(tests=str(Path(__file__).parent), state=str(tmp_path))
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "clean"


@pytest.mark.skipif(landlock_abi() < 4, reason="denying TCP needs Landlock ABI >= 4")
async def test_status_says_which_running_server_has_no_network(tmp_path: Path) -> None:
    sandbox = {"enabled": True, "read_paths": [str(tmp_path)]}
    configs = [
        lab_config(tmp_path, name="closed", sandbox={**sandbox, "network": False}),
        lab_config(tmp_path, name="open", sandbox=sandbox),
        lab_config(tmp_path, name="host", sandbox={**sandbox, "network": True}),
        lab_config(tmp_path, name="proxied", sandbox={**sandbox, "net": ["api.example.com"]}),
    ]
    async with McpServerManager(configs, guard=RuleGuard()) as manager:
        await manager.start("closed")
        await manager.start("open")
        await manager.start("host")
        await manager.start("proxied")
        host, proxied = manager.status("host")[0], manager.status("proxied")[0]
        assert (host.network_mode, proxied.network_mode) == ("host", "proxy")
        assert "the admin's choice" in host.confinement
        assert "network: proxy" in proxied.confinement
        closed, opened = manager.status("closed")[0], manager.status("open")[0]
        assert (closed.sandboxed, closed.network) == (True, False)
        # No network key: no network either, unless net lists hosts (then the proxy).
        assert (opened.sandboxed, opened.network) == (True, False)
        assert "network: none" in closed.confinement
        assert "namespaces (bubblewrap)" in closed.confinement
        assert "seccomp" in closed.confinement
