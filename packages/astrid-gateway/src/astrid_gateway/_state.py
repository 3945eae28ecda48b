"""The daemon's files under the state directory, and the single-instance lock.

``$ASTRID_HOME`` (default ``~/.astrid``) holds ``daemon.port``, ``daemon.token`` (0600),
``daemon.pid`` and ``daemon.lock``. The lock is a flock held for the daemon's lifetime: the
kernel drops it when the process dies, so a killed daemon never blocks the next start.

Every one of these files is opened with ``O_NOFOLLOW`` and checked to be a regular file owned
by us: the directory is private (0700, refused when group/others can write it), so a file we
find there was written by us, and a planted symbolic link can neither be followed to truncate
its target nor feed us another file's contents.

``daemon.port`` records the port, the daemon's pid and the identity (device, inode) of the
``daemon.lock`` it holds. A client believes it only when that pid holds that lock *now* (read
from ``/proc/locks``) and owns every socket listening on that port (``/proc/net/tcp*`` inode ->
``/proc/<pid>/fd``). Other users cannot forge any of this: they can bind a port a dead daemon
left behind, but not hold our lock nor plant a socket in our daemon's fd table.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hmac
import json
import os
import secrets
import stat
import sys
from dataclasses import dataclass
from pathlib import Path

from astrid_core import ConfigError, StorageError

from .protocol import LOCK_FILE, PID_FILE, PORT_FILE, TOKEN_FILE

__all__ = [
    "StatePaths",
    "state_dir",
    "DaemonLock",
    "PortRecord",
    "write_private",
    "read_private",
    "read_token",
    "tokens_equal",
    "check_private_dir",
    "lock_holders",
    "socket_owner_problem",
    "daemon_proof",
    "client_proof",
]


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
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def log(self) -> Path:
        return self.logs / "astridd.log"

    def ensure(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True, mode=0o700)

    def ensure_logs(self) -> None:
        """``logs/`` exists and is 0700 (an existing, looser one is tightened)."""
        self.ensure()
        self.logs.mkdir(exist_ok=True, mode=0o700)
        info = self.logs.lstat()
        if not stat.S_ISDIR(info.st_mode):
            raise ConfigError(
                f"{self.logs} is not a directory",
                hint=f"remove it (`rm {self.logs}`); the daemon creates the folder",
            )
        if stat.S_IMODE(info.st_mode) != 0o700:
            os.chmod(self.logs, 0o700)


# ---------------------------------------------------------------------- permissions


def check_private_dir(path: Path, what: str = "ASTRID_HOME") -> None:
    """Refuse a directory other users could write to, or that another user owns: whoever can
    write there can replace the token, the port file or the keys."""
    try:
        info = path.stat()
    except FileNotFoundError:
        return
    if not stat.S_ISDIR(info.st_mode):
        raise ConfigError(f"{what} {path} is not a directory")
    if info.st_uid != os.geteuid():
        raise ConfigError(
            f"{what} {path} belongs to uid {info.st_uid}, not to you (uid {os.geteuid()})",
            hint=f"run `chown {os.geteuid()} {path}` or point ASTRID_HOME at a folder of yours",
        )
    if info.st_mode & 0o022:
        raise ConfigError(
            f"{what} {path} is writable by group or others (mode {stat.S_IMODE(info.st_mode):o})",
            hint=f"run `chmod 700 {path}`",
        )


def _open_nofollow(path: Path, flags: int, mode: int = 0o600) -> int:
    try:
        return os.open(path, flags | os.O_NOFOLLOW | os.O_CLOEXEC, mode)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise ConfigError(
                f"{path} is a symbolic link; Astrid never follows links for its state files",
                hint=f"remove it (`rm {path}`); the daemon recreates the file",
            ) from None
        raise


def _check_own_regular(fd: int, path: Path) -> os.stat_result:
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        raise ConfigError(f"{path} is not a regular file", hint=f"remove it (`rm {path}`)")
    if info.st_uid != os.geteuid():
        raise ConfigError(
            f"{path} belongs to uid {info.st_uid}, not to you (uid {os.geteuid()})",
            hint=f"remove it (`rm {path}`) and check who else writes to {path.parent}",
        )
    return info


def read_private(path: Path, limit: int = 4096) -> str | None:
    """A state file's text (None when absent), never through a link, only if it is ours."""
    try:
        fd = _open_nofollow(path, os.O_RDONLY | os.O_NONBLOCK)
    except FileNotFoundError:
        return None
    try:
        _check_own_regular(fd, path)
        return os.read(fd, limit).decode(errors="replace")
    finally:
        os.close(fd)


