"""``python -m astrid_workspace [--read DIR]... [--write DIR]... [--no-network]
[--allow-unsandboxed] -- CMD``

Confines itself with Landlock, then execs CMD (same pid, so the MCP client's pipes and
signals reach the server directly). Exit codes: 126 the sandbox could not be applied or CMD
could not be executed, 127 CMD not found, 2 usage error; otherwise CMD's own status.
``--allow-unsandboxed`` only covers a kernel without Landlock: when Landlock exists but a step
fails, the launcher still exits 126 rather than run CMD with less protection than asked for.
``--no-network`` denies every TCP connect and bind; a kernel that cannot (Landlock ABI < 4)
is a failure (126), and ``--allow-unsandboxed`` does not cover it.

`launcher_argv` runs this file directly (``python -E -s -S .../_launcher.py``) so that starting
a process does not import any package (an MCP server's launch once cost an import of the mcp
SDK, ~2.5 s): the launcher needs only the standard library and its siblings `_landlock` and
`_seccomp`. Nothing on the host's Python path can inject code into it.
"""

from __future__ import annotations

import argparse
import glob
import os
import resource
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

if (
    TYPE_CHECKING or __package__
):  # imported as astrid_workspace._launcher (python -m astrid_workspace, tests)
    from astrid_workspace._bridge import start_bridge
    from astrid_workspace._landlock import SandboxError, landlock_abi, restrict_self
    from astrid_workspace._seccomp import SeccompError, install_filter
else:  # run as a file by launcher_argv: this directory is sys.path[0]
    from _bridge import start_bridge
    from _landlock import SandboxError, landlock_abi, restrict_self
    from _seccomp import SeccompError, install_filter

_PROG = "astrid-sandbox"
EXIT_SANDBOX_FAILURE = 126
EXIT_NOT_FOUND = 127

# Read-only for every server: code and libraries, plus the few /etc files that dynamic
# linking, TLS and name resolution read. Not /etc wholesale: as root that would expose
# /etc/shadow, SSH host keys and /etc/ssl/private to the server.
SYSTEM_READ_PATHS = (
    "/usr",
    "/lib",
    "/lib64",
    "/bin",
    "/sbin",
    "/etc/ld.so.cache",
    "/etc/ld.so.conf",
    "/etc/ld.so.conf.d",
    "/etc/ld.so.preload",
    "/etc/ssl/certs",
    "/etc/ssl/openssl.cnf",
    "/etc/ca-certificates",
    "/etc/pki/tls/certs",
    "/etc/pki/ca-trust",
    "/etc/crypto-policies",
    "/etc/resolv.conf",
    "/etc/hosts",
    "/etc/host.conf",
    "/etc/nsswitch.conf",
    "/etc/gai.conf",
    "/etc/services",
    "/etc/protocols",
    "/etc/passwd",
    "/etc/group",
    "/etc/localtime",
    "/etc/locale.alias",
    "/etc/timezone",
    "/etc/mime.types",
    # /proc/self resolves now, to this pid, which the exec keeps: the server sees its own
    # /proc entry (node reads maps and cgroup) but no other process's. Descendants get no
    # /proc/self; runtimes treat that as "unknown" and carry on.
    "/proc/self",
    "/proc/meminfo",
    "/proc/stat",
    "/proc/cpuinfo",
    "/dev/zero",
    "/dev/random",
    "/dev/urandom",
)
SYSTEM_WRITE_PATHS = ("/dev/null",)


def _looks_like_install_prefix(prefix: Path) -> bool:
    # Only directories that are recognisably a Python/Node install: a bare `bin/..` could be
    # a home directory, which must not become readable just because ~/bin holds the command.
    if prefix == Path("/") or prefix == Path.home():
        return False
    return (
        (prefix / "pyvenv.cfg").is_file()
        or bool(glob.glob(str(prefix / "lib" / "python3*")))
        or (prefix / "lib" / "node_modules").is_dir()
        or (prefix / "include" / "node").is_dir()
    )


def _prefix_of(executable: Path) -> Path | None:
    if executable.parent.name != "bin":
        return None
    prefix = executable.parent.parent
    return prefix if _looks_like_install_prefix(prefix) else None


def _shebang_interpreter(script: Path) -> str | None:
    """The interpreter a `#!` script runs under, looking through `/usr/bin/env [-S] NAME`."""
    try:
        with script.open("rb") as f:
            head = f.readline(512)
    except OSError:
        return None
    if not head.startswith(b"#!"):
        return None
    words = head[2:].decode(errors="replace").split()
    if not words:
        return None
    if Path(words[0]).name != "env":
        return words[0]
    names = [w for w in words[1:] if not w.startswith("-") and "=" not in w]
    return shutil.which(names[0]) if names else None


