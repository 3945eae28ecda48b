"""`astrid run` with a real provider SDK: the daemon talks to a local server that speaks the
Anthropic or OpenAI streaming wire format. With an API key configured, this is the real model."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from astrid_runtime.testing import FakeAnthropicServer, FakeOpenAIServer
from astrid_runtime.testing import fake_anthropic as anthropic_fake
from astrid_runtime.testing import fake_openai as openai_fake


def astrid(home: Path, *args: str, env: dict[str, str] | None = None) -> Any:
    clean = {k: v for k, v in os.environ.items() if not k.endswith(("_API_KEY", "_BASE_URL"))}
    return subprocess.run(
        [sys.executable, "-m", "astrid_cli", *args],
        capture_output=True,
        text=True,
        env={**clean, "ASTRID_HOME": str(home), **(env or {})},
        timeout=180,
    )


def configure(home: Path, workspace: Path, model: str) -> None:
    home.mkdir(parents=True, exist_ok=True)
    (home / "config.toml").write_text(
        f'[model]\nmodel = "{model}"\n'
        f'[workspace]\nroot = "{workspace}"\nmode = "autonomous"\n'
        "[retry]\nbase_delay_ms = 10\n"
    )


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    ws = tmp_path / "ws"
    ws.mkdir()
    (ws / "notes.txt").write_text("the launch code is 0000\n")
    return ws.resolve()


def test_anthropic_model_reads_a_file_through_the_interceptor(
    tmp_path: Path, workspace: Path
) -> None:
    home = tmp_path / "home"
    configure(home, workspace, "claude-sonnet-4-6")
    script = [
        anthropic_fake.FakeHttpError.rate_limited(retry_after=0.05),  # retried by our policy
        anthropic_fake.FakeTurn("Reading.", (("read_file", {"path": "notes.txt"}),)),
        anthropic_fake.FakeTurn("The notes hold a launch code."),
    ]
    with FakeAnthropicServer(script, api_key="sk-ant-test") as server:
        env = {"ANTHROPIC_API_KEY": "sk-ant-test", "ANTHROPIC_BASE_URL": server.base_url}
        try:
            out = astrid(
                home,
                "run",
                "what is in notes.txt?",
                "--workspace",
                str(workspace),
                "--json",
                env=env,
            )
        finally:
            astrid(home, "daemon", "stop", env=env)
        assert out.returncode == 0, out.stdout + out.stderr
        result = json.loads(out.stdout)
        assert "launch code" in result["text"]
        bodies = server.message_bodies
        assert len(bodies) == 3  # the first request got a 429 and was sent again
        assert bodies[0] == bodies[1]
        tool_result = json.dumps(bodies[2]["messages"][-1])
        assert "0000" in tool_result
        assert "untrusted" in tool_result  # tool output reaches the model marked as data
        assert bodies[0]["model"] == "claude-sonnet-4-6"
    assert astrid(home, "audit", "verify").returncode == 0


def test_openai_compatible_model_is_denied_sudo_and_told_why(
    tmp_path: Path, workspace: Path
) -> None:
    home = tmp_path / "home"
    configure(home, workspace, "gpt-4.1-mini")
    (home / "config.toml").write_text(
        (home / "config.toml").read_text().replace("[model]\n", '[model]\nprovider = "openai"\n')
    )
    script = [
        openai_fake.FakeTurn("", (("bash", {"command": "ls && sudo cat /etc/shadow"}),)),
        openai_fake.FakeTurn("I was not allowed to do that."),
    ]
    with FakeOpenAIServer(script, api_key="sk-test") as server:
        env = {"OPENAI_API_KEY": "sk-test", "OPENAI_BASE_URL": server.base_url}
        try:
            out = astrid(
                home,
                "run",
                "show the shadow file",
                "--workspace",
                str(workspace),
                "--json",
                env=env,
            )
        finally:
            astrid(home, "daemon", "stop", env=env)
        assert out.returncode == 3, out.stdout + out.stderr  # a denial: exit code 3
        bodies = server.completion_bodies
        tool_message = next(m for m in bodies[1]["messages"] if m["role"] == "tool")
        assert "DENIED" in tool_message["content"]
        assert "sudo" in tool_message["content"]


def test_missing_api_key_says_what_to_set(tmp_path: Path, workspace: Path) -> None:
    home = tmp_path / "home"
    configure(home, workspace, "claude-sonnet-4-6")
    try:
        out = astrid(home, "run", "hello", "--workspace", str(workspace))
    finally:
        astrid(home, "daemon", "stop")
    assert out.returncode != 0
    assert "ANTHROPIC_API_KEY" in out.stdout + out.stderr
