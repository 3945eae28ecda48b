"""In-memory storage: for tests and library use. Not durable, by design."""

from __future__ import annotations

from collections.abc import Sequence

import anyio

from .._errors import BadInputError, StorageError
from .._json import JsonValue
from ._codec import decode_value, encode_value
from ._protocol import (
    Delete,
    Expect,
    Put,
    Write,
    check_key,
    check_limit,
    check_namespace,
    check_prefix,
)

__all__ = ["MemoryStorage"]


class MemoryStorage:
    """A dict of dicts behind one lock. Same semantics as the durable backends.

    Values are kept as canonical JSON text, exactly like the SurrealDB backend: callers can
    never hold a reference into the store, and compare-and-set compares JSON, not Python
    equality (where ``True == 1 == 1.0``).
    """

    def __init__(self) -> None:
        self._data: dict[str, dict[str, str]] = {}
        self._lock = anyio.Lock(fast_acquire=True)  # no event-loop round trip when uncontended
        self._closed = False

    @property
    def url(self) -> str:
        return "memory://"

    def _check_open(self) -> None:
        if self._closed:
            raise StorageError("storage is closed", hint="open a new storage instance")

    def _current(self, namespace: str, key: str) -> str | None:
        return self._data.get(namespace, {}).get(key)

    async def get(self, namespace: str, key: str) -> JsonValue | None:
        check_namespace(namespace)
        check_key(key)
        self._check_open()
        text = self._current(namespace, key)
        return None if text is None else decode_value(text)

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
        self,
        namespace: str,
        prefix: str = "",
        *,
        limit: int | None = None,
        start: str | None = None,
    ) -> list[tuple[str, JsonValue]]:
        check_namespace(namespace)
        check_prefix(prefix)
        check_limit(limit)
        if start is not None:
            check_key(start)
        self._check_open()
        bucket = self._data.get(namespace, {})
        low = start or ""
        keys = sorted(k for k in bucket if k.startswith(prefix) and k >= low)
        if limit is not None:
            keys = keys[:limit]
        return [(k, decode_value(bucket[k])) for k in keys]

    async def transaction(self, writes: Sequence[Write], *, expect: Sequence[Expect] = ()) -> bool:
        prepared: list[tuple[str, str, str | None]] = []
        for w in writes:
            if isinstance(w, Put):
                prepared.append((w.namespace, w.key, encode_value(w.value)))
            elif isinstance(w, Delete):  # pyright: ignore[reportUnnecessaryIsInstance]
                prepared.append((w.namespace, w.key, None))
            else:
                raise BadInputError(f"transaction write {w!r} is neither Put nor Delete")
        conditions = [
            (c.namespace, c.key, None if c.value is None else encode_value(c.value)) for c in expect
        ]
        async with self._lock:
            self._check_open()
            for namespace, key, wanted in conditions:
                if self._current(namespace, key) != wanted:
                    return False
            for namespace, key, text in prepared:
                bucket = self._data.setdefault(namespace, {})
                if text is not None:
                    bucket[key] = text
                else:
                    bucket.pop(key, None)
            return True

    async def aclose(self) -> None:
        self._closed = True
