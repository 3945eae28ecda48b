"""OAuth MCP servers in the runtime and through the daemon and CLI.

The server is the OAuth-protected lab of astrid-mcp's tests (the mcp SDK's own authorization
server and protected streamable-HTTP endpoint, on 127.0.0.1); the "browser" is httpx following
the authorization URL, which the lab approves at once. Checked here: a server that needs a
sign-in fails to start with the command that fixes it; `login` hands the URL to whoever asked,
a frontend gets it as a URL elicitation otherwise; stored tokens survive a restart; logout
deletes them; tokens never reach the audit log, and header values never reach `config show`.
"""

from __future__ import annotations

import importlib.util
import json
import os
import selectors
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType
from typing import Any

import anyio
import httpx2
import pytest

from astrid_audit import OutcomeKind
from astrid_core import ConfigError, UrlElicitationRequest
from astrid_gateway.testing import run_cli, start_daemon, stop_daemon, write_scripted_config
from astrid_runtime.config import ConfigProblems, load_config, redacted_view
from astrid_runtime.llm import ScriptedProvider
from astrid_runtime.runtime import AgentRuntime

pytestmark = pytest.mark.anyio

LAB_FILE = Path(__file__).resolve().parents[1] / "packages/astrid-mcp/tests/servers/oauth_lab.py"
HEADER_SECRET = "hdr-secret-4f1c9e"


def _lab_module() -> ModuleType:
    name = "astrid_test_oauth_lab"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, LAB_FILE)
        assert spec is not None
        assert spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module  # dataclasses look their module up while building
        spec.loader.exec_module(module)
    return sys.modules[name]


LAB = _lab_module()


def server_toml(url: str) -> str:
    return (
        f'\n[[servers]]\nname = "lab"\nurl = {json.dumps(url)}\n'
        f'headers = {{ X-Trace = "{HEADER_SECRET}" }}\n'
        'oauth = { scopes = ["extra"] }\n'
    )


class UrlFrontend:
    """A person at a frontend: opens each sign-in URL in the browser."""

    def __init__(self, group: Any) -> None:
        self.group = group
        self.requests: list[UrlElicitationRequest] = []

    async def elicit_url(self, request: UrlElicitationRequest) -> None:
        self.requests.append(request)
        self.group.start_soon(LAB.approve_in_browser, request.url)

    async def elicit(self, request: Any) -> Any: ...
    async def request_approval(self, request: Any) -> Any: ...
    def show_status(self, message: str) -> None: ...
    def show_error(self, message: str) -> None: ...
    async def receive_input(self) -> Any: ...


