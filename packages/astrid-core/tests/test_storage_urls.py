from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from astrid_core import BadInputError, ConfigError, StorageError
from astrid_core.storage import MemoryStorage, open_storage

pytestmark = pytest.mark.anyio


async def test_memory_url() -> None:
    store = await open_storage("memory://")
    assert isinstance(store, MemoryStorage)
    await store.aclose()


@pytest.mark.parametrize(
    "url", ["sqlite3:///x", "", "file:///tmp/x", "MEMORY://", "rocksdb:///tmp/x"]
)
async def test_unknown_scheme(url: str) -> None:
    with pytest.raises(ConfigError, match="unknown storage URL"):
        await open_storage(url)


@pytest.mark.parametrize(
    "url",
    [
        *("surrealkv://relative/dir", "surrealkv://", "surrealkv:///", "surrealkv:///a?x=1"),
        *("sqlite://relative/dir", "sqlite://", "sqlite:///", "sqlite:///a?x=1"),
    ],
)
async def test_surrealkv_needs_absolute_directory(url: str) -> None:
    with pytest.raises(BadInputError, match=r"absolute directory|root directory"):
        await open_storage(url)


async def test_url_is_normalised(tmp_path: Path) -> None:
    store = await open_storage(f"surrealkv://{tmp_path}/a/../db")
    try:
        assert store.url == f"surrealkv://{tmp_path / 'db'}"
    finally:
        await store.aclose()


async def test_unreachable_server_is_a_storage_error() -> None:
    with pytest.raises(StorageError, match="cannot open SurrealDB storage") as info:
        await open_storage("ws://127.0.0.1:1")
    assert "server is running" in info.value.hint


async def test_server_password_never_appears_in_errors() -> None:
    with pytest.raises(StorageError) as info:
        await open_storage("ws://root:s3cret%21@127.0.0.1:1")
    assert "s3cret" not in str(info.value)
    assert "ws://127.0.0.1:1" in info.value.message
    with pytest.raises(BadInputError, match="no host"):
        await open_storage("ws://")


def test_missing_surrealdb_extra_names_the_fix() -> None:
    code = (
        "import sys, anyio\n"
        "sys.modules['surrealdb'] = None  # as if the extra were not installed\n"
        "from astrid_core.storage import open_storage\n"
        "try:\n"
        "    anyio.run(open_storage, 'mem://')\n"
        "except Exception as exc:\n"
        "    print(type(exc).__name__, exc.hint)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout
    assert out.strip() == "ConfigError pip install 'astrid-core[surrealdb]'"


async def test_state_url_keeps_the_backend_that_wrote_the_store(tmp_path: Path) -> None:
    from astrid_core import ConfigError
    from astrid_core.storage import state_url, stored_backend

    fresh, old = tmp_path / "fresh", tmp_path / "old"
    assert state_url(fresh) == f"sqlite://{fresh}"  # a new store is sqlite3
    store = await open_storage(f"surrealkv://{old}")  # a store written before the switch
    await store.put("ns", "k", "kept")
    await store.aclose()
    assert stored_backend(old) == "surrealdb"
    url = state_url(old)  # auto: no silent switch to an empty sqlite3 store
    assert url == f"surrealkv://{old}"
    store = await open_storage(url)
    assert await store.get("ns", "k") == "kept"
    await store.aclose()
    with pytest.raises(ConfigError) as info:
        state_url(old, "sqlite")
    assert info.value.code == "storage.wrong_backend"
    assert 'storage.backend = "surrealdb"' in info.value.hint
    store = await open_storage(state_url(fresh))
    await store.aclose()
    assert stored_backend(fresh) == "sqlite"
    with pytest.raises(ConfigError, match="holds a sqlite store"):
        state_url(fresh, "surrealdb")


async def test_sqlite_refuses_a_directory_of_another_backend(tmp_path: Path) -> None:
    store = await open_storage(f"surrealkv://{tmp_path / 'db'}")
    await store.aclose()
    with pytest.raises(StorageError) as info:
        await open_storage(f"sqlite://{tmp_path / 'db'}")
    assert info.value.code == "storage.wrong_backend"
