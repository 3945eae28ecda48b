"""sqlite3 backend (standard library): ``sqlite:///abs/dir`` stores ``<dir>/astrid.sqlite3``.

Why this is the daemon's default: on this project's 2-core test machine a durable (fsynced)
audit append through the SurrealDB SDK reached 0.12x of what sqlite3 in WAL mode with
``synchronous=FULL`` allows (970 against 7,826 rows/s, ``benchmarks/limits.py``); a bare fsynced
surrealkv put is 1,345/s. This backend is sqlite3 itself, so the ceiling is its own.

Durability: WAL journal with ``synchronous=FULL``: every COMMIT fsyncs the WAL before it returns
(SQLite also fsyncs the directory when it creates the WAL file; we fsync it after creating the
database file). A write call returns only after its COMMIT did.

Group commit: one writer thread owns the only write connection. Write calls queue a job and
await its future; the thread takes every queued job, runs each inside its own SAVEPOINT of one
``BEGIN IMMEDIATE`` transaction and COMMITs once (one fsync for the group). A job whose
expectation fails, or whose statement fails, is rolled back to its savepoint: it fails alone,
the other jobs of the group commit. A failed COMMIT fails every job of the group, and the
connection is closed and reopened for the next one.

Reads run on a second thread with its own connection (WAL readers see the last committed state
and never wait for a writer), so neither reads nor fsyncs block the event loop.

The directory lock and watch are the SurrealDB backend's (``_fsguard``). The file records which
backend wrote it (table ``astrid_store``): the daemon never silently switches backends.
"""

from __future__ import annotations

import asyncio
import logging
import os
import queue
import sqlite3
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from pathlib import Path
from typing import Any, Self

from .._errors import BadInputError, StorageError
from .._json import JsonValue
from ._codec import decode_value, encode_value
from ._fsguard import DirectoryLock, DirectoryWatch
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

__all__ = ["SqliteStorage", "DB_FILE", "SCHEME", "parse_sqlite_url"]

log = logging.getLogger("astrid.storage")

SCHEME = "sqlite://"
DB_FILE = "astrid.sqlite3"  # SQLITE_FILE in __init__
_FORMAT = "1"
_MAX_GROUP = 512  # jobs per group commit (bounds one transaction's size)

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS kv (ns TEXT NOT NULL, k TEXT NOT NULL, v TEXT NOT NULL, "
    "PRIMARY KEY (ns, k)) WITHOUT ROWID",
    "CREATE TABLE IF NOT EXISTS astrid_store (name TEXT PRIMARY KEY, value TEXT NOT NULL)",
)


def parse_sqlite_url(url: str) -> Path:
    raw = url[len(SCHEME) :]
    if not raw.startswith("/") or "\x00" in raw or "?" in raw or "#" in raw:
        raise BadInputError(
            f"storage URL {url!r} does not name an absolute directory",
            hint=f"use {SCHEME}/absolute/path (three slashes)",
        )
    directory = Path(os.path.normpath(raw))
    if directory == Path("/"):
        raise BadInputError(f"storage URL {url!r} names the root directory")
    return directory


def _connect(path: Path, durable: bool) -> sqlite3.Connection:
    # isolation_level=None: we issue BEGIN/COMMIT ourselves; check_same_thread=False: each
    # connection is used by one thread at a time (its worker), but opened/closed elsewhere.
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=30)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute(f"PRAGMA synchronous={'FULL' if durable else 'OFF'}")
    conn.execute("PRAGMA foreign_keys=OFF")
    return conn


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _prefix_end(prefix: str) -> str | None:
    chars = list(prefix)
    while chars:
        code = ord(chars[-1]) + 1
        if code == 0xD800:
            code = 0xE000
        if code <= 0x10FFFF:
            chars[-1] = chr(code)
            return "".join(chars)
        chars.pop()
    return None


_Job = tuple[Callable[[sqlite3.Connection], Any], Future[Any]]


