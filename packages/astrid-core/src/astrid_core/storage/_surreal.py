"""SurrealDB backend: embedded (``surrealkv:///dir``, ``mem://``) or a server (``ws://``).

Every key is one record ``kv:[namespace, key]`` with the value stored as canonical JSON text
(sorted keys, no whitespace). Text, not SurrealDB values, because the SDK's CBOR mapping is not
JSON's (ints vs floats, NONE vs null); text round-trips exactly and makes compare-and-set a plain
string comparison. User data only ever travels as bound parameters, never inside SurrealQL.

Durability: a call returns after SurrealDB committed the write and handed it to the OS. A killed
process loses nothing it was told was written; a power cut may lose recent writes unless the
process runs with ``SURREAL_SYNC_DATA=true`` (fsync per commit, about half the speed).

The embedded engine has no cross-process lock and two processes on one directory corrupt it, so
we hold an exclusive ``flock`` on ``<dir>.lock`` (holding our pid) for the storage's lifetime.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Self, cast
from urllib.parse import unquote, urlsplit, urlunsplit

import anyio
from surrealdb import AsyncSurreal

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

__all__ = ["SurrealStorage"]

_EMBEDDED_DIR_SCHEMES = ("surrealkv://",)
_REMOTE_SCHEMES = ("ws://", "wss://")
_EXPECT_FAILED = "astrid:expectation-failed"
_RECORD = "type::thing('kv', [${ns}, ${key}])"


def _prefix_end(prefix: str) -> str | None:
    """The smallest string greater than every string starting with ``prefix`` (None: none)."""
    chars = list(prefix)
    while chars:
        code = ord(chars[-1]) + 1
        if code == 0xD800:  # skip the surrogate block, not valid in stored keys
            code = 0xE000
        if code <= 0x10FFFF:
            chars[-1] = chr(code)
            return "".join(chars)
        chars.pop()
    return None


def _lock_path(directory: Path) -> Path:
    return directory.with_name(directory.name + ".lock")


class _DirectoryLock:
    """An exclusive flock on ``<dir>.lock``; the OS drops it when the process dies."""

    def __init__(self, directory: Path) -> None:
        self.path = _lock_path(directory)
        self._fd: int | None = None

    def acquire(self) -> None:
        try:
            # O_NOFOLLOW: a planted symlink must not make us truncate some other file.
            flags = os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW
            fd = os.open(self.path, flags, 0o600)
        except OSError as exc:
            raise StorageError(
                f"cannot open lock file {self.path}: {exc}",
                hint="check that the lock file is a regular file you own, in a writable directory",
            ) from exc
        try:
            # flock (not POSIX fcntl locks) so a second opener in the *same* process is refused
            # too: flock locks belong to the open file description, not to the process.
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip() or "unknown"
            os.close(fd)
            raise StorageError(
                f"storage directory {self.path.with_suffix('')} is in use by another opener "
                f"(pid {holder}, lock file {self.path})",
                hint=f"stop process {holder} (or close the other storage) first; only one "
                "process may open a storage directory",
            ) from None
        except BaseException:
            os.close(fd)
            raise
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode("ascii"), 0)
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            fd, self._fd = self._fd, None
            os.close(fd)  # closing the descriptor drops the flock


def _split_credentials(url: str) -> tuple[str, dict[str, Any] | None]:
    """``ws://user:pass@host:port`` -> (``ws://host:port``, signin vars). Never log the input."""
    parts = urlsplit(url)
    if not parts.hostname:
        raise BadInputError("SurrealDB server URL has no host", hint="use ws://host:port")
    if parts.username is None:
        return url, None
    netloc = parts.netloc.rsplit("@", 1)[1]
    credentials: dict[str, Any] = {
        "username": unquote(parts.username),
        "password": unquote(parts.password or ""),
    }
    return urlunsplit(parts._replace(netloc=netloc)), credentials


