"""Deny with a message, and truthful attribution, through the fake Bot API.

The model is the real Anthropic SDK against FakeAnthropicServer, so the test reads the tool
result exactly as the model received it in its next request: the owner's words, not a button
label. An approval answered by another client is reported as theirs, never as "you".
"""

from __future__ import annotations

import html
import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest

from astrid_core import JsonObject
from astrid_gateway import testing as daemon
from astrid_gateway.client import GatewayClient
from astrid_gateway.protocol import ApprovalNeeded
from astrid_runtime.testing.fake_anthropic import FakeAnthropicServer, FakeTurn
from astrid_telegram.testing import FakeBotApi

from .conftest import OWNER, approval_message, chat_text, press, running_bot, wait_until

pytestmark = pytest.mark.anyio

WORDS = "move it to old/ instead, never delete"
DELETE_ARGS: JsonObject = {"path": "victim.txt"}


@pytest.fixture
def model_and_daemon(tmp_path: Path, workspace: Path) -> Iterator[tuple[FakeAnthropicServer, Path]]:
    script = [
        FakeTurn("deleting it", tool_calls=(("delete_file", DELETE_ARGS),)),
        FakeTurn("Understood, I will move it instead."),
    ]
    with FakeAnthropicServer(script) as server:
        home = tmp_path / "home"
        home.mkdir()
        (home / "config.toml").write_text(
            f'[model]\nprovider = "anthropic"\nmodel = "claude-sonnet-4-6"\n'
            f'api_key = "{server.api_key}"\nbase_url = "{server.base_url}"\n'
            f'[workspace]\nroot = "{workspace}"\nmode = "safe"\n'
        )
        proc: subprocess.Popen[bytes] = daemon.start_daemon(home)
        try:
            yield server, home
        finally:
            daemon.stop_daemon(proc)


def _tool_results(body: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        block
        for message in body["messages"]
        if isinstance(message.get("content"), list)
        for block in message["content"]
        if isinstance(block, dict) and block.get("type") == "tool_result"
    ]


async def test_deny_with_a_message_returns_the_words_to_the_model(
    api: FakeBotApi, workspace: Path, model_and_daemon: tuple[FakeAnthropicServer, Path]
) -> None:
    server, home = model_and_daemon
    async with running_bot(api, home, (OWNER,)):
        api.send_user_message(OWNER, "please delete victim.txt")
        await wait_until(api, lambda: approval_message(api, OWNER) is not None, "approval")
        approval = approval_message(api, OWNER)
        assert approval is not None
        labels = [label for label, _ in api.buttons(approval)]
        assert labels[-2:] == ["Deny", "Deny with a message"]
        assert (
            "Deny with a message</b>: nothing; your next message here is returned to the model"
            in (html.unescape(approval.text))
        )

        assert await press(api, OWNER, OWNER, approval, "Deny with a message") == (
            "Deny with a message"
        )
        await wait_until(
            api, lambda: "Write what the agent should do" in chat_text(api, OWNER), "ask"
        )
        await anyio.sleep(0.5)
        assert len(server.message_bodies) == 1, "nothing is answered before the words come"

        api.send_user_message(OWNER, WORDS)
        await wait_until(
            api,
            lambda: "Understood, I will move it instead." in chat_text(api, OWNER),
            "the model's answer to the words",
        )
        assert "→ <b>denied</b> (by you); the agent reads your message" in chat_text(api, OWNER)
    assert (workspace / "victim.txt").read_text() == "precious"
    [result] = _tool_results(server.message_bodies[-1])
    assert f"denied by the user: {WORDS}" in json.dumps(result)


async def test_an_answer_from_another_client_is_attributed_to_it(
    api: FakeBotApi, workspace: Path, model_and_daemon: tuple[FakeAnthropicServer, Path]
) -> None:
    _, home = model_and_daemon
    async with running_bot(api, home, (OWNER,)):
        api.send_user_message(OWNER, "please delete victim.txt")
        await wait_until(api, lambda: approval_message(api, OWNER) is not None, "approval")
        async with await GatewayClient.open(home, autostart=False, client_name="cli") as cli:
            await cli.subscribe()
            async for event in cli.events():
                if isinstance(event, ApprovalNeeded):
                    await cli.call(
                        "approvalResponse", request_id=str(event.request.request_id), option="deny"
                    )
                    break
        await wait_until(
            api, lambda: "(by another client (cli))" in chat_text(api, OWNER), "attribution"
        )
        assert "→ <b>denied</b> (by another client (cli))" in chat_text(api, OWNER)
        assert "(by you)" not in chat_text(api, OWNER)
    assert (workspace / "victim.txt").read_text() == "precious"
