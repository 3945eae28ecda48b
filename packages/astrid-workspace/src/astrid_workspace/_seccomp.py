"""A seccomp filter built in Python: a classic BPF program installed with prctl via ctypes.

Standard library only: the in-sandbox launcher imports it with ``python -S``. The filter
refuses what no tool needs and what widens the attack surface of the kernel or of the
sandbox itself: tracing other processes, io_uring (a second syscall path seccomp cannot see),
eBPF, perf, userfaultfd (a race-widening primitive), the kernel keyring, new mounts and new
namespaces (so the sandbox cannot be rebuilt from inside), module and kexec loading, and
sockets other than IP stream/datagram ones (no unix, netlink, packet or raw sockets).

AF_INET/AF_INET6 stay: a command reaches Astrid's egress proxy on loopback inside its own
network namespace, which has no route anywhere else. ``socket(AF_UNIX)`` is refused: Landlock
does not govern connecting to a pathname socket, and a host server's socket inside a granted
directory (the workspace, a declared path) would otherwise be reachable through the bind mount
(tmux, docker.sock, D-Bus, ssh-agent). ``socketpair`` stays (a separate syscall): runtimes use
it for their own children (node's stdio, asyncio's self-pipe). The bridge to the proxy, which
needs AF_UNIX, starts before the filter is installed. A foreign architecture's syscalls
(i386 via int 0x80, x32) kill the process: their numbers mean other calls, which a filter
written for this one would let through.
"""

from __future__ import annotations

import ctypes
import errno
import os

__all__ = ["SeccompError", "seccomp_supported", "install_filter", "build_program", "DENIED"]

_AUDIT_ARCH = {"x86_64": 0xC000003E, "aarch64": 0xC00000B7}

# Syscall numbers: x86_64 from asm/unistd_64.h, aarch64 from asm-generic/unistd.h.
_NUMBERS: dict[str, dict[str, int]] = {
    "x86_64": {
        "ptrace": 101, "process_vm_readv": 310, "process_vm_writev": 311, "pidfd_getfd": 438,
        "io_uring_setup": 425, "io_uring_enter": 426, "io_uring_register": 427,
        "bpf": 321, "perf_event_open": 298, "userfaultfd": 323,
        "keyctl": 250, "add_key": 248, "request_key": 249,
        "mount": 165, "umount2": 166, "pivot_root": 155, "chroot": 161,
        "unshare": 272, "setns": 308,
        "open_tree": 428, "move_mount": 429, "fsopen": 430, "fsconfig": 431,
        "fsmount": 432, "fspick": 433, "mount_setattr": 442,
        "name_to_handle_at": 303, "open_by_handle_at": 304,
        "kexec_load": 246, "kexec_file_load": 320,
        "init_module": 175, "finit_module": 313, "delete_module": 176,
        "acct": 163, "swapon": 167, "swapoff": 168, "reboot": 169,
        "socket": 41, "clone": 56, "clone3": 435,
    },
    "aarch64": {
        "ptrace": 117, "process_vm_readv": 270, "process_vm_writev": 271, "pidfd_getfd": 438,
        "io_uring_setup": 425, "io_uring_enter": 426, "io_uring_register": 427,
        "bpf": 280, "perf_event_open": 241, "userfaultfd": 282,
        "keyctl": 219, "add_key": 217, "request_key": 218,
        "mount": 40, "umount2": 39, "pivot_root": 41, "chroot": 51,
        "unshare": 97, "setns": 268,
        "open_tree": 428, "move_mount": 429, "fsopen": 430, "fsconfig": 431,
        "fsmount": 432, "fspick": 433, "mount_setattr": 442,
        "name_to_handle_at": 264, "open_by_handle_at": 265,
        "kexec_load": 104, "kexec_file_load": 294,
        "init_module": 105, "finit_module": 273, "delete_module": 106,
        "acct": 89, "swapon": 224, "swapoff": 225, "reboot": 142,
        "socket": 198, "clone": 220, "clone3": 435,
    },
}  # fmt: skip
_SPECIAL = ("socket", "clone", "clone3")
DENIED: tuple[str, ...] = tuple(n for n in _NUMBERS["x86_64"] if n not in _SPECIAL)

_AF_UNIX, _AF_INET, _AF_INET6 = 1, 2, 10
_SOCK_TYPE_MASK, _SOCK_RAW, _SOCK_PACKET = 0xF, 3, 10
# CLONE_NEWNS | NEWCGROUP | NEWUTS | NEWIPC | NEWUSER | NEWPID | NEWNET | NEWTIME
_CLONE_NEW_NAMESPACES = (
    0x00020000 | 0x02000000 | 0x04000000 | 0x08000000 | 0x10000000 | 0x20000000 | 0x40000000 | 0x80
)
_X32_SYSCALL_BIT = 0x40000000

