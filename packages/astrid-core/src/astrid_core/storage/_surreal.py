"""SurrealDB backend: embedded (``surrealkv:///dir``, ``mem://``) or a server (``ws://``).

Every key is one record ``kv:[namespace, key]`` with the value stored as canonical JSON text
(sorted keys, no whitespace). Text, not SurrealDB values, because the SDK's CBOR mapping is not
JSON's (ints vs floats, NONE vs null); text round-trips exactly and makes compare-and-set a plain
string comparison. User data only ever travels as bound parameters, never inside SurrealQL.

Durability: by default a write call returns only after SurrealDB committed it *and fsynced it*:
the embedded engine (surrealkv) fsyncs per commit only when ``SURREAL_SYNC_DATA=true`` is in the
process environment when its first datastore starts (read once per process; measured: setting it
later has no effect), so ``open(durable=True)`` puts it there before the engine starts and refuses
(fail closed) when the engine of this process already started without it. ``durable=False`` is
the explicit opt-out for benchmarks and tests that say so: a killed process still loses nothing
acknowledged, a power cut may lose the last writes. A ``ws://`` server's durability is its own.

The embedded engine has no cross-process lock and two processes on one directory corrupt it, so
we hold an exclusive ``flock`` on ``<dir>.lock`` (holding our pid) for the storage's lifetime.

The directory is watched: we hold it open and, before every write, compare the (device, inode)
of the held descriptor with a fresh ``lstat`` of its path (one syscall). A state directory deleted
or replaced under a running process makes every later write fail with a StorageError that says
so, instead of acknowledging writes that land in unlinked files.

After an I/O failure (ENOSPC, EIO, a failed fsync) the engine's handle stays broken, so the next
call after a short backoff closes it and opens the directory again (surrealkv repairs a torn
tail on open); when that works, writes go on without a restart and ``health()`` says so.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Self, cast
from urllib.parse import unquote, urlsplit, urlunsplit

import anyio
from surrealdb import AsyncSurreal

from .._errors import BadInputError, StorageError
from .._json import JsonValue
from ._codec import decode_value, encode_value
from ._fsguard import DirectoryLock as _DirectoryLock
from ._fsguard import DirectoryWatch as _DirectoryWatch
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

__all__ = ["SurrealStorage", "engine_sync"]

log = logging.getLogger("astrid.storage")

_SYNC_ENV = "SURREAL_SYNC_DATA"
# Whether this process's embedded engine fsyncs each commit: fixed when it first starts.
_engine_sync: bool | None = None
_REOPEN_BACKOFF_S = 0.5
_REOPEN_BACKOFF_MAX_S = 10.0
_IO_MARKERS = ("IO error", "os error", "fsync failed", "No space left", "no storage space")

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


def engine_sync() -> bool | None:
    """Whether this process's embedded SurrealDB engine fsyncs commits (None: not started)."""
    return _engine_sync


def _start_engine(durable: bool) -> None:
    """Fix the engine's sync mode before its first datastore starts (it reads the environment
    once per process). Raises StorageError when durability is asked of an engine that already
    started without it."""
    global _engine_sync
    if _engine_sync is None:
        if durable:
            os.environ[_SYNC_ENV] = "true"
        _engine_sync = os.environ.get(_SYNC_ENV, "").strip().lower() in ("true", "1", "yes")
    if durable and not _engine_sync:
        raise StorageError(
            "cannot open durable storage: this process's SurrealDB engine already started "
            f"without {_SYNC_ENV}=true, so its commits would not be fsynced",
            hint="open every storage of this process with durable=True (the default), or start "
            f"the process with {_SYNC_ENV}=true",
            code="storage.not_durable",
        )


