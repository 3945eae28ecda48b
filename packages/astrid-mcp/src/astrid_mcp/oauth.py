"""OAuth sign-in for streamable-HTTP MCP servers (``oauth = {...}`` in ``[[servers]]``).

The SDK's ``OAuthClientProvider`` does the protocol: discovery, registration, PKCE, refresh.
This module supplies what runs around it in a daemon:

- ``OAuthTokenStore``: the tokens and the client registration of one server, persisted in
  astrid-core storage, sealed (``astrid_crypto.SealingKey``, key ``<home>/keys/mcp-oauth.key``)
  and bound to the server's name and URL (a changed URL never receives the old tokens). They
  are secrets: never stored in clear, never logged, never audited, and each one is handed to
  ``on_secret`` (the audit log's redactor) so that it is masked wherever it would appear.
- ``LoopbackCallback``: a one-shot HTTP listener on 127.0.0.1 that receives the browser's
  redirect, checks ``state``, accepts exactly one callback and gives up after a bounded wait.
- ``oauth_provider``: both wired into an ``OAuthClientProvider``. The authorization URL goes to
  ``show_url`` (the daemon's frontend, or ``astrid servers login``), which raises
  ``OAuthLoginRequired`` when nobody is there to open it.
"""

from __future__ import annotations

import contextlib
import json
import logging
import secrets
import socket
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, Final, cast
from urllib.parse import parse_qs, urlsplit

import anyio
from anyio.abc import SocketListener, SocketStream
from mcp.client.auth import OAuthClientProvider
from mcp.client.auth.utils import union_scopes
from mcp.shared.auth import (
    AuthorizationCodeResult,
    OAuthClientInformationFull,
    OAuthClientMetadata,
    OAuthToken,
)
from pydantic import AnyUrl, PrivateAttr, ValidationError

from astrid_core import AstridTimeoutError, JsonObject, VerificationError
from astrid_core.storage import Storage
from astrid_crypto import SealingKey, SealingKeyMissing, canonical_json

from ._errors import ServerStartError
from ._server_requests import check_elicitation_url
from ._startup_clock import waiting_on_a_person
from .config import HttpTransport, McpServerConfig

__all__ = [
    "NAMESPACE",
    "KEY_FILE",
    "CALLBACK_PATH",
    "ShowUrl",
    "OAuthError",
    "OAuthLoginRequired",
    "OAuthLoginTimeout",
    "OAuthTokenStore",
    "oauth_sealing_key",
    "LoopbackCallback",
    "oauth_provider",
]

NAMESPACE = "mcp_oauth"
# Under the daemon's home, beside the other keys (``keys/`` is denied to the agent).
KEY_FILE = Path("keys") / "mcp-oauth.key"
CALLBACK_PATH = "/callback"
LOOPBACK = "127.0.0.1"
# The token endpoint auth method of a public client: an OAuth method name, not a secret.
PUBLIC_CLIENT: Final = "none"
# Hands the authorization URL to a person; raises OAuthLoginRequired if nobody can open it.
ShowUrl = Callable[[str], Awaitable[None]]
OnSecret = Callable[[str], None]

_MAX_REQUEST_HEAD = 16 * 1024
_READ_TIMEOUT_S = 10.0
# Browsers open speculative connections and ask for /favicon.ico; each costs one of these.
_MAX_CONNECTIONS = 64
_RECORD_VERSION = 2
_KINDS = {"tokens": "token record", "client": "client registration"}

_log = logging.getLogger(__name__)


class OAuthError(ServerStartError):
    code = "mcp.oauth"
    default_hint = "run `astrid servers login NAME` to sign in again"


class OAuthLoginRequired(OAuthError):
    """The server needs a sign-in, and no person is attached to open the URL."""

    code = "mcp.oauth_login_required"


class OAuthLoginTimeout(OAuthError, AstridTimeoutError):
    code = "mcp.oauth_timeout"


def _login_hint(server: str) -> str:
    return f"run `astrid servers login {server}` and open the URL it prints"


# --- tokens ------------------------------------------------------------------------------------


def oauth_sealing_key(home: Path) -> SealingKey:
    """The key that seals every server's tokens and registration: ``<home>/keys/mcp-oauth.key``."""
    return SealingKey(
        home / KEY_FILE,
        what="MCP OAuth key",
        lost_hint="sign in to the OAuth MCP servers again (`astrid servers login NAME`)",
        exposed_hint="if others could read it, revoke the sign-ins at each server's provider"
        " and sign in again (`astrid servers login NAME`)",
    )


