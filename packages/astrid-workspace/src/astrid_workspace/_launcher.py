"""``python -m astrid_workspace [--read=DIR]... [--write=DIR]... [--no-network]
[--allow-unsandboxed] [--landlock-optional] [--seccomp] [--rlimit=NAME=VALUE]...
[--bridge=PORT=SOCKET] [--granted] -- CMD``

Confines itself with Landlock, sets rlimits, installs the seccomp filter, then execs CMD (same
pid, so the caller's pipes and signals reach CMD directly). Inside bubblewrap this is the
second layer. Exit codes: 126 the sandbox could not be applied or CMD could not be executed,
127 CMD not found, 2 usage error; otherwise CMD's own status. ``--allow-unsandboxed`` only
covers a kernel without Landlock: when Landlock exists but a step fails, the launcher still
exits 126 rather than run CMD with less protection than asked for. ``--no-network`` denies
every TCP connect and bind; a kernel that cannot (Landlock ABI < 4) is a failure (126), and
``--allow-unsandboxed`` does not cover it. ``--granted``: the caller already listed every path
CMD needs (the host computed them to mount them), so none are discovered here.

`launcher_argv` runs this file directly (``python -E -s -S .../_launcher.py``): it imports no
package and as few modules as it can (no argparse, pathlib or dataclasses: each costs
milliseconds on every command the agent runs); nothing on the host's Python path can inject
code into it.
"""

from __future__ import annotations

import os
import sys

TYPE_CHECKING = False  # no `typing` import: it would cost every command milliseconds
if TYPE_CHECKING:
    from collections.abc import Sequence

# Imported as astrid_workspace._launcher (python -m astrid_workspace, tests), or run as a file.
if TYPE_CHECKING or __package__:
    from astrid_workspace._landlock import SandboxError, landlock_abi, restrict_self
else:  # run as a file by launcher_argv: this directory is sys.path[0]
    from _landlock import SandboxError, landlock_abi, restrict_self

_PROG = "astrid-sandbox"
EXIT_SANDBOX_FAILURE = 126
EXIT_NOT_FOUND = 127
EXIT_USAGE = 2
_FLAGS = {
    "--shell": "shell",
    "--no-network": "no_network",
    "--allow-unsandboxed": "allow_unsandboxed",
    "--landlock-optional": "landlock_optional",
    "--seccomp": "seccomp",
    "--granted": "granted",
}
_USAGE = (
    "usage: python -m astrid_workspace [--read=DIR]... [--write=DIR]... [--shell] "
    "[--no-network] [--allow-unsandboxed] [--landlock-optional] [--seccomp] "
    "[--rlimit=NAME=VALUE]... [--bridge=PORT=SOCKET] [--granted] -- COMMAND ..."
)


class _Options:
    def __init__(self) -> None:
        self.read: list[str] = []
        self.write: list[str] = []
        self.rlimit: list[str] = []
        self.bridge = ""
        self.shell = self.no_network = self.allow_unsandboxed = False
        self.landlock_optional = self.seccomp = self.granted = False


class _UsageError(Exception):
    pass


def _parse(argv: Sequence[str]) -> tuple[_Options, list[str]]:
    if "--" not in argv:
        raise _UsageError("missing '--' before COMMAND")
    split = list(argv).index("--")
    options, command = _Options(), list(argv[split + 1 :])
    for arg in argv[:split]:
        name, sep, value = arg.partition("=")
        if name in _FLAGS and not sep:
            setattr(options, _FLAGS[name], True)
        elif name in ("--read", "--write", "--rlimit") and sep:
            getattr(options, name[2:]).append(value)
        elif name == "--bridge" and sep:
            options.bridge = value
        else:
            raise _UsageError(f"unknown or malformed option {arg!r}")
    if not command:
        raise _UsageError("missing COMMAND after '--'")
    return options, command


def _which(name: str) -> str | None:
    if "/" in name:
        return name if os.path.isfile(name) and os.access(name, os.X_OK) else None
    import shutil  # only for a bare name: the host passes absolute paths

    return shutil.which(name)


_RLIMITS = ("nproc", "data", "fsize", "cpu", "nofile")


def _apply_rlimits(specs: Sequence[str]) -> str | None:
    """Set each NAME=VALUE limit; the error text, or None when all were set."""
    if not specs:
        return None
    import resource

    for spec in specs:
        name, _, value = spec.partition("=")
        if name not in _RLIMITS or not value.isdigit():
            return f"bad --rlimit {spec!r} (NAME=VALUE, NAME one of {', '.join(_RLIMITS)})"
        try:
            limit = getattr(resource, f"RLIMIT_{name.upper()}")
            resource.setrlimit(limit, (int(value), int(value)))
        except (ValueError, OSError) as exc:
            return f"cannot set the {name} limit to {value}: {exc}"
    return None


def _grants(executable: str, options: _Options) -> tuple[list[str], list[str]]:
    if options.granted:
        return options.read, options.write
    if TYPE_CHECKING or __package__:
        from astrid_workspace import _grants as grants
    else:
        import _grants as grants
    read = [*grants.SYSTEM_READ_PATHS, *grants.runtime_read_paths(executable), *options.read]
    if options.shell:
        read += grants.shell_read_paths(os.environ.get("PATH", ""))
    return read, [*grants.SYSTEM_WRITE_PATHS, *options.write]


def _say(message: str) -> None:
    print(f"{_PROG}: {message}", file=sys.stderr, flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    try:
        options, command = _parse(sys.argv[1:] if argv is None else argv)
    except _UsageError as exc:
        print(f"{_USAGE}\n{_PROG}: error: {exc}", file=sys.stderr, flush=True)
        return EXIT_USAGE
    executable = _which(command[0])
    if executable is None:
        _say(f"command not found: {command[0]}")
        return EXIT_NOT_FOUND
    executable = os.path.abspath(executable)
    # Everything imported lazily is imported now: once Landlock applies, the interpreter's
    # own library may no longer be readable.
    failure = _apply_rlimits(options.rlimit)
    if failure is not None:
        _say(f"{failure}; not running {command[0]}")
        return EXIT_SANDBOX_FAILURE
    if TYPE_CHECKING or __package__:
        from astrid_workspace._seccomp import SeccompError, install_filter
    else:
        from _seccomp import SeccompError, install_filter

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
        if TYPE_CHECKING or __package__:
            from astrid_workspace._bridge import start_bridge
        else:
            from _bridge import start_bridge
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
        read_paths, write_paths = _grants(executable, options)
        try:
            applied = restrict_self(read_paths, write_paths, deny_tcp=options.no_network)
        except SandboxError as exc:
            _say(f"sandbox not applied, not running {command[0]}: {exc}")
            return EXIT_SANDBOX_FAILURE
        requested = set(options.read) | set(options.write)
        missing = [p for p in applied.skipped if p in requested]
        if missing and not options.granted:  # granted lists hold optional system paths
            _say(f"skipped paths that do not exist: {', '.join(missing)}")

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
