"""Capsule interceptors for every event, in a real session: real WASM (C built with clang in
the test), installed through the real installer, the real runtime, hooks and audit log.

The recording capsule stores each event it receives in its own kv storage, so the test reads
exactly what the capsule was given; a second capsule crashes on AfterToolCall."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from astrid_audit import OutcomeKind
from astrid_capsule.install import CapsuleInstaller, TrustAck
from astrid_crypto import hash_file
from astrid_runtime.llm import ScriptedTurn
from astrid_runtime.runtime import AgentRuntime

from .conftest import build_c_capsule, collect, open_runtime

pytestmark = pytest.mark.anyio

FAKE_KEY = "sk-ant-" + "a1B2c3D4e5F6g7H8i9J0" * 2  # the shape of an Anthropic key

RECORDER_C = r"""
#include "astrid_pdk.h"

static int events = 0;  /* instance state: one instance per session */

static void put(u64 block, u64 *at, const char *s) {
    while (*s) extism_store_u8(block + (*at)++, (u8)*s++);
}

/* kv_set {"key": "ev-<n>", "value": <the event JSON as received>} */
static void record(void) {
    char digits[12];
    int n = events++, count = 0;
    do { digits[count++] = (char)('0' + n % 10); n /= 10; } while (n);
    u64 input = extism_input_length();
    const char *head = "{\"key\":\"ev-", *middle = "\",\"value\":";
    u64 at = 0, block = extism_alloc(pdk_strlen(head) + count + pdk_strlen(middle) + input + 1);
    put(block, &at, head);
    while (count) extism_store_u8(block + at++, (u8)digits[--count]);
    put(block, &at, middle);
    for (u64 i = 0; i < input; i++) extism_store_u8(block + at++, extism_input_load_u8(i));
    put(block, &at, "}");
    extism_free(astrid_kv_set(block));
}

EXPORT("record") int record_only(void) { record(); return 0; }

EXPORT("record_and_deny") int record_and_deny(void) {
    record();
    pdk_output_str("{\"decision\":\"deny\",\"reason\":\"I do not like this prompt\"}");
    return 0;
}

EXPORT("record_and_annotate") int record_and_annotate(void) {
    record();
    pdk_output_str("{\"annotation\":\"saw a tool call\"}");
    return 0;
}

EXPORT("crash") int crash(void) { __builtin_trap(); }
"""

RECORDER = """
[capabilities]
kv = true

[[interceptor]]
event = "SessionStart"
export = "record"

[[interceptor]]
event = "UserPrompt"
export = "record_and_deny"

[[interceptor]]
event = "AfterToolCall"
export = "record_and_annotate"