class OAuthTokenStore:
    """The SDK's TokenStorage for one server, in astrid-core storage (namespace ``mcp_oauth``).

    A record is ``{"v": 2, "url": ..., "sealed": ...}``: the value sealed under
    ``sealing_key`` with the server's name, the record's kind and the URL as associated data.
    A record for another URL reads as absent, so changing a server's ``url`` means signing in
    again rather than sending its tokens to a new host; a record copied to another server or
    URL, or edited, does not open and reads as absent too (with a warning): the next start
    signs in again. ``repr`` and errors never include a token.
    """

    def __init__(
        self,
        storage: Storage,
        server: str,
        url: str,
        *,
        sealing_key: SealingKey,
        client_id: str | None = None,
        redirect_uri: str | None = None,
        on_secret: OnSecret | None = None,
    ) -> None:
        self._storage = storage
        self._sealing_key = sealing_key
        self._warned: set[str] = set()
        self.server = server
        self.url = url
        self.client_id = client_id
        # A registration made for another callback address cannot complete a sign-in here.
        self.redirect_uri = redirect_uri
        self._on_secret = on_secret

    def __repr__(self) -> str:
        return f"OAuthTokenStore(server={self.server!r}, url={self.url!r})"

    def _key(self, kind: str) -> str:
        # Server names cannot contain "/" (astrid_core.Name), so keys never collide.
        return f"{self.server}/{kind}"

    def _aad(self, kind: str) -> bytes:
        # Everything the record is bound to: opening it under another server name, kind or URL
        # fails, whatever its clear "url" field says.
        return canonical_json(["astrid mcp oauth", _RECORD_VERSION, self.server, kind, self.url])

    def _what(self, kind: str) -> str:
        return f"the {_KINDS[kind]} of MCP server {self.server!r}"

    def _ignore(self, kind: str, problem: str, outcome: str = "it is ignored") -> None:
        if kind not in self._warned:  # once per store, not on every lookup of a start
            self._warned.add(kind)
            _log.warning("%s; %s: %s", problem, outcome, _login_hint(self.server))

    async def _load(self, kind: str) -> JsonObject | None:
        record = await self._storage.get(NAMESPACE, self._key(kind))
        if not isinstance(record, dict):
            return None
        sealed = record.get("sealed")
        if record.get("v") != _RECORD_VERSION or not isinstance(sealed, str):
            if "sealed" not in record and "value" in record:
                # A plain record of the first format is treated as absent, not resealed: its
                # tokens sat readable in the database and in every backup of it, so they
                # count as exposed, and sealing them now would keep using them. A fresh
                # sign-in gets new ones; the clear copy is deleted now rather than left lying
                # there until that sign-in overwrites it.
                await self._storage.delete(NAMESPACE, self._key(kind))
                problem = f"{self._what(kind)} was stored unencrypted by an older Astrid"
                self._ignore(kind, problem, "it was deleted")
            else:
                self._ignore(kind, f"{self._what(kind)} has an unknown format")
            return None
        if record.get("url") != self.url:
            return None  # issued for the server's former URL: signing in again is expected
        try:
            plain = self._sealing_key.open_text(sealed, aad=self._aad(kind), what=self._what(kind))
        except (VerificationError, SealingKeyMissing) as exc:
            # Fail closed, but not into a crash on every start: without its value the
            # server signs in again, and that sign-in overwrites this record. A key file that
            # is unsafe (readable by others, a symlink) is not caught: that start fails.
            self._ignore(kind, exc.message)
            return None
        value = json.loads(plain)  # authentic, so written by _save: a JSON object
        return value if isinstance(value, dict) else None

    async def _save(self, kind: str, value: JsonObject) -> None:
        sealed = self._sealing_key.seal(json.dumps(value, sort_keys=True), aad=self._aad(kind))
        record: JsonObject = {"v": _RECORD_VERSION, "url": self.url, "sealed": sealed}
        await self._storage.put(NAMESPACE, self._key(kind), record)

    def _reveal(self, *values: str | None) -> None:
        if self._on_secret is not None:
            for value in values:
                if value:
                    self._on_secret(value)

    async def get_tokens(self) -> OAuthToken | None:
        raw = await self._load("tokens")
        if raw is None:
            return None
        try:
            tokens = OAuthToken.model_validate(raw)
        except ValidationError:
            return None  # unreadable: sign in again rather than fail on every start
        self._reveal(tokens.access_token, tokens.refresh_token)
        return tokens

    async def set_tokens(self, tokens: OAuthToken) -> None:
        self._reveal(tokens.access_token, tokens.refresh_token)
        await self._save("tokens", tokens.model_dump(mode="json", exclude_none=True))

    async def get_client_info(self) -> OAuthClientInformationFull | None:
        raw = await self._load("client")
        stored: OAuthClientInformationFull | None = None
        if raw is not None:
            try:
                stored = OAuthClientInformationFull.model_validate(raw)
            except ValidationError:
                stored = None
        if stored is not None and self._usable(stored):
            self._reveal(stored.client_secret)
            return stored
        if self.client_id is not None and self.redirect_uri is not None:
            # Registered by hand at the authorization server: a public client (no secret).
            return OAuthClientInformationFull(
                client_id=self.client_id,
                redirect_uris=[AnyUrl(self.redirect_uri)],
                token_endpoint_auth_method=PUBLIC_CLIENT,
            )
        return None

    def _usable(self, info: OAuthClientInformationFull) -> bool:
        if self.client_id is not None and info.client_id != self.client_id:
            return False
        registered = [str(uri) for uri in info.redirect_uris or []]
        return self.redirect_uri is None or self.redirect_uri in registered

    async def set_client_info(self, client_info: OAuthClientInformationFull) -> None:
        self._reveal(client_info.client_secret)
        await self._save("client", client_info.model_dump(mode="json", exclude_none=True))

    async def registered_port(self) -> int | None:
        """The callback port of the stored registration: a sign-in must come back to it."""
        raw = await self._load("client")
        uris: Any = raw.get("redirect_uris") if raw is not None else None
        for uri in uris if isinstance(uris, list) else []:
            parts = urlsplit(str(uri))
            if parts.hostname == LOOPBACK and parts.port:
                return parts.port
        return None

    async def has_tokens(self) -> bool:
        return await self._load("tokens") is not None

    async def forget_tokens(self) -> bool:
        """Drop the tokens, keep the registration: the next start signs in again."""
        return await self._storage.delete(NAMESPACE, self._key("tokens"))

    async def forget(self) -> bool:
        """Drop tokens and registration (``astrid servers logout``). True if anything existed."""
        tokens = await self._storage.delete(NAMESPACE, self._key("tokens"))
        client = await self._storage.delete(NAMESPACE, self._key("client"))
        return tokens or client


