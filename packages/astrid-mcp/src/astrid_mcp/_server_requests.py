"""Answers to the requests a server sends us: sampling, roots, elicitation (form and URL).

Each one is a security decision. Sampling spends our LLM budget on the server's behalf, so it
is an McpSampling action through the Guard (asked per server, capped, reserved and settled by
the runtime's sampler). Roots bound what a filesystem-like server will touch, so they
come only from the workspace we were given. Elicitation asks the human through the Frontend;
form answers are validated against the server's schema, and a URL is opened on the user's side
only — its content never reaches the model.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol, cast
from urllib.parse import urlsplit

import jsonschema
from mcp import types
from mcp.client.session import ClientRequestContext
from pydantic import FileUrl

from astrid_core import (
    AstridError,
    ElicitationRequest,
    Frontend,
    Guard,
    McpSampling,
    SessionId,
    UrlElicitationRequest,
)

__all__ = ["Sampler", "ServerRequestHandlers", "roots_result", "check_elicitation_url"]

_PRIMITIVE_TYPES = {"string", "number", "integer", "boolean"}


class Sampler(Protocol):
    """The runtime's LLM, lent to MCP servers that ask for sampling."""

    model: str

    def estimate_cost_micros(self, params: types.CreateMessageRequestParams) -> int: ...

    async def create_message(
        self, server: str, params: types.CreateMessageRequestParams
    ) -> types.CreateMessageResult: ...


def roots_result(roots: Sequence[Path]) -> types.ListRootsResult:
    return types.ListRootsResult(
        roots=[
            types.Root(uri=FileUrl(root.resolve().as_uri()), name=root.name or "/")
            for root in roots
        ]
    )


def check_elicitation_url(url: str) -> str | None:
    """Why a URL must not be opened for the user, or None if it may be.

    https anywhere; plain http only to loopback (local OAuth callbacks). Anything else —
    javascript:, file:, data:, credentials in the URL — is refused.
    """
    parts = urlsplit(url)
    if parts.username or parts.password:
        return "the URL carries credentials"
    if parts.scheme == "https" and parts.hostname:
        return None
    if parts.scheme == "http" and parts.hostname:
        host = parts.hostname
        try:
            if ipaddress.ip_address(host).is_loopback:
                return None
        except ValueError:
            if host == "localhost":
                return None
        return "plain http is only allowed to localhost"
    return f"scheme {parts.scheme or '(none)'!r} is not allowed"


def _schema_problem(schema: dict[str, Any]) -> str | None:
    # The spec restricts elicitation to flat objects of primitives; anything richer is either a
    # buggy or a hostile server trying to make the user type something the form does not show.
    if schema.get("type") != "object":
        return "requested schema must be an object"
    properties = schema.get("properties") or {}
    for name, prop in properties.items():
        kind = prop.get("type") if isinstance(prop, dict) else None
        if kind not in _PRIMITIVE_TYPES and not (
            kind == "array" and isinstance(prop, dict) and "items" in prop
        ):
            return f"field {name!r} is not a primitive type"
    try:
        jsonschema.Draft202012Validator.check_schema(schema)
    except jsonschema.SchemaError as exc:
        return f"invalid JSON schema: {exc.message}"
    return None


class ServerRequestHandlers:
    def __init__(
        self,
        server: str,
        *,
        guard: Guard,
        frontend: Frontend | None,
        sampler: Sampler | None,
        roots: Sequence[Path],
        session_id: SessionId | None,
    ) -> None:
        self.server = server
        self.guard = guard
        self.frontend = frontend
        self.sampler = sampler
        self.roots = list(roots)
        self.session_id = session_id

    @property
    def source(self) -> str:
        return f"mcp:{self.server}"

    async def sampling(
        self, context: ClientRequestContext, params: types.CreateMessageRequestParams
    ) -> types.CreateMessageResult | types.ErrorData:
        del context
        if self.sampler is None:
            return types.ErrorData(code=types.INVALID_REQUEST, message="sampling is not enabled")
        cap = getattr(self.sampler, "max_tokens", None)  # the runtime's per-request cap
        if isinstance(cap, int) and 0 < cap < params.max_tokens:
            params = params.model_copy(update={"max_tokens": cap})
        action = McpSampling(
            server=self.server,
            model=self.sampler.model,
            max_tokens=max(1, params.max_tokens),
            estimated_cost_micros=self.sampler.estimate_cost_micros(params),
        )
        try:
            authorization = await self.guard.authorize(action, f"{self.source} asked for sampling")
        except AstridError as exc:
            return types.ErrorData(code=types.INVALID_REQUEST, message=f"sampling refused: {exc}")
        if not authorization.allowed:
            return types.ErrorData(
                code=types.INVALID_REQUEST, message=f"sampling refused: {authorization.reason}"
            )
        try:
            return await self.sampler.create_message(self.server, params)
        except AstridError as exc:
            return types.ErrorData(code=types.INTERNAL_ERROR, message=f"sampling failed: {exc}")

    async def list_roots(self, context: ClientRequestContext) -> types.ListRootsResult:
        del context
        return roots_result(self.roots)

    async def elicitation(
        self, context: ClientRequestContext, params: types.ElicitRequestParams
    ) -> types.ElicitResult | types.ErrorData:
        del context
        if self.frontend is None:
            return types.ElicitResult(action="decline")
        if isinstance(params, types.ElicitRequestURLParams):
            return await self._url_elicitation(params)
        schema = params.requested_schema
        problem = _schema_problem(schema)
        if problem is not None:
            return types.ErrorData(code=types.INVALID_PARAMS, message=problem)
        response = await self.frontend.elicit(
            ElicitationRequest(
                session_id=self.session_id,
                source=self.source,
                message=params.message,
                requested_schema=schema,
            )
        )
        if response.action != "accept":
            return types.ElicitResult(action=response.action)
        content = response.content or {}
        try:
            jsonschema.validate(content, schema)
        except jsonschema.ValidationError as exc:
            self.frontend.show_error(f"{self.source}: answer does not fit the form: {exc.message}")
            return types.ErrorData(
                code=types.INVALID_PARAMS, message=f"user answer failed validation: {exc.message}"
            )
        # Validated against the flat primitive schema just above.
        return types.ElicitResult(action="accept", content=cast("dict[str, Any]", content))

    async def _url_elicitation(self, params: types.ElicitRequestURLParams) -> types.ElicitResult:
        assert self.frontend is not None
        problem = check_elicitation_url(params.url)
        if problem is not None:
            self.frontend.show_error(f"{self.source} asked to open a refused URL: {problem}")
            return types.ElicitResult(action="decline")
        await self.frontend.elicit_url(
            UrlElicitationRequest(
                session_id=self.session_id,
                source=self.source,
                message=params.message,
                url=params.url,
                elicitation_id=params.elicitation_id or "",
            )
        )
        return types.ElicitResult(action="accept")