def runtime_read_paths(executable: str) -> list[str]:
    """The command itself and the Python/Node install (and venv base) it needs to start."""
    paths: list[Path] = []
    candidates = [Path(executable), Path(os.path.realpath(executable))]
    interpreter = _shebang_interpreter(candidates[1])
    if interpreter:
        candidates += [Path(interpreter), Path(os.path.realpath(interpreter))]
    for candidate in candidates:
        paths.append(candidate)
        prefix = _prefix_of(candidate)
        if prefix is None:
            continue
        paths.append(prefix)
        base = _venv_base_prefix(prefix)
        if base is not None:
            paths += [base, *_editable_source_dirs(prefix)]
    return list(dict.fromkeys(str(p) for p in paths))


def shell_read_paths(path_env: str) -> list[str]:
    """What a shell needs to run the programs on its PATH: each PATH directory, the Python or
    Node install a `bin/` directory belongs to, and a version manager's root for `shims/`
    (pyenv, rbenv). Never the home directory itself, so `~/bin` on PATH exposes only `~/bin`."""
    paths: list[Path] = []
    for entry in path_env.split(os.pathsep):
        directory = Path(entry)
        if not entry or not directory.is_absolute() or not directory.is_dir():
            continue
        paths.append(directory)
        if directory.name == "shims" and directory.parent != Path.home():
            paths.append(directory.parent)
            continue
        if directory.name == "bin" and _looks_like_install_prefix(directory.parent):
            paths.append(directory.parent)
            base = _venv_base_prefix(directory.parent)
            if base is not None:
                paths += [base, *_editable_source_dirs(directory.parent)]
    return list(dict.fromkeys(str(p) for p in paths))


def _venv_base_prefix(prefix: Path) -> Path | None:
    """A venv's `home = .../bin` names the base interpreter, whose stdlib the venv needs."""
    try:
        lines = (prefix / "pyvenv.cfg").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        key, sep, value = line.partition("=")
        if sep and key.strip() == "home":
            base = Path(value.strip()).parent
            return base if _looks_like_install_prefix(base) else None
    return None


def _editable_source_dirs(venv: Path) -> list[Path]:
    """Directories a venv's `.pth` files put on sys.path (editable installs) are part of
    what the venv has installed; without them its own packages would not import."""
    dirs: list[Path] = []
    for pth in venv.glob("lib/python3*/site-packages/*.pth"):
        try:
            lines = pth.read_text().splitlines()
        except OSError:
            continue
        # `import ...` lines are code run by site.py, not paths.
        dirs += [Path(x) for x in lines if x.startswith("/") and Path(x).is_dir()]
    return dirs


def _parse(argv: Sequence[str]) -> tuple[argparse.Namespace, list[str]]:
    parser = argparse.ArgumentParser(
        prog=f"{Path(sys.executable).name} -m astrid_workspace",
        description="Run COMMAND confined by Landlock to the given directories.",
        usage="%(prog)s [--read DIR]... [--write DIR]... [--no-network] [--allow-unsandboxed] "
        "-- COMMAND ...",
    )
    parser.add_argument("--read", action="append", default=[], metavar="DIR")
    parser.add_argument("--write", action="append", default=[], metavar="DIR")
    parser.add_argument(
        "--shell",
        action="store_true",
        help="COMMAND is a shell: also grant read access to the programs on its PATH",
    )
    parser.add_argument(
        "--no-network",
        action="store_true",
        help="COMMAND may not open or accept TCP connections (Landlock ABI 4+)",
    )
    parser.add_argument(
        "--allow-unsandboxed",
        action="store_true",
        help="if the kernel has no Landlock, run COMMAND anyway (with a warning)",
    )
    parser.add_argument(
        "--landlock-optional",
        action="store_true",
        help="Landlock is a second layer (inside bubblewrap): without it, go on quietly",
    )
    parser.add_argument(
        "--seccomp", action="store_true", help="install the seccomp filter before exec"
    )
    parser.add_argument(
        "--rlimit",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help=f"set a resource limit (soft and hard) before exec: {', '.join(_RLIMITS)}",
    )
    parser.add_argument(
        "--bridge",
        metavar="PORT=SOCKET",
        help="serve 127.0.0.1:PORT, each connection relayed to the unix SOCKET (egress proxy)",
    )
    if "--" not in argv:
        parser.error("missing '--' before COMMAND")
    split = list(argv).index("--")
    options, command = parser.parse_args(argv[:split]), list(argv[split + 1 :])
    if not command:
        parser.error("missing COMMAND after '--'")
    return options, command


