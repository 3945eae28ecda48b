"""Confinement of every process the agent causes: bubblewrap, then Landlock + seccomp inside.

`confined_argv` turns ``command args...`` into the argv that runs it confined:

    [sh -c 'join the pids cgroup'] bwrap <namespaces, mounts> -- python -E -s -S _launcher.py
        <Landlock grants, rlimits, --seccomp, --bridge> -- command args...

bubblewrap gives the process new user (where unprivileged), mount, pid, ipc, uts, cgroup and
network namespaces: it sees only the files mounted for it, only its own processes (the whole
tree dies with the namespace's init when the command ends, is killed or its parent dies), no
host network (no route out; abstract unix sockets are per network namespace) and no host unix
socket (private /tmp, /run, $XDG_RUNTIME_DIR, an empty home). The launcher then restricts
itself with Landlock (a second, inode-based layer), sets rlimits, installs the seccomp filter
and execs the command. ``mode = "landlock"`` (an admin's explicit choice) skips bubblewrap and
is reported as weaker.
"""

from __future__ import annotations

import contextlib
import functools
import os
import shutil
import sys
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from astrid_core import AstridError

from ._etc import etc_view
from ._grants import SYSTEM_READ_PATHS, SYSTEM_WRITE_PATHS, runtime_read_paths, shell_read_paths
from ._landlock import NETWORK_ABI, landlock_abi
from ._native import NATIVE_INSIDE, native_launcher, native_status, seccomp_hex
from ._protect import PROTECTED_PATHS, protected_bind_targets
from ._seccomp import seccomp_supported

__all__ = [
    "Confinement",
    "Limits",
    "Layers",
    "SandboxUnavailable",
    "confined_argv",
    "confinement_layers",
    "process_argv",
    "sandbox_summary",
    "bwrap_path",
    "PROTECTED_PATHS",
    "HOME_SECRETS",
    "PROXY_PORT",
    "PROXY_SOCKET_INSIDE",
]

SandboxMode = Literal["bwrap", "landlock"]
NetworkMode = Literal["none", "proxy", "host"]

# Credentials in a home directory; masked (empty) wherever they fall inside what is mounted,
# e.g. a workspace that is the home directory itself.
HOME_SECRETS = (
    ".ssh",
    ".gnupg",
    ".aws",
    ".azure",
    ".kube",
    ".docker",
    ".config/gcloud",
    ".config/gh",
    ".netrc",
    ".git-credentials",
    ".pypirc",
    ".npmrc",
    ".password-store",
    ".local/share/keyrings",
    ".bash_history",
)
# The proxy inside every sandbox: its socket in the sandbox's private /run, bridged to this
# loopback port of the sandbox's own network namespace.
PROXY_PORT = 3128
PROXY_SOCKET_INSIDE = "/run/astrid-proxy.sock"
_PRIVATE_TMP = ("/tmp", "/var/tmp", "/dev/shm")  # noqa: S108 - private tmpfs in the sandbox
_SYSTEM_DIRS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/opt")
_LAUNCHER = Path(__file__).with_name("_launcher.py")
_DEBIAN_PACKAGE = "bubblewrap"


class SandboxUnavailable(AstridError):
    """The sandbox the configuration asks for cannot be built on this machine."""

    code = "sandbox.unavailable"
    default_hint = (
        f"install bubblewrap (Debian/Ubuntu: apt-get install {_DEBIAN_PACKAGE}), or let an "
        'admin choose the weaker sandbox = "landlock" in [security]'
    )


@dataclass(frozen=True)
class Limits:
    """Resource limits of a confined command (rlimits; a pids cgroup where one is writable)."""

    processes: int = 512
    memory_bytes: int = 8 * 1024**3  # RLIMIT_DATA: what it writes, not what it maps
    file_bytes: int = 8 * 1024**3
    cpu_seconds: int | None = None
    open_files: int = 4096

    def launcher_options(self) -> list[str]:
        options = [
            f"--rlimit=nproc={self.processes}",
            f"--rlimit=data={self.memory_bytes}",
            f"--rlimit=fsize={self.file_bytes}",
            f"--rlimit=nofile={self.open_files}",
        ]
        if self.cpu_seconds is not None:
            options.append(f"--rlimit=cpu={self.cpu_seconds}")
        return options


