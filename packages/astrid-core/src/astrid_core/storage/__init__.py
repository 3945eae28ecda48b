"""Storage: one protocol, an in-memory backend and a SurrealDB backend (extra ``surrealdb``)."""

from __future__ import annotations

from .._errors import ConfigError
from ._codec import EncodedJson
from ._memory import MemoryStorage
from ._protocol import (
    MAX_KEY_LENGTH,
    Delete,
    Expect,
    Put,
    Storage,
    Write,
    check_key,
    check_namespace,
)

__all__ = [
    "Storage",
    "Put",
    "EncodedJson",
    "Delete",
    "Expect",
    "Write",
    "MemoryStorage",
    "open_storage",
    "check_key",
    "check_namespace",
    "MAX_KEY_LENGTH",
]

_SURREAL_SCHEMES = ("surrealkv://", "mem://", "ws://", "wss://")


async def open_storage(url: str, *, durable: bool = True) -> Storage:
    """Open the backend a URL names.

    ``memory://`` is the in-process dict. ``surrealkv:///abs/dir`` embeds SurrealDB in this
    process (taking an exclusive flock on ``<dir>.lock``; a second opener gets a StorageError
    naming the holder's pid), ``mem://`` is SurrealDB in memory,
    and ``ws://`` / ``wss://`` connect to a SurrealDB server.

    Embedded storage is durable by default: every commit is fsynced before the call returns.
    ``durable=False`` is the explicit opt-out (benchmarks, tests that say so); it fixes the
    mode of the whole process's engine, and a later durable open then fails closed.
    """
    if url in ("memory://", "memory"):
        return MemoryStorage()
    if url.startswith(_SURREAL_SCHEMES):
        try:
            from ._surreal import SurrealStorage
        except ImportError as exc:  # surrealdb missing: name the extra that brings it
            raise ConfigError(
                f"storage URL {url!r} needs the SurrealDB backend, which is not installed",
                hint="pip install 'astrid-core[surrealdb]'",
            ) from exc
        return await SurrealStorage.open(url, durable=durable)
    raise ConfigError(
        f"unknown storage URL {url!r}",
        hint="use memory://, surrealkv:///absolute/dir, mem://, ws://host:port or wss://host:port",
    )
