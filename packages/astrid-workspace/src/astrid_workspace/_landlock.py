"""Linux Landlock through raw syscalls (ctypes), so no binding package is needed.

Landlock lets an unprivileged process drop its own filesystem access: we build a ruleset that
*handles* every filesystem right the running kernel knows, grant some of them beneath a few
directories, and restrict ourselves. Everything not granted is denied, to this process and to
everything it later `exec`s or forks. Rules are bound to inodes, not path strings, so `..`
tricks and symlinks are resolved by the kernel to the real object and checked there.

Network is left unrestricted by default: MCP servers talk HTTP to their own APIs, and Landlock
(ABI >= 4) can only filter TCP by port, not by host, so a port filter would break legitimate
servers without stopping exfiltration over port 443. Egress policy belongs to a layer that can
see hosts. What Landlock can do well is all or nothing: ``deny_tcp`` handles TCP connect and
bind with no port allowed, for a server that needs no network at all (UDP, and so DNS, is
outside what Landlock filters).
"""

from __future__ import annotations

import ctypes
import errno
import os
import stat

TYPE_CHECKING = False  # no `typing` import: the launcher loads this on every command
if TYPE_CHECKING:
    from collections.abc import Iterable

__all__ = ["SandboxError", "SandboxApplied", "landlock_abi", "restrict_self", "NETWORK_ABI"]

# Syscall numbers from the unified table; identical on x86_64 and aarch64.
_SYSCALLS: dict[str, tuple[int, int, int]] = {
    "x86_64": (444, 445, 446),
    "aarch64": (444, 445, 446),
}
_PR_SET_NO_NEW_PRIVS = 38
_LANDLOCK_CREATE_RULESET_VERSION = 1 << 0
_LANDLOCK_RULE_PATH_BENEATH = 1

# Filesystem access rights (include/uapi/linux/landlock.h).
ACCESS_FS_EXECUTE = 1 << 0
ACCESS_FS_WRITE_FILE = 1 << 1
ACCESS_FS_READ_FILE = 1 << 2
ACCESS_FS_READ_DIR = 1 << 3
ACCESS_FS_REMOVE_DIR = 1 << 4
ACCESS_FS_REMOVE_FILE = 1 << 5
ACCESS_FS_MAKE_CHAR = 1 << 6
ACCESS_FS_MAKE_DIR = 1 << 7
ACCESS_FS_MAKE_REG = 1 << 8
ACCESS_FS_MAKE_SOCK = 1 << 9
ACCESS_FS_MAKE_FIFO = 1 << 10
ACCESS_FS_MAKE_BLOCK = 1 << 11
ACCESS_FS_MAKE_SYM = 1 << 12
ACCESS_FS_REFER = 1 << 13  # ABI 2
ACCESS_FS_TRUNCATE = 1 << 14  # ABI 3
ACCESS_FS_IOCTL_DEV = 1 << 15  # ABI 5

_ACCESS_FS_V1 = (1 << 13) - 1  # EXECUTE .. MAKE_SYM
READ_EXECUTE = ACCESS_FS_EXECUTE | ACCESS_FS_READ_FILE | ACCESS_FS_READ_DIR
# The kernel rejects directory-only rights on a rule whose parent_fd is a regular file
# or device (EINVAL), so rules on files are masked to these.
_FILE_RIGHTS = (
    ACCESS_FS_EXECUTE
    | ACCESS_FS_WRITE_FILE
    | ACCESS_FS_READ_FILE
    | ACCESS_FS_TRUNCATE
    | ACCESS_FS_IOCTL_DEV
)

# ABI 6 scopes: a sandboxed server may not signal, or connect to abstract unix sockets of,
# processes outside its own sandbox (e.g. kill the Astrid daemon, talk to a session D-Bus).
SCOPE_ABSTRACT_UNIX_SOCKET = 1 << 0
SCOPE_SIGNAL = 1 << 1

# ABI 4 network rights. Handled with no rule allowing a port: every TCP bind and connect fails.
ACCESS_NET_BIND_TCP = 1 << 0
ACCESS_NET_CONNECT_TCP = 1 << 1
NETWORK_ABI = 4