# --- the browser's way back --------------------------------------------------------------------


class LoopbackCallback:
    """One sign-in's redirect target: ``http://127.0.0.1:PORT/callback``, for one request.

    ``open`` binds the port (before the URL is shown, so a quick browser finds it listening);
    ``wait`` answers requests until the first one to the callback path, which is the only one
    accepted: its ``state`` must be the one this sign-in sent, or the sign-in fails. Other paths
    get 404. The whole wait is bounded by ``timeout_s``.
    """

    def __init__(self, server: str, redirect_uri: str, state: str, *, timeout_s: float) -> None:
        parts = urlsplit(redirect_uri)
        if parts.hostname != LOOPBACK or not parts.port:
            raise ValueError(f"callback must be http://{LOOPBACK}:PORT/...: {redirect_uri!r}")
        self.server = server
        self.redirect_uri = redirect_uri
        self.port = parts.port
        self.path = parts.path or "/"
        self._state = state
        self.timeout_s = timeout_s
        self._listener: SocketListener | None = None
        self._claimed = False
        self._outcome: AuthorizationCodeResult | OAuthError | None = None

    async def open(self) -> None:
        try:
            listeners = await anyio.create_tcp_listener(local_host=LOOPBACK, local_port=self.port)
        except OSError as exc:
            raise OAuthError(
                f"cannot listen for the sign-in of MCP server {self.server!r} on"
                f" {LOOPBACK}:{self.port}: {exc.strerror or exc}",
                hint="free that port, or set another `oauth.redirect_port` for the server",
            ) from exc
        # One address, so one listener: a SocketListener (it can accept one stream at a time).
        self._listener = cast("SocketListener", listeners.listeners[0])

    async def aclose(self) -> None:
        listener, self._listener = self._listener, None
        if listener is not None:
            await listener.aclose()

    async def wait(self) -> AuthorizationCodeResult:
        if self._listener is None:
            raise RuntimeError("LoopbackCallback.wait() before open()")
        try:
            with anyio.fail_after(self.timeout_s):
                await self._serve(self._listener)
        except TimeoutError:
            raise OAuthLoginTimeout(
                f"no sign-in for MCP server {self.server!r} came back to {self.redirect_uri}"
                f" within {self.timeout_s:g} s",
                hint=_login_hint(self.server),
            ) from None
        finally:
            await self.aclose()
        outcome = self._outcome
        if isinstance(outcome, AuthorizationCodeResult):
            return outcome
        if outcome is None:
            outcome = OAuthError(
                f"the sign-in listener of MCP server {self.server!r} got {_MAX_CONNECTIONS}"
                " connections and no callback",
                hint=_login_hint(self.server),
            )
        raise outcome

    async def _serve(self, listener: SocketListener) -> None:
        async with anyio.create_task_group() as group:

            async def handle(stream: SocketStream) -> None:
                async with stream:
                    with anyio.move_on_after(_READ_TIMEOUT_S):
                        await self._answer(stream)
                if self._outcome is not None:
                    group.cancel_scope.cancel()

            # Connections are answered concurrently: a browser's idle speculative connection
            # must not hold up the real redirect behind it.
            for _ in range(_MAX_CONNECTIONS):
                group.start_soon(handle, await listener.accept())

    async def _answer(self, stream: SocketStream) -> None:
        target = await _request_target(stream)
        if target is None:
            return
        parts = urlsplit(target)
        if parts.path != self.path:
            await _respond(stream, 404, "Not found.")
            return
        if self._claimed:
            await _respond(stream, 410, "This sign-in link was already used.")
            return
        self._claimed = True  # only one callback is ever accepted, right or wrong
        query = parse_qs(parts.query)

        def first(name: str) -> str | None:
            values = query.get(name)
            return values[0] if values else None

        state, code = first("state"), first("code")
        # The page never echoes a parameter back: it is text the attacker may have chosen.
        if state is None or not secrets.compare_digest(state.encode(), self._state.encode()):
            await _respond(stream, 400, "Sign-in refused: this response does not belong to it.")
            self._outcome = OAuthError(
                f"the sign-in callback for MCP server {self.server!r} carried the wrong state"
                " (a response to another sign-in, or a forged one); it was refused",
                hint=_login_hint(self.server),
            )
        elif (error := first("error")) is not None:
            await _respond(stream, 400, "Sign-in failed. You can close this tab.")
            described = first("error_description")
            self._outcome = OAuthError(
                f"the authorization server refused the sign-in to MCP server {self.server!r}:"
                f" {error[:100]}" + (f" ({described[:200]})" if described else ""),
                hint=_login_hint(self.server),
            )
        elif not code:
            await _respond(stream, 400, "Sign-in failed: no authorization code.")
            self._outcome = OAuthError(
                f"the sign-in callback for MCP server {self.server!r} carried no code",
                hint=_login_hint(self.server),
            )
        else:
            await _respond(stream, 200, f"Signed in to {self.server}. You can close this tab.")
            self._outcome = AuthorizationCodeResult(code=code, state=state, iss=first("iss"))


