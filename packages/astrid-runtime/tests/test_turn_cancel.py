"""Ctrl-C on a stalled model: ``cancel_turn`` ends the turn within a second, the HTTP stream is
abandoned and the budget reservation for the call is refunded in full. The model is the real
``anthropic`` SDK talking to FakeAnthropicServer, whose ``FakeStall`` stops sending mid-stream."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio
import pytest

from astrid_runtime.config import load_config
from astrid_runtime.llm import RetryPolicy
from astrid_runtime.llm._anthropic import AnthropicProvider
from astrid_runtime.runtime import AgentRuntime
from astrid_runtime.testing.fake_anthropic import (
    FakeAnthropicServer,
    FakeHttpError,
    FakeStall,
    FakeTurn,
)

pytestmark = pytest.mark.anyio

MODEL = "claude-sonnet-4-6"


async def open_runtime(tmp_path: Path, server: FakeAnthropicServer) -> AgentRuntime:
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    (home / "config.toml").write_text(
        f'[workspace]\nmode = "safe"\n[model]\nprovider = "anthropic"\nmodel = "{MODEL}"\n'
    )
    provider = AnthropicProvider(
        server.api_key,
        model=MODEL,
        base_url=server.base_url,
        retry=RetryPolicy(max_attempts=3, base_delay_seconds=0.2, max_delay_seconds=0.2),
    )
    return await AgentRuntime.open(home, config=load_config(home, env={}), provider=provider)


async def test_cancel_ends_a_stalled_model_call_without_waiting_and_refunds(
    tmp_path: Path, workspace: Path
) -> None:
    stall = FakeStall(text_before="Let me think", max_seconds=30)
    with FakeAnthropicServer([stall]) as server:
        runtime = await open_runtime(tmp_path, server)
        try:
            session = await runtime.create_session(str(workspace))
            events: list[dict[str, Any]] = []
            started = anyio.Event()
            async with anyio.create_task_group() as tg:

                async def turn() -> None:
                    async for event in runtime.run_turn(session.session_id, "hello"):
                        events.append(event.model_dump(mode="json"))
                        if event.type == "text":
                            started.set()

                tg.start_soon(turn)
                with anyio.fail_after(20):
                    await started.wait()  # the model spoke, then stalled
                during: dict[str, Any] = dict(await runtime.session_budget(session.session_id))
                assert during["reserved_micros"] > 0  # the call holds a reservation
                assert await runtime.cancel_turn(session.session_id)
                # The model would stay silent for 30 s: ending within 5 s proves the turn did
                # not wait for it (a bound, not a timing claim: CI hosts are loaded).
                with anyio.fail_after(5):
                    while not events or events[-1]["type"] != "turn_complete":
                        await anyio.sleep(0.01)
            assert events[-1]["stop_reason"] == "cancelled"
            budget = await runtime.session_budget(session.session_id)
            assert budget["reserved_micros"] == 0
            assert budget["spent_micros"] == 0  # nothing was delivered, nothing is charged
        finally:
            stall.release.set()
            await runtime.aclose()


async def test_a_retry_is_announced_with_its_reason_and_wait(
    tmp_path: Path, workspace: Path
) -> None:
    script = [FakeHttpError.rate_limited(retry_after=0.1), FakeTurn("Hello again.")]
    with FakeAnthropicServer(script) as server:
        runtime = await open_runtime(tmp_path, server)
        try:
            session = await runtime.create_session(str(workspace))
            events = [
                e.model_dump(mode="json")
                async for e in runtime.run_turn(session.session_id, "hello")
            ]
        finally:
            await runtime.aclose()
    kinds = [e["type"] for e in events]
    assert kinds.index("model_retrying") < kinds.index("text")
    retry = next(e for e in events if e["type"] == "model_retrying")
    assert "rate limit" in retry["reason"].lower()
    assert retry["wait_seconds"] >= 0.1  # the server's Retry-After is a floor
    assert (retry["attempt"], retry["max_attempts"]) == (1, 3)
    assert events[-1]["stop_reason"] == "end_turn"
