"""Astrid's MCP client as a client under test for `@modelcontextprotocol/conformance client`.

Run by the harness (scripts/conformance wraps it):
    conformance client --suite core --command "python -m astrid_mcp.conformance"

Every scenario goes through ``SecureMcpClient``: its transport, its Guard check before each
tool call, its tool pinning, and its elicitation path (schema check, Frontend, answer
validation). Only what a real deployment would inject differs: a Guard that allows and logs,
a Frontend that accepts forms with their schema defaults, and headless OAuth.

Contract with the harness (src/runner/client.ts in modelcontextprotocol/conformance 0.1.16):
  - argv: the ``--command`` string split on spaces, then the mock server URL appended last.
  - env MCP_CONFORMANCE_SCENARIO: the scenario name (always set).
  - env MCP_CONFORMANCE_CONTEXT: JSON with scenario data (pre-registered client credentials,
    private keys, IdP tokens), set only by the scenarios that need it.
  - The verdict comes from what the mock servers observed; in single-scenario mode a non-zero
    exit or a timeout also fails the run.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

import anyio
import httpx2
from mcp.client.auth import OAuthClientProvider, TokenStorage
from mcp.client.auth.extensions.client_credentials import (
    ClientCredentialsOAuthProvider,
    PrivateKeyJWTOAuthProvider,
    SignedJWTParameters,
)
from mcp.client.auth.extensions.identity_assertion import IdentityAssertionOAuthProvider
from mcp.shared.auth import (
    AuthorizationCodeResult,
    OAuthClientInformationFull,
    OAuthClientMetadata,
    OAuthToken,
)
from pydantic import AnyUrl

from astrid_core import (
    ApprovalDecision,
    ApprovalOption,
    ApprovalRequest,
    Authorization,
    AuthorizationProof,
    ElicitationRequest,
    ElicitationResponse,
    JsonObject,
    ProofKind,
    SensitiveAction,
    UrlElicitationRequest,
    UserInput,
)

from .client import SecureMcpClient
from .config import McpServerConfig

__all__ = [
    "AllowAndLogGuard",
    "SchemaDefaultsFrontend",
    "main",
    # the scenario helpers the conformance runner is built from
    "Scenario",
    "scenario_for",
    "run",
    "schema_defaults",
    "MemoryTokenStorage",
    "HeadlessAuthorization",
    "conformance_context",
    "authorization_code",
    "client_credentials_basic",
    "client_credentials_jwt",
    "cross_app_access",
    "list_tools",
    "call",
    "call_first_tool",
]

# stdout is the harness's log of this process; diagnostics go to stderr.
log = logging.getLogger("astrid-conformance")

SERVER_NAME = "conformance"
# The harness's auth servers accept this URL as a client_id without fetching it (CIMD, SEP-991).
CIMD_CLIENT_METADATA_URL = "https://conformance-test.local/client-metadata.json"
# Never contacted: the headless redirect handler reads the code from the Location header.
REDIRECT_URI = "http://localhost:3000/callback"
# An OAuth method name, not a secret.
BASIC_AUTH_METHOD = "client_secret_basic"
_REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})


# --- what a deployment would inject: Guard and Frontend ----------------------------------------


class AllowAndLogGuard:
    """Allows every action, and says so on stderr: the harness tests the protocol, not policy.

    The client still asks it before each tool call, so a run also shows that every call the
    mock servers saw was authorized first.
    """

    def __init__(self) -> None:
        self.decisions: list[str] = []

    async def authorize(self, action: SensitiveAction, reason: str) -> Authorization:
        self.decisions.append(action.resource)
        log.info("guard: allow %s (%s)", action.resource, reason)
        return Authorization.allow(
            AuthorizationProof(kind=ProofKind.POLICY, detail="conformance harness")
        )


def schema_defaults(schema: JsonObject) -> JsonObject:
    """The answer a user gives by accepting a form as pre-filled (SEP-1034 defaults)."""
    properties = schema.get("properties")
    if not isinstance(properties, dict):
        return {}
    return {
        str(name): field["default"]
        for name, field in properties.items()
        if isinstance(field, dict) and "default" in field
    }


class SchemaDefaultsFrontend:
    """A user who accepts every form as pre-filled and answers nothing else."""

    async def elicit(self, request: ElicitationRequest) -> ElicitationResponse:
        content = schema_defaults(request.requested_schema)
        log.info("frontend: accept %r from %s with %s", request.message, request.source, content)
        return ElicitationResponse(request_id=request.request_id, action="accept", content=content)

    async def elicit_url(self, request: UrlElicitationRequest) -> None:
        # No browser here; the client already checked the URL, so noting it is the whole job.
        log.info("frontend: %s asked to open %s", request.source, request.url)

    async def request_approval(self, request: ApprovalRequest) -> ApprovalDecision:
        # The guard never asks; if something does, nobody is there to approve it.
        log.warning("frontend: unexpected approval request %s: deny", request.summary)
        return ApprovalDecision(request_id=request.request_id, option=ApprovalOption.DENY)

    def show_status(self, message: str) -> None:
        log.info("frontend status: %s", message)

    def show_error(self, message: str) -> None:
        log.error("frontend error: %s", message)

    async def receive_input(self) -> UserInput | None:
        return None


# --- OAuth (headless) --------------------------------------------------------------------------


class MemoryTokenStorage(TokenStorage):
    def __init__(self, client_info: OAuthClientInformationFull | None = None) -> None:
        self.tokens: OAuthToken | None = None
        self.client_info = client_info

    async def get_tokens(self) -> OAuthToken | None:
        return self.tokens

    async def set_tokens(self, tokens: OAuthToken) -> None:
        self.tokens = tokens

    async def get_client_info(self) -> OAuthClientInformationFull | None:
        return self.client_info

    async def set_client_info(self, client_info: OAuthClientInformationFull) -> None:
        self.client_info = client_info


class HeadlessAuthorization:
    """Plays the user agent: GET the authorization URL, read code/state/iss from the redirect.

    The harness's authorization endpoint approves at once with a 302 to redirect_uri, so no
    browser and no callback listener are needed.
    """

    def __init__(self) -> None:
        self._result: AuthorizationCodeResult | None = None

    async def redirect(self, authorization_url: str) -> None:
        async with httpx2.AsyncClient(timeout=30.0) as http:
            response = await http.get(authorization_url, follow_redirects=False)
        location = response.headers.get("location")
        if response.status_code not in _REDIRECT_STATUSES or not location:
            raise RuntimeError(
                f"authorization endpoint answered {response.status_code}, not a redirect"
            )
        query = parse_qs(urlsplit(location).query)
        if "code" not in query:
            raise RuntimeError(f"no code in redirect {location}")
        self._result = AuthorizationCodeResult(
            code=query["code"][0],
            state=query.get("state", [None])[0],
            iss=query.get("iss", [None])[0],
        )

    async def callback(self) -> AuthorizationCodeResult:
        if self._result is None:
            raise RuntimeError("callback before redirect")
        result, self._result = self._result, None
        return result


def conformance_context() -> dict[str, Any]:
    raw = os.environ.get("MCP_CONFORMANCE_CONTEXT")
    return json.loads(raw) if raw else {}


async def authorization_code(server_url: str) -> httpx2.Auth:
    """Default for auth/*: PRM + AS discovery, CIMD or DCR or pre-registration, PKCE, scopes."""
    context = conformance_context()
    pre_registered = None
    if context.get("client_id"):  # auth/pre-registration: the AS has no registration_endpoint
        secret = context.get("client_secret")
        pre_registered = OAuthClientInformationFull(
            client_id=context["client_id"],
            client_secret=secret,
            redirect_uris=[AnyUrl(REDIRECT_URI)],
            token_endpoint_auth_method=BASIC_AUTH_METHOD if secret else "none",
        )
    headless = HeadlessAuthorization()
    return OAuthClientProvider(
        server_url=server_url,
        client_metadata=OAuthClientMetadata(
            client_name="astrid-conformance",
            redirect_uris=[AnyUrl(REDIRECT_URI)],
            grant_types=["authorization_code", "refresh_token"],
            response_types=["code"],
        ),
        storage=MemoryTokenStorage(pre_registered),
        redirect_handler=headless.redirect,
        callback_handler=headless.callback,
        client_metadata_url=CIMD_CLIENT_METADATA_URL,
    )


async def client_credentials_basic(server_url: str) -> httpx2.Auth:
    context = conformance_context()
    return ClientCredentialsOAuthProvider(
        server_url=server_url,
        storage=MemoryTokenStorage(),
        client_id=context["client_id"],
        client_secret=context["client_secret"],
        token_endpoint_auth_method=BASIC_AUTH_METHOD,
    )


async def client_credentials_jwt(server_url: str) -> httpx2.Auth:
    context = conformance_context()
    jwt = SignedJWTParameters(
        issuer=context["client_id"],
        subject=context["client_id"],
        signing_algorithm=context.get("signing_algorithm", "ES256"),
        signing_key=context["private_key_pem"],
    )
    return PrivateKeyJWTOAuthProvider(
        server_url=server_url,
        storage=MemoryTokenStorage(),
        client_id=context["client_id"],
        assertion_provider=jwt.create_assertion_provider(),
    )


async def cross_app_access(server_url: str) -> httpx2.Auth:
    """SEP-990: RFC 8693 token exchange at the IdP for an ID-JAG, then jwt-bearer at the AS."""
    context = conformance_context()
    parts = urlsplit(server_url)
    prm_url = f"{parts.scheme}://{parts.netloc}/.well-known/oauth-protected-resource{parts.path}"
    async with httpx2.AsyncClient(timeout=30.0) as http:
        issuer = (await http.get(prm_url)).raise_for_status().json()["authorization_servers"][0]

    async def fetch_id_jag(audience: str, resource: str) -> str:
        async with httpx2.AsyncClient(timeout=30.0) as http:
            response = await http.post(
                context["idp_token_endpoint"],
                data={
                    "grant_type": "urn:ietf:params:oauth:grant-type:token-exchange",
                    "requested_token_type": "urn:ietf:params:oauth:token-type:id-jag",
                    "subject_token": context["idp_id_token"],
                    "subject_token_type": "urn:ietf:params:oauth:token-type:id_token",
                    "audience": audience,
                    "resource": resource,
                    "client_id": context["idp_client_id"],
                },
            )
            return response.raise_for_status().json()["access_token"]

    return IdentityAssertionOAuthProvider(
        server_url=server_url,
        storage=MemoryTokenStorage(),
        client_id=context["client_id"],
        client_secret=context["client_secret"],
        issuer=issuer,
        assertion_provider=fetch_id_jag,
        token_endpoint_auth_method=BASIC_AUTH_METHOD,
    )


# --- what each scenario does once connected ----------------------------------------------------

Body = Callable[[SecureMcpClient], Awaitable[None]]
AuthFactory = Callable[[str], Awaitable[httpx2.Auth]]


async def list_tools(client: SecureMcpClient) -> None:
    log.info("tools: %s", sorted(await client.tools()))


def call(tool: str, arguments: JsonObject | None = None) -> Body:
    async def body(client: SecureMcpClient) -> None:
        await list_tools(client)
        result = await client.call_tool(tool, arguments or {}, reason="conformance scenario")
        log.info("%s -> error=%s %s", tool, result.is_error, result.text[:200])

    return body


async def call_first_tool(client: SecureMcpClient) -> None:
    """What the auth mock servers expect once authorized: list tools, call `test-tool`.

    Listing before calling matters: auth/scope-step-up answers tools/list with 401 and
    tools/call with 403 insufficient_scope, and checks both escalations.
    """
    tools = await client.tools()
    log.info("tools: %s", sorted(tools))
    if tools:
        await call(next(iter(tools)))(client)


@dataclass(frozen=True)
class Scenario:
    body: Body
    auth: AuthFactory | None = None


SCENARIOS: dict[str, Scenario] = {
    # Mock answers initialize + tools/list; checks protocolVersion and clientInfo.
    "initialize": Scenario(list_tools),
    # Mock exposes add_numbers(a, b); the check passes only when the tool is called.
    "tools_call": Scenario(call("add_numbers", {"a": 5, "b": 3})),
    # Tool sends elicitation/create with defaults for 5 fields; the client must fill them all.
    "elicitation-sep1034-client-defaults": Scenario(call("test_client_elicitation_defaults")),
    # Tool's SSE stream closes after a priming event (retry: 500); the client must reconnect
    # with GET after ~500 ms, sending Last-Event-ID, and pick up the result there (SEP-1699).
    "sse-retry": Scenario(call("test_reconnection")),
    "auth/client-credentials-basic": Scenario(call_first_tool, client_credentials_basic),
    "auth/client-credentials-jwt": Scenario(call_first_tool, client_credentials_jwt),
    "auth/cross-app-access-complete-flow": Scenario(call_first_tool, cross_app_access),
}
# Every other auth/* scenario is the authorization-code flow with a different trap.
AUTHORIZATION_CODE = Scenario(call_first_tool, authorization_code)


def scenario_for(name: str) -> Scenario | None:
    if name in SCENARIOS:
        return SCENARIOS[name]
    return AUTHORIZATION_CODE if name.startswith("auth/") else None


async def run(server_url: str, scenario: Scenario) -> None:
    config = McpServerConfig.model_validate({"name": SERVER_NAME, "url": server_url})
    http_auth = await scenario.auth(server_url) if scenario.auth is not None else None
    async with SecureMcpClient(
        config,
        guard=AllowAndLogGuard(),
        frontend=SchemaDefaultsFrontend(),
        http_auth=http_auth,
    ) as client:
        initialized = client.initialize_result
        if initialized is not None:
            log.info(
                "initialized: protocol %s, server %s",
                initialized.protocol_version,
                initialized.server_info.name,
            )
        await scenario.body(client)


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(
        level=logging.INFO, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s"
    )
    args = sys.argv[1:] if argv is None else argv
    if not args:
        print("usage: python -m astrid_mcp.conformance SERVER_URL", file=sys.stderr)
        return 2
    server_url = args[-1]  # the harness appends the URL after whatever --command held
    name = os.environ.get("MCP_CONFORMANCE_SCENARIO", "")
    scenario = scenario_for(name)
    if scenario is None:
        print(f"unknown scenario {name!r} (MCP_CONFORMANCE_SCENARIO)", file=sys.stderr)
        return 2
    log.info("scenario %s against %s", name, server_url)
    try:
        anyio.run(run, server_url, scenario)
    except Exception:
        # Some scenarios end in an error on purpose (auth/scope-retry-limit); the traceback is
        # for whoever reads stderr.txt, the exit code for single-scenario mode.
        log.exception("scenario %s failed", name)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