class SandboxError(RuntimeError):
    """The sandbox could not be applied; the caller must not run the command unsandboxed."""

    def __init__(self, message: str, *, hint: str) -> None:
        super().__init__(f"{message} (hint: {hint})")
        self.hint = hint


class SandboxApplied:
    """What `restrict_self` did: the ABI used and the requested paths that did not exist."""

    __slots__ = ("abi", "skipped")

    def __init__(self, abi: int, skipped: tuple[str, ...]) -> None:
        self.abi = abi
        self.skipped = skipped


class _RulesetAttr(ctypes.Structure):
    # Grows with the ABI; the kernel accepts any prefix covering handled_access_fs.
    _fields_ = (
        ("handled_access_fs", ctypes.c_uint64),
        ("handled_access_net", ctypes.c_uint64),
        ("scoped", ctypes.c_uint64),
    )


class _PathBeneathAttr(ctypes.Structure):
    _pack_ = 1  # __attribute__((packed)) in the uapi header: 12 bytes
    _fields_ = (
        ("allowed_access", ctypes.c_uint64),
        ("parent_fd", ctypes.c_int32),
    )


def _libc() -> ctypes.CDLL:
    libc = ctypes.CDLL(None, use_errno=True)
    libc.syscall.restype = ctypes.c_long
    libc.prctl.restype = ctypes.c_int
    libc.prctl.argtypes = (
        ctypes.c_int,
        ctypes.c_ulong,
        ctypes.c_ulong,
        ctypes.c_ulong,
        ctypes.c_ulong,
    )
    return libc


def _syscall_numbers() -> tuple[int, int, int] | None:
    if os.uname().sysname != "Linux":
        return None
    return _SYSCALLS.get(os.uname().machine)


def landlock_abi() -> int:
    """The Landlock ABI version of the running kernel; 0 when Landlock is unavailable."""
    numbers = _syscall_numbers()
    if numbers is None:
        return 0
    libc = _libc()
    abi = libc.syscall(
        ctypes.c_long(numbers[0]),
        ctypes.c_void_p(None),
        ctypes.c_size_t(0),
        ctypes.c_uint32(_LANDLOCK_CREATE_RULESET_VERSION),
    )
    if abi < 0:
        err = ctypes.get_errno()
        if err in (errno.ENOSYS, errno.EOPNOTSUPP):
            return 0
        raise OSError(err, f"landlock_create_ruleset(VERSION): {os.strerror(err)}")
    return int(abi)


def handled_fs_rights(abi: int) -> int:
    """Every filesystem right the kernel of this ABI can enforce (all are denied by default)."""
    rights = _ACCESS_FS_V1
    if abi >= 2:
        rights |= ACCESS_FS_REFER
    if abi >= 3:
        rights |= ACCESS_FS_TRUNCATE
    if abi >= 5:
        rights |= ACCESS_FS_IOCTL_DEV
    return rights


def _ruleset_attr(abi: int, *, deny_tcp: bool) -> tuple[_RulesetAttr, int]:
    """The ruleset attribute and the size to pass: only the fields this ABI defines."""
    # Unless asked, handled_access_net stays 0: network is not restricted (see above).
    net = ACCESS_NET_BIND_TCP | ACCESS_NET_CONNECT_TCP if deny_tcp else 0
    if abi >= 6:
        scoped = SCOPE_ABSTRACT_UNIX_SOCKET | SCOPE_SIGNAL
        return _RulesetAttr(handled_fs_rights(abi), net, scoped), 3 * 8
    return _RulesetAttr(handled_fs_rights(abi), net, 0), (2 if abi >= NETWORK_ABI else 1) * 8


def _fail(libc_call: str, hint: str) -> SandboxError:
    err = ctypes.get_errno()
    return SandboxError(f"{libc_call} failed: {os.strerror(err)} (errno {err})", hint=hint)


