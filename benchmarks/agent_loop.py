"""Runtime overhead per tool-call round of the agent loop, with the scripted provider.

    uv run python benchmarks/agent_loop.py [--quick]

One round is: the LLM call authorized as an action (budget reserved, audited), the model's
stream, the cost committed, the tool call authorized by the interceptor (audited), the tool
run, its outcome audited, the result added as untrusted content. The tool does nothing, and the
same provider stream plus tool run done bare, in the same process, is the baseline: the
difference is what the runtime adds. Storage: memory, sqlite3 (the daemon's default, fsynced)
and SurrealDB embedded (fsynced). The runs are interleaved (bare, memory, sqlite3, surrealkv,
twice) and each round's samples pooled. Also counted: storage transactions per round (every
``transaction`` call during the turn, divided by the rounds).

Targets (issue #26): <= 2 storage transactions per round and <= 3 ms added p50 on the default
(durable) storage.
"""

from __future__ import annotations

import itertools
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import anyio

from astrid_core import FileRead, JsonObject, SensitiveAction
from astrid_runtime.config import load_config
from astrid_runtime.llm import ModelRequest, ScriptedProvider, ScriptedTurn
from astrid_runtime.runtime import AgentRuntime
from astrid_runtime.tools import ToolContext

ROUNDS = 60 if "--quick" in sys.argv else 300


class Noop:
    name = "noop"
    description = "Does nothing (benchmark)."

    def __init__(self) -> None:
        self.input_schema: dict[str, Any] = {"type": "object"}

    def action(self, args: JsonObject, ctx: ToolContext) -> SensitiveAction:
        return FileRead(path=f"{ctx.workspace}/bench.txt")

    async def run(self, args: JsonObject, action: SensitiveAction, ctx: ToolContext) -> str:
        return "ok"


def script(rounds: int) -> list[ScriptedTurn]:
    return [ScriptedTurn("", (("noop", {}),), output_tokens=5)] * rounds + [ScriptedTurn("done")]


TRANSACTIONS: dict[str, list[float]] = {}


async def through_runtime(home: Path, workspace: Path, storage_url: str, label: str) -> list[float]:
    runtime = await AgentRuntime.open(
        home,
        config=load_config(home, env={}),
        provider=ScriptedProvider(script(ROUNDS)),
        storage_url=storage_url,
    )
    try:
        session = (await runtime.create_session(str(workspace))).session_id
        live = runtime._live[str(session)]  # pyright: ignore[reportPrivateUsage]
        live.loop.tools.add(Noop())
        storage: Any = runtime.storage
        original = storage.transaction
        count = [0]

        async def counting(*args: Any, **kwargs: Any) -> bool:
            count[0] += 1
            return await original(*args, **kwargs)

        storage.transaction = counting  # every holder of this storage calls through it
        marks: list[float] = [time.perf_counter()]
        async for event in runtime.run_turn(session, "go"):
            if event.type == "tool_call_result":
                marks.append(time.perf_counter())
        storage.transaction = original
        TRANSACTIONS.setdefault(label, []).append(count[0] / ROUNDS)
        return [b - a for a, b in itertools.pairwise(marks)]
    finally:
        await runtime.aclose()


async def bare(workspace: Path) -> list[float]:
    """The same work without the runtime: consume the scripted stream, run the tool."""
    provider = ScriptedProvider(script(ROUNDS))
    tool, ctx = Noop(), ToolContext(str(workspace), session_id=None)  # type: ignore[arg-type]
    request = ModelRequest("scripted", "system", ())
    samples: list[float] = []
    for _ in range(ROUNDS):
        start = time.perf_counter()
        async for _event in provider.stream(request):
            pass
        await tool.run({}, tool.action({}, ctx), ctx)
        samples.append(time.perf_counter() - start)
    return samples


def p50_p99(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples[5:])  # the first rounds warm caches up
    return statistics.median(ordered) * 1e3, ordered[int(len(ordered) * 0.99)] * 1e3


async def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp).resolve()  # noqa: ASYNC240 - one-off benchmark setup
        workspace = root / "ws"
        workspace.mkdir()
        (workspace / "bench.txt").write_text("x")
        results: dict[str, list[float]] = {}
        for run in range(2):
            results.setdefault("bare (no runtime)", []).extend(await bare(workspace))
            for label, scheme in (
                ("memory storage", "memory"),
                ("sqlite3 (default), fsynced", "sqlite"),
                ("SurrealDB embedded, fsynced", "surrealkv"),
            ):
                home = root / f"{scheme}{run}"
                home.mkdir()
                (home / "config.toml").write_text(
                    '[workspace]\nmode = "autonomous"\n[runtime]\nmax_turns = 500\n'
                    "[budget]\nsession_limit_micros = 100000000\n"
                )
                url = "memory://" if scheme == "memory" else f"{scheme}://{home / 'state'}"
                samples = await through_runtime(home, workspace, url, label)
                results.setdefault(f"runtime, {label}", []).extend(samples)
    base, _ = p50_p99(results["bare (no runtime)"])
    print(f"{ROUNDS} tool-call rounds per run, 2 interleaved runs pooled")
    print(f"{'per round':40} {'p50 ms':>8} {'p99 ms':>8} {'added p50 ms':>13} {'txn/round':>10}")
    for label, samples in results.items():
        p50, p99 = p50_p99(samples)
        txn = TRANSACTIONS.get(label.removeprefix("runtime, "))
        shown = f"{statistics.mean(txn):10.2f}" if txn else f"{'-':>10}"
        print(f"{label:40} {p50:8.3f} {p99:8.3f} {p50 - base:13.3f} {shown}")


if __name__ == "__main__":
    anyio.run(main)
