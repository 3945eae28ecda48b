from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from astrid_capabilities import CapabilityStore
from astrid_core.storage import MemoryStorage, Storage, open_storage
from astrid_crypto import KeyPair

NOW = 1_800_000_000


class FakeClock:
    """A settable clock (unix seconds) so expiry tests need no sleeping."""

    def __init__(self, now: int = NOW) -> None:
        self.now = now

    def __call__(self) -> int:
        return self.now


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def key() -> KeyPair:
    return KeyPair(bytes(range(32)))


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def storage() -> AsyncIterator[Storage]:
    backend = MemoryStorage()
    yield backend
    await backend.aclose()


@pytest.fixture
async def store(storage: Storage, key: KeyPair, clock: FakeClock) -> CapabilityStore:
    return await CapabilityStore.open(storage, [key.public_key], clock=clock)


@pytest.fixture(params=["memory", "sqlite", "surrealkv"])
async def any_storage(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Storage]:
    if request.param == "surrealkv":
        pytest.importorskip("surrealdb", reason="needs astrid-core[surrealdb]")
    url = "memory://" if request.param == "memory" else f"{request.param}://{tmp_path / 'db'}"
    backend = await open_storage(url)
    try:
        yield backend
    finally:
        await backend.aclose()
