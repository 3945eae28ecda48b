"""What the daemon's configuration was made from, so a client can tell when its own differs.

The daemon loads its admin configuration once, at start: the system and user files and the
``ASTRID_*`` / ``ANTHROPIC_*`` / ``OPENAI_*`` / ``TELEGRAM_*`` variables of the environment it was
started in. A client started later, with another key in its environment or after an edit of
``config.toml``, would otherwise talk to a daemon that silently ignores both ("no Anthropic
API key is configured" although the variable is set right there).

Both sides describe those inputs the same way: for each input, an HMAC-SHA256 of its value
keyed with the daemon token. Only processes that can read the token (0600) can compute or
compare them, and a secret never crosses the connection in clear, nor as a plain hash that
could be guessed offline. Workspace files are not inputs: they are read per session.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from pathlib import Path
from typing import Final

__all__ = ["CONFIG_ENV", "SYSTEM_CONFIG", "config_inputs", "changed_inputs", "describe_changes"]

# Every variable astrid_runtime.config reads (a test keeps the two lists equal).
CONFIG_ENV: Final = (
    "ASTRID_PROVIDER",
    "ASTRID_MODEL",
    "ASTRID_API_KEY",
    "ASTRID_BASE_URL",
    "ANTHROPIC_API_KEY",
    "ANTHROPIC_BASE_URL",
    "OPENAI_API_KEY",
    "OPENAI_BASE_URL",
    "TELEGRAM_BOT_TOKEN",
)
SYSTEM_CONFIG: Final = Path("/etc/astrid/config.toml")
ABSENT: Final = ""


def _mac(key: bytes, kind: str, value: bytes) -> str:
    return hmac.new(key, kind.encode() + b"\0" + value, hashlib.sha256).hexdigest()


def _file(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:  # unreadable: its own fingerprint, so a change of that still shows
        return f"unreadable: {exc.strerror}".encode()


def config_inputs(home: Path, env: Mapping[str, str], key: bytes) -> dict[str, str]:
    """Input name -> keyed digest of its value (``""`` when absent), for files and variables."""
    inputs: dict[str, str] = {}
    for name, path in (("system config", SYSTEM_CONFIG), ("user config", home / "config.toml")):
        content = _file(path)
        inputs[f"{name} {path}"] = ABSENT if content is None else _mac(key, "file", content)
    for var in CONFIG_ENV:
        value = env.get(var)
        inputs[var] = ABSENT if not value else _mac(key, "env", value.encode())
    return inputs


def changed_inputs(daemon: Mapping[str, str], client: Mapping[str, str]) -> list[str]:
    """The inputs whose value the client has and the daemon did not start with.

    A variable the client simply does not set is not a difference: a person who started the
    daemon with a key and runs the CLI in another shell does not mean "unset the key". A file
    counts either way: the daemon reads the same file, so any change to it is news.
    """
    changed: list[str] = []
    for name, mine in client.items():
        theirs = daemon.get(name, ABSENT)
        if mine == theirs:
            continue
        if name in CONFIG_ENV and mine == ABSENT:
            continue
        changed.append(name)
    return changed


def describe_changes(changed: list[str], daemon: Mapping[str, str]) -> str:
    """One line per changed input, for a person: what differs, never a value."""
    lines: list[str] = []
    for name in changed:
        if name in CONFIG_ENV:
            before = "unset" if daemon.get(name, ABSENT) == ABSENT else "another value"
            lines.append(f"  {name} is set here; the daemon started with {before}")
        else:
            label, _, path = name.partition(" /")
            lines.append(f"  the {label} /{path} changed since the daemon started")
    return "\n".join(lines)
