"""Capsule ``[[cron]]`` jobs on a real runtime: real WASM (C built with clang), the real
installer, interceptor, audit log and storage; the clock is the test's, so no test waits for
the wall clock's minutes."""

from __future__ import annotations

import os
import shutil
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import anyio
import pytest

from astrid_audit import AuditEntry, OutcomeKind
from astrid_capsule.install import CapsuleInstaller, InstallRecord, TrustAck
from astrid_capsule.wasm import WasmLimits
from astrid_core import (
    ApprovalOption,
    CapsuleHostCall,
    ConfigError,
    FileWrite,
    NotFoundError,
    SessionId,
)
from astrid_crypto import hash_file
from astrid_runtime.llm import ScriptedTurn
from astrid_runtime.runtime import AgentRuntime

from .conftest import Human, build_c_capsule, collect, open_runtime

pytestmark = pytest.mark.anyio

# The capsule under test: each export makes one host call with a fixed request (a cron run
# gets no input), or loops forever.
TICKER_C = r"""
#include "astrid_pdk.h"

EXPORT("tick") int tick(void) {
    pdk_output_block(astrid_kv_set(pdk_request("{\"key\":\"last_tick\",\"value\":\"tick\"}")));
    return 0;
}

EXPORT("stamp") int stamp(void) {
    pdk_output_block(astrid_write_file(
        pdk_request("{\"path\":\"stamp.txt\",\"content\":\"stamped by cron\"}")));
    return 0;
}

EXPORT("spin") int spin(void) {
    volatile u64 counter = 0;
    for (;;) counter++;
    return 0;
}
"""
TOOLS = """
[capabilities]
kv = true
fs_write = ["stamp.txt"]

[[tool]]
name = "tick"
description = "Record a tick in the capsule's storage."
export = "tick"

[[tool]]
name = "stamp"
description = "Write stamp.txt in the workspace."
export = "stamp"

[[tool]]
name = "spin"
description = "Never return."
export = "spin"
"""
T0 = datetime(2030, 1, 1, 10, 59, 30)  # when the tests' scheduler first sees the capsule
DUE = datetime(2030, 1, 1, 11, 0)  # the first time an hourly entry is due after T0
HOUR = timedelta(hours=1)