@dataclass(frozen=True)
class Confinement:
    """What a confined command may see and do."""

    mode: SandboxMode = "bwrap"
    workspace: str | None = None  # read-write, except PROTECTED_PATHS
    read_paths: tuple[str, ...] = ()
    write_paths: tuple[str, ...] = ()
    network: NetworkMode = "none"
    proxy_socket: str | None = None  # the host path of the egress proxy (network = "proxy")
    home_entries: tuple[str, ...] = ()  # read-only from the host's home, e.g. ".gitconfig"
    deny_paths: tuple[str, ...] = ()  # masked (empty) wherever they are mounted
    shell: bool = False  # the command is a shell: the programs on its PATH are readable
    limits: Limits = field(default_factory=Limits)
    allow_unsandboxed: bool = False  # landlock mode on a kernel without Landlock only


@dataclass(frozen=True)
class Layers:
    """The layers in force for one confined command, and why any is missing (`status`)."""

    namespaces: bool
    landlock_abi: int
    seccomp: bool
    network: NetworkMode
    missing: tuple[str, ...] = ()
    launcher: str = ""  # "native launcher", or "Python launcher (why)"

    def describe(self) -> str:
        parts = ["namespaces (bubblewrap)" if self.namespaces else "no namespaces"]
        parts.append(f"Landlock ABI {self.landlock_abi}" if self.landlock_abi else "no Landlock")
        parts.append("seccomp" if self.seccomp else "no seccomp")
        parts.append(f"network: {self.network}")
        if self.launcher:
            parts.append(self.launcher)
        text = ", ".join(parts)
        return f"{text} ({'; '.join(self.missing)})" if self.missing else text


def bwrap_path() -> str | None:
    return shutil.which("bwrap", path=os.defpath + os.pathsep + "/usr/bin:/usr/local/bin")


def confinement_layers(confinement: Confinement) -> Layers:
    """What `confined_argv` would put in force for `confinement` on this machine."""
    missing: list[str] = []
    abi = _abi()
    namespaces = confinement.mode == "bwrap" and bwrap_path() is not None
    if confinement.mode == "landlock":
        missing.append('sandbox = "landlock" (admin): no namespaces, host network and sockets')
    elif not namespaces:
        missing.append(f"bwrap not installed (Debian package {_DEBIAN_PACKAGE}): refused")
    if abi == 0:
        missing.append("the kernel has no Landlock")
    seccomp = seccomp_supported()
    if not seccomp:
        missing.append("no seccomp filter for this architecture")
    if namespaces and os.geteuid() == 0 and _pids_cgroup_root() is None:
        missing.append("no writable pids cgroup: root is exempt from RLIMIT_NPROC")
    network = confinement.network
    if confinement.mode == "landlock" and network == "proxy":
        network = "host"  # what a caller gets there instead (confined_argv refuses "proxy")
    launcher = native_status() if namespaces else ""
    return Layers(namespaces, abi, seccomp, network, tuple(missing), launcher)


def sandbox_summary(mode: SandboxMode = "bwrap") -> str:
    """One line for `status`: the layers a confined process gets on this machine, or why
    confined processes are refused."""
    layers = confinement_layers(Confinement(mode=mode))
    if mode == "bwrap" and not layers.namespaces:
        return f"REFUSED (nothing confined runs): {layers.describe()}"
    network = "none or proxy" if mode == "bwrap" else "none or host"
    return layers.describe().replace("network: none", f"network: {network}")


def _abi() -> int:
    try:
        return landlock_abi()
    except OSError:
        return 0


def confined_argv(
    executable: str, args: Sequence[str], confinement: Confinement, *, cwd: str | None = None
) -> list[str]:
    """The argv that runs `executable args...` confined. Raises `SandboxUnavailable`."""
    if confinement.mode == "landlock" and confinement.network == "proxy":
        # Without a network namespace the command has the host's network: HTTP(S)_PROXY
        # would be a suggestion it may ignore, not a boundary.
        raise SandboxUnavailable(
            'network = "proxy" needs the bubblewrap sandbox: under sandbox = "landlock" the '
            "command would have the host's network, and the proxy could be bypassed",
            hint='use network = "none" (or the admin\'s explicit "host") with sandbox = '
            '"landlock", or let an admin set [security] sandbox = "bwrap"',
        )
    if confinement.mode == "landlock":
        return _launcher_argv(executable, args, confinement)
    bwrap = bwrap_path()
    if bwrap is None:
        raise SandboxUnavailable(
            "cannot confine the command: bubblewrap (bwrap) is not installed, and every "
            "process the agent starts runs inside it; nothing was run"
        )
    native = native_launcher()
    launcher = _launcher_argv(executable, args, confinement, native=native is not None)
    options = _bwrap_options(executable, confinement, cwd, native=native)
    argv = [bwrap, *options, "--", *launcher]
    return _in_pids_cgroup(argv, confinement.limits.processes)


