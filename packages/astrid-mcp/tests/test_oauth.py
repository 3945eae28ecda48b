"""OAuth sign-in against a real OAuth-protected MCP server, with the real client.

The server (servers/oauth_lab.py) is written with the mcp SDK's own server-side auth and runs
in this process on 127.0.0.1; the test's "browser" (httpx following the authorization URL)
is sent straight back to our loopback listener, like a person who clicks "Allow".
"""

from __future__ import annotations

import json
import logging
import re
import socket
import stat
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import anyio
import httpx2
import pytest
from anyio.abc import TaskGroup
from mcp.shared.auth import OAuthClientInformationFull, OAuthToken
from pydantic import AnyUrl

from astrid_audit import AuditLog, Outcome, OutcomeKind
from astrid_core import ConfigError
from astrid_core.storage import MemoryStorage, Storage
from astrid_crypto import KeyPair, SealingKey
from astrid_mcp import McpServerConfig, SecureMcpClient
from astrid_mcp.oauth import (
    NAMESPACE,
    LoopbackCallback,
    OAuthError,
    OAuthLoginRequired,
    OAuthLoginTimeout,
    OAuthTokenStore,
    oauth_provider,
    oauth_sealing_key,
)

from .conftest import RuleGuard
from .servers.oauth_lab import OAuthLab, approve_in_browser, oauth_lab

pytestmark = pytest.mark.anyio


@dataclass
class Person:
    """Receives authorization URLs (as a frontend would) and acts on them in a task."""

    group: TaskGroup
    act: Callable[[str], Awaitable[Any]] | None = approve_in_browser
    urls: list[str] = field(default_factory=list)
    pages: list[httpx2.Response] = field(default_factory=list)

    async def show_url(self, url: str) -> None:
        self.urls.append(url)
        if self.act is not None:
            act = self.act

            async def visit() -> None:
                self.pages.append(await act(url))

            self.group.start_soon(visit)


def config_for(lab: OAuthLab, **oauth: Any) -> McpServerConfig:
    return McpServerConfig.model_validate(
        {"name": "lab", "url": lab.url, "oauth": oauth, "startup_timeout_s": 10}
    )


@pytest.fixture
def key(tmp_path: Path) -> SealingKey:
    """The daemon's key for OAuth records, under a fresh home (created at the first sign-in)."""
    return oauth_sealing_key(tmp_path / "home")


async def connect(
    config: McpServerConfig, storage: Storage, person: Person, key: SealingKey, **options: Any
) -> SecureMcpClient:
    auth = await oauth_provider(
        config, storage, show_url=person.show_url, sealing_key=key, **options
    )
    return SecureMcpClient(config, guard=RuleGuard(), http_auth=auth)


def store_for(storage: Storage, key: SealingKey, url: str, server: str = "lab") -> OAuthTokenStore:
    return OAuthTokenStore(storage, server, url, sealing_key=key)


# --- tests -------------------------------------------------------------------------------------


def scopes_of(whoami: str) -> list[str]:
    return whoami.split("scopes ", 1)[1].split()


async def test_first_start_signs_in_through_the_browser_and_the_tool_call_works(
    key: SealingKey,
) -> None:
    storage = MemoryStorage()
    async with oauth_lab() as lab, anyio.create_task_group() as group:
        person = Person(group)
        async with await connect(config_for(lab), storage, person, key) as client:
            result = await client.call_tool("whoami")
        (url,) = person.urls
        redirect = parse_qs(urlsplit(url).query)["redirect_uri"][0]
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+/callback", redirect)
        assert person.pages[0].status_code == 200
        assert person.pages[0].text == "Signed in to lab. You can close this tab.\n"
        (client_id,) = lab.provider.clients
        assert result.text == f"client {client_id} scopes mcp"
        # Tokens and registration are stored for the next start.
        store = store_for(storage, key, lab.url)
        assert await store.has_tokens()
        assert await store.registered_port() == urlsplit(redirect).port