class _Worker:
    """A thread that owns one connection and runs jobs on it; ``group`` makes it commit
    every queued job in one transaction (savepoint per job)."""

    def __init__(self, name: str, opener: Callable[[], sqlite3.Connection], *, group: bool):
        self._opener = opener
        self._conn: sqlite3.Connection | None = opener()
        self._group = group
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self.broken: str | None = None  # the I/O failure of the last write, until one succeeds
        self.recovered: str | None = None
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def submit(self, fn: Callable[[sqlite3.Connection], Any]) -> asyncio.Future[Any]:
        future: Future[Any] = Future()
        self._jobs.put((fn, future))
        return asyncio.wrap_future(future)

    def stop(self) -> None:
        self._jobs.put(None)
        self._thread.join()

    def _note(self, text: str) -> None:
        cause = _io_cause(text) or text
        if self.broken is None:
            log.error("storage: a write failed: %s", cause)
        self.broken = cause

    def _take(self) -> tuple[list[_Job], bool]:
        first = self._jobs.get()
        if first is None:
            return [], True
        jobs = [first]
        if self._group:
            while len(jobs) < _MAX_GROUP:
                try:
                    nxt = self._jobs.get_nowait()
                except queue.Empty:
                    break
                if nxt is None:
                    return jobs, True
                jobs.append(nxt)
        return jobs, False

    def _run(self) -> None:
        stop = False
        while not stop:
            jobs, stop = self._take()
            live = [(fn, f) for fn, f in jobs if f.set_running_or_notify_cancel()]
            if live:
                self._serve(live)
        if self._conn is not None:
            self._conn.close()

    def _serve(self, jobs: list[_Job]) -> None:
        if self._conn is None:
            try:
                self._conn = self._opener()
            except Exception as exc:
                for _, future in jobs:
                    future.set_exception(_storage_error(exc))
                return
        conn = self._conn
        if not self._group:
            for fn, future in jobs:
                try:
                    future.set_result(fn(conn))
                except Exception as exc:
                    future.set_exception(_storage_error(exc))
            return
        results: list[tuple[Future[Any], bool, Any]] = []
        try:
            conn.execute("BEGIN IMMEDIATE")
            for fn, future in jobs:
                conn.execute("SAVEPOINT job")
                try:
                    value = fn(conn)
                except Exception as exc:  # this job alone fails
                    conn.execute("ROLLBACK TO job")
                    conn.execute("RELEASE job")
                    if _io_cause(str(exc)) is not None:
                        self._note(str(exc))
                    results.append((future, False, exc))
                    continue
                if value is False:  # an expectation did not hold: its writes are undone
                    conn.execute("ROLLBACK TO job")
                conn.execute("RELEASE job")
                results.append((future, True, value))
            conn.execute("COMMIT")
        except Exception as exc:  # the group did not commit: nothing of it is durable
            self._note(str(exc))
            log.error("storage: group commit of %d write(s) failed: %s", len(jobs), exc)
            try:
                conn.close()
            finally:
                self._conn = None
            error = _storage_error(exc)
            for _, future in jobs:
                future.set_exception(error)
            return
        if self.broken is not None and any(ok for _, ok, _ in results):
            self.recovered = f"storage writes again after {self.broken} (no restart needed)"
            log.warning("storage: %s", self.recovered)
            self.broken = None
        for future, ok, value in results:
            if ok:
                future.set_result(value)
            else:
                future.set_exception(_storage_error(value))


def _io_cause(text: str) -> str | None:
    if "full" in text:
        return "the disk is full (ENOSPC: no space left on device)"
    if "disk I/O" in text or "readonly" in text:
        return f"an I/O error on the storage device ({text[-160:]})"
    return None


def _storage_error(exc: BaseException) -> BaseException:
    if isinstance(exc, StorageError | BadInputError):
        return exc
    text = str(exc)
    cause = _io_cause(text)
    if cause is not None:
        fix = (
            "free space on the filesystem holding the state directory (`df -h`)"
            if "full" in cause
            else "check the device holding the state directory (`dmesg`, `df -h`)"
        )
        return StorageError(
            f"sqlite3 write failed: {cause}",
            hint=f"{fix}; writes resume by themselves once the cause is gone, no restart "
            "needed; nothing was acknowledged that was not written",
            code="storage.io",
        )
    return StorageError(f"sqlite3 storage failed: {text}")