def write_private(path: Path, text: str) -> None:
    """Write ``text`` atomically with mode 0600 (never readable by others, even briefly).

    The temporary name is created with O_EXCL | O_NOFOLLOW, and ``rename`` replaces a link at
    ``path`` itself, never its target."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with contextlib.suppress(FileNotFoundError):
        os.unlink(tmp)
    fd = _open_nofollow(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL)
    try:
        os.write(fd, text.encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)


def new_token() -> str:
    return secrets.token_urlsafe(32)


def read_token(path: Path) -> str:
    """Read the daemon token, refusing a token file others can read (or a link, or not ours)."""
    try:
        fd = _open_nofollow(path, os.O_RDONLY | os.O_NONBLOCK)
    except FileNotFoundError as exc:
        raise ConfigError(
            f"daemon token file {path} does not exist",
            hint="start the daemon with `astrid daemon run` (it creates the token)",
        ) from exc
    try:
        info = _check_own_regular(fd, path)
        if info.st_mode & 0o077:
            raise ConfigError(
                f"daemon token file {path} is readable by group or others "
                f"(mode {stat.S_IMODE(info.st_mode):o})",
                hint=f"run `chmod 600 {path}` and restart the daemon to rotate the token",
            )
        return os.read(fd, 4096).decode().strip()
    finally:
        os.close(fd)


def tokens_equal(presented: str, expected: str) -> bool:
    return hmac.compare_digest(presented.encode(), expected.encode())


# ---------------------------------------------------------------------- proofs

# Both proofs bind the two fresh nonces, the port the client dialled and the daemon's pid, and
# name their direction: a proof cannot be replayed, reflected, or relayed from a daemon on
# another port (a squatter on a stale port cannot borrow a live daemon's answer).


def _proof(token: str, role: str, client_nonce: str, server_nonce: str, port: int, pid: int) -> str:
    message = f"astrid-gateway-v1|{role}|{client_nonce}|{server_nonce}|{port}|{pid}"
    return hmac.new(token.encode(), message.encode(), "sha256").hexdigest()


def daemon_proof(token: str, client_nonce: str, server_nonce: str, port: int, pid: int) -> str:
    return _proof(token, "daemon", client_nonce, server_nonce, port, pid)


def client_proof(token: str, client_nonce: str, server_nonce: str, port: int, pid: int) -> str:
    return _proof(token, "client", client_nonce, server_nonce, port, pid)


# ---------------------------------------------------------------------- port file


@dataclass(frozen=True)
class PortRecord:
    """What ``daemon.port`` says: where the daemon listens, its pid, and its lock's identity."""

    port: int
    pid: int | None = None
    lock_dev: int | None = None
    lock_ino: int | None = None

    def dumps(self) -> str:
        fields = {"port": self.port, "pid": self.pid, "lock": [self.lock_dev, self.lock_ino]}
        return json.dumps(fields) + "\n"

    @classmethod
    def parse(cls, text: str) -> PortRecord | None:
        text = text.strip()
        if text.isdigit():  # written by an older astridd: a port and nothing to check it by
            return cls(int(text))
        try:
            data = json.loads(text)
            dev, ino = data.get("lock") or [None, None]
            return cls(
                int(data["port"]),
                int(data["pid"]),
                None if dev is None else int(dev),
                None if ino is None else int(ino),
            )
        except (ValueError, TypeError, KeyError, IndexError, AttributeError):
            return None