async def test_a_restart_reuses_the_stored_tokens_without_signing_in_again(key: SealingKey) -> None:
    storage = MemoryStorage()
    async with oauth_lab() as lab, anyio.create_task_group() as group:
        person = Person(group)
        async with await connect(config_for(lab), storage, person, key) as client:
            first = await client.call_tool("whoami")
        async with await connect(config_for(lab), storage, person, key) as client:
            second = await client.call_tool("whoami")
        assert first.text == second.text
        assert len(person.urls) == 1
        assert (lab.provider.authorizations, lab.provider.registrations) == (1, 1)


async def test_after_logout_the_next_start_signs_in_and_registers_again(key: SealingKey) -> None:
    storage = MemoryStorage()
    async with oauth_lab() as lab, anyio.create_task_group() as group:
        person = Person(group)
        async with await connect(config_for(lab), storage, person, key):
            pass
        assert await store_for(storage, key, lab.url).forget()
        assert not await store_for(storage, key, lab.url).forget()
        async with await connect(config_for(lab), storage, person, key) as client:
            await client.call_tool("whoami")
        assert len(person.urls) == 2
        assert (lab.provider.authorizations, lab.provider.registrations) == (2, 2)


async def test_tokens_stored_for_another_url_are_never_sent(key: SealingKey) -> None:
    storage = MemoryStorage()
    async with oauth_lab() as lab, anyio.create_task_group() as group:
        person = Person(group)
        async with await connect(config_for(lab), storage, person, key):
            pass
        moved = store_for(storage, key, lab.url.replace("/mcp", "/other"))
        assert await moved.get_tokens() is None
        assert await moved.get_client_info() is None
        assert await moved.registered_port() is None


async def test_configured_scopes_are_requested_with_the_ones_the_server_asks_for(
    key: SealingKey,
) -> None:
    async with oauth_lab() as lab, anyio.create_task_group() as group:
        config = config_for(lab, scopes=["extra"], client_name="astrid-test")
        async with await connect(config, MemoryStorage(), Person(group), key) as client:
            result = await client.call_tool("whoami")
        assert sorted(scopes_of(result.text)) == ["extra", "mcp"]
        (registered,) = lab.provider.clients.values()
        assert registered.client_name == "astrid-test"


async def test_the_callback_comes_back_to_the_configured_port(key: SealingKey) -> None:
    port = _free_port()
    async with oauth_lab() as lab, anyio.create_task_group() as group:
        person = Person(group)
        async with await connect(config_for(lab, redirect_port=port), MemoryStorage(), person, key):
            pass
        redirect = parse_qs(urlsplit(person.urls[0]).query)["redirect_uri"][0]
        assert redirect == f"http://127.0.0.1:{port}/callback"


async def test_a_sign_in_is_not_measured_by_the_startup_timeout(key: SealingKey) -> None:
    async def slow_person(url: str) -> httpx2.Response:
        await anyio.sleep(1.0)  # longer than startup_timeout_s below
        return await approve_in_browser(url)

    async with oauth_lab() as lab, anyio.create_task_group() as group:
        config = config_for(lab).model_copy(update={"startup_timeout_s": 0.5})
        async with await connect(
            config, MemoryStorage(), Person(group, slow_person), key
        ) as client:
            result = await client.call_tool("whoami")
        assert result.text.startswith("client ")


async def test_a_response_with_the_wrong_state_is_refused(key: SealingKey) -> None:
    async def forged(url: str) -> httpx2.Response:
        async with httpx2.AsyncClient(timeout=10) as http:
            consent = await http.get(url)
            location = consent.headers["location"]
            state = parse_qs(urlsplit(location).query)["state"][0]
            return await http.get(location.replace(state, "forged-state"))

    async with oauth_lab() as lab, anyio.create_task_group() as group:
        person = Person(group, forged)
        client = await connect(config_for(lab), MemoryStorage(), person, key)
        with pytest.raises(OAuthError, match="carried the wrong state") as caught:
            async with client:
                pass
        assert "astrid servers login lab" in caught.value.hint
        assert person.pages[0].status_code == 400
        assert "forged-state" not in person.pages[0].text
        assert lab.provider.access == {}  # the code was never exchanged


