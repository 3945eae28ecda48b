"""Turn a stdio server's config into the exact argv and environment that will be executed.

Order matters: resolve the executable once, verify its BLAKE3 pin on that resolved path, then
run that path (never a second PATH lookup), confined by astrid_workspace when sandboxed
(bubblewrap namespaces + Landlock + seccomp; network none, through the egress proxy to the
listed hosts, or the host's for an admin's explicit ``network = true``).
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from astrid_crypto import hash_file
from astrid_workspace import (
    Confinement,
    EgressProxy,
    confined_argv,
    confinement_layers,
    scrubbed_environment,
)

from ._errors import ExecutableHashMismatch, ServerStartError
from .config import McpServerConfig, StdioTransport

__all__ = ["LaunchPlan", "plan_launch", "network_mode"]

NetworkMode = Literal["none", "proxy", "host"]


@dataclass(frozen=True)
class LaunchPlan:
    executable: Path
    argv: list[str]
    env: dict[str, str]
    cwd: str | None
    sandboxed: bool
    network: NetworkMode = "host"
    confinement: str = "not sandboxed"  # the layers in force, for `status` / `servers list`


def network_mode(config: McpServerConfig) -> NetworkMode:
    """How a stdio server reaches the network: not at all, through the proxy, or the host's."""
    sandbox = config.sandbox
    if not sandbox.enabled or sandbox.network is True:
        return "host"
    if sandbox.network is False or not sandbox.net or sandbox.mode == "landlock":
        # Landlock alone cannot filter hosts: listed hosts there mean no network at all.
        return "none"
    return "proxy"


def resolve_executable(command: str, path: str | None) -> Path:
    found = shutil.which(command, path=path) if os.sep not in command else command
    if found is None or not Path(found).is_file():
        raise ServerStartError(
            f"MCP server executable not found: {command!r}",
            hint="install it or give its absolute path in [[servers]] command",
        )
    # Absolute but not symlink-resolved: a venv's bin/python is a symlink, and running its
    # target directly would silently drop the venv. Hashing reads through the link anyway.
    return Path(os.path.abspath(found))


def verify_executable(name: str, executable: Path, expected: str | None) -> None:
    if expected is None:
        return
    actual = hash_file(executable).hex
    if actual != expected:
        raise ExecutableHashMismatch(
            f"server {name!r}: {executable} has BLAKE3 {actual}, expected {expected};"
            " not starting it"
        )


def _readable_roots(executable: Path, transport: StdioTransport, *, trusted: bool) -> list[str]:
    """Directories a sandboxed server needs to read to run at all: its code and its packages.

    Paths named in `args` (a script, a data directory) are granted for trusted servers. For an
    untrusted one (e.g. declared by a workspace) only those under its working directory are:
    otherwise `command = "/bin/cat", args = ["/root/.ssh/id_rsa"]` would walk out of the sandbox.
    """
    roots: set[Path] = {executable.parent, executable.resolve().parent}
    base = (Path(transport.cwd) if transport.cwd else Path.cwd()).resolve()
    for arg in transport.args:
        if arg.startswith("-"):
            continue
        # A script given relative to the working directory is code the server must read too.
        candidate = (base / arg).resolve()
        if not candidate.exists() or candidate == Path("/"):
            continue
        if not trusted and not candidate.is_relative_to(base):
            continue
        roots.add(candidate if candidate.is_dir() else candidate.parent)
    for root in list(roots):
        # A node or Python package imports its siblings: allow the whole node_modules /
        # site-packages tree the entry point lives in, not just its own directory.
        for parent in (root, *root.parents):
            if parent.name in {"node_modules", "site-packages"}:
                roots.add(parent)
                break
    if transport.cwd:
        roots.add(Path(transport.cwd))
    return sorted(str(root) for root in roots)


def plan_launch(config: McpServerConfig, *, proxy_socket: str | None = None) -> LaunchPlan:
    transport = config.transport
    if not isinstance(transport, StdioTransport):
        raise TypeError("plan_launch is for stdio servers")
    env = scrubbed_environment(declared=transport.env)
    executable = resolve_executable(transport.command, env.get("PATH"))
    verify_executable(config.name, executable, config.expected_hash)
    if transport.cwd is not None and not Path(transport.cwd).is_dir():
        raise ServerStartError(
            f"server {config.name!r}: working directory {transport.cwd} does not exist",
            hint="fix `cwd` in [[servers]]",
        )
    if not config.sandbox.enabled:
        argv = [str(executable), *transport.args]
        return LaunchPlan(executable, argv, env, transport.cwd, sandboxed=False, network="host")
    sandbox = config.sandbox
    confinement = Confinement(
        mode=sandbox.mode,
        read_paths=(
            *_readable_roots(executable, transport, trusted=config.trusted),
            *sandbox.read_paths,
        ),
        write_paths=tuple(sandbox.write_paths),
        network=network_mode(config),
        proxy_socket=proxy_socket,
        allow_unsandboxed=sandbox.allow_unsandboxed,
    )
    argv = confined_argv(str(executable), transport.args, confinement, cwd=transport.cwd)
    if confinement.network == "proxy":
        env = env | EgressProxy.proxy_environment()
    layers = confinement_layers(confinement).describe()
    if sandbox.network is True:
        layers += " (network = true: the admin's choice)"
    return LaunchPlan(executable, argv, env, transport.cwd, True, confinement.network, layers)