def _launcher_argv(
    executable: str, args: Sequence[str], c: Confinement, *, native: bool = False
) -> list[str]:
    # -E -s -S: no PYTHON* variables, no site-packages: nothing on the host's Python path can
    # inject code into the process that is about to confine itself, and it starts fast.
    # The real interpreter, not a venv's symlink to it: -S needs no venv, and the venv's
    # directory is not mounted in the sandbox unless the command needs it.
    python = _real(sys.executable) if c.mode == "bwrap" else sys.executable
    argv = [NATIVE_INSIDE] if native else [python, "-E", "-s", "-S", str(_LAUNCHER)]
    reads = [*c.read_paths, *([c.workspace] if c.workspace else [])]
    writes = [*c.write_paths, *([c.workspace] if c.workspace else [])]
    if c.mode == "bwrap":
        # The host lists every grant (it mounts the same paths), so the launcher discovers
        # nothing and starts faster.
        reads = [*SYSTEM_READ_PATHS, *_runtime_reads(executable), *reads]
        if c.shell:
            reads += _path_programs()
        writes = [*SYSTEM_WRITE_PATHS, *writes, *_PRIVATE_TMP]  # private tmpfs in the sandbox
        if not native:  # the native launcher only ever takes granted lists
            argv.append("--granted")
    argv += [f"--read={p}" for p in dict.fromkeys(reads)]
    argv += [f"--write={p}" for p in dict.fromkeys(writes)]
    if c.shell and not native:
        argv.append("--shell")
    if c.mode == "bwrap":
        argv += ["--landlock-optional", *c.limits.launcher_options()]
        if native:
            argv.append(f"--seccomp-bpf={seccomp_hex()}")  # the same program, built here
        elif seccomp_supported():
            argv.append("--seccomp")
        if c.network == "proxy":
            argv.append(f"--bridge={PROXY_PORT}={PROXY_SOCKET_INSIDE}")
        # The network namespace already denies it; Landlock repeats it where it can.
        if c.network == "none" and _abi() >= NETWORK_ABI:
            argv.append("--no-network")
    else:
        if c.allow_unsandboxed:
            argv.append("--allow-unsandboxed")
        if c.network == "none":
            argv.append("--no-network")
    return [*argv, "--", executable, *args]


def _runtime_reads(executable: str) -> list[str]:
    # Cached per (executable, PATH) in this process: the launcher's grants and the mounts
    # both need it, and every command would pay for the install-prefix probes again.
    key = (executable, os.environ.get("PATH", ""))
    if _RUNTIME_READS.get("key") != key:
        _RUNTIME_READS["key"] = key
        _RUNTIME_READS["value"] = runtime_read_paths(executable)
    return list(_RUNTIME_READS["value"])


_RUNTIME_READS: dict[str, Any] = {}


def _real(path: str) -> str:
    return os.path.realpath(os.path.expanduser(path))


def _bwrap_options(
    executable: str, c: Confinement, cwd: str | None, *, native: str | None = None
) -> list[str]:
    opts = [
        "--unshare-user-try",
        "--unshare-pid",
        "--unshare-ipc",
        "--unshare-uts",
        "--unshare-cgroup-try",
        "--unshare-net",
        "--die-with-parent",
        "--new-session",
        "--hostname",
        "astrid-sandbox",
    ]
    if c.network == "host":
        opts.remove("--unshare-net")
    opts += [*_system_mounts(), *_etc_mounts()]
    opts += ["--proc", "/proc", "--dev", "/dev", "--tmpfs", "/run"]
    if native is not None:
        opts += ["--ro-bind", native, NATIVE_INSIDE]
    for directory in _PRIVATE_TMP[:2]:  # /dev/shm is part of the private /dev already
        opts += ["--tmpfs", directory]
    runtime_dir = os.environ.get("XDG_RUNTIME_DIR")
    if runtime_dir and os.path.isabs(runtime_dir):
        opts += ["--tmpfs", runtime_dir]
    opts += _area_mounts(executable, c, python_launcher=native is None)
    opts += _protected_mounts(c)
    bound = [opts[i + 2] for i, a in enumerate(opts) if a in ("--bind", "--ro-bind")]
    opts += _masks(c, bound)
    opts += _symlinked_ancestors(_runtime_reads(executable), bound)
    if c.network == "proxy":
        if c.proxy_socket is None:
            raise SandboxUnavailable(
                "network through the proxy was asked for, but no proxy is running",
                hint="this is a bug in the caller: start the egress proxy first",
            )
        opts += ["--bind", c.proxy_socket, PROXY_SOCKET_INSIDE]
    if cwd is not None:
        opts += ["--chdir", _real(cwd)]
    return opts