async def test_nobody_to_open_the_url_fails_the_start_with_the_login_command(
    key: SealingKey,
) -> None:
    async def nobody(url: str) -> None:
        raise OAuthLoginRequired(
            "MCP server 'lab' needs a sign-in", hint="run `astrid servers login lab`"
        )

    async with oauth_lab() as lab:
        auth = await oauth_provider(
            config_for(lab), MemoryStorage(), show_url=nobody, sealing_key=key
        )
        client = SecureMcpClient(config_for(lab), guard=RuleGuard(), http_auth=auth)
        with pytest.raises(OAuthLoginRequired, match="needs a sign-in") as caught:
            async with client:
                pass
        assert caught.value.hint == "run `astrid servers login lab`"


async def test_nobody_coming_back_times_out_with_a_clear_error_and_closes_the_port(
    key: SealingKey,
) -> None:
    async with oauth_lab() as lab, anyio.create_task_group() as group:
        person = Person(group, act=None)
        client = await connect(config_for(lab), MemoryStorage(), person, key, login_timeout_s=0.3)
        started = time.monotonic()
        with pytest.raises(OAuthLoginTimeout) as caught:
            async with client:
                pass
        assert time.monotonic() - started < 5
        redirect = parse_qs(urlsplit(person.urls[0]).query)["redirect_uri"][0]
        assert caught.value.message == (
            f"no sign-in for MCP server 'lab' came back to {redirect} within 0.3 s"
        )
        assert "astrid servers login lab" in caught.value.hint
        with pytest.raises(httpx2.ConnectError):
            async with httpx2.AsyncClient() as http:
                await http.get(redirect)


async def test_tokens_never_reach_the_audit_log_or_the_logs(
    caplog: pytest.LogCaptureFixture, key: SealingKey
) -> None:
    caplog.set_level(logging.DEBUG)
    storage = MemoryStorage()
    audit = await AuditLog.open(storage, KeyPair.generate())
    async with oauth_lab() as lab, anyio.create_task_group() as group:
        auth = await oauth_provider(
            config_for(lab),
            storage,
            show_url=Person(group).show_url,
            on_secret=audit.redactor.add_secret,
            sealing_key=key,
        )
        async with SecureMcpClient(
            config_for(lab), guard=RuleGuard(), http_auth=auth, audit=audit
        ) as client:
            await client.call_tool("whoami")
            # Sign-in, token exchange and authorized calls, at DEBUG in every logger. (Later
            # the SDK's DEBUG log shows message payloads, which is where a leaking tool's
            # output would appear.)
            logged = caplog.text
            leaked = await client.call_tool("leak_token")
            (access,) = lab.provider.access
            (refresh,) = lab.provider.refresh
            (client_secret,) = [c.client_secret or "" for c in lab.provider.clients.values()]
            assert client_secret
            assert access in leaked.text  # the hostile server did hand the token back
            # What the runtime records of a tool call: its output preview, reason and detail.
            await audit.append(
                Outcome(
                    kind=OutcomeKind.EXECUTED,
                    success=True,
                    reason=leaked.text,
                    output_preview=leaked.text,
                    detail={"output": leaked.text, "note": f"{refresh} {client_secret}"},
                )
            )
            recorded = json.dumps([e.model_dump(mode="json") for e in await audit.entries()])
            assert "[redacted:" in recorded
            for secret in (access, refresh, client_secret):
                assert secret not in recorded
                assert secret not in logged
                assert secret not in repr(store_for(storage, key, lab.url))


# --- the loopback listener on its own ----------------------------------------------------------