_RLIMITS = {
    "nproc": resource.RLIMIT_NPROC,
    "data": resource.RLIMIT_DATA,
    "fsize": resource.RLIMIT_FSIZE,
    "cpu": resource.RLIMIT_CPU,
    "nofile": resource.RLIMIT_NOFILE,
}


def _apply_rlimits(specs: Sequence[str]) -> str | None:
    """Set each NAME=VALUE limit; the error text, or None when all were set."""
    for spec in specs:
        name, _, value = spec.partition("=")
        if name not in _RLIMITS or not value.isdigit():
            return f"bad --rlimit {spec!r} (NAME=VALUE, NAME one of {', '.join(_RLIMITS)})"
        try:
            resource.setrlimit(_RLIMITS[name], (int(value), int(value)))
        except (ValueError, OSError) as exc:
            return f"cannot set the {name} limit to {value}: {exc}"
    return None


def _say(message: str) -> None:
    print(f"{_PROG}: {message}", file=sys.stderr, flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    options, command = _parse(sys.argv[1:] if argv is None else argv)
    executable = shutil.which(command[0])
    if executable is None:
        _say(f"command not found: {command[0]}")
        return EXIT_NOT_FOUND
    executable = os.path.abspath(executable)

    try:
        abi = landlock_abi()
    except OSError as exc:
        _say(f"cannot probe Landlock, not running {command[0]}: {exc}")
        return EXIT_SANDBOX_FAILURE
    if options.bridge:
        port, _, socket_path = options.bridge.partition("=")
        if not port.isdigit() or not socket_path:
            _say(f"bad --bridge {options.bridge!r} (PORT=SOCKET)")
            return EXIT_SANDBOX_FAILURE
        # Started before Landlock and seccomp: the bridge is Astrid's code, it must reach the
        # proxy's socket, which the command itself can only reach through the bridge.
        start_bridge(int(port), socket_path)
    if abi == 0 and options.landlock_optional and not options.no_network:
        pass  # the outer layer (bubblewrap) confines; `status` reports the missing Landlock
    elif abi == 0:
        if options.no_network:
            _say(
                f"refusing to run {command[0]}: no network was asked for, and the kernel has "
                "no Landlock to deny it. Fix: run on Linux >= 6.7 with Landlock, or allow "
                "the server network"
            )
            return EXIT_SANDBOX_FAILURE
        if not options.allow_unsandboxed:
            _say(
                "refusing to run unsandboxed: kernel has no Landlock. Fix: boot Linux >= 5.13 "
                "with CONFIG_SECURITY_LANDLOCK=y and 'landlock' in lsm=, or pass "
                "--allow-unsandboxed to accept the risk"
            )
            return EXIT_SANDBOX_FAILURE
        _say(f"WARNING: kernel has no Landlock; running {command[0]} UNSANDBOXED")
    else:
        read_paths = [*SYSTEM_READ_PATHS, *runtime_read_paths(executable), *options.read]
        if options.shell:
            read_paths += shell_read_paths(os.environ.get("PATH", ""))
        try:
            applied = restrict_self(
                read_paths, [*SYSTEM_WRITE_PATHS, *options.write], deny_tcp=options.no_network
            )
        except SandboxError as exc:
            _say(f"sandbox not applied, not running {command[0]}: {exc}")
            return EXIT_SANDBOX_FAILURE
        requested = set(options.read) | set(options.write)
        missing = [p for p in applied.skipped if p in requested]
        if missing:
            _say(f"skipped paths that do not exist: {', '.join(missing)}")

    failure = _apply_rlimits(options.rlimit)
    if failure is not None:
        _say(f"{failure}; not running {command[0]}")
        return EXIT_SANDBOX_FAILURE
    if options.seccomp:
        try:
            install_filter()
        except SeccompError as exc:
            _say(f"seccomp filter not installed, not running {command[0]}: {exc}")
            return EXIT_SANDBOX_FAILURE
    # bubblewrap sets PWD when it changes directory; the command gets exactly the environment
    # it was given (a shell sets its own PWD anyway).
    os.environ.pop("PWD", None)
    try:
        # The path we resolved (and granted), not a fresh PATH lookup; argv[0] as given.
        os.execv(executable, command)  # noqa: S606 - exec without a shell is the point
    except FileNotFoundError as exc:
        _say(f"cannot execute {command[0]}: {exc.strerror}")
        return EXIT_NOT_FOUND
    except OSError as exc:
        _say(f"cannot execute {command[0]} inside the sandbox: {exc.strerror}")
        return EXIT_SANDBOX_FAILURE


if __name__ == "__main__":
    sys.exit(main())
