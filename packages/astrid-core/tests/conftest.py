from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from astrid_core.storage import Storage, open_storage

BACKENDS = ["memory", "sqlite", "surreal-mem", "surrealkv"]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def backend_url(kind: str, tmp_path: Path) -> str:
    if kind == "memory":
        return "memory://"
    if kind == "surreal-mem":
        return "mem://"
    if kind == "sqlite":
        return f"sqlite://{tmp_path / 'db'}"
    return f"surrealkv://{tmp_path / 'db'}"


@pytest.fixture(params=BACKENDS)
async def storage(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Storage]:
    store = await open_storage(backend_url(request.param, tmp_path))
    try:
        yield store
    finally:
        await store.aclose()