@functools.lru_cache(maxsize=1)
def _system_mounts() -> tuple[str, ...]:
    """System directories, read-only. Looked up once per process: every confined command
    would pay for these checks otherwise."""
    opts: list[str] = []
    for directory in _SYSTEM_DIRS:
        if os.path.islink(directory):
            opts += ["--symlink", os.readlink(directory), directory]
        elif os.path.isdir(directory):
            opts += ["--ro-bind", directory, directory]
    return tuple(opts)


def _etc_mounts() -> list[str]:
    """The few /etc entries commands need: one bind of a cached copy, else one bind each."""
    view = etc_view()
    if view is not None:
        return ["--ro-bind", view, "/etc"]
    opts: list[str] = []
    for entry in SYSTEM_READ_PATHS:
        if entry.startswith("/etc/") and os.path.exists(entry):
            opts += ["--ro-bind", entry, entry]
    return opts


@functools.lru_cache(maxsize=1)
def _system_trees() -> tuple[str, ...]:
    """The system directories bound read-only whole: a read grant inside one adds nothing."""
    return tuple(d for d in _SYSTEM_DIRS if os.path.isdir(d) and not os.path.islink(d))


def _area_mounts(executable: str, c: Confinement, *, python_launcher: bool = True) -> list[str]:
    """The home tmpfs and every granted tree, shallow first so deeper grants land on top."""
    mounts: list[tuple[str, str]] = []  # (path, kind)
    home = os.environ.get("HOME", "")
    if os.path.isabs(home) and _real(home) != "/":
        mounts.append((_real(home), "home"))
        mounts += [(_real(os.path.join(home, e)), "ro") for e in c.home_entries]
    # The Python launcher needs its interpreter and its own directory; the native one is a
    # single file bound into /run.
    launcher = [sys.base_prefix, os.path.dirname(_real(sys.executable)), str(_LAUNCHER.parent)]
    reads = [*(launcher if python_launcher else []), *_runtime_reads(executable), *c.read_paths]
    if c.shell:
        reads += _path_programs()
    mounts += [(_real(p), "ro") for p in reads]
    writes = [*c.write_paths, *([c.workspace] if c.workspace else [])]
    for path in (_real(p) for p in [*writes, *c.read_paths]):
        if path in ("/", "/proc", "/dev", "/run", "/sys"):
            # Mounted over the sandbox's own /proc, /dev, /run, it would bring the host's back.
            raise SandboxUnavailable(
                f"{path} cannot be granted to a confined command",
                hint="choose a project directory as the workspace, and grant specific "
                "directories in the sandbox settings",
            )
    mounts += [(_real(p), "rw") for p in writes]
    seen: dict[str, str] = {}
    for path, kind in mounts:
        # rw wins over ro for the same path; the home tmpfs is replaced by a grant of it.
        if (kind == "home" or os.path.exists(path)) and seen.get(path) != "rw":
            seen[path] = kind
    writable = [p for p, kind in seen.items() if kind == "rw"]
    opts: list[str] = []
    for path in sorted(seen, key=lambda p: p.count("/")):
        kind = seen[path]
        if kind == "ro" and any(_within(path, w) for w in writable):
            continue  # e.g. the cwd inside the workspace: bound read-only, it would stay so
        if kind == "ro" and any(_within(path, d) for d in _system_trees()):
            continue  # /usr/bin/bash under the read-only /usr: one mount fewer each
        if kind == "home":
            opts += ["--tmpfs", path]
        else:
            opts += ["--bind" if kind == "rw" else "--ro-bind", path, path]
    return opts


def _within(path: str, tree: str) -> bool:
    return path == tree or path.startswith(tree.rstrip("/") + "/")


def _private_trees() -> list[str]:
    home = os.environ.get("HOME", "")
    trees = [_real(home)] if os.path.isabs(home) and _real(home) != "/" else []
    astrid_home = os.environ.get("ASTRID_HOME") or (os.path.join(home, ".astrid") if home else "")
    if astrid_home:
        trees.append(_real(astrid_home))
    return trees


def _path_programs() -> list[str]:
    """What a shell's PATH makes readable, minus any entry that would expose the home
    directory or $ASTRID_HOME whole (PATH=$HOME:..., PATH=/:...): those programs are not
    reachable inside, the rest of the home stays an empty tmpfs."""
    private = _private_trees()
    return [
        p
        for p in shell_read_paths(os.environ.get("PATH", ""))
        if not any(_within(t, _real(p)) for t in private)
    ]