# BPF opcodes (linux/filter.h, linux/bpf_common.h) and seccomp return values.
_LD_W_ABS, _JEQ_K, _JGE_K, _JSET_K, _AND_K, _RET_K = 0x20, 0x15, 0x35, 0x45, 0x54, 0x06
_RET_ALLOW, _RET_ERRNO, _RET_KILL_PROCESS = 0x7FFF0000, 0x00050000, 0x80000000
# struct seccomp_data: int nr; u32 arch; u64 ip; u64 args[6] (low word first: little endian)
_OFF_NR, _OFF_ARCH, _OFF_ARG0, _OFF_ARG1 = 0, 4, 16, 24
_PR_SET_NO_NEW_PRIVS, _PR_SET_SECCOMP, _SECCOMP_MODE_FILTER = 38, 22, 2


class SeccompError(RuntimeError):
    """The filter could not be installed; the caller must not run the command without it."""


class _SockFilter(ctypes.Structure):
    _fields_ = (
        ("code", ctypes.c_uint16),
        ("jt", ctypes.c_uint8),
        ("jf", ctypes.c_uint8),
        ("k", ctypes.c_uint32),
    )


class _SockFprog(ctypes.Structure):
    _fields_ = (("len", ctypes.c_ushort), ("filter", ctypes.POINTER(_SockFilter)))


# An instruction whose jump targets are labels ("" = next instruction), resolved by _assemble.
_Insn = tuple[int, str, str, int]


def seccomp_supported() -> bool:
    return os.uname().sysname == "Linux" and os.uname().machine in _AUDIT_ARCH


def build_program(machine: str | None = None) -> list[tuple[int, int, int, int]]:
    """The filter as (code, jt, jf, k) tuples for `machine` (default: this one)."""
    machine = machine or os.uname().machine
    if machine not in _AUDIT_ARCH:
        raise SeccompError(f"no seccomp filter for the {machine} architecture")
    nr = _NUMBERS[machine]
    body: list[tuple[str, _Insn]] = [
        ("", (_LD_W_ABS, "", "", _OFF_ARCH)),
        ("", (_JEQ_K, "", "kill", _AUDIT_ARCH[machine])),
        ("", (_LD_W_ABS, "", "", _OFF_NR)),
    ]
    if machine == "x86_64":
        body.append(("", (_JGE_K, "eperm", "", _X32_SYSCALL_BIT)))
    body += [("", (_JEQ_K, "eperm", "", nr[name])) for name in DENIED]
    body += [
        ("", (_JEQ_K, "enosys", "", nr["clone3"])),  # glibc then falls back to clone
        ("", (_JEQ_K, "socket", "", nr["socket"])),
        ("", (_JEQ_K, "clone", "", nr["clone"])),
        ("", (_RET_K, "", "", _RET_ALLOW)),
        ("socket", (_LD_W_ABS, "", "", _OFF_ARG0)),
        ("", (_JEQ_K, "eperm", "", _AF_UNIX)),
        ("", (_JEQ_K, "socktype", "", _AF_INET)),
        ("", (_JEQ_K, "socktype", "", _AF_INET6)),
        ("", (_RET_K, "", "", _RET_ERRNO | errno.EAFNOSUPPORT)),
        ("socktype", (_LD_W_ABS, "", "", _OFF_ARG1)),
        ("", (_AND_K, "", "", _SOCK_TYPE_MASK)),
        ("", (_JEQ_K, "eperm", "", _SOCK_RAW)),
        ("", (_JEQ_K, "eperm", "", _SOCK_PACKET)),
        ("", (_RET_K, "", "", _RET_ALLOW)),
        ("clone", (_LD_W_ABS, "", "", _OFF_ARG0)),
        ("", (_JSET_K, "eperm", "", _CLONE_NEW_NAMESPACES)),
        ("allow", (_RET_K, "", "", _RET_ALLOW)),
        ("eperm", (_RET_K, "", "", _RET_ERRNO | errno.EPERM)),
        ("enosys", (_RET_K, "", "", _RET_ERRNO | errno.ENOSYS)),
        ("kill", (_RET_K, "", "", _RET_KILL_PROCESS)),
    ]
    return _assemble(body)


def _assemble(body: list[tuple[str, _Insn]]) -> list[tuple[int, int, int, int]]:
    where = {label: i for i, (label, _) in enumerate(body) if label}
    program: list[tuple[int, int, int, int]] = []
    for i, (_, (code, jt, jf, k)) in enumerate(body):

        def offset(label: str, i: int = i) -> int:
            if not label:
                return 0
            distance = where[label] - i - 1
            if not 0 <= distance <= 255:
                raise SeccompError(f"BPF jump to {label} out of range")
            return distance

        program.append((code, offset(jt), offset(jf), k))
    return program


def install_filter() -> None:
    """Install the filter on this thread (the launcher is single-threaded) and its children."""
    program = build_program()
    filters = (_SockFilter * len(program))(*(_SockFilter(*insn) for insn in program))
    fprog = _SockFprog(len(program), filters)
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl.restype = ctypes.c_int
    if libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
        err = ctypes.get_errno()
        raise SeccompError(f"prctl(PR_SET_NO_NEW_PRIVS) failed: errno {err}")
    if libc.prctl(_PR_SET_SECCOMP, _SECCOMP_MODE_FILTER, ctypes.byref(fprog), 0, 0) != 0:
        err = ctypes.get_errno()
        raise SeccompError(f"prctl(PR_SET_SECCOMP) failed: errno {err}")