def _parse_url(url: str) -> tuple[str, Path | None]:
    """The URL to hand the SDK and, for on-disk engines, the directory to lock."""
    if url == "mem://" or url.startswith(_REMOTE_SCHEMES):
        return url, None
    for scheme in _EMBEDDED_DIR_SCHEMES:
        if url.startswith(scheme):
            raw = url[len(scheme) :]
            if not raw.startswith("/") or "\x00" in raw or "?" in raw or "#" in raw:
                raise BadInputError(
                    f"storage URL {url!r} does not name an absolute directory",
                    hint=f"use {scheme}/absolute/path (three slashes)",
                )
            directory = Path(os.path.normpath(raw))
            if directory == Path("/"):
                raise BadInputError(f"storage URL {url!r} names the root directory")
            return f"{scheme}{directory}", directory
    raise BadInputError(
        f"storage URL {url!r} is not a SurrealDB URL",
        hint="use surrealkv:///absolute/dir, mem://, ws://host:port or wss://host:port",
    )


class SurrealStorage:
    """The Storage protocol on SurrealDB. Open with ``await SurrealStorage.open(url)``."""

    def __init__(self, url: str, db: Any, lock: _DirectoryLock | None) -> None:
        self._url = url
        self._db = db
        self._dir_lock = lock
        # One connection, one request at a time: the embedded engine then never sees two of our
        # write transactions conflict, and aclose cannot race a running query.
        self._lock = anyio.Lock(fast_acquire=True)  # no event-loop round trip when uncontended
        self._closed = False

    @classmethod
    async def open(cls, url: str, *, namespace: str = "astrid", database: str = "astrid") -> Self:
        sdk_url, directory = _parse_url(url)
        credentials: dict[str, Any] | None = None
        if sdk_url.startswith(_REMOTE_SCHEMES):
            sdk_url, credentials = _split_credentials(sdk_url)
        lock: _DirectoryLock | None = None
        if directory is not None:
            try:
                directory.parent.mkdir(parents=True, exist_ok=True)
                directory.mkdir(mode=0o700, exist_ok=True)  # state is private to its owner
            except OSError as exc:
                raise StorageError(f"cannot create storage directory {directory}: {exc}") from exc
            lock = _DirectoryLock(directory)
            lock.acquire()
        try:
            db: Any = AsyncSurreal(sdk_url)
            await db.connect()
            if credentials is not None:
                await db.signin(credentials)
            await db.use(namespace, database)
        except StorageError:
            if lock is not None:
                lock.release()
            raise
        except Exception as exc:
            if lock is not None:
                lock.release()
            hint = (
                f"check that the directory {directory} is writable and was written by SurrealDB"
                if directory is not None
                else "check that the SurrealDB server is running and reachable at that URL"
            )
            raise StorageError(
                f"cannot open SurrealDB storage {sdk_url!r}: {exc}", hint=hint
            ) from exc
        return cls(sdk_url, db, lock)  # the url property never carries the password

    @property
    def url(self) -> str:
        return self._url

    async def _run(self, query: str, params: dict[str, Any]) -> list[dict[str, Any]]:
        """Run SurrealQL; return the per-statement results. Raises StorageError on failure."""
        async with self._lock:
            if self._closed:
                raise StorageError("storage is closed", hint="open a new storage instance")
            try:
                response: Any = await self._db.query_raw(query, params)
            except Exception as exc:
                raise StorageError(f"SurrealDB query failed: {exc}") from exc
        result: Any = (
            cast(dict[str, Any], response).get("result") if isinstance(response, dict) else None
        )
        if not isinstance(result, list):
            raise StorageError(f"SurrealDB query failed: {response!r}")
        results: list[dict[str, Any]] = cast(list[dict[str, Any]], result)
        return results

    @staticmethod
    def _raise_errors(results: list[dict[str, Any]]) -> None:
        for item in results:
            if item.get("status") != "OK":
                raise StorageError(f"SurrealDB statement failed: {item.get('result')!r}")

    async def get(self, namespace: str, key: str) -> JsonValue | None:
        check_namespace(namespace)
        check_key(key)
        results = await self._run(
            f"RETURN ({_RECORD.format(ns='ns', key='key')}).v;", {"ns": namespace, "key": key}
        )
        self._raise_errors(results)
        text = results[0]["result"]
        return None if text is None else decode_value(text)

    async def put(self, namespace: str, key: str, value: JsonValue) -> None:
        await self.transaction([Put(namespace, key, value)])

    async def delete(self, namespace: str, key: str) -> bool:
        check_namespace(namespace)
        check_key(key)
        results = await self._run(
            f"DELETE {_RECORD.format(ns='ns', key='key')} RETURN BEFORE;",
            {"ns": namespace, "key": key},
        )
        self._raise_errors(results)
        return bool(results[0]["result"])

    async def compare_and_set(
        self, namespace: str, key: str, expected: JsonValue | None, new: JsonValue | None
    ) -> bool:
        write: Write = Delete(namespace, key) if new is None else Put(namespace, key, new)
        return await self.transaction([write], expect=[Expect(namespace, key, expected)])

    async def scan(
        self, namespace: str, prefix: str = "", *, limit: int | None = None
    ) -> list[tuple[str, JsonValue]]:
        check_namespace(namespace)
        check_prefix(prefix)
        end = _prefix_end(prefix)
        # A record-id range reads only this namespace's keys from the prefix on (instead of a
        # table scan); the WHERE clause keeps the result exact whatever the range encoding.
        params: dict[str, Any] = {
            "ns": namespace,
            "prefix": prefix,
            "end": {} if end is None else end,  # an object sorts after every string
        }
        query = (
            "SELECT k, v FROM kv:[$ns, $prefix]..[$ns, $end]"
            " WHERE ns = $ns AND string::starts_with(k, $prefix) ORDER BY k"
        )
        check_limit(limit)
        if limit is not None:
            if limit == 0:
                await self._run("RETURN NONE;", {})  # still fail if closed
                return []
            query += " LIMIT $limit"
            params["limit"] = limit
        results = await self._run(query + ";", params)
        self._raise_errors(results)
        rows: list[dict[str, Any]] = results[0]["result"]
        return [(str(row["k"]), decode_value(row["v"])) for row in rows]

    async def transaction(self, writes: Sequence[Write], *, expect: Sequence[Expect] = ()) -> bool:
        statements: list[str] = []
        params: dict[str, Any] = {}
        for i, condition in enumerate(expect):
            check_namespace(condition.namespace)
            check_key(condition.key)
            params[f"en{i}"] = condition.namespace
            params[f"ek{i}"] = condition.key
            # "" is never valid JSON text, so it stands for "absent" on both sides.
            params[f"ev{i}"] = "" if condition.value is None else encode_value(condition.value)
            record = _RECORD.format(ns=f"en{i}", key=f"ek{i}")
            statements.append(f"IF (({record}).v ?? '') != $ev{i} {{ THROW '{_EXPECT_FAILED}' }};")
        # Consecutive puts become one INSERT of a parameter array: one statement to parse and
        # one result to decode however many rows (a batch of audit entries), about a fifth
        # cheaper than an UPSERT per row. Deletes stay in order between them.
        rows: list[dict[str, Any]] = []
        for write in writes:
            if isinstance(write, Put):
                rows.append(
                    {
                        "id": [write.namespace, write.key],
                        "ns": write.namespace,
                        "k": write.key,
                        "v": encode_value(write.value),
                    }
                )
                continue
            if not isinstance(write, Delete):  # pyright: ignore[reportUnnecessaryIsInstance]
                raise BadInputError(f"transaction write {write!r} is neither Put nor Delete")
            if rows:
                statements.append(self._insert(params, rows))
                rows = []
            i = len(params)
            params[f"wn{i}"] = write.namespace
            params[f"wk{i}"] = write.key
            statements.append(f"DELETE {_RECORD.format(ns=f'wn{i}', key=f'wk{i}')} RETURN NONE;")
        if rows:
            statements.append(self._insert(params, rows))
        if not statements:
            await self._run("RETURN NONE;", {})  # an empty transaction still fails when closed
            return True
        query = "BEGIN TRANSACTION;\n" + "\n".join(statements) + "\nCOMMIT TRANSACTION;"
        results = await self._run(query, params)
        failed = [item for item in results if item.get("status") != "OK"]
        if any(_EXPECT_FAILED in str(item.get("result")) for item in failed):
            return False
        self._raise_errors(results)
        return True

    @staticmethod
    def _insert(params: dict[str, Any], rows: list[dict[str, Any]]) -> str:
        name = f"rows{len(params)}"
        params[name] = rows
        # The record id [ns, key] is the one type::thing('kv', [ns, key]) names in reads.
        return f"INSERT INTO kv ${name} ON DUPLICATE KEY UPDATE v = $input.v RETURN NONE;"

    async def aclose(self) -> None:
        async with self._lock:
            if self._closed:
                return
            self._closed = True
            try:
                await self._db.close()
            finally:
                if self._dir_lock is not None:
                    self._dir_lock.release()