async def test_an_oauth_server_in_the_runtime(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    async with LAB.oauth_lab() as lab:
        (home / "config.toml").write_text(server_toml(lab.url))
        loaded = load_config(home, env={})
        runtime = await AgentRuntime.open(home, config=loaded, provider=ScriptedProvider([]))
        try:
            with anyio.fail_after(60):
                async with anyio.create_task_group() as group:
                    group.start_soon(runtime.run_background)
                    await _exercise(runtime, lab, group)
                    group.cancel_scope.cancel()
            await _nothing_secret_recorded(runtime, lab, loaded)
        finally:
            await runtime.aclose()


async def _exercise(runtime: AgentRuntime, lab: Any, group: Any) -> None:
    # Started with the daemon, nobody attached: it fails, naming the command that fixes it.
    [server] = await runtime.list_servers()
    assert server["state"] == "failed"
    last_error = str(server["last_error"])
    assert "needs a sign-in" in last_error
    assert "run `astrid servers login lab`" in last_error

    # `astrid servers login lab`: the URL comes back to the caller, the browser follows it.
    row = await runtime.login_server("lab")
    url = str(row["url"])
    assert url.startswith(f"{lab.url.removesuffix('/mcp')}/authorize?")
    await LAB.approve_in_browser(url)
    row = await runtime.finish_server_login("lab")
    assert (row["state"], row["tools"]) == ("running", 2)
    tools = {str(tool["name"]) for tool in await runtime.list_tools()}
    assert {"mcp__lab__whoami", "mcp__lab__leak_token"} <= tools

    # A restart uses the stored tokens: no second sign-in.
    await runtime.stop_server("lab")
    assert (await runtime.start_server("lab"))["state"] == "running"
    assert lab.provider.authorizations == 1

    # Logged out, the next start asks the attached frontend (a URL elicitation).
    assert (await runtime.logout_server("lab"))["signed_out"] is True
    frontend = UrlFrontend(group)
    runtime.set_frontend(frontend)  # type: ignore[arg-type]
    assert (await runtime.start_server("lab"))["state"] == "running"
    [request] = frontend.requests
    assert request.source == "mcp:lab"
    assert "sign in" in request.message
    assert lab.provider.authorizations == 2


async def _nothing_secret_recorded(runtime: AgentRuntime, lab: Any, loaded: Any) -> None:
    entries = await runtime.audit.entries()
    events = [e.outcome.detail.get("event") for e in entries]
    assert events.count("oauth_login") == 1
    assert events.count("oauth_logout") == 1
    assert all(
        e.outcome.kind is OutcomeKind.MCP_SERVER_EVENT
        for e in entries
        if e.outcome.detail.get("event") in ("oauth_login", "oauth_logout")
    )
    recorded = json.dumps([e.model_dump(mode="json") for e in entries])
    issued = [*lab.provider.access, *lab.provider.refresh]
    assert len(issued) >= 4  # two sign-ins, each with an access and a refresh token
    for secret in (*issued, HEADER_SECRET):
        assert secret not in recorded
    shown = json.dumps(redacted_view(loaded, docs=True))
    assert HEADER_SECRET not in shown
    view: dict[str, Any] = redacted_view(loaded)
    assert view["servers.lab"]["value"]["headers"] == {"X-Trace": "********"}
    assert (await runtime.audit_verify())["ok"] is True


# --- through the daemon and the CLI ------------------------------------------------------------


@contextmanager
def lab_in_a_thread() -> Iterator[Any]:
    """The lab on its own event loop, for a test that drives subprocesses synchronously."""
    ready, stop = threading.Event(), threading.Event()
    labs: list[Any] = []

    async def serve() -> None:
        async with LAB.oauth_lab() as lab:
            labs.append(lab)
            ready.set()
            while not stop.is_set():
                await anyio.sleep(0.05)

    thread = threading.Thread(target=anyio.run, args=(serve,), daemon=True)
    thread.start()
    try:
        assert ready.wait(20), "the OAuth lab did not start"
        yield labs[0]
    finally:
        stop.set()
        thread.join(20)


def _read_until_url(proc: subprocess.Popen[bytes], timeout: float) -> tuple[str, bytes]:
    """Read the CLI's output until it prints the authorization URL (bounded); the URL and
    everything read so far."""
    assert proc.stdout is not None
    fd = proc.stdout.fileno()
    selector = selectors.DefaultSelector()
    selector.register(fd, selectors.EVENT_READ)
    seen = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not selector.select(timeout=max(0.0, deadline - time.monotonic())):
            continue
        chunk = os.read(fd, 65536)
        if not chunk:
            break
        seen += chunk
        for line in seen.decode(errors="replace").splitlines():
            if line.strip().startswith("http://") and seen.endswith(b"\n"):
                return line.strip(), seen
    raise AssertionError(f"no authorization URL printed; output so far: {seen!r}")


def test_cli_login_and_logout_through_the_daemon(tmp_path: Path) -> None:
    home = tmp_path / "home"
    with lab_in_a_thread() as lab:
        write_scripted_config(home, None, [])
        with (home / "config.toml").open("a") as config:
            config.write(server_toml(lab.url))
        daemon = start_daemon(home)
        try:
            listed = run_cli(home, "servers", "list")
            assert listed.returncode == 0, listed.stderr
            assert "lab                  failed" in listed.stdout
            assert "run `astrid servers login lab`" in listed.stdout

            with subprocess.Popen(
                [sys.executable, "-m", "astrid_cli", "servers", "login", "lab"],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                env={**os.environ, "ASTRID_HOME": str(home)},
            ) as login:
                try:
                    url, first = _read_until_url(login, timeout=60)
                    with httpx2.Client(timeout=10) as http:
                        consent = http.get(url)
                        assert consent.status_code == 302
                        page = http.get(consent.headers["location"])
                    assert page.text == "Signed in to lab. You can close this tab.\n"
                    rest, err = login.communicate(timeout=60)
                finally:
                    if login.poll() is None:
                        login.kill()
            out = (first + rest).decode()
            assert login.returncode == 0, err.decode()
            assert "lab                  running   tools=2" in out
            assert "waiting for the browser" in out

            logout = run_cli(home, "servers", "logout", "lab")
            assert logout.returncode == 0, logout.stderr
            assert "signed out of lab: stored tokens deleted" in logout.stdout
            again = run_cli(home, "servers", "logout", "lab")
            assert "no stored tokens for lab" in again.stdout
            plain = run_cli(home, "servers", "login", "nope")
            assert plain.returncode != 0
            assert "no MCP server named 'nope'" in plain.stderr
        finally:
            stop_daemon(daemon)
        daemon_log = (home / "daemon.log").read_text()
        for secret in (*lab.provider.access, *lab.provider.refresh, HEADER_SECRET):
            assert secret not in daemon_log


# --- configuration -----------------------------------------------------------------------------


def _problems(home: Path, workspace: Path | None = None) -> list[str]:
    with pytest.raises(ConfigProblems) as caught:
        load_config(home, workspace, env={}, system_path=home / "no-system.toml")
    return caught.value.problems


@pytest.mark.parametrize(
    "key_value",
    [f'headers = {{ Authorization = "Bearer {HEADER_SECRET}" }}', "oauth = {}"],
)
def test_a_workspace_may_not_give_its_servers_headers_or_oauth(
    tmp_path: Path, key_value: str
) -> None:
    home, workspace = tmp_path / "home", tmp_path / "ws"
    (workspace / ".astrid").mkdir(parents=True)
    home.mkdir()
    ws_file = workspace / ".astrid" / "config.toml"
    ws_file.write_text(f'[[servers]]\nname = "repo"\nurl = "https://mcp.example/"\n{key_value}\n')
    key = key_value.split(" ", 1)[0]
    assert _problems(home, workspace) == [
        f"{ws_file}: servers.repo.{key} is admin-only: a workspace config may not set it "
        f"(set it in {home / 'config.toml'} or /etc/astrid/config.toml)"
    ]


def test_server_header_and_oauth_problems_never_show_a_header_value(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    user = home / "config.toml"
    user.write_text(
        '[[servers]]\nname = "s"\nurl = "https://mcp.example/"\n'
        "headers = { X-Key = 12345678 }\n"
        'oauth = { scopes = ["two words"], redirect_port = 0 }\n'
    )
    problems = _problems(home)
    assert f"{user}: servers.s.headers.X-Key = ********: Input should be a valid string" in (
        problems
    )
    assert any("servers.s.oauth.scopes" in p and "single words" in p for p in problems)
    assert any("servers.s.oauth.redirect_port = 0" in p for p in problems)
    assert "12345678" not in json.dumps(problems)


async def test_a_header_the_client_refuses_is_reported_without_its_value(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    (home / "config.toml").write_text(
        '[[servers]]\nname = "s"\nurl = "https://mcp.example/"\n'
        f'headers = {{ X-Key = "{HEADER_SECRET}\\r\\nInjected: 1" }}\n'
    )
    loaded = load_config(home, env={})
    with pytest.raises(ConfigError) as caught:
        await AgentRuntime.open(
            home, config=loaded, provider=ScriptedProvider([]), storage_url="memory://"
        )
    assert "[[servers]] entry 's' is invalid" in caught.value.message
    assert "CR, LF or NUL" in caught.value.message
    assert HEADER_SECRET not in str(caught.value)
    assert caught.value.__cause__ is None