def _add_path_rule(
    libc: ctypes.CDLL, add_rule_nr: int, ruleset_fd: int, path: str, rights: int
) -> bool:
    """Grant `rights` beneath `path`; False when the path does not exist."""
    try:
        # O_PATH follows symlinks: the rule lands on the real inode the path names now.
        fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
    except FileNotFoundError:
        return False
    except OSError as exc:
        raise SandboxError(
            f"cannot open {path!r} to grant access: {exc.strerror}",
            hint="pass only paths the launcher itself can open",
        ) from exc
    try:
        if not stat.S_ISDIR(os.fstat(fd).st_mode):
            rights &= _FILE_RIGHTS
        attr = _PathBeneathAttr(rights, fd)
        rc = libc.syscall(
            ctypes.c_long(add_rule_nr),
            ctypes.c_int(ruleset_fd),
            ctypes.c_int(_LANDLOCK_RULE_PATH_BENEATH),
            ctypes.byref(attr),
            ctypes.c_uint32(0),
        )
        if rc < 0:
            raise _fail(
                f"landlock_add_rule({path!r})",
                "the path may be on a filesystem Landlock cannot label; drop it from the list",
            )
    finally:
        os.close(fd)
    return True


def restrict_self(
    read_paths: Iterable[str], write_paths: Iterable[str], *, deny_tcp: bool = False
) -> SandboxApplied:
    """Confine this process (and whatever it execs) to the given paths. Irreversible.

    Beneath `read_paths`: read files, list directories, execute. Beneath `write_paths`: every
    handled right. Nothing else on the filesystem is reachable. With `deny_tcp`, no TCP
    connection can be opened or accepted either. Raises `SandboxError` if any step fails (or
    the kernel cannot deny TCP when asked to); the process must then not go on to run
    untrusted code.
    """
    numbers = _syscall_numbers()
    try:
        abi = landlock_abi()
    except OSError as exc:
        raise SandboxError(
            f"Landlock probe failed: {exc}", hint="check dmesg for Landlock"
        ) from exc
    if numbers is None or abi == 0:
        raise SandboxError(
            "kernel has no Landlock",
            hint="needs Linux >= 5.13 on x86_64/aarch64 with CONFIG_SECURITY_LANDLOCK=y and "
            "'landlock' in the lsm= boot parameter",
        )
    if deny_tcp and abi < NETWORK_ABI:
        raise SandboxError(
            f"the kernel's Landlock (ABI {abi}) cannot deny network access",
            hint=f"needs Landlock ABI >= {NETWORK_ABI} (Linux >= 6.7), or allow the server network",
        )
    create_nr, add_rule_nr, restrict_nr = numbers
    libc = _libc()
    handled = handled_fs_rights(abi)
    attr, size = _ruleset_attr(abi, deny_tcp=deny_tcp)
    ruleset_fd = int(
        libc.syscall(
            ctypes.c_long(create_nr),
            ctypes.byref(attr),
            ctypes.c_size_t(size),
            ctypes.c_uint32(0),
        )
    )
    if ruleset_fd < 0:
        raise _fail("landlock_create_ruleset", "check the kernel's Landlock ABI and its lsm=")
    skipped: list[str] = []
    try:
        grants = [(p, READ_EXECUTE) for p in read_paths] + [(p, handled) for p in write_paths]
        for path, rights in grants:
            if not _add_path_rule(libc, add_rule_nr, ruleset_fd, path, rights):
                skipped.append(path)
        # Required by landlock_restrict_self for unprivileged callers; it also stops setuid
        # binaries from regaining privileges inside the sandbox.
        if libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
            raise _fail("prctl(PR_SET_NO_NEW_PRIVS)", "a seccomp or LSM policy blocks prctl")
        rc = libc.syscall(ctypes.c_long(restrict_nr), ctypes.c_int(ruleset_fd), ctypes.c_uint32(0))
        if rc < 0:
            raise _fail(
                "landlock_restrict_self",
                "too many nested Landlock domains (max 16), or a seccomp filter blocks it",
            )
    finally:
        os.close(ruleset_fd)
    return SandboxApplied(abi=abi, skipped=tuple(skipped))
