"""The daemon's files under the state directory, and the single-instance lock.

``$ASTRID_HOME`` (default ``~/.astrid``) holds ``daemon.port``, ``daemon.token`` (0600),
``daemon.pid`` and ``daemon.lock``. The lock is an fcntl lock held for the daemon's lifetime:
the kernel drops it when the process dies, so a killed daemon never blocks the next start.
"""

from __future__ import annotations

import fcntl
import hmac
import os
import secrets
import stat
from dataclasses import dataclass
from pathlib import Path

from astrid_core import ConfigError, StorageError

from .protocol import LOCK_FILE, PID_FILE, PORT_FILE, TOKEN_FILE

__all__ = ["StatePaths", "state_dir", "DaemonLock", "write_private", "read_token", "tokens_equal"]


def state_dir(explicit: str | os.PathLike[str] | None = None) -> Path:
    """The state directory: explicit argument, else $ASTRID_HOME, else ~/.astrid."""
    if explicit is not None:
        return Path(explicit).expanduser().absolute()
    env = os.environ.get("ASTRID_HOME")
    if env:
        return Path(env).expanduser().absolute()
    return Path.home() / ".astrid"


@dataclass(frozen=True)
class StatePaths:
    root: Path

    @property
    def port(self) -> Path:
        return self.root / PORT_FILE

    @property
    def token(self) -> Path:
        return self.root / TOKEN_FILE

    @property
    def lock(self) -> Path:
        return self.root / LOCK_FILE

    @property
    def pid(self) -> Path:
        return self.root / PID_FILE

    @property
    def log(self) -> Path:
        return self.root / "logs" / "astridd.log"

    def ensure(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True, mode=0o700)


def write_private(path: Path, text: str) -> None:
    """Write ``text`` atomically with mode 0600 (never readable by others, even briefly)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    try:
        os.write(fd, text.encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)


def new_token() -> str:
    return secrets.token_urlsafe(32)


def read_token(path: Path) -> str:
    """Read the daemon token, refusing a token file others can read."""
    try:
        info = path.stat()
    except FileNotFoundError as exc:
        raise ConfigError(
            f"daemon token file {path} does not exist",
            hint="start the daemon with `astrid daemon run` (it creates the token)",
        ) from exc
    if info.st_mode & 0o077:
        raise ConfigError(
            f"daemon token file {path} is readable by group or others "
            f"(mode {stat.S_IMODE(info.st_mode):o})",
            hint=f"run `chmod 600 {path}` and restart the daemon to rotate the token",
        )
    return path.read_text().strip()


def tokens_equal(presented: str, expected: str) -> bool:
    return hmac.compare_digest(presented.encode(), expected.encode())


class DaemonLock:
    """Exclusive lock on the state directory: one daemon per ASTRID_HOME."""

    def __init__(self, paths: StatePaths) -> None:
        self._paths = paths
        self._fd: int | None = None

    def acquire(self) -> None:
        self._paths.ensure()
        fd = os.open(self._paths.lock, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            holder = self.holder_pid()
            raise StorageError(
                f"another astridd (pid {holder or 'unknown'}) already owns {self._paths.root}",
                hint="use `astrid daemon status` / `astrid daemon stop`, or set ASTRID_HOME "
                "to a different directory",
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self._fd = fd

    def holder_pid(self) -> int | None:
        try:
            text = self._paths.lock.read_text().strip()
        except OSError:
            return None
        return int(text) if text.isdigit() else None

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None