async def test_the_listener_answers_strays_404_and_accepts_exactly_one_callback() -> None:
    port = _free_port()
    callback = LoopbackCallback(
        "lab", f"http://127.0.0.1:{port}/callback", "the-state", timeout_s=5
    )
    await callback.open()
    base = f"http://127.0.0.1:{port}"
    outcome: list[Any] = []

    async def wait() -> None:
        outcome.append(await callback.wait())

    async with anyio.create_task_group() as group:
        group.start_soon(wait)
        async with httpx2.AsyncClient(timeout=5) as http:
            assert (await http.get(f"{base}/favicon.ico")).status_code == 404
            assert (await http.post(f"{base}/callback")).status_code == 405
            ok = await http.get(f"{base}/callback?code=c0de&state=the-state&iss=x")
            assert ok.status_code == 200
    (result,) = outcome
    assert (result.code, result.state, result.iss) == ("c0de", "the-state", "x")
    with pytest.raises(httpx2.ConnectError):  # closed after the one callback
        async with httpx2.AsyncClient() as http:
            await http.get(f"{base}/callback?code=again&state=the-state")


async def test_an_authorization_error_is_reported_without_echoing_it() -> None:
    port = _free_port()
    callback = LoopbackCallback("lab", f"http://127.0.0.1:{port}/callback", "s", timeout_s=5)
    await callback.open()
    errors: list[OAuthError] = []
    pages: list[httpx2.Response] = []

    async def wait() -> None:
        with pytest.raises(OAuthError) as caught:
            await callback.wait()
        errors.append(caught.value)

    async with anyio.create_task_group() as group:
        group.start_soon(wait)
        async with httpx2.AsyncClient(timeout=5) as http:
            query = {"error": "access_denied", "error_description": "<script>", "state": "s"}
            pages.append(await http.get(f"http://127.0.0.1:{port}/callback", params=query))
    (page,) = pages
    assert page.status_code == 400
    assert "<script>" not in page.text
    assert errors[0].message == (
        "the authorization server refused the sign-in to MCP server 'lab': access_denied (<script>)"
    )


async def test_a_busy_callback_port_is_a_clear_error() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        callback = LoopbackCallback("lab", f"http://127.0.0.1:{port}/callback", "s", timeout_s=1)
        with pytest.raises(OAuthError, match=f"cannot listen .* on 127.0.0.1:{port}") as caught:
            await callback.open()
    assert "redirect_port" in caught.value.hint


# --- configuration -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "problem"),
    [
        ({"command": "x", "oauth": {}}, "`oauth` applies only to `url` servers"),
        (
            {"url": "https://h/mcp", "oauth": {}, "headers": {"authorization": "Bearer x"}},
            "an Authorization header and `oauth` both set the credentials",
        ),
        ({"url": "https://h/mcp", "oauth": {"scopes": ["a b"]}}, "single words"),
        ({"url": "https://h/mcp", "oauth": {"redirect_port": 70000}}, "less than or equal"),
        ({"url": "https://h/mcp", "headers": {"X-Key": "a\r\nInjected: 1"}}, "CR, LF or NUL"),
        ({"url": "https://h/mcp", "headers": {"Bad Name": "v"}}, "invalid header names"),
    ],
)
def test_oauth_and_header_settings_are_checked(fields: dict[str, Any], problem: str) -> None:
    with pytest.raises(ValueError, match=re.escape(problem)):
        McpServerConfig.model_validate({"name": "s", **fields})


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def test_a_client_registered_by_hand_signs_in_without_registering(key: SealingKey) -> None:
    port = _free_port()
    async with oauth_lab() as lab, anyio.create_task_group() as group:
        lab.provider.clients["by-hand"] = OAuthClientInformationFull(
            client_id="by-hand",
            redirect_uris=[AnyUrl(f"http://127.0.0.1:{port}/callback")],
            token_endpoint_auth_method="none",
            scope="mcp",
        )
        config = config_for(lab, client_id="by-hand", redirect_port=port)
        async with await connect(config, MemoryStorage(), Person(group), key) as client:
            result = await client.call_tool("whoami")
        assert result.text == "client by-hand scopes mcp"
        assert lab.provider.registrations == 0


# --- tokens at rest ----------------------------------------------------------------------------