def _io_cause(text: str) -> str | None:
    """The I/O failure a SurrealDB error names, in words, or None when it is not one."""
    if "No space left" in text or "no storage space" in text:
        return "the disk is full (ENOSPC: no space left on device)"
    if "Quota exceeded" in text or "quota" in text.lower():
        return "the disk quota is exceeded (EDQUOT)"
    if any(marker in text for marker in _IO_MARKERS):
        return f"an I/O error on the storage device ({text[-160:]})"
    return None


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

    def __init__(
        self,
        url: str,
        db: Any,
        lock: _DirectoryLock | None,
        *,
        watch: _DirectoryWatch | None = None,
        namespace: str = "astrid",
        database: str = "astrid",
        durable: bool = False,
        credentials: dict[str, Any] | None = None,
    ) -> None:
        self._url = url
        self._db = db
        self._dir_lock = lock
        self._watch = watch
        self._namespace = namespace
        self._database = database
        self._credentials = credentials
        self.durable = durable
        # One connection, one request at a time: the embedded engine then never sees two of our
        # write transactions conflict, and aclose cannot race a running query.
        self._lock = anyio.Lock(fast_acquire=True)  # no event-loop round trip when uncontended
        self._closed = False
        self._gone: str | None = None  # the directory was deleted/replaced: refuse for good
        self._broken: str | None = None  # the I/O failure that broke the engine's handle
        self._broken_since = 0.0
        self._retry_at = 0.0
        self._backoff = _REOPEN_BACKOFF_S
        self.reopen_backoff = _REOPEN_BACKOFF_S  # first wait before a reopen (tests lower it)
        self.last_recovery: str | None = None

    @classmethod
    async def open(
        cls,
        url: str,
        *,
        namespace: str = "astrid",
        database: str = "astrid",
        durable: bool = True,
    ) -> Self:
        """Open (and for ``surrealkv://`` lock and watch) the storage. ``durable=False`` is
        the explicit opt-out of fsync per commit, for benchmarks and tests that say so."""
        sdk_url, directory = _parse_url(url)
        credentials: dict[str, Any] | None = None
        remote = sdk_url.startswith(_REMOTE_SCHEMES)
        if remote:
            sdk_url, credentials = _split_credentials(sdk_url)
        else:
            _start_engine(durable)
        lock: _DirectoryLock | None = None
        watch: _DirectoryWatch | None = None
        if directory is not None:
            try:
                directory.parent.mkdir(parents=True, exist_ok=True)
                directory.mkdir(mode=0o700, exist_ok=True)  # state is private to its owner
            except OSError as exc:
                raise StorageError(f"cannot create storage directory {directory}: {exc}") from exc
            lock = _DirectoryLock(directory)
            lock.acquire()
            try:
                watch = _DirectoryWatch(directory)
            except OSError as exc:
                lock.release()
                raise StorageError(
                    f"cannot open storage directory {directory}: {exc}",
                    hint="the state directory must be a real directory you own, not a symlink",
                ) from exc
        try:
            db = await cls._connect(sdk_url, namespace, database, credentials)
        except StorageError:
            if watch is not None:
                watch.close()
            if lock is not None:
                lock.release()
            raise
        except Exception as exc:
            if watch is not None:
                watch.close()
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
        return cls(  # the url property never carries the password
            sdk_url,
            db,
            lock,
            watch=watch,
            namespace=namespace,
            database=database,
            durable=not remote and bool(_engine_sync) and sdk_url != "mem://",
            credentials=credentials,
        )

    @staticmethod
    async def _connect(
        sdk_url: str, namespace: str, database: str, credentials: dict[str, Any] | None
    ) -> Any:
        db: Any = AsyncSurreal(sdk_url)
        await db.connect()
        if credentials is not None:
            await db.signin(credentials)
        await db.use(namespace, database)
        return db

    @property
    def url(self) -> str:
        return self._url

    def health(self) -> list[str]:
        """Problems a status display should show (empty when all is well)."""
        problems: list[str] = []
        if self._gone is not None:
            problems.append(self._gone)
        elif self._watch is not None and (problem := self._watch.problem()) is not None:
            problems.append(f"the state directory {self._watch.path} {problem}")
        if self._broken is not None:
            since = time.strftime("%H:%M:%S", time.localtime(self._broken_since))
            problems.append(
                f"storage unavailable since {since}: {self._broken}; "
                "it is reopened automatically once the cause is gone"
            )
        elif self.last_recovery is not None:
            problems.append(self.last_recovery)
        if not self.durable and self._url.startswith(_EMBEDDED_DIR_SCHEMES):
            problems.append("storage is not durable: commits are not fsynced (durable=False)")
        return problems

    def _check_directory(self) -> None:
        """Refuse for good once the held state directory is no longer at its path."""
        if self._gone is None and self._watch is not None:
            problem = self._watch.problem()
            if problem is not None:
                self._gone = (
                    f"the state directory {self._watch.path} {problem} while the daemon ran"
                )
                log.error("storage: %s; refusing every write from now on", self._gone)
        if self._gone is not None:
            raise StorageError(
                f"{self._gone}; nothing more is written to it",
                hint="stop the daemon, restore the state directory (e.g. from a backup), then "
                "run `astrid audit verify --offline` before starting it again",
                code="storage.directory_lost",
            )

    async def _reopen_if_due(self) -> None:
        """Called with the lock held while the handle is broken: reopen after the backoff."""
        assert self._broken is not None
        now = time.monotonic()
        if now < self._retry_at:
            raise self._unavailable(f"next retry in {self._retry_at - now:.1f} s")
        try:
            try:
                await self._db.close()
            except Exception as exc:  # the broken handle may not close cleanly
                log.debug("storage: closing the broken handle: %s", exc)
            self._db = await self._connect(
                self._url, self._namespace, self._database, self._credentials
            )
        except Exception as exc:
            self._backoff = min(self._backoff * 2, _REOPEN_BACKOFF_MAX_S)
            self._retry_at = time.monotonic() + self._backoff
            log.warning("storage: reopening after %s failed: %s", self._broken, exc)
            raise self._unavailable(
                f"reopening failed ({exc}); next retry in {self._backoff:.1f} s"
            ) from exc
        cause, self._broken = self._broken, None
        self._backoff = self.reopen_backoff
        self.last_recovery = (
            f"storage reopened at {time.strftime('%H:%M:%S')} after {cause} (no restart needed)"
        )
        log.warning("storage: %s", self.last_recovery)

    def _unavailable(self, detail: str) -> StorageError:
        where = f" ({self._watch.path})" if self._watch is not None else ""
        return StorageError(
            f"storage{where} is unavailable after {self._broken}; {detail}",
            hint=self._io_hint(),
            code="storage.io",
        )

    def _io_hint(self) -> str:
        where = str(self._watch.path) if self._watch is not None else "the storage"
        if self._broken is not None and "ENOSPC" in self._broken:
            fix = f"free space on the filesystem holding {where} (`df -h {where}`)"
        elif self._broken is not None and "EDQUOT" in self._broken:
            fix = f"raise the disk quota or free space for {where}"
        else:
            fix = f"check the device holding {where} (`dmesg`, `df -h {where}`)"
        return (
            f"{fix}; the store is reopened automatically on the next action, no restart "
            "needed; nothing was acknowledged that was not written"
        )

    def _note_failure(self, text: str) -> StorageError | None:
        """Mark the handle broken when ``text`` reports an I/O failure; the error to raise."""
        cause = _io_cause(text)
        if cause is None:
            return None
        if self._broken is None:
            self._broken = cause
            self._broken_since = time.time()
            log.error("storage: %s; refusing writes until it is reopened", cause)
        self._backoff = self.reopen_backoff
        self._retry_at = time.monotonic() + self._backoff
        return StorageError(
            f"SurrealDB write failed: {cause}", hint=self._io_hint(), code="storage.io"
        )

    async def _run(
        self, query: str, params: dict[str, Any], *, write: bool = False
    ) -> list[dict[str, Any]]:
        """Run SurrealQL; return the per-statement results. Raises StorageError on failure."""
        async with self._lock:
            if self._closed:
                raise StorageError("storage is closed", hint="open a new storage instance")
            if write:
                self._check_directory()
            if self._broken is not None and (write or time.monotonic() >= self._retry_at):
                # Writes wait for the reopen (and fail fast until it is due); reads keep
                # using the handle meanwhile, so status can still be shown while the disk
                # is full.
                await self._reopen_if_due()
            try:
                response: Any = await self._db.query_raw(query, params)
            except Exception as exc:
                error = self._note_failure(str(exc))
                if error is not None:
                    raise error from exc
                raise StorageError(
                    f"SurrealDB query failed: {exc}",
                    hint="check the storage backend named in the message",
                ) from exc
        result: Any = (
            cast(dict[str, Any], response).get("result") if isinstance(response, dict) else None
        )
        if not isinstance(result, list):
            raise StorageError(f"SurrealDB query failed: {response!r}")
        results: list[dict[str, Any]] = cast(list[dict[str, Any]], result)
        for item in results:
            if item.get("status") != "OK":
                error = self._note_failure(str(item.get("result")))
                if error is not None:
                    raise error
        return results

    @staticmethod
    def _raise_errors(results: list[dict[str, Any]]) -> None:
        for item in results:
            if item.get("status") != "OK":
                raise StorageError(
                    f"SurrealDB statement failed: {item.get('result')!r}",
                    hint="check the storage backend named in the message",
                )

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
            write=True,
        )
        self._raise_errors(results)
        return bool(results[0]["result"])

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
        if start is not None:
            check_key(start)
        low = max(prefix, start) if start is not None else prefix
        end = _prefix_end(prefix)
        # A record-id range reads only this namespace's keys from the prefix on (instead of a
        # table scan); the WHERE clause keeps the result exact whatever the range encoding.
        params: dict[str, Any] = {
            "ns": namespace,
            "prefix": prefix,
            "low": low,
            "end": {} if end is None else end,  # an object sorts after every string
        }
        query = (
            "SELECT k, v FROM kv:[$ns, $low]..[$ns, $end]"
            " WHERE ns = $ns AND string::starts_with(k, $prefix) AND k >= $low ORDER BY k"
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
        results = await self._run(query, params, write=True)
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
                if self._watch is not None:
                    self._watch.close()
                if self._dir_lock is not None:
                    self._dir_lock.release()