async def _request_target(stream: SocketStream) -> str | None:
    """The target of a GET request ("/callback?code=..."), None for anything else."""
    head = b""
    while b"\r\n\r\n" not in head:
        if len(head) > _MAX_REQUEST_HEAD:
            await _respond(stream, 431, "Request too large.")
            return None
        try:
            head += await stream.receive(4096)
        except (anyio.EndOfStream, anyio.BrokenResourceError):
            return None
    parts = head.split(b"\r\n", 1)[0].decode("latin-1").split(" ")
    if len(parts) != 3 or parts[0] != "GET" or not parts[2].startswith("HTTP/1."):
        await _respond(stream, 405, "Only GET is answered here.")
        return None
    return parts[1]


async def _respond(stream: SocketStream, status: int, text: str) -> None:
    reasons = {
        200: "OK",
        400: "Bad Request",
        404: "Not Found",
        405: "Method Not Allowed",
        410: "Gone",
        431: "Request Header Fields Too Large",
    }
    body = (text + "\n").encode()
    head = (
        f"HTTP/1.1 {status} {reasons.get(status, 'Error')}\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n"
        f"Content-Length: {len(body)}\r\n"
        "Cache-Control: no-store\r\n"
        "Connection: close\r\n\r\n"
    )
    with contextlib.suppress(anyio.BrokenResourceError, anyio.ClosedResourceError):
        await stream.send(head.encode() + body)