class SqliteStorage:
    """The Storage protocol on sqlite3. Open with ``await SqliteStorage.open(url)``."""

    def __init__(
        self,
        url: str,
        path: Path,
        lock: DirectoryLock,
        watch: DirectoryWatch,
        *,
        durable: bool,
    ) -> None:
        self._url = url
        self.path = path
        self._dir_lock = lock
        self._watch = watch
        self.durable = durable
        self._closed = False
        self._gone: str | None = None
        self._writer = _Worker("astrid-sqlite-writer", lambda: _connect(path, durable), group=True)
        self._reader = _Worker("astrid-sqlite-reader", lambda: _connect(path, durable), group=False)

    @classmethod
    async def open(cls, url: str, *, durable: bool = True) -> Self:
        directory = parse_sqlite_url(url)
        try:
            directory.parent.mkdir(parents=True, exist_ok=True)
            directory.mkdir(mode=0o700, exist_ok=True)
        except OSError as exc:
            raise StorageError(f"cannot create storage directory {directory}: {exc}") from exc
        lock = DirectoryLock(directory)
        lock.acquire()
        try:
            watch = DirectoryWatch(directory)
        except OSError as exc:
            lock.release()
            raise StorageError(
                f"cannot open storage directory {directory}: {exc}",
                hint="the state directory must be a real directory you own, not a symlink",
            ) from exc
        path = directory / DB_FILE
        try:
            await asyncio.to_thread(cls._prepare, directory, path, durable)
        except BaseException:
            watch.close()
            lock.release()
            raise
        return cls(f"{SCHEME}{directory}", path, lock, watch, durable=durable)

    @staticmethod
    def _prepare(directory: Path, path: Path, durable: bool) -> None:
        foreign = [p.name for p in directory.iterdir() if not p.name.startswith(DB_FILE)]
        if foreign and not path.exists():
            raise StorageError(
                f"storage directory {directory} holds files of another backend "
                f"({', '.join(sorted(foreign)[:3])}): it is not a sqlite3 store",
                hint='an existing SurrealDB store is opened with storage.backend = "surrealdb" '
                "(config.toml); or point the daemon at an empty state directory",
                code="storage.wrong_backend",
            )
        created = not path.exists()
        if path.is_symlink():
            raise StorageError(f"storage file {path} is a symlink", hint="replace it by the file")
        try:
            conn = _connect(path, durable)
        except sqlite3.Error as exc:
            raise StorageError(
                f"cannot open sqlite3 storage {path}: {exc}",
                hint=f"check that {path} is a sqlite3 database written by Astrid",
            ) from exc
        try:
            os.chmod(path, 0o600)
            conn.execute("BEGIN IMMEDIATE")
            for statement in _SCHEMA:
                conn.execute(statement)
            row = conn.execute("SELECT value FROM astrid_store WHERE name = 'backend'").fetchone()
            if row is None:
                conn.execute(
                    "INSERT INTO astrid_store VALUES ('backend', 'sqlite'), ('format', ?)",
                    (_FORMAT,),
                )
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            raise StorageError(
                f"cannot open sqlite3 storage {path}: {exc}",
                hint=f"check that {path} is a sqlite3 database written by Astrid",
            ) from exc
        finally:
            conn.close()
        if created and durable:
            _fsync_dir(directory)

    @property
    def url(self) -> str:
        return self._url

    def health(self) -> list[str]:
        problems: list[str] = []
        if self._gone is not None:
            problems.append(self._gone)
        elif (problem := self._watch.problem()) is not None:
            problems.append(f"the state directory {self._watch.path} {problem}")
        if self._writer.broken is not None:
            problems.append(
                f"storage writes fail: {self._writer.broken}; they resume by themselves once "
                "the cause is gone"
            )
        elif self._writer.recovered is not None:
            problems.append(self._writer.recovered)
        if not self.durable:
            problems.append("storage is not durable: commits are not fsynced (durable=False)")
        return problems

    def _check_open(self) -> None:
        if self._closed:
            raise StorageError("storage is closed", hint="open a new storage instance")

    def _check_directory(self) -> None:
        if self._gone is None:
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

    async def _read(self, fn: Callable[[sqlite3.Connection], Any]) -> Any:
        self._check_open()
        return await self._reader.submit(fn)

    async def _write(self, fn: Callable[[sqlite3.Connection], Any]) -> Any:
        self._check_open()
        self._check_directory()
        return await self._writer.submit(fn)

    async def get(self, namespace: str, key: str) -> JsonValue | None:
        check_namespace(namespace)
        check_key(key)

        def read(conn: sqlite3.Connection) -> str | None:
            row = conn.execute("SELECT v FROM kv WHERE ns = ? AND k = ?", (namespace, key))
            found = row.fetchone()
            return None if found is None else found[0]

        text = await self._read(read)
        return None if text is None else decode_value(text)

    async def put(self, namespace: str, key: str, value: JsonValue) -> None:
        await self.transaction([Put(namespace, key, value)])

    async def delete(self, namespace: str, key: str) -> bool:
        check_namespace(namespace)
        check_key(key)

        def write(conn: sqlite3.Connection) -> bool:
            cur = conn.execute("DELETE FROM kv WHERE ns = ? AND k = ?", (namespace, key))
            return cur.rowcount > 0

        return bool(await self._write(write))

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
        low = max(prefix, start) if start is not None else prefix
        end = _prefix_end(prefix)
        query = "SELECT k, v FROM kv WHERE ns = ? AND k >= ?"
        params: list[Any] = [namespace, low]
        if end is not None:
            query += " AND k < ?"
            params.append(end)
        query += " ORDER BY k"
        if limit is not None:
            query += " LIMIT ?"
            params.append(limit)

        def read(conn: sqlite3.Connection) -> list[tuple[str, str]]:
            return conn.execute(query, params).fetchall()

        rows: list[tuple[str, str]] = await self._read(read)
        # sqlite compares TEXT by bytes (UTF-8), which orders like code points: the same order
        # as Python's str; startswith keeps the prefix exact whatever the range says.
        return [(k, decode_value(v)) for k, v in rows if k.startswith(prefix)]

    async def transaction(self, writes: Sequence[Write], *, expect: Sequence[Expect] = ()) -> bool:
        conditions: list[tuple[str, str, str | None]] = []
        for condition in expect:
            check_namespace(condition.namespace)
            check_key(condition.key)
            wanted = None if condition.value is None else encode_value(condition.value)
            conditions.append((condition.namespace, condition.key, wanted))
        puts: list[tuple[str, str, str]] = []
        steps: list[tuple[bool, list[tuple[str, str, str]] | tuple[str, str]]] = []
        for write in writes:
            if isinstance(write, Put):
                puts.append((write.namespace, write.key, encode_value(write.value)))
                continue
            if not isinstance(write, Delete):  # pyright: ignore[reportUnnecessaryIsInstance]
                raise BadInputError(f"transaction write {write!r} is neither Put nor Delete")
            if puts:
                steps.append((True, puts))
                puts = []
            steps.append((False, (write.namespace, write.key)))
        if puts:
            steps.append((True, puts))

        def apply(conn: sqlite3.Connection) -> bool:
            for namespace, key, wanted in conditions:
                row = conn.execute(
                    "SELECT v FROM kv WHERE ns = ? AND k = ?", (namespace, key)
                ).fetchone()
                if (None if row is None else row[0]) != wanted:
                    return False
            for is_put, payload in steps:
                if is_put:
                    conn.executemany(
                        "INSERT INTO kv (ns, k, v) VALUES (?, ?, ?) "
                        "ON CONFLICT (ns, k) DO UPDATE SET v = excluded.v",
                        payload,  # pyright: ignore[reportArgumentType]
                    )
                else:
                    conn.execute("DELETE FROM kv WHERE ns = ? AND k = ?", payload)
            return True

        return bool(await self._write(apply))

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            await asyncio.to_thread(self._stop)
        finally:
            self._watch.close()
            self._dir_lock.release()

    def _stop(self) -> None:
        self._writer.stop()
        self._reader.stop()
