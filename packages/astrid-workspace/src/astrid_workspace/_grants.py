"""What a confined command must be able to read to run at all: system files, its own
install (a Python venv and its base, a Node prefix), the programs on a shell's PATH.

Used by the host to mount these paths into the sandbox, and by the launcher (Landlock-only
mode) to grant them. Standard library only.
"""

from __future__ import annotations

import glob
import os
import shutil
from pathlib import Path

__all__ = ["SYSTEM_READ_PATHS", "SYSTEM_WRITE_PATHS", "runtime_read_paths", "shell_read_paths"]

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
