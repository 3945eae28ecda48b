"""A `Guard` for egress that a configuration decides: hosts an admin listed for a server, or
that a user accepted for a capsule at install. Everything else is denied."""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable

from astrid_core import (
    Authorization,
    AuthorizationProof,
    DenialLayer,
    Guard,
    NetworkRequest,
    ProofKind,
    SensitiveAction,
)

__all__ = ["HostListGuard", "ListedThenGuard"]


class HostListGuard:
    """Allows a `NetworkRequest` whose host matches a listed ``host``, ``host:port`` or
    ``*.domain`` (any depth below the domain, not the domain itself); denies the rest."""

    def __init__(self, hosts: Iterable[str], *, owner: str) -> None:
        self.hosts = tuple(h.lower().rstrip(".") for h in hosts)
        self.owner = owner

    def allows(self, host: str, port: int) -> bool:
        host = host.lower().rstrip(".")
        for pattern in self.hosts:
            name, sep, wanted = pattern.rpartition(":") if ":" in pattern else (pattern, "", "")
            if sep and wanted != str(port):
                continue
            if name.startswith("*.") and fnmatch.fnmatchcase(host, name) and "." in host:
                return True
            if host == name:
                return True
        return False

    async def authorize(self, action: SensitiveAction, reason: str) -> Authorization:
        if isinstance(action, NetworkRequest) and self.allows(action.host, action.port):
            return Authorization.allow(
                AuthorizationProof(kind=ProofKind.POLICY, detail=f"net of {self.owner}"),
                reason=f"{action.host} is listed in the net hosts of {self.owner}",
            )
        return Authorization.deny(
            DenialLayer.POLICY, f"{action.summary} is not in the net hosts of {self.owner}"
        )


class ListedThenGuard:
    """An MCP server's egress: its listed hosts (`HostListGuard`) first — an unlisted host is
    refused without asking anyone — then the session's own `Guard` (the interceptor: deny
    lists, approvals Once/Session/Workspace/Always, audit), exactly as a bash command's
    connection is. Only what both allow leaves."""

    def __init__(self, listed: HostListGuard, guard: Guard) -> None:
        self.listed = listed
        self.guard = guard

    async def authorize(self, action: SensitiveAction, reason: str) -> Authorization:
        first = await self.listed.authorize(action, reason)
        if not first.allowed:
            return first
        return await self.guard.authorize(action, f"{reason} (listed in its net hosts)")
