"""Approvals nobody answered in time, and MCP servers that ask the user for something.

An approval left unanswered past ``security.approval_timeout_seconds`` is deferred by the daemon;
the bot offers it again, marked as such, on the owner's next message, and the answer replays the
action exactly once. A real MCP server (the SDK-written lab server of astrid-mcp) asks for a form,
which the bot turns into a short dialogue, one field per message; and asks the user to open a
URL, which the bot shows as a link button without anyone fetching it.
"""

from __future__ import annotations

import html
import json
import sys
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import anyio
import pytest

from astrid_gateway import testing as daemon
from astrid_gateway.client import GatewayClient
from astrid_gateway.protocol import dump_event
from astrid_telegram.testing import ChatMessage, FakeBotApi

from .conftest import (
    OWNER,
    approval_message,
    button_data,
    chat_text,
    press,
    press_data,
    running_bot,
    wait_until,
)

pytestmark = pytest.mark.anyio

LAB = Path(__file__).resolve().parents[3] / "packages/astrid-mcp/tests/servers/lab_server.py"
DELETE_VICTIM = {"tool": "delete_file", "arguments": {"path": "victim.txt"}}
AWAY_NOTE = "(waiting since you were away)"
SECRET = "the-page-behind-the-link-7f3a"

StartDaemon = Callable[[list[Any], str], Path]


@pytest.fixture
def start_configured_daemon(tmp_path: Path, workspace: Path) -> Iterator[StartDaemon]:
    """Like conftest's ``start_daemon``, with extra TOML appended to the config."""
    procs: list[Any] = []

    def start(turns: list[Any], extra_toml: str) -> Path:
        home = tmp_path / "home"
        daemon.write_scripted_config(home, workspace, turns, mode="safe")
        with (home / "config.toml").open("a") as config:
            config.write(extra_toml)
        procs.append(daemon.start_daemon(home))
        return home

    yield start
    for proc in procs:
        daemon.stop_daemon(proc)


def _lab_server_toml(state: Path) -> str:
    state.mkdir(exist_ok=True)
    return (
        "\n[[servers]]\n"
        'name = "lab"\n'
        f"command = {json.dumps(sys.executable)}\n"
        f"args = [{json.dumps(str(LAB))}]\n"
        f"env = {{ LAB_STATE = {json.dumps(str(state))} }}\n"
    )


@dataclass
class _Probe:
    """A second client of the daemon that records every event: what the daemon did, as
    opposed to what the bot showed of it."""

    client: GatewayClient
    events: list[dict[str, Any]]

    async def lab_running(self) -> None:
        # A session gets the MCP tools that exist when it is created: wait for the server first.
        with anyio.fail_after(30):
            while True:
                servers = await self.client.call("listServers")
                if any(s["name"] == "lab" and s["state"] == "running" for s in servers):
                    return
                await anyio.sleep(0.1)

    async def event(self, kind: str) -> dict[str, Any]:
        with anyio.fail_after(15):
            while not (found := [e for e in self.events if e.get("type") == kind]):
                await anyio.sleep(0.05)
        return found[0]

    async def turns_completed(self, count: int) -> None:
        # The daemon refuses input while a turn runs: the next message waits for its end.
        with anyio.fail_after(15):
            while sum(e.get("type") == "turn_complete" for e in self.events) < count:
                await anyio.sleep(0.05)

    async def routable(self, kind: str) -> dict[str, Any]:
        """The first ``kind`` event, checked to name the session whose tool call asked for it."""
        request = await self.event(kind)
        approval = await self.event("approval_needed")
        assert request["session_id"] == approval["session_id"], (
            f"{kind} carries session_id={request['session_id']!r}, not the session of the "
            "tool call that asked for it: a per-session frontend cannot route it to its user"
        )
        return request


@asynccontextmanager
async def _probe(home: Path) -> AsyncIterator[_Probe]:
    client = await GatewayClient.open(str(home), autostart=False, client_name="probe")
    async with client, anyio.create_task_group() as tg:
        probe = _Probe(client, [])
        await client.subscribe()

        async def collect() -> None:
            async for event in client.events():
                probe.events.append(dump_event(event))  # the wire form, as a client reads it

        tg.start_soon(collect)
        try:
            yield probe
        finally:
            tg.cancel_scope.cancel()


def _messages_with(api: FakeBotApi, text: str) -> list[ChatMessage]:
    return [m for m in api.bot_messages(OWNER) if text in html.unescape(m.text)]


async def _say_and_wait(api: FakeBotApi, text: str, expected: str) -> None:
    """The owner writes ``text``; wait for a bot message containing ``expected``."""
    before = len(_messages_with(api, expected))
    api.send_user_message(OWNER, text)
    await wait_until(api, lambda: len(_messages_with(api, expected)) > before, repr(expected))


# ---------------------------------------------------------------------- deferred approvals


