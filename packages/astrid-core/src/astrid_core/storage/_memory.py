"""In-memory storage: for tests and library use. Not durable, by design."""

from __future__ import annotations

import copy
import json
from collections.abc import Sequence

import anyio

from .._errors import BadInputError, StorageError
from .._json import JsonValue
from ._protocol import Delete, Expect, Put, Write, check_key, check_namespace

__all__ = ["MemoryStorage"]


def _frozen_copy(value: JsonValue) -> JsonValue:
    # Round-trip through JSON so callers can neither keep a reference into the store nor store
    # something a durable backend could not (tuples, NaN, non-string keys).
    try:
        return json.loads(json.dumps(value, allow_nan=False))  # type: ignore[no-any-return]
    except (TypeError, ValueError) as exc:
        raise BadInputError(f"value is not storable as JSON: {exc}") from exc


class MemoryStorage:
    """A dict of dicts behind one lock. Same semantics as the durable backends."""

    def __init__(self) -> None:
        self._data: dict[str, dict[str, JsonValue]] = {}
        self._lock = anyio.Lock()
        self._closed = False

    @property
    def url(self) -> str:
        return "memory://"

    def _check_open(self) -> None:
        if self._closed:
            raise StorageError("storage is closed", hint="open a new storage instance")

    def _current(self, namespace: str, key: str) -> JsonValue | None:
        return self._data.get(namespace, {}).get(key)

    async def get(self, namespace: str, key: str) -> JsonValue | None:
        check_namespace(namespace)
        check_key(key)
        self._check_open()
        return copy.deepcopy(self._current(namespace, key))

    async def put(self, namespace: str, key: str, value: JsonValue) -> None:
        await self.transaction([Put(namespace, key, value)])

    async def delete(self, namespace: str, key: str) -> bool:
        check_namespace(namespace)
        check_key(key)
        async with self._lock:
            self._check_open()
            return self._data.get(namespace, {}).pop(key, None) is not None

    async def compare_and_set(
        self, namespace: str, key: str, expected: JsonValue | None, new: JsonValue | None
    ) -> bool:
        write: Write = Delete(namespace, key) if new is None else Put(namespace, key, new)
        return await self.transaction([write], expect=[Expect(namespace, key, expected)])

    async def scan(
        self, namespace: str, prefix: str = "", *, limit: int | None = None
    ) -> list[tuple[str, JsonValue]]:
        check_namespace(namespace)
        self._check_open()
        bucket = self._data.get(namespace, {})
        keys = sorted(k for k in bucket if k.startswith(prefix))
        if limit is not None:
            keys = keys[:limit]
        return [(k, copy.deepcopy(bucket[k])) for k in keys]

    async def transaction(self, writes: Sequence[Write], *, expect: Sequence[Expect] = ()) -> bool:
        prepared = [
            Put(w.namespace, w.key, _frozen_copy(w.value)) if isinstance(w, Put) else w
            for w in writes
        ]
        async with self._lock:
            self._check_open()
            for condition in expect:
                if self._current(condition.namespace, condition.key) != condition.value:
                    return False
            for write in prepared:
                bucket = self._data.setdefault(write.namespace, {})
                if isinstance(write, Put):
                    bucket[write.key] = write.value
                else:
                    bucket.pop(write.key, None)
            return True

    async def aclose(self) -> None:
        self._closed = True
