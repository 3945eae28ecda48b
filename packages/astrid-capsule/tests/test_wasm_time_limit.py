"""The WASM time limit counts time spent running WASM, not time spent waiting in host calls.

Real WASM (a WAT module, compiled by extism's wasmtime), the real engine and host functions,
and a real Guard that takes its time to answer, like a person reading an approval prompt.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import anyio
import pytest

from astrid_capsule.wasm import HostContext, HostGrants, WasmCapsule, WasmLimits
from astrid_core import (
    AstridTimeoutError,
    Authorization,
    AuthorizationProof,
    ProofKind,
    SensitiveAction,
)

pytestmark = pytest.mark.anyio

LIMIT = 0.5  # seconds of WASM time per call
SLOW = 2 * LIMIT  # how long the guard takes to answer
SLACK = 1.5  # scheduling noise on a loaded 2-core machine

WRITE_REQUEST = '{"path":"out.txt","content":"written"}'
CONFIG_REQUEST = '{"key":"x"}'


def _wat_string(text: str) -> str:
    return "".join(f"\\{b:02x}" for b in text.encode())


# Requests live in the module's own memory and are copied into an extism block for each host
# call (the ABI of astrid_pdk.h, written by hand).
WAT = f"""
(module
  (import "extism:host/env" "alloc" (func $alloc (param i64) (result i64)))
  (import "extism:host/env" "free" (func $free (param i64)))
  (import "extism:host/env" "store_u8" (func $store_u8 (param i64 i32)))
  (import "extism:host/env" "output_set" (func $output_set (param i64 i64)))
  (import "astrid" "write_file" (func $write_file (param i64) (result i64)))
  (import "astrid" "get_config" (func $get_config (param i64) (result i64)))
  (memory 1)
  (data (i32.const 0) "{_wat_string(WRITE_REQUEST)}")
  (data (i32.const 128) "{_wat_string(CONFIG_REQUEST)}")
  (data (i32.const 192) "done")

  (func $block (param $ptr i32) (param $len i32) (result i64)
    (local $out i64) (local $i i32)
    (local.set $out (call $alloc (i64.extend_i32_u (local.get $len))))
    (block $end
      (loop $copy
        (br_if $end (i32.ge_u (local.get $i) (local.get $len)))
        (call $store_u8
          (i64.add (local.get $out) (i64.extend_i32_u (local.get $i)))
          (i32.load8_u (i32.add (local.get $ptr) (local.get $i))))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $copy)))
    (local.get $out))

  (func $work (param $n i64)
    (local $i i64)
    (block $end
      (loop $count
        (br_if $end (i64.ge_u (local.get $i) (local.get $n)))
        (local.set $i (i64.add (local.get $i) (i64.const 1)))
        (br $count))))

  (func $spin (loop $forever (br $forever)))

  (func $write
    (call $free
      (call $write_file (call $block (i32.const 0) (i32.const {len(WRITE_REQUEST)})))))

  (func $done
    (call $output_set (call $block (i32.const 192) (i32.const 4)) (i64.const 4)))

  (func (export "spin") (result i32) (call $spin) (i32.const 0))

  (func (export "quick") (result i32) (call $done) (i32.const 0))

  (func (export "slow_write_then_work") (result i32)
    (call $write)
    (call $work (i64.const 1000000))
    (call $done)
    (i32.const 0))

  (func (export "slow_write_then_spin") (result i32)
    (call $write)
    (call $spin)
    (i32.const 0))

  ;; Short host calls between short stretches of WASM, forever: each stretch is far below the
  ;; limit, so only a budget that adds them up stops it.
  (func (export "host_calls_forever") (result i32)
    (local $request i64)
    (local.set $request (call $block (i32.const 128) (i32.const {len(CONFIG_REQUEST)})))
    (loop $forever
      (call $free (call $get_config (local.get $request)))
      (call $work (i64.const 200000))
      (br $forever))
    (i32.const 0))
)
"""


@dataclass
class SlowGuard:
    """A real Guard that allows everything, after ``delay`` seconds (a person deciding)."""

    delay: float = SLOW
    asked: list[SensitiveAction] = field(default_factory=list[SensitiveAction])
    answered: anyio.Event = field(default_factory=anyio.Event)

    async def authorize(self, action: SensitiveAction, reason: str) -> Authorization:
        self.asked.append(action)
        await anyio.sleep(self.delay)
        self.answered.set()
        return Authorization.allow(AuthorizationProof(kind=ProofKind.POLICY, detail="test"))


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    ws = tmp_path / "ws"
    ws.mkdir()
    return ws


def capsule(workspace: Path, guard: SlowGuard) -> WasmCapsule:
    context = HostContext(
        capsule="timer",
        workspace=workspace,
        grants=HostGrants(fs_write=("**",)),
        guard=guard,
        limits=WasmLimits(timeout_seconds=LIMIT),
    )
    return WasmCapsule("timer", WAT.encode(), context)


async def timed(plugin: WasmCapsule, export: str) -> tuple[bytes | AstridTimeoutError, float]:
    start = anyio.current_time()
    with anyio.fail_after(LIMIT + SLOW + 5):  # a budget that never runs out fails the test
        try:
            result: bytes | AstridTimeoutError = await plugin.call(export)
        except AstridTimeoutError as exc:
            result = exc
    return result, anyio.current_time() - start


async def test_an_infinite_loop_is_stopped_near_the_limit(workspace: Path) -> None:
    result, elapsed = await timed(capsule(workspace, SlowGuard()), "spin")
    assert isinstance(result, AstridTimeoutError)
    assert result.message == f"capsule timer: spin ran longer than {LIMIT:g} s and was stopped"
    assert LIMIT * 0.9 <= elapsed < LIMIT + SLACK


async def test_waiting_in_a_host_call_longer_than_the_limit_does_not_count(
    workspace: Path,
) -> None:
    guard = SlowGuard()
    result, elapsed = await timed(capsule(workspace, guard), "slow_write_then_work")
    assert result == b"done"  # the work after the approval ran to its end
    assert elapsed >= SLOW
    assert (workspace / "out.txt").read_text() == "written"
    assert [a.kind for a in guard.asked] == ["file_write"]


async def test_a_loop_after_a_slow_host_call_is_still_stopped(workspace: Path) -> None:
    guard = SlowGuard()
    result, elapsed = await timed(capsule(workspace, guard), "slow_write_then_spin")
    assert isinstance(result, AstridTimeoutError)
    assert "ran longer than 0.5 s and was stopped" in result.message
    assert SLOW + LIMIT * 0.9 <= elapsed < SLOW + LIMIT + SLACK
    assert (workspace / "out.txt").read_text() == "written"  # approved before the limit


async def test_the_budget_adds_up_over_many_host_calls(workspace: Path) -> None:
    result, elapsed = await timed(capsule(workspace, SlowGuard()), "host_calls_forever")
    assert isinstance(result, AstridTimeoutError)
    assert elapsed >= LIMIT * 0.9


async def test_calls_after_a_timeout_work_and_are_limited_again(workspace: Path) -> None:
    plugin = capsule(workspace, SlowGuard())
    first, _ = await timed(plugin, "spin")
    assert isinstance(first, AstridTimeoutError)
    for _ in range(3):  # no cancel left over from the stopped call reaches these
        assert (await timed(plugin, "quick"))[0] == b"done"
    again, elapsed = await timed(plugin, "spin")
    assert isinstance(again, AstridTimeoutError)
    assert elapsed < LIMIT + SLACK
    assert (await timed(plugin, "quick"))[0] == b"done"


async def test_a_call_cancelled_while_waiting_for_approval_does_not_act_on_it(
    workspace: Path,
) -> None:
    plugin = capsule(workspace, SlowGuard())
    with anyio.move_on_after(SLOW / 4) as scope:
        await plugin.call("slow_write_then_work")
    assert scope.cancelled_caught
    # The next call waits for the abandoned one to unwind: by then it did all it ever will.
    result, _ = await timed(plugin, "quick")
    assert result == b"done"
    assert not (workspace / "out.txt").exists()
