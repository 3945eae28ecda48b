"""How one MCP server is configured: transport, trust, hash pin, sandbox, restarts, limits.

Accepts the flat `[[servers]]` shape of astrid.toml (``command``/``args`` or ``url``) as well as
an explicit ``transport`` table, so the runtime can pass its config section through unchanged.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from astrid_core import Name

__all__ = [
    "McpServerConfig",
    "StdioTransport",
    "HttpTransport",
    "OAuthConfig",
    "RestartPolicy",
    "SandboxConfig",
]

_BLAKE3 = re.compile(r"^(?:blake3:)?([0-9a-f]{64})$")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_HEADER_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")  # an RFC 9110 token


class _Strict(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


def _http_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        raise ValueError(f"server url must be http(s)://host/...: {value!r}")
    if parts.username or parts.password:
        # Credentials in a URL end up in logs and audit entries; headers are redacted.
        raise ValueError("put credentials in `headers`, not in the url")
    return value


class StdioTransport(_Strict):
    type: Literal["stdio"] = "stdio"
    command: str = Field(min_length=1)
    args: list[str] = Field(default_factory=list)
    # Declared variables are the only ones added to the scrubbed environment.
    env: dict[str, str] = Field(default_factory=dict)
    cwd: str | None = None

    @model_validator(mode="after")
    def _env_names(self) -> StdioTransport:
        bad = [name for name in self.env if not _ENV_NAME.fullmatch(name)]
        if bad:
            raise ValueError(f"invalid environment variable names: {bad}")
        if any("\x00" in part for part in (self.command, *self.args)):
            raise ValueError("command and args must not contain NUL bytes")
        return self


class HttpTransport(_Strict):
    type: Literal["http"] = "http"
    url: Annotated[str, AfterValidator(_http_url)]
    headers: dict[str, str] = Field(default_factory=dict)
    # The url's host name may resolve to private addresses (an internal server). Either way
    # the client connects only to the addresses its one lookup returned (no DNS rebinding).
    private_network: bool = False

    @model_validator(mode="after")
    def _header_syntax(self) -> HttpTransport:
        # Names only in messages: values are usually credentials.
        bad = [name for name in self.headers if not _HEADER_NAME.fullmatch(name)]
        if bad:
            raise ValueError(f"invalid header names: {bad}")
        broken = [n for n, v in self.headers.items() if any(c in v for c in "\r\n\x00")]
        if broken:
            raise ValueError(f"header values must not contain CR, LF or NUL: {broken}")
        return self


class OAuthConfig(_Strict):
    """Sign in to an http server with OAuth (authorization code + PKCE, via a browser).

    The login URL goes to a human (frontend or `astrid servers login NAME`); the browser comes
    back to a one-shot listener on 127.0.0.1. Tokens are stored per server, never in config.
    """

    scopes: list[str] = Field(default_factory=list)
    client_name: str = Field(default="astrid", min_length=1, max_length=200)
    # A client registered by hand at the authorization server; unset: dynamic registration.
    client_id: str | None = Field(default=None, min_length=1)
    # Fixed callback port (some servers only accept a registered one); unset: the OS picks one.
    redirect_port: int | None = Field(default=None, ge=1, le=65535)

    @model_validator(mode="after")
    def _scope_tokens(self) -> OAuthConfig:
        # Scopes travel space-separated: one containing a space would silently become two.
        bad = [scope for scope in self.scopes if not scope or any(c.isspace() for c in scope)]
        if bad:
            raise ValueError(f"oauth scopes must be single words: {bad}")
        return self


class RestartPolicy(_Strict):
    enabled: bool = True
    max_restarts: int = Field(default=5, ge=0)
    initial_backoff_s: float = Field(default=0.5, gt=0)
    max_backoff_s: float = Field(default=30.0, gt=0)
    # A server that stayed up this long gets its restart budget back.
    healthy_after_s: float = Field(default=60.0, gt=0)

    def backoff(self, attempt: int) -> float:
        """Exponential backoff for the attempt-th restart (1-based), capped."""
        return min(self.max_backoff_s, self.initial_backoff_s * 2 ** max(0, attempt - 1))


class SandboxConfig(_Strict):
    # Only admin config layers may set this to False; the runtime's loader forces it on for
    # servers a workspace declares.
    enabled: bool = True
    read_paths: list[str] = Field(default_factory=list)
    write_paths: list[str] = Field(default_factory=list)
    # If the kernel cannot sandbox: refuse to start (default) or run unsandboxed with a warning.
    allow_unsandboxed: bool = False
    # None (default): no network, unless `net` lists hosts, which the server then reaches
    # through Astrid's egress proxy (its own network namespace has no other route).
    # True: the host's network, the admin's explicit opt-out that `status` shows.
    # False: no network at all, whatever `net` says.
    network: bool | None = None
    net: list[str] = Field(default_factory=list)
    # bwrap: bubblewrap namespaces + Landlock + seccomp (refused where bwrap is missing);
    # landlock: Landlock alone, weaker (an admin's [security] sandbox = "landlock").
    mode: Literal["bwrap", "landlock"] = "bwrap"

    @model_validator(mode="after")
    def _network_needs_the_sandbox(self) -> SandboxConfig:
        if self.network is False and not self.enabled:
            raise ValueError(
                "sandbox.network = false is enforced by the sandbox, which enabled = false "
                "turns off; keep the sandbox on, or allow the server network"
            )
        return self


class McpServerConfig(_Strict):
    name: Name
    transport: StdioTransport | HttpTransport = Field(discriminator="type")
    trusted: bool = False
    # Expected BLAKE3 of the executable (stdio). Checked before every launch.
    blake3: str | None = None
    auto_start: bool = True
    restart: RestartPolicy = Field(default_factory=RestartPolicy)
    sandbox: SandboxConfig = Field(default_factory=SandboxConfig)
    startup_timeout_s: float = Field(default=30.0, gt=0)
    call_timeout_s: float = Field(default=60.0, gt=0)
    # Tool output beyond this is cut (with a marker and the full digest) before anyone reads it.
    max_output_bytes: int = Field(default=1024 * 1024, ge=1024)
    # Present: the server is reached with OAuth (http servers only).
    oauth: OAuthConfig | None = None

    @model_validator(mode="before")
    @classmethod
    def _flat_form(cls, data: Any) -> Any:
        # astrid.toml writes servers flat: command/args/env/cwd or url/headers next to the name.
        if not isinstance(data, dict) or "transport" in data:
            return data
        flat: dict[str, Any] = dict(data)  # pyright: ignore[reportUnknownArgumentType]
        stdio_keys = {"command", "args", "env", "cwd"}
        http_keys = {"url", "headers", "private_network"}
        if "url" in flat and "command" in flat:
            raise ValueError(
                f"server {flat.get('name')!r}: give either `command` or `url`, not both"
            )
        if "command" in flat:
            moved = {k: flat.pop(k) for k in stdio_keys & flat.keys()}
            flat["transport"] = {"type": "stdio"} | moved
        elif "url" in flat:
            moved = {k: flat.pop(k) for k in http_keys & flat.keys()}
            flat["transport"] = {"type": "http"} | moved
        else:
            raise ValueError(f"server {flat.get('name')!r} needs `command` (stdio) or `url` (http)")
        if isinstance(flat.get("sandbox"), bool):
            flat["sandbox"] = {"enabled": flat["sandbox"]}
        return flat

    @model_validator(mode="after")
    def _untrusted_stays_sandboxed(self) -> McpServerConfig:
        # An untrusted server (e.g. one a workspace declared) never runs outside Landlock.
        unsandboxed = not self.sandbox.enabled or self.sandbox.allow_unsandboxed
        if isinstance(self.transport, StdioTransport) and not self.trusted and unsandboxed:
            raise ValueError(
                f"server {self.name!r} is not trusted, so it must run sandboxed"
                " (set trusted = true in an admin config to turn the sandbox off)"
            )
        return self

    @model_validator(mode="after")
    def _private_network_is_an_admins_choice(self) -> McpServerConfig:
        # A workspace's server must not aim a public-looking name at the user's LAN.
        private = isinstance(self.transport, HttpTransport) and self.transport.private_network
        if private and not self.trusted:
            raise ValueError(
                f"server {self.name!r}: private_network = true lets a host name resolve to "
                "internal addresses; only an admin's trusted server may set it "
                "(trusted = true in an admin config)"
            )
        return self

    @model_validator(mode="after")
    def _oauth_is_for_http(self) -> McpServerConfig:
        if self.oauth is not None and not isinstance(self.transport, HttpTransport):
            raise ValueError(f"server {self.name!r}: `oauth` applies only to `url` servers")
        headers = self.transport.headers if isinstance(self.transport, HttpTransport) else {}
        if self.oauth is not None and any(name.lower() == "authorization" for name in headers):
            raise ValueError(
                f"server {self.name!r}: an Authorization header and `oauth` both set the"
                " credentials; keep one"
            )
        return self

    @model_validator(mode="after")
    def _hash_format(self) -> McpServerConfig:
        if self.blake3 is not None and not _BLAKE3.fullmatch(self.blake3):
            raise ValueError(f"server {self.name!r}: blake3 must be 64 lowercase hex characters")
        return self

    @property
    def expected_hash(self) -> str | None:
        if self.blake3 is None:
            return None
        match = _BLAKE3.fullmatch(self.blake3)
        return match.group(1) if match else None
