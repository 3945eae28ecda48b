"""Storage: one protocol; in-memory, sqlite3 (the daemon's default) and SurrealDB (extra
``surrealdb``) backends."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

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
    "SQLITE_SCHEME",
    "state_url",
    "stored_backend",
    "Backend",
    "check_key",
    "check_namespace",
    "MAX_KEY_LENGTH",
]

SQLITE_SCHEME = "sqlite://"
SQLITE_FILE = "astrid.sqlite3"  # the sqlite3 backend's file in its directory

Backend = Literal["auto", "sqlite", "surrealdb"]


def stored_backend(directory: Path) -> Literal["sqlite", "surrealdb"] | None:
    """Which backend wrote the state directory (None: absent or empty). A sqlite3 store is
    ``astrid.sqlite3`` (whose ``astrid_store`` table says so too); anything else in a non-empty
    directory is surrealkv's."""
    try:
        names = [entry.name for entry in directory.iterdir()]
    except (FileNotFoundError, NotADirectoryError):
        return None
    if not names:
        return None
    return "sqlite" if SQLITE_FILE in names else "surrealdb"


def state_url(directory: Path, backend: Backend = "auto") -> str:
    """The storage URL for the state directory. ``auto`` (the default) opens an existing store
    with the backend that wrote it and creates a new one with sqlite3; naming a backend that
    is not the one the directory holds is refused, never a silent switch to an empty store."""
    found = stored_backend(directory)
    chosen = backend if backend != "auto" else (found or "sqlite")
    if found is not None and found != chosen:
        raise ConfigError(
            f"the state directory {directory} holds a {found} store, but storage.backend is "
            f"{backend!r}",
            hint=f'set storage.backend = "{found}" (or "auto") in config.toml to keep using '
            "it; a store is not converted from one backend to the other",
            code="storage.wrong_backend",
        )
    return f"{SQLITE_SCHEME}{directory}" if chosen == "sqlite" else f"surrealkv://{directory}"


_SURREAL_SCHEMES = ("surrealkv://", "mem://", "ws://", "wss://")


async def open_storage(url: str, *, durable: bool = True) -> Storage:
    """Open the backend a URL names.

    ``memory://`` is the in-process dict. ``sqlite:///abs/dir`` is sqlite3 (standard library)
    in ``<dir>/astrid.sqlite3``, WAL with ``synchronous=FULL``, group commit on one writer
    thread, the same directory lock as surrealkv (the daemon's default).
    ``surrealkv:///abs/dir`` embeds SurrealDB in this process (taking the same lock), ``mem://``
    is SurrealDB in memory, and ``ws://`` / ``wss://`` connect to a SurrealDB server. Both
    on-disk backends take an exclusive flock on ``<dir>.lock``: a second opener gets a
    StorageError naming the holder's pid.

    Embedded storage is durable by default: every commit is fsynced before the call returns.
    ``durable=False`` is the explicit opt-out (benchmarks, tests that say so); it fixes the
    mode of the whole process's engine, and a later durable open then fails closed.
    """
    if url in ("memory://", "memory"):
        return MemoryStorage()
    if url.startswith(SQLITE_SCHEME):
        from ._sqlite import SqliteStorage

        return await SqliteStorage.open(url, durable=durable)
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
        hint="use memory://, sqlite:///absolute/dir, surrealkv:///absolute/dir, mem://, "
        "ws://host:port or wss://host:port",
    )