URL = "https://mcp.example/mcp"
TOKENS = OAuthToken(access_token="at-ACCESS-0123", refresh_token="rt-REFRESH-4567", expires_in=60)
CLIENT = OAuthClientInformationFull(
    client_id="client-89",
    client_secret="cs-SECRET-89",
    redirect_uris=[AnyUrl("http://127.0.0.1:4242/callback")],
)


async def seeded(key: SealingKey) -> MemoryStorage:
    """A storage holding the tokens and registration of server "lab" at URL."""
    storage = MemoryStorage()
    store = store_for(storage, key, URL)
    await store.set_tokens(TOKENS)
    await store.set_client_info(CLIENT)
    return storage


def warnings_of(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]


async def test_what_lands_in_storage_holds_no_token_text(tmp_path: Path, key: SealingKey) -> None:
    storage = MemoryStorage()
    async with oauth_lab() as lab, anyio.create_task_group() as group:
        async with await connect(config_for(lab), storage, Person(group), key) as client:
            await client.call_tool("whoami")
        (access,) = lab.provider.access
        (refresh,) = lab.provider.refresh
        ((client_id, registered),) = lab.provider.clients.items()
        assert registered.client_secret
        rows = await storage.scan(NAMESPACE)
        assert [name for name, _ in rows] == ["lab/client", "lab/tokens"]
        raw = json.dumps(rows)
        for secret in (access, refresh, registered.client_secret, client_id):
            assert secret not in raw
        for _, record in rows:
            assert isinstance(record, dict)
            assert sorted(record) == ["sealed", "url", "v"]
            assert (record["v"], record["url"]) == (2, lab.url)
        # They are in there, sealed: the store opens them with the key.
        store = store_for(storage, key, lab.url)
        tokens = await store.get_tokens()
        assert tokens is not None
        assert (tokens.access_token, tokens.refresh_token) == (access, refresh)
        info = await store.get_client_info()
        assert info is not None
        assert info.client_secret == registered.client_secret
    key_file = tmp_path / "home" / "keys" / "mcp-oauth.key"
    assert key.path == key_file
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600


async def test_a_record_copied_to_another_server_or_url_does_not_open(
    key: SealingKey, caplog: pytest.LogCaptureFixture
) -> None:
    storage = await seeded(key)
    assert await store_for(storage, key, URL).get_tokens() == TOKENS
    for kind in ("tokens", "client"):
        await storage.put(NAMESPACE, f"other/{kind}", await storage.get(NAMESPACE, f"lab/{kind}"))
    other = store_for(storage, key, URL, server="other")
    assert await other.get_tokens() is None
    assert await other.get_client_info() is None
    assert await other.registered_port() is None
    # The clear "url" field edited to follow the server to a new URL: the seal still refuses.
    moved_url = "https://elsewhere.example/mcp"
    for kind in ("tokens", "client"):
        record: Any = await storage.get(NAMESPACE, f"lab/{kind}")
        await storage.put(NAMESPACE, f"lab/{kind}", {**record, "url": moved_url})
    moved = store_for(storage, key, moved_url)
    assert await moved.get_tokens() is None
    assert await moved.get_client_info() is None
    assert warnings_of(caplog) == [
        f"the {what} of MCP server {server!r} does not open with the MCP OAuth key {key.path};"
        f" it is ignored: run `astrid servers login {server}` and open the URL it prints"
        for server in ("other", "lab")
        for what in ("token record", "client registration")
    ]
    for secret in ("at-ACCESS-0123", "rt-REFRESH-4567", "cs-SECRET-89"):
        assert secret not in caplog.text


