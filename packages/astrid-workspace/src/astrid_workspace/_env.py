"""The one environment scrubber: what any process the agent causes inherits from the host.

bash, native MCP servers and capsule MCP servers all start from `scrubbed_environment`.
Before, there were two scrubbers with different allow-lists (the bash tool's and the MCP
launcher's), so a variable one of them dropped could reach a process through the other.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping

__all__ = ["ENV_ALLOW_LIST", "scrubbed_environment", "looks_secret"]

# What a confined process inherits from the host. Everything else (API keys, tokens, cloud
# credentials, SSH_AUTH_SOCK, DBUS_SESSION_BUS_ADDRESS, ...) stays behind unless named.
ENV_ALLOW_LIST = (
    "PATH",
    "HOME",
    "LANG",
    "LC_ALL",
    "LC_CTYPE",
    "TERM",
    "USER",
    "LOGNAME",
    "SHELL",
    "TZ",
)
_SECRET_NAME = ("KEY", "TOKEN", "SECRET", "PASSWORD", "PASSWD", "CREDENTIAL", "AUTH")


def looks_secret(name: str) -> bool:
    """Whether a variable's name says it holds a credential (``*_API_KEY``, ``GH_TOKEN``...)."""
    upper = name.upper()
    return any(part in upper for part in _SECRET_NAME)


def scrubbed_environment(
    *, allow: Iterable[str] = (), declared: Mapping[str, str] | None = None
) -> dict[str, str]:
    """The host variables in `ENV_ALLOW_LIST` and `allow`, then `declared` on top.

    `allow` names variables an admin passes through from the host on purpose (so they may
    look secret); `declared` are values a server's own config sets. A host value that starts
    with ``()`` is an exported bash function, i.e. code, and is dropped whatever its name.
    """
    explicit = tuple(allow)
    env: dict[str, str] = {}
    for name in (*ENV_ALLOW_LIST, *explicit):
        value = os.environ.get(name)
        if value is None or value.startswith("()"):
            continue
        if name not in explicit and looks_secret(name):
            continue
        env[name] = value
    return env | dict(declared or {})
