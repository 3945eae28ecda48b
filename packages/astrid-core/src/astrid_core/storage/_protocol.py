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
from ._codec import EncodedJson

__all__ = [
    "Storage",
    "Put",
    "Delete",
    "Expect",
    "Write",
    "check_namespace",
    "check_key",
    "check_limit",
    "check_prefix",
    "MAX_KEY_LENGTH",
]

MAX_KEY_LENGTH = 1024
_NAMESPACE = re.compile(r"^[a-z][a-z0-9_]{0,62}$")


def check_namespace(namespace: str) -> str:
    if not isinstance(namespace, str) or not _NAMESPACE.fullmatch(namespace):  # pyright: ignore[reportUnnecessaryIsInstance]
        raise BadInputError(
            f"storage namespace {namespace!r} is invalid",
            hint="namespaces are 1-63 chars of a-z, 0-9 and _, starting with a letter",
        )
    return namespace


def _key_problem(key: object) -> str | None:
    if not isinstance(key, str):
        return f"is a {type(key).__name__}, not a string"
    if not key:
        return "is empty"
    if len(key) > MAX_KEY_LENGTH:
        return f"is {len(key)} characters long"
    if "\x00" in key:
        return "contains a NUL byte"
    try:
        key.encode("utf-8")
    except UnicodeEncodeError:
        return "contains a lone surrogate (not valid Unicode)"
    return None


def check_key(key: str) -> str:
    problem = _key_problem(key)
    if problem is not None:
        shown = key[:80] if isinstance(key, str) else key  # pyright: ignore[reportUnnecessaryIsInstance]
        raise BadInputError(
            f"storage key {shown!r} is invalid: it {problem}",
            hint=f"keys are 1-{MAX_KEY_LENGTH} characters of valid Unicode with no NUL byte",
        )
    return key


def check_prefix(prefix: str) -> str:
    """A scan prefix: "" (everything) or anything that could start a valid key."""
    if not isinstance(prefix, str):  # pyright: ignore[reportUnnecessaryIsInstance]
        raise BadInputError(f"scan prefix {prefix!r} is a {type(prefix).__name__}, not a string")
    if prefix:
        problem = _key_problem(prefix)
        if problem is not None:
            raise BadInputError(
                f"scan prefix {prefix[:80]!r} is invalid: it {problem}",
                hint=f"prefixes are 0-{MAX_KEY_LENGTH} characters of valid Unicode, no NUL byte",
            )
    return prefix


def check_limit(limit: object) -> None:
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 0):
        raise BadInputError(
            f"scan limit {limit!r} is invalid", hint="pass a non-negative integer, or None"
        )


@dataclass(frozen=True, slots=True)
class Put:
    namespace: str
    key: str
    value: JsonValue | EncodedJson

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

    async def put(self, namespace: str, key: str, value: JsonValue) -> None:
        """Store ``value`` (JSON, not null). When this returns the write is committed: for the
        durable backends it is fsynced and survives the process being killed and a power cut
        (SurrealDB embedded is opened with its sync setting on unless ``durable=False``)."""
        ...

    async def delete(self, namespace: str, key: str) -> bool:
        """Remove the key; True if it existed."""
        ...

    async def compare_and_set(
        self, namespace: str, key: str, expected: JsonValue | None, new: JsonValue | None
    ) -> bool:
        """Atomically replace ``expected`` by ``new`` (None means absent). True if it happened."""
        ...

    async def scan(
        self,
        namespace: str,
        prefix: str = "",
        *,
        limit: int | None = None,
        start: str | None = None,
    ) -> list[tuple[str, JsonValue]]:
        """All (key, value) pairs whose key starts with ``prefix`` (and, given ``start``, is
        not smaller than it), sorted by key, at most ``limit`` of them."""
        ...

    async def transaction(self, writes: Sequence[Write], *, expect: Sequence[Expect] = ()) -> bool:
        """Apply all writes atomically if every expectation holds. True if committed."""
        ...

    async def aclose(self) -> None: ...