async def test_a_tampered_record_fails_closed_and_the_next_start_signs_in_again(
    key: SealingKey, caplog: pytest.LogCaptureFixture
) -> None:
    storage = MemoryStorage()
    async with oauth_lab() as lab, anyio.create_task_group() as group:
        person = Person(group)
        async with await connect(config_for(lab), storage, person, key):
            pass
        record: Any = await storage.get(NAMESPACE, "lab/tokens")
        sealed = record["sealed"]
        middle = len(sealed) // 2
        flipped = "B" if sealed[middle] == "A" else "A"
        tampered = sealed[:middle] + flipped + sealed[middle + 1 :]
        await storage.put(NAMESPACE, "lab/tokens", {**record, "sealed": tampered})
        assert await store_for(storage, key, lab.url).get_tokens() is None
        async with await connect(config_for(lab), storage, person, key) as client:
            assert (await client.call_tool("whoami")).text.startswith("client ")
        # A new sign-in with the stored registration, which still opened.
        assert (lab.provider.authorizations, lab.provider.registrations) == (2, 1)
        assert len(person.urls) == 2
        assert await store_for(storage, key, lab.url).has_tokens()
    assert any("token record of MCP server 'lab' does not open" in w for w in warnings_of(caplog))


@pytest.mark.parametrize(
    "record",
    [
        {"v": 2, "url": URL, "sealed": ""},
        {"v": 2, "url": URL, "sealed": "not base64!"},
        {"v": 2, "url": URL, "sealed": "QUJD"},
        {"v": 2, "url": URL, "sealed": 42},
        {"v": 3, "url": URL, "sealed": "QUJD"},
        "a string",
    ],
)
async def test_garbage_records_read_as_absent(key: SealingKey, record: Any) -> None:
    storage = await seeded(key)
    await storage.put(NAMESPACE, "lab/tokens", record)
    store = store_for(storage, key, URL)
    assert await store.get_tokens() is None
    assert not await store.has_tokens()


async def test_a_plain_record_of_the_old_format_is_deleted_not_used(
    key: SealingKey, caplog: pytest.LogCaptureFixture
) -> None:
    storage = MemoryStorage()
    plain = {"url": URL, "value": TOKENS.model_dump(mode="json", exclude_none=True)}
    await storage.put(NAMESPACE, "lab/tokens", plain)
    assert await store_for(storage, key, URL).get_tokens() is None
    assert await storage.get(NAMESPACE, "lab/tokens") is None
    assert warnings_of(caplog) == [
        "the token record of MCP server 'lab' was stored unencrypted by an older Astrid;"
        " it was deleted: run `astrid servers login lab` and open the URL it prints"
    ]
    assert "at-ACCESS-0123" not in caplog.text
    assert not key.path.exists()  # reading never creates the key


async def test_a_lost_key_means_signing_in_again(
    key: SealingKey, caplog: pytest.LogCaptureFixture
) -> None:
    storage = await seeded(key)
    key.path.unlink()
    store = store_for(storage, oauth_sealing_key(key.path.parents[1]), URL)
    assert await store.get_tokens() is None
    assert not key.path.exists()
    assert warnings_of(caplog)[0] == (
        f"the token record of MCP server 'lab' cannot be opened: the MCP OAuth key {key.path}"
        " that sealed it does not exist; it is ignored: run `astrid servers login lab` and"
        " open the URL it prints"
    )
    await store.set_tokens(TOKENS)  # the sign-in that follows seals under a new key
    assert stat.S_IMODE(key.path.stat().st_mode) == 0o600
    assert await store.get_tokens() == TOKENS


async def test_a_key_readable_by_others_stops_the_start(key: SealingKey) -> None:
    storage = await seeded(key)
    key.path.chmod(0o644)
    config = McpServerConfig.model_validate({"name": "lab", "url": URL, "oauth": {}})

    async def nobody(url: str) -> None:
        raise AssertionError("no sign-in may start while the key is exposed")

    with pytest.raises(ConfigError, match="readable by group or others") as caught:
        await oauth_provider(
            config, storage, show_url=nobody, sealing_key=oauth_sealing_key(key.path.parents[1])
        )
    assert f"chmod 600 {key.path}" in caught.value.hint
    assert "revoke the sign-ins" in caught.value.hint
    with pytest.raises(ConfigError, match="readable by group or others"):
        await store_for(storage, oauth_sealing_key(key.path.parents[1]), URL).get_tokens()
