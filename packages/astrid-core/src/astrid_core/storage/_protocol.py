"""The storage protocol every piece of Astrid state goes through.

Namespaced keys map to JSON values. Backends must make each call atomic and durable before it
returns (as durable as the backend can be: the memory backend is neither, by design).
``transaction`` applies several writes all-or-nothing, optionally only if preconditions hold;
that is what single-use tokens, audit appends and budgets are built on.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from .._errors import BadInputError
from .._json import JsonValue

__all__ = [
    "Storage",
    "Put",
    "Delete",
    "Expect",
    "Write",
    "check_namespace",
    "check_key",
    "MAX_KEY_LENGTH",
]

MAX_KEY_LENGTH = 1024
_NAMESPACE = re.compile(r"^[a-z][a-z0-9_]{0,62}$")


def check_namespace(namespace: str) -> str:
    if not _NAMESPACE.match(namespace):
        raise BadInputError(
            f"storage namespace {namespace!r} is invalid",
            hint="namespaces are 1-63 chars of a-z, 0-9 and _, starting with a letter",
        )
    return namespace


def check_key(key: str) -> str:
    if not key or len(key) > MAX_KEY_LENGTH or "\x00" in key:
        raise BadInputError(
            f"storage key {key[:80]!r} is invalid",
            hint=f"keys are 1-{MAX_KEY_LENGTH} characters with no NUL byte",
        )
    return key


@dataclass(frozen=True, slots=True)
class Put:
    namespace: str
    key: str
    value: JsonValue

    def __post_init__(self) -> None:
        check_namespace(self.namespace)
        check_key(self.key)
        if self.value is None:
            raise BadInputError("storage values may not be null; use Delete to remove a key")


@dataclass(frozen=True, slots=True)
class Delete:
    namespace: str
    key: str

    def __post_init__(self) -> None:
        check_namespace(self.namespace)
        check_key(self.key)


@dataclass(frozen=True, slots=True)
class Expect:
    """Precondition: the key currently holds ``value`` (``None`` = the key is absent)."""

    namespace: str
    key: str
    value: JsonValue

    def __post_init__(self) -> None:
        check_namespace(self.namespace)
        check_key(self.key)


Write = Put | Delete


@runtime_checkable
class Storage(Protocol):
    @property
    def url(self) -> str: ...

    async def get(self, namespace: str, key: str) -> JsonValue | None:
        """The stored value, or None when the key is absent."""
        ...

    async def put(self, namespace: str, key: str, value: JsonValue) -> None: ...

    async def delete(self, namespace: str, key: str) -> bool:
        """Remove the key; True if it existed."""
        ...

    async def compare_and_set(
        self, namespace: str, key: str, expected: JsonValue | None, new: JsonValue | None
    ) -> bool:
        """Atomically replace ``expected`` by ``new`` (None means absent). True if it happened."""
        ...

    async def scan(
        self, namespace: str, prefix: str = "", *, limit: int | None = None
    ) -> list[tuple[str, JsonValue]]:
        """All (key, value) pairs whose key starts with ``prefix``, sorted by key."""
        ...

    async def transaction(self, writes: Sequence[Write], *, expect: Sequence[Expect] = ()) -> bool:
        """Apply all writes atomically if every expectation holds. True if committed."""
        ...

    async def aclose(self) -> None: ...