[[interceptor]]
event = "SessionEnd"
export = "record"
"""

CRASHER = """
[[interceptor]]
event = "AfterToolCall"
export = "crash"
"""


@pytest.fixture(scope="module")
def recorder_wasm(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_c_capsule(RECORDER_C, tmp_path_factory.mktemp("recorder"), "recorder")


def capsule_source(root: Path, name: str, body: str, wasm: Path) -> Path:
    source = root / f"src-{name}"
    source.mkdir(parents=True)
    shutil.copyfile(wasm, source / "plugin.wasm")
    digest = hash_file(source / "plugin.wasm").hex
    (source / "Capsule.toml").write_text(
        f'[package]\nname = "{name}"\nversion = "0.1.0"\n\n'
        f'[component]\nentrypoint = "plugin.wasm"\nhash = "{digest}"\n' + body
    )
    return source


async def install(runtime: AgentRuntime, source: Path) -> None:
    installer = CapsuleInstaller(runtime.home, runtime.storage)
    await installer.commit(await installer.plan(source), TrustAck(method="flag", actor="test"))


async def received(runtime: AgentRuntime) -> list[dict[str, Any]]:
    """The events the recording capsule stored, in the order it got them."""
    events: list[dict[str, Any]] = []
    for n in range(20):
        value = await runtime.storage.get("capsule_kv", f"recorder/ev-{n}")
        if not isinstance(value, dict):
            break
        events.append(value)
    return events


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    ws = tmp_path / "project"
    ws.mkdir()
    (ws / "notes.txt").write_text("buy milk")
    return ws.resolve()


async def test_every_event_reaches_the_capsule_and_none_can_change_the_turn(
    tmp_path: Path, workspace: Path, recorder_wasm: Path
) -> None:
    script = [
        ScriptedTurn("reading", (("read_file", {"path": "notes.txt"}),)),
        ScriptedTurn("it says buy milk"),
    ]
    runtime = await open_runtime(tmp_path, script, mode="autonomous")
    try:
        await install(runtime, capsule_source(tmp_path, "recorder", RECORDER, recorder_wasm))
        await install(runtime, capsule_source(tmp_path, "crasher", CRASHER, recorder_wasm))
        info = await runtime.create_session(str(workspace))
        sid = str(info.session_id)
        assert await received(runtime) == []  # nothing runs before the session's capsules load

        events = await collect(runtime, info.session_id, f"read my notes, key {FAKE_KEY}")

        # The UserPrompt interceptor's "deny" and the crashing AfterToolCall changed nothing.
        [result] = [e for e in events if e["type"] == "tool_call_result"]
        assert result["ok"] is True
        assert "buy milk" in result["output"]
        assert events[-1] == {**events[-1], "type": "turn_complete", "stop_reason": "end_turn"}
        said = "".join(e["text"] for e in events if e["type"] == "text")
        assert said == "readingit says buy milk"  # the model went on after the tool result

        await runtime.end_session(info.session_id)
        start, prompt, after, end = await received(runtime)

        assert start == {
            "event": "SessionStart",
            "session_id": sid,
            "workspace": str(workspace),
            "model": info.model,
            "history_messages": 0,
        }
        assert prompt["event"] == "UserPrompt"
        assert prompt["session_id"] == sid
        assert prompt["prompt"].startswith("read my notes, key [redacted:")
        assert FAKE_KEY not in json.dumps([start, prompt, after, end])  # never a secret
        assert {k: v for k, v in after.items() if k != "call_id"} == {
            "event": "AfterToolCall",
            "session_id": sid,
            "tool": "read_file",
            "arguments": {"path": "notes.txt"},
            "ok": True,
            "denied": False,
            "output": result["output"],
        }
        assert after["call_id"] == result["call_id"]
        assert end == {"event": "SessionEnd", "session_id": sid}

        warnings = runtime.capsules.warnings
        assert any(
            w.startswith("capsule crasher: its AfterToolCall interceptor failed:") for w in warnings
        )
        assert any(
            "capsule recorder: its UserPrompt interceptor failed:" in w
            and "cannot decide anything" in w
            for w in warnings
        )
        assert all("not run yet" not in w for w in warnings)
        assert any("crasher" in w for w in (await runtime.status()).warnings)
        await runtime.capsules.verified()  # as a new session's load or the cron refresh does
        assert any("crasher" in w for w in (await runtime.status()).warnings)  # still listed

        audited = [
            e.outcome
            for e in await runtime.audit.entries(session_id=info.session_id)
            if e.outcome.detail.get("stage") == "interceptor"
        ]
        notes = [(o.detail["capsule"], o.detail["event"], o.success) for o in audited]
        assert ("recorder", "AfterToolCall", True) in notes
        assert ("crasher", "AfterToolCall", False) in notes
        assert ("recorder", "UserPrompt", False) in notes
        [annotation] = [o for o in audited if o.success]
        assert annotation.reason == "annotation: saw a tool call"
        assert annotation.kind is OutcomeKind.EXECUTED
        assert (await runtime.audit_verify())["ok"] is True
    finally:
        await runtime.aclose()