def lock_holders(lock_path: Path) -> set[int] | None:
    """Pids holding a flock on ``lock_path`` now (from /proc/locks); None where the kernel does
    not tell us (not Linux)."""
    try:
        info = os.lstat(lock_path)
    except FileNotFoundError:
        return set()
    if not stat.S_ISREG(info.st_mode):
        return set()
    try:
        with open("/proc/locks", encoding="ascii", errors="replace") as handle:
            lines = handle.read().splitlines()
    except OSError:
        return None
    wanted = f"{os.major(info.st_dev):02x}:{os.minor(info.st_dev):02x}:{info.st_ino}"
    holders: set[int] = set()
    for line in lines:
        parts = line.split()
        # "1: FLOCK  ADVISORY  WRITE 15077 fe:00:2149715 0 EOF"; "->" marks a blocked waiter
        if len(parts) < 6 or parts[1] == "->" or parts[1] != "FLOCK":
            continue
        if parts[5] == wanted and parts[4].isdigit():
            holders.add(int(parts[4]))
    return holders


# Local addresses whose listener a connection to 127.0.0.1 can reach (as /proc prints them):
# 127.0.0.1 and 0.0.0.0; in tcp6, :: (unless v6-only, which /proc does not show) and
# ::ffff:127.0.0.1. A listener on [::1] or another address cannot receive our connection.
_REACHABLE = {
    "0100007F",
    "00000000",
    "00000000000000000000000000000000",
    "0000000000000000FFFF00000100007F",
}


def _listening_inodes(port: int) -> list[int] | None:
    """Inodes of the sockets listening where a connection to 127.0.0.1:``port`` can land,
    None without /proc."""
    found: list[int] = []
    seen_table = False
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table, encoding="ascii", errors="replace") as handle:
                rows = handle.read().splitlines()[1:]
        except OSError:
            continue
        seen_table = True
        for row in rows:
            parts = row.split()
            if len(parts) < 10 or parts[3] != "0A":  # 0A = LISTEN
                continue
            address, _, local_port = parts[1].partition(":")
            if int(local_port, 16) == port and address.upper() in _REACHABLE:
                found.append(int(parts[9]))
    return found if seen_table else None


def _socket_inodes_of(pid: int) -> set[int] | None:
    fd_dir = Path(f"/proc/{pid}/fd")
    inodes: set[int] = set()
    try:
        names = os.listdir(fd_dir)
    except OSError:
        return None
    for name in names:
        try:
            target = os.readlink(fd_dir / name)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(int(target[8:-1]))
    return inodes


def socket_owner_problem(port: int, pid: int) -> str | None:
    """Why the sockets listening on ``port`` are not all ``pid``'s (None when they are, or
    when this platform cannot tell: the challenge-response still decides)."""
    if not sys.platform.startswith("linux"):
        return None
    listening = _listening_inodes(port)
    if listening is None:
        return None
    if not listening:
        return f"nothing listens on port {port}"
    owned = _socket_inodes_of(pid)
    if owned is None:
        return f"pid {pid} is gone or not ours, so it cannot be what listens on port {port}"
    if any(inode == 0 or inode not in owned for inode in listening):
        return f"port {port} is held by a process other than the daemon (pid {pid})"
    return None


class DaemonLock:
    """Exclusive lock on the state directory: one daemon per ASTRID_HOME."""

    def __init__(self, paths: StatePaths) -> None:
        self._paths = paths
        self._fd: int | None = None
        self.identity: tuple[int, int] | None = None  # (st_dev, st_ino) of the locked file

    def acquire(self) -> None:
        self._paths.ensure()
        check_private_dir(self._paths.root)
        check_private_dir(self._paths.root / "keys", "the keys folder")
        fd = _open_nofollow(self._paths.lock, os.O_RDWR | os.O_CREAT | os.O_NONBLOCK)
        try:
            info = _check_own_regular(fd, self._paths.lock)
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            holder = self.holder_pid()
            raise StorageError(
                f"another astridd (pid {holder or 'unknown'}) already owns {self._paths.root}",
                hint="use `astrid daemon status` / `astrid daemon stop`, or set ASTRID_HOME "
                "to a different directory",
            ) from None
        except BaseException:
            os.close(fd)
            raise
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self._fd = fd
        self.identity = (info.st_dev, info.st_ino)
        # Whatever port/pid files are here were left by a daemon that died without cleaning
        # up (we hold the lock now): remove them before anyone dials a port someone else
        # may have taken since.
        for stale in (self._paths.port, self._paths.pid):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(stale)

    def holder_pid(self) -> int | None:
        try:
            text = read_private(self._paths.lock)
        except (OSError, ConfigError):
            return None
        text = (text or "").strip()
        return int(text) if text.isdigit() else None

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None