async def test_an_ignored_approval_is_deferred_and_offered_again_on_the_next_message(
    api: FakeBotApi, workspace: Path, start_configured_daemon: StartDaemon
) -> None:
    home = start_configured_daemon(
        [
            {"text": "I will delete victim.txt.", "tool_calls": [DELETE_VICTIM]},
            {"text": "It will wait for your answer."},
            {"text": "Welcome back."},
        ],
        "\n[security]\napproval_timeout_seconds = 1\n",
    )
    victim = workspace / "victim.txt"
    async with running_bot(api, home, (OWNER,)), _probe(home) as probe:
        api.send_user_message(OWNER, "please delete victim.txt")
        await wait_until(api, lambda: approval_message(api, OWNER) is not None, "approval")
        first = approval_message(api, OWNER)
        assert first is not None
        assert AWAY_NOTE not in html.unescape(first.text)
        # Nobody answers: after the timeout the daemon defers it and the turn goes on.
        await wait_until(
            api, lambda: "It will wait for your answer." in chat_text(api, OWNER), "deferral"
        )
        assert "approval deferred" in chat_text(api, OWNER)
        assert victim.exists()
        await probe.turns_completed(1)

        await _say_and_wait(api, "I am back", AWAY_NOTE)
        [offer] = _messages_with(api, AWAY_NOTE)
        assert offer.message_id > first.message_id
        labels = [label for label, _ in api.buttons(offer)]
        assert labels == [
            "Allow Once",
            "Allow Session",
            "Allow Workspace",
            "Allow Always",
            "Deny",
            "Deny with a message",
        ]
        assert "delete" in html.unescape(offer.text).lower()
        await wait_until(api, lambda: "Welcome back." in chat_text(api, OWNER), "the reply")
        assert victim.exists(), "offering it again must not run it"

        allow_once = button_data(api, offer, "Allow Once")
        assert await press(api, OWNER, OWNER, offer, "Allow Once") == "Allow Once"
        # The daemon replays the deferred action itself: no new model turn is needed.
        await wait_until(api, lambda: not victim.exists(), "the replayed delete")
        # The keyboard message is edited to show the answer; the replay can finish first.
        await wait_until(
            api,
            lambda: "Allow Once" in html.unescape(offer.text).split("→")[-1],
            "the answer shown on the offer",
        )

        # Neither the answered re-offer nor the original, expired keyboard works again.
        replay = await press_data(api, OWNER, OWNER, offer, allow_once)
        assert "already answered or has expired" in replay
        stale = await press(api, OWNER, OWNER, first, "Allow Once")
        assert "already answered or has expired" in stale

        # Answered now: the next message offers nothing.
        offers = len(_messages_with(api, AWAY_NOTE))
        await probe.turns_completed(2)
        await _say_and_wait(api, "anything else?", "(the scripted model has nothing more")
        assert len(_messages_with(api, AWAY_NOTE)) == offers


# ---------------------------------------------------------------------- elicitation


async def test_a_form_elicitation_is_a_guided_dialogue_whose_answers_reach_the_server(
    api: FakeBotApi, tmp_path: Path, start_configured_daemon: StartDaemon
) -> None:
    home = start_configured_daemon(
        [
            {
                "text": "Asking the lab server.",
                "tool_calls": [{"tool": "mcp__lab__ask_user", "arguments": {}}],
            },
            {"text": "Got the contact."},
        ],
        _lab_server_toml(tmp_path / "lab"),
    )
    async with running_bot(api, home, (OWNER,)), _probe(home) as probe:
        await probe.lab_running()
        api.send_user_message(OWNER, "whom should we contact?")
        await wait_until(api, lambda: approval_message(api, OWNER) is not None, "approval")
        approval = approval_message(api, OWNER)
        assert approval is not None
        assert await press(api, OWNER, OWNER, approval, "Allow Once") == "Allow Once"

        await probe.routable("elicitation_needed")
        await wait_until(api, lambda: bool(_messages_with(api, "Name?")), "the first field")
        assert "Who should we contact?" in chat_text(api, OWNER)
        assert not _messages_with(api, "Age?"), "one field at a time"

        await _say_and_wait(api, "Ada Lovelace", "Age?")
        # A typed field refuses what does not fit and asks again; nothing is sent meanwhile.
        await _say_and_wait(api, "forty", "whole number")
        assert "accepted" not in chat_text(api, OWNER)
        await _say_and_wait(api, "36", "Thanks, sent.")

        await wait_until(api, lambda: "Got the contact." in chat_text(api, OWNER), "the reply")
        # The server's tool result carries exactly what the user typed, typed as the form said.
        assert "✅ accepted Ada Lovelace 36" in chat_text(api, OWNER)


@pytest.fixture
def secret_page() -> Iterator[tuple[str, list[str]]]:
    """A page on 127.0.0.1 whose content nobody but the user should ever load; and its hits."""
    hits: list[str] = []

    class Page(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            hits.append(self.path)
            body = SECRET.encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Page)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/sign-in", hits
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


async def test_a_url_elicitation_is_a_link_button_and_its_page_is_never_fetched(
    api: FakeBotApi,
    tmp_path: Path,
    start_configured_daemon: StartDaemon,
    secret_page: tuple[str, list[str]],
) -> None:
    url, hits = secret_page
    home = start_configured_daemon(
        [
            {
                "text": "You need to sign in.",
                "tool_calls": [{"tool": "mcp__lab__ask_url", "arguments": {"url": url}}],
            },
            {"text": "Tell me when you are done."},
        ],
        _lab_server_toml(tmp_path / "lab"),
    )
    async with running_bot(api, home, (OWNER,)), _probe(home) as probe:
        await probe.lab_running()
        api.send_user_message(OWNER, "connect my account")
        await wait_until(api, lambda: approval_message(api, OWNER) is not None, "approval")
        approval = approval_message(api, OWNER)
        assert approval is not None
        assert await press(api, OWNER, OWNER, approval, "Allow Once") == "Allow Once"

        await probe.routable("url_elicitation_needed")
        await wait_until(
            api, lambda: "Tell me when you are done." in chat_text(api, OWNER), "the reply"
        )
        [link] = _messages_with(api, "Please sign in")
        assert api.buttons(link) == [("Open link", url)]
        # What the model got back is the server's result, "accept", not the page.
        assert "✅ accept" in chat_text(api, OWNER)
        assert hits == [], "nobody but the user may load the page"
        assert SECRET not in chat_text(api, OWNER)