# --- the provider ------------------------------------------------------------------------------


class _ScopedMetadata(OAuthClientMetadata):
    """Client metadata whose scope always includes the configured scopes.

    The SDK replaces ``scope`` with what the server challenges or advertises before it registers
    and builds the authorization URL; merging here keeps the admin's scopes in both.
    """

    _configured: str | None = PrivateAttr(default=None)

    def __setattr__(self, name: str, value: Any) -> None:
        if name == "scope" and self._configured:
            value = union_scopes(value, self._configured)
        super().__setattr__(name, value)


class _SignIn:
    """The redirect and callback handlers of one server's provider."""

    def __init__(self, server: str, redirect_uri: str, show_url: ShowUrl, timeout_s: float) -> None:
        self.server = server
        self.redirect_uri = redirect_uri
        self.show_url = show_url
        self.timeout_s = timeout_s
        self._pending: LoopbackCallback | None = None

    async def redirect(self, authorization_url: str) -> None:
        refused = check_elicitation_url(authorization_url)
        if refused is not None:
            raise OAuthError(
                f"MCP server {self.server!r} sent a sign-in URL that is not opened: {refused}",
                hint="the server's authorization endpoint must be https (or http on loopback)",
            )
        state = parse_qs(urlsplit(authorization_url).query).get("state", [""])[0]
        if not state:
            # Without a state, any page could complete this sign-in with its own code.
            raise OAuthError(f"MCP server {self.server!r}: the sign-in URL carries no state")
        callback = LoopbackCallback(self.server, self.redirect_uri, state, timeout_s=self.timeout_s)
        await callback.open()
        try:
            with waiting_on_a_person():
                await self.show_url(authorization_url)
        except BaseException:
            await callback.aclose()
            raise
        self._pending = callback

    async def callback(self) -> AuthorizationCodeResult:
        pending, self._pending = self._pending, None
        if pending is None:
            raise OAuthError(f"MCP server {self.server!r}: sign-in callback without a redirect")
        with waiting_on_a_person():
            return await pending.wait()


def _free_loopback_port() -> int:
    # The port is chosen now, bound again only while a sign-in waits: it must be known when
    # the client registers, and a listener must not sit open for the life of the connection.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((LOOPBACK, 0))
        return int(probe.getsockname()[1])


async def oauth_provider(
    config: McpServerConfig,
    storage: Storage,
    *,
    show_url: ShowUrl,
    login_timeout_s: float = 300.0,
    on_secret: OnSecret | None = None,
    sealing_key: SealingKey,
) -> OAuthClientProvider:
    """The ``http_auth`` for a server configured with ``oauth``.

    Stored tokens are used (and refreshed) without anyone noticing; a sign-in is needed only
    when there are none or they no longer work. Then the authorization URL goes to
    ``show_url`` and the browser must come back within ``login_timeout_s``. Tokens and the
    registration are stored sealed under ``sealing_key`` (``oauth_sealing_key(home)``).
    """
    oauth, transport = config.oauth, config.transport
    if oauth is None or not isinstance(transport, HttpTransport):
        raise ValueError(f"server {config.name!r} is not an http server with `oauth`")
    store = OAuthTokenStore(
        storage,
        config.name,
        transport.url,
        sealing_key=sealing_key,
        client_id=oauth.client_id,
        on_secret=on_secret,
    )
    port = oauth.redirect_port or await store.registered_port() or _free_loopback_port()
    redirect_uri = f"http://{LOOPBACK}:{port}{CALLBACK_PATH}"
    store.redirect_uri = redirect_uri
    configured = " ".join(oauth.scopes) or None
    metadata = _ScopedMetadata(
        client_name=oauth.client_name,
        redirect_uris=[AnyUrl(redirect_uri)],
        grant_types=["authorization_code", "refresh_token"],
        response_types=["code"],
        token_endpoint_auth_method=PUBLIC_CLIENT if oauth.client_id else None,
    )
    metadata._configured = configured
    metadata.scope = configured
    sign_in = _SignIn(config.name, redirect_uri, show_url, login_timeout_s)
    return OAuthClientProvider(
        server_url=transport.url,
        client_metadata=metadata,
        storage=store,
        redirect_handler=sign_in.redirect,
        callback_handler=sign_in.callback,
    )