def _protected_mounts(c: Confinement) -> list[str]:
    """Each existing protected path of every writable tree, bound read-only whole (see
    `_protect`): a mount point cannot be renamed, removed or replaced from inside."""
    writes = [*c.write_paths, *([c.workspace] if c.workspace else [])]
    opts: list[str] = []
    for target in protected_bind_targets(writes):
        opts += ["--ro-bind", target, target]
    return opts


def _symlinked_ancestors(paths: Sequence[str], bound: Sequence[str]) -> list[str]:
    """The command is run by the path it was given; where a directory on that path is a
    symbolic link (a worktree's `.cache -> /elsewhere/.cache`), the same link is made inside
    (its target is what was mounted), unless a bound tree already shows it."""
    opts: list[str] = []
    made: set[str] = set(_SYSTEM_DIRS)  # /bin -> usr/bin and the like: made already
    for path in paths:
        parts = path.split("/")
        for i in range(2, len(parts)):
            ancestor = "/".join(parts[:i])
            if ancestor in made or not os.path.islink(ancestor):
                continue
            if any(_within(ancestor, b) for b in bound) or _within(ancestor, "/proc"):
                continue  # shown by a bind (the link itself is there) or not ours to make
            made.add(ancestor)
            opts += ["--symlink", os.readlink(ancestor), ancestor]
    return opts


def _masks(c: Confinement, bound: Sequence[str]) -> list[str]:
    """Empty stand-ins for credentials, $ASTRID_HOME and denied paths wherever a bound tree
    would show them (a workspace that is the home directory). Where no bind reaches a path
    (it lies in the home tmpfs or outside everything mounted) it is absent already, and a
    mount fewer keeps the start cheap."""
    home = os.environ.get("HOME", "")
    candidates = [os.path.join(home, s) for s in HOME_SECRETS] if os.path.isabs(home) else []
    candidates += list(c.deny_paths)
    astrid_home = os.environ.get("ASTRID_HOME") or (os.path.join(home, ".astrid") if home else "")
    if astrid_home:
        candidates.append(astrid_home)
    opts: list[str] = []
    for candidate in dict.fromkeys(_real(p) for p in candidates):
        if not any(_within(candidate, b) or _within(b, candidate) for b in bound):
            continue
        if not os.path.exists(candidate):
            continue
        if os.path.isdir(candidate):
            opts += ["--tmpfs", candidate, "--remount-ro", candidate]
        else:
            opts += ["--ro-bind", "/dev/null", candidate]
    return opts


# ---------------------------------------------------------------- pids cgroup


def _pids_cgroup_root() -> Path | None:
    for root in (Path("/sys/fs/cgroup/pids"), Path("/sys/fs/cgroup")):
        if (root / "pids.max").exists() or (root / "cgroup.procs").exists():
            controllers = root / "cgroup.controllers"
            if root.name != "pids" and not (
                controllers.exists() and "pids" in controllers.read_text().split()
            ):
                continue
            if os.access(root, os.W_OK):
                return root
    return None


def _collect_empty_groups(root: Path) -> None:
    # Groups of commands that ended; rmdir fails (and keeps it) while any process is inside.
    # A group made in the last minute may be one another launch (any process on the machine)
    # has created and not joined yet: removing it made that launch fail ("cannot create
    # .../cgroup.procs"), so young groups are left for a later sweep.
    young = time.time() - 60
    for group in root.glob("astrid-sandbox-*"):
        with contextlib.suppress(OSError):
            if group.stat().st_mtime < young:
                group.rmdir()


def _in_pids_cgroup(argv: list[str], processes: int) -> list[str]:
    """Where a pids cgroup is writable, start the sandbox inside a fresh one with pids.max.

    rlimits alone cannot stop a fork bomb of root (the kernel exempts uid 0 from
    RLIMIT_NPROC, also inside a user namespace mapped to it); the cgroup counts every task.
    """
    root = _pids_cgroup_root()
    if root is None:
        return argv
    _collect_empty_groups(root)
    group = root / f"astrid-sandbox-{uuid.uuid4().hex[:12]}"
    try:
        group.mkdir()
        (group / "pids.max").write_text(str(processes))
    except OSError:
        return argv
    return ["/bin/sh", "-c", _JOIN_CGROUP, str(group), *argv]


_JOIN_CGROUP = 'echo 0 > "$0/cgroup.procs" || exit 126; exec "$@"'


def process_argv(argv: Sequence[str]) -> list[str]:
    """The command line the started process has once it runs (after joining its cgroup)."""
    if len(argv) > 4 and argv[:3] == ["/bin/sh", "-c", _JOIN_CGROUP]:
        return list(argv[4:])
    return list(argv)