@pytest.fixture(scope="session")
def ticker_wasm(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_c_capsule(TICKER_C, tmp_path_factory.mktemp("wasm"), "ticker")


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    ws = tmp_path / "project"
    ws.mkdir()
    return Path(os.path.realpath(ws))


def cron(*entries: tuple[str, str, str]) -> str:
    return "".join(
        f'\n[[cron]]\nname = "{name}"\nschedule = "{schedule}"\naction = "{action}"\n'
        for name, schedule, action in entries
    )


async def install(runtime: AgentRuntime, root: Path, wasm: Path, body: str) -> InstallRecord:
    source = root / "src-ticker"
    source.mkdir(exist_ok=True)
    shutil.copyfile(wasm, source / "plugin.wasm")
    digest = hash_file(source / "plugin.wasm").hex
    (source / "Capsule.toml").write_text(
        '[package]\nname = "ticker"\nversion = "0.1.0"\n'
        f'\n[component]\nentrypoint = "plugin.wasm"\nhash = "{digest}"\n' + body
    )
    installer = CapsuleInstaller(runtime.home, runtime.storage)
    return await installer.commit(await installer.plan(source), TrustAck("flag", "test"))


async def open_cron_runtime(
    tmp_path: Path, workspace: Path | None, *, mode: str = "safe", extra: str = ""
) -> AgentRuntime:
    root = f'root = "{workspace}"\n' if workspace is not None else ""
    runtime = await open_runtime(tmp_path, [], mode=mode, config=root + extra)
    runtime.cron.clock = lambda: T0
    return runtime


async def grant_workspace(runtime: AgentRuntime, workspace: Path, tool: str) -> None:
    """What "Allow Workspace" on this capsule tool in a session of ``workspace`` stores."""
    await runtime.allowances.grant(
        CapsuleHostCall(capsule="ticker", function=tool, args={}),
        scope="workspace",
        session_id=SessionId.new(),
        workspace=str(workspace),
        approval_audit_id=None,
    )


async def last_tick(runtime: AgentRuntime) -> Any:
    return await runtime.storage.get("capsule_kv", "ticker/last_tick")


async def cron_sessions(runtime: AgentRuntime) -> list[SessionId]:
    return [s.session_id for s in await runtime.list_sessions() if s.title == "cron: ticker"]


async def cron_entries(runtime: AgentRuntime) -> list[AuditEntry]:
    [session] = await cron_sessions(runtime)
    return await runtime.audit.entries(session_id=session)


def finished(runtime: AgentRuntime) -> set[str]:
    """The jobs that have completed a run."""
    return {job.job for job in runtime.cron.jobs() if job.runs}


def stage(entries: list[AuditEntry], name: str) -> list[AuditEntry]:
    found = [e for e in entries if e.outcome.detail.get("stage") == name]
    if name == "start":  # a run's start has a kind of its own
        assert all(e.outcome.kind is OutcomeKind.SCHEDULED_RUN for e in found)
    return found


async def test_a_job_granted_from_a_session_writes_on_schedule_in_one_reused_session(
    tmp_path: Path, workspace: Path, ticker_wasm: Path
) -> None:
    calls = ScriptedTurn("ticking", (("capsule__ticker__tick", {}),))
    runtime = await open_runtime(
        tmp_path, [calls, ScriptedTurn("done")], config=f'root = "{workspace}"\n'
    )
    human = Human([ApprovalOption.ALLOW_WORKSPACE])
    runtime.set_frontend(human)  # type: ignore[arg-type]
    try:
        await install(runtime, tmp_path, ticker_wasm, TOOLS + cron(("hourly", "0 * * * *", "tick")))
        # The user allows the tool for this workspace from a session, as the denial advises.
        session = await runtime.create_session(str(workspace))
        await collect(runtime, session.session_id, "tick once")
        assert len(human.asked) == 1
        await runtime.storage.delete("capsule_kv", "ticker/last_tick")

        runtime.cron.clock = lambda: T0
        assert await runtime.cron.run_due(T0) == []  # first seen now: due at 11:00, not before
        assert await last_tick(runtime) is None
        [run] = await runtime.cron.run_due(DUE)
        assert (run.capsule, run.job, run.scheduled, run.status) == ("ticker", "hourly", DUE, "ok")
        assert await last_tick(runtime) == "tick"
        assert len(human.asked) == 1  # the job asked nobody: the allowance covered it
        assert await runtime.cron.run_due(DUE + timedelta(minutes=30)) == []  # not due again

        entries = await cron_entries(runtime)
        [start] = stage(entries, "start")
        [end] = stage(entries, "end")
        assert start.outcome.detail["cron"] == "hourly"
        assert end.outcome.kind is OutcomeKind.EXECUTED
        assert end.outcome.success is True
        [decision] = [e for e in entries if e.outcome.kind is OutcomeKind.ALLOWED]
        assert decision.action is not None
        assert decision.action["kind"] == "capsule_host_call"
        proof: Any = (decision.authorization or {}).get("proof")
        assert proof["kind"] == "allowance"
        assert start.seq < decision.seq < end.seq

        await runtime.storage.delete("capsule_kv", "ticker/last_tick")
        [again] = await runtime.cron.run_due(DUE + HOUR)
        assert again.status == "ok"
        assert await last_tick(runtime) == "tick"
        assert len(await cron_sessions(runtime)) == 1  # one session, reused
        assert (await runtime.audit_verify())["ok"] is True
        [job] = (await runtime.status()).scheduled  # what `astrid status` shows
        assert job["capsule"] == "ticker"
        assert job["job"] == "hourly"
        assert job["schedule"] == "0 * * * *"
        assert job["runs"] == 2
        assert job["last"] == "ok"
        assert job["next_due"] == (DUE + 2 * HOUR).isoformat(timespec="minutes")
    finally:
        await runtime.aclose()

    # A restarted daemon keeps using the same session; the run it missed is not caught up.
    runtime = await open_cron_runtime(tmp_path, workspace)
    try:
        runtime.cron.clock = lambda: DUE + 3 * HOUR + timedelta(minutes=59)
        assert await runtime.cron.run_due(DUE + 3 * HOUR + timedelta(minutes=59)) == []
        [run] = await runtime.cron.run_due(DUE + 4 * HOUR)
        assert run.status == "ok"
        assert len(await cron_sessions(runtime)) == 1
        assert len(stage(await cron_entries(runtime), "start")) == 3
    finally:
        await runtime.aclose()


async def test_what_needs_approval_is_denied_at_once_and_no_frontend_is_asked(
    tmp_path: Path, workspace: Path, ticker_wasm: Path
) -> None:
    runtime = await open_cron_runtime(tmp_path, workspace)
    # Someone is connected for another session and would allow anything asked of them.
    human = Human([ApprovalOption.ALLOW_ALWAYS] * 10)
    runtime.set_frontend(human)  # type: ignore[arg-type]
    try:
        await runtime.create_session(str(workspace))
        await install(
            runtime, tmp_path, ticker_wasm, TOOLS + cron(("stamper", "0 * * * *", "stamp"))
        )

        # No grant for the tool itself: the call is denied without waiting for anyone (the
        # approval timeout is 300 s; this bound is far below it).
        with anyio.fail_after(5):
            [run] = await runtime.cron.run_due(DUE)
        assert run.status == "denied"
        assert "cron job stamper of capsule ticker runs unattended" in run.detail
        assert "Allow Workspace or Allow Always" in run.detail

        # With the tool allowed for the workspace, its write (which asks in safe mode) is
        # denied the same way, even after the daemon hands its frontend to every session.
        await grant_workspace(runtime, workspace, "stamp")
        runtime.set_frontend(human)  # type: ignore[arg-type]
        with anyio.fail_after(5):
            [run] = await runtime.cron.run_due(DUE + HOUR)
        assert run.status == "ok"  # the export ran; the host refused it the write
        assert "runs unattended" in run.detail
        assert not (workspace / "stamp.txt").exists()
        assert human.asked == []
        assert await runtime.list_deferred() == []  # denied, not deferred

        entries = await cron_entries(runtime)
        denials = [e for e in entries if e.outcome.kind is OutcomeKind.APPROVAL_DENIED]
        assert [e.action["kind"] for e in denials if e.action] == [
            "capsule_host_call",
            "file_write",
        ]
        assert all("runs unattended" in e.outcome.reason for e in denials)
        # Nobody was asked, and the record does not pretend somebody was.
        assert all(e.outcome.reason.startswith("denied by the cron runner:") for e in denials)
        assert len(stage(entries, "end")) == 2
        warnings = (await runtime.status()).warnings
        [warning] = [w for w in warnings if "runs unattended" in w]
        assert FileWrite(path=str(workspace / "stamp.txt")).summary in warning
    finally:
        await runtime.aclose()


async def test_a_capsule_swapped_after_install_is_refused_and_audited(
    tmp_path: Path, workspace: Path, ticker_wasm: Path
) -> None:
    runtime = await open_cron_runtime(tmp_path, workspace)
    try:
        record = await install(
            runtime, tmp_path, ticker_wasm, TOOLS + cron(("hourly", "0 * * * *", "tick"))
        )
        await grant_workspace(runtime, workspace, "tick")
        await runtime.cron.refresh()
        wasm = runtime.capsules.installer.path_of(record) / "plugin.wasm"
        wasm.write_bytes(wasm.read_bytes() + b"\0")

        [run] = await runtime.cron.run_due(DUE)
        assert run.status == "refused"
        assert "capsule ticker was not loaded" in run.detail
        assert await last_tick(runtime) is None
        entries = await cron_entries(runtime)
        [refusal] = [e for e in entries if e.outcome.detail.get("stage") == "load"]
        assert refusal.outcome.kind is OutcomeKind.DENIED
        assert not [e for e in entries if e.outcome.kind is OutcomeKind.ALLOWED]
        warnings = (await runtime.status()).warnings
        assert any(w.startswith("cron job hourly of capsule ticker: the run due") for w in warnings)
    finally:
        await runtime.aclose()


async def test_an_overlapping_run_is_skipped_and_a_looping_job_is_stopped_alone(
    tmp_path: Path, workspace: Path, ticker_wasm: Path
) -> None:
    runtime = await open_cron_runtime(tmp_path, workspace)
    runtime.capsules.limits = WasmLimits(timeout_seconds=1.0)
    body = TOOLS + cron(("forever", "0 * * * *", "spin"), ("hourly", "0 * * * *", "tick"))
    try:
        await install(runtime, tmp_path, ticker_wasm, body)
        await grant_workspace(runtime, workspace, "spin")
        await grant_workspace(runtime, workspace, "tick")
        first: list[Any] = []
        with anyio.fail_after(10):
            async with anyio.create_task_group() as tg:

                async def first_hour() -> None:
                    first.extend(await runtime.cron.run_due(DUE))

                tg.start_soon(first_hour)
                while finished(runtime) != {"hourly"}:  # tick is done, spin still going
                    await anyio.sleep(0.02)
                assert await last_tick(runtime) == "tick"
                running = {job.job for job in runtime.cron.jobs() if job.running}
                assert running == {"forever"}
                second = await runtime.cron.run_due(DUE + HOUR)
                assert {(r.job, r.status) for r in second} == {
                    ("forever", "skipped"),
                    ("hourly", "ok"),
                }
        [stopped] = [r for r in first if r.job == "forever"]
        assert stopped.status == "failed"
        assert "ran longer than 1 s and was stopped" in stopped.detail
        [skipped] = [j for j in runtime.cron.jobs() if j.job == "forever"]
        assert (skipped.runs, skipped.skipped, skipped.running) == (1, 1, False)
        status = await runtime.status()  # the runtime itself is fine
        assert any("1 run(s) skipped because the previous run" in w for w in status.warnings)
        assert any("ran longer than 1 s" in w for w in status.warnings)
    finally:
        await runtime.aclose()


@pytest.mark.parametrize("layer", ["admin", "workspace"])
async def test_capsule_cron_false_runs_nothing(
    tmp_path: Path, workspace: Path, ticker_wasm: Path, layer: str
) -> None:
    extra = "[runtime]\ncapsule_cron = false\n" if layer == "admin" else ""
    if layer == "workspace":
        (workspace / ".astrid").mkdir()
        (workspace / ".astrid" / "config.toml").write_text("[runtime]\ncapsule_cron = false\n")
    runtime = await open_cron_runtime(tmp_path, workspace, extra=extra)
    try:
        await install(runtime, tmp_path, ticker_wasm, TOOLS + cron(("hourly", "* * * * *", "tick")))
        await grant_workspace(runtime, workspace, "tick")
        assert await runtime.cron.run_due(DUE) == []
        assert await runtime.cron.run_due(DUE + HOUR) == []
        if layer == "admin":
            with anyio.fail_after(1):
                await runtime.cron.run()  # the daemon's loop returns at once
        assert await last_tick(runtime) is None
        assert await cron_sessions(runtime) == []
        assert not [w for w in (await runtime.status()).warnings if "cron" in w]
    finally:
        await runtime.aclose()


async def test_without_a_workspace_root_nothing_runs_and_status_names_the_key(
    tmp_path: Path, ticker_wasm: Path
) -> None:
    runtime = await open_cron_runtime(tmp_path, None)
    try:
        assert not [w for w in (await runtime.status()).warnings if "cron" in w]
        await install(runtime, tmp_path, ticker_wasm, TOOLS + cron(("hourly", "0 * * * *", "tick")))
        assert await runtime.cron.run_due(DUE) == []
        assert await cron_sessions(runtime) == []
        [warning] = [w for w in (await runtime.status()).warnings if "cron" in w]
        assert "capsule cron jobs do not run: [workspace] root is not set" in warning
        assert str(runtime.home / "config.toml") in warning
    finally:
        await runtime.aclose()


async def test_a_job_run_now_runs_as_scheduled_and_keeps_its_schedule(
    tmp_path: Path, workspace: Path, ticker_wasm: Path
) -> None:
    runtime = await open_cron_runtime(tmp_path, workspace)
    try:
        await install(runtime, tmp_path, ticker_wasm, TOOLS + cron(("hourly", "0 * * * *", "tick")))
        await runtime.cron.run_due(T0)  # seen: next due at 11:00
        denied = await runtime.capsule_run_job("ticker", "hourly")  # no grant yet: unattended
        assert denied["status"] == "denied"
        assert "runs unattended" in str(denied["detail"])
        assert await last_tick(runtime) is None

        await grant_workspace(runtime, workspace, "tick")
        ran = await runtime.capsule_run_job("ticker", "hourly")
        assert (ran["capsule"], ran["job"], ran["status"]) == ("ticker", "hourly", "ok")
        assert await last_tick(runtime) == "tick"
        [job] = (await runtime.status()).scheduled
        assert job["runs"] == 2
        assert job["next_due"] == DUE.isoformat(timespec="minutes")  # not moved by run-now
        assert len(stage(await cron_entries(runtime), "start")) == 2  # recorded like any run

        with pytest.raises(NotFoundError, match="has no \\[\\[cron\\]\\] entry named 'daily'"):
            await runtime.capsule_run_job("ticker", "daily")
    finally:
        await runtime.aclose()


async def test_run_now_is_refused_when_jobs_are_off(
    tmp_path: Path, workspace: Path, ticker_wasm: Path
) -> None:
    runtime = await open_cron_runtime(
        tmp_path, workspace, extra="[runtime]\ncapsule_cron = false\n"
    )
    try:
        await install(runtime, tmp_path, ticker_wasm, TOOLS + cron(("hourly", "0 * * * *", "tick")))
        with pytest.raises(ConfigError, match="turned off"):
            await runtime.capsule_run_job("ticker", "hourly")
        assert await cron_sessions(runtime) == []
    finally:
        await runtime.aclose()


async def test_the_daemon_loop_runs_a_due_job_and_stops_with_the_runtime(
    tmp_path: Path, workspace: Path, ticker_wasm: Path
) -> None:
    runtime = await open_cron_runtime(tmp_path, workspace)
    closed = False
    try:
        await install(runtime, tmp_path, ticker_wasm, TOOLS + cron(("hourly", "0 * * * *", "tick")))
        await grant_workspace(runtime, workspace, "tick")
        # The test's clock: 0.3 s before 11:00 when the loop starts, then real time.
        started = anyio.current_time()
        base = DUE - timedelta(seconds=0.3)
        runtime.cron.clock = lambda: base + timedelta(seconds=anyio.current_time() - started)
        elapsed = 0.0
        with anyio.fail_after(5):
            async with anyio.create_task_group() as tg:
                tg.start_soon(runtime.run_background)  # what the daemon runs
                while finished(runtime) != {"hourly"}:
                    await anyio.sleep(0.02)
                elapsed = anyio.current_time() - started
                assert await last_tick(runtime) == "tick"
                [job] = runtime.cron.jobs()
                assert job.last is not None
                assert (job.last.status, job.next_due) == ("ok", DUE + HOUR)
                await runtime.aclose()  # stops the scheduler loop before closing storage
                closed = True
                tg.cancel_scope.cancel()  # the MCP part of run_background waits for servers
        assert 0.2 < elapsed < 3
    finally:
        if not closed:
            await runtime.aclose()
