"""The static engine in sessions: a capsule's ``[[context]]`` reaches the system prompt fenced
as untrusted; its ``[[command]]`` turns ``/name args`` into the prompt the model receives and
runs nothing by itself; a ``/`` line no capsule defines goes to the model unchanged."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pytest

from astrid_capsule.install import CapsuleInstaller, TrustAck
from astrid_core import BadInputError
from astrid_runtime.llm import ModelRequest, ScriptedTurn

from .conftest import collect, open_runtime

pytestmark = pytest.mark.anyio

MANIFEST = """[package]
name = "house-style"
version = "0.1.0"

[[context]]
name = "conventions"
file = "docs/conventions.md"

[[command]]
name = "review"
description = "FILE"
template = "Review {1} against the house conventions and list every deviation."
"""


@dataclass
class Model:
    requests: list[ModelRequest] = field(default_factory=list[ModelRequest])

    def __call__(self, request: ModelRequest) -> ScriptedTurn:
        self.requests.append(request)
        return ScriptedTurn("noted")


def last_user_text(request: ModelRequest) -> str:
    return request.messages[-1].content


async def test_context_and_commands_of_a_capsule_in_a_session(
    tmp_path: Path, workspace: Path
) -> None:
    source = tmp_path / "house-style"
    (source / "docs").mkdir(parents=True)
    (source / "Capsule.toml").write_text(MANIFEST)
    (source / "docs" / "conventions.md").write_text("Tabs, never spaces.")
    model = Model()
    runtime = await open_runtime(tmp_path, model)
    try:
        installer = CapsuleInstaller(runtime.home, runtime.storage)
        await installer.commit(await installer.plan(source), TrustAck(method="flag"))
        info = await runtime.create_session(str(workspace))

        events = await collect(runtime, info.session_id, "/review src/app.py")
        assert [e for e in events if e["type"].startswith("tool_call")] == []  # ran nothing
        [request] = model.requests
        assert '<untrusted-content source="context files of capsule house-style">' in (
            request.system
        )
        assert "Tabs, never spaces." in request.system
        prompt = last_user_text(request)
        assert "The user ran /review src/app.py" in prompt
        assert "Review src/app.py against the house conventions" in prompt

        await collect(runtime, info.session_id, "/unknown stays as typed")
        assert "/unknown stays as typed" in last_user_text(model.requests[-1])

        with pytest.raises(BadInputError, match="needs at least 1 argument"):
            await collect(runtime, info.session_id, "/review")
    finally:
        await runtime.aclose()
