from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import pytest

from astrid_core.storage import Expect, MemoryStorage, Storage, Write, open_storage
from astrid_crypto import KeyPair


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(params=["memory", "sqlite", "surrealkv"])
async def storage(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Storage]:
    if request.param == "memory":
        store: Storage = MemoryStorage()
    else:
        store = await open_storage(f"{request.param}://{tmp_path / 'db'}")
    yield store
    await store.aclose()


@pytest.fixture
def key() -> KeyPair:
    return KeyPair.generate()


class FailingStorage(MemoryStorage):
    """A storage backend whose writes start failing on demand (a test double of the protocol)."""

    fail = False

    async def transaction(self, writes: Sequence[Write], *, expect: Sequence[Expect] = ()) -> bool:
        if self.fail:
            raise OSError("disk full")
        return await super().transaction(writes, expect=expect)
