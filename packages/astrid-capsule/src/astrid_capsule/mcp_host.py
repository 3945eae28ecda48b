"""The MCP engine of capsules: a capsule's ``[[mcp_server]]`` entries as astrid-mcp configs.

Every server is untrusted and sandboxed, one process per (capsule, workspace): its roots and
sandbox are the workspace paths the user accepted (``capsule_workspace_paths``), its
environment the scrubbed one plus the variables the capsule declared, its program (when the
capsule ships it) pinned by BLAKE3. ``server_instance`` names a config for exactly what it runs,
so sessions of one workspace share a process and another workspace or an update gets its own.
The runtime starts them (and re-verifies the capsule before every launch).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from typing import Any

from astrid_crypto import content_hash, hash_file
from astrid_mcp.config import McpServerConfig

from .errors import CapsuleLoadRefused
from .manifest import Capabilities
from .verified import VerifiedCapsule

__all__ = [
    "capsule_mcp_configs",
    "capsule_workspace_paths",
    "server_instance",
    "open_network_warning",
]


def capsule_mcp_configs(
    capsule: VerifiedCapsule,
    *,
    workspace: str | None = None,
    env_values: Mapping[str, str] | None = None,
    call_timeout_s: float = 60.0,
) -> list[McpServerConfig]:
    """Server configs for a capsule's ``[[mcp_server]]`` entries: never trusted, always
    sandboxed, an environment of only the declared variables (the server's own ``env`` plus
    the capsule's ``[env]`` entries found in ``env_values``, e.g. its revealed secrets), the
    workspace reachable only as far as the accepted ``fs_read`` / ``fs_write`` say
    (``capsule_workspace_paths``), and a program inside the capsule pinned by its BLAKE3.

    The command is either a file of the capsule (``bin/serve``: pinned by hash), or a host
    program such as ``python3``, ``node`` or an absolute path: that is the user's software, not
    the capsule's, so there is nothing of the capsule to pin in it; the script it runs is a
    capsule file (the working directory is the capsule), covered by the tree hash that the
    runtime checks at load and again before every launch."""
    read_paths, write_paths = (
        capsule_workspace_paths(capsule.granted, workspace) if workspace else ([], [])
    )
    # A capsule's servers reach exactly the hosts the user granted it, through the egress
    # proxy (their network namespace has no other route); granted no host, no network at all.
    network = None
    values = env_values or {}
    declared_env = {name: values[name] for name in capsule.manifest.env if name in values}
    configs: list[McpServerConfig] = []
    for spec in capsule.manifest.mcp_server:
        raw: dict[str, Any] = {
            "name": f"capsule-{capsule.name}-{spec.id}",
            "trusted": False,
            "call_timeout_s": call_timeout_s,
            "sandbox": {"enabled": True, "read_paths": read_paths, "write_paths": write_paths},
        }
        if spec.type == "http":
            raw["url"] = spec.url or ""
        else:
            command = spec.command or ""
            if "/" in command and not command.startswith("/"):
                # A program shipped in the capsule: run that file, pinned by its hash.
                inside = (capsule.directory / command).resolve()
                if not inside.is_relative_to(capsule.directory.resolve()) or not inside.is_file():
                    raise CapsuleLoadRefused(
                        f"capsule {capsule.name}: [[mcp_server]] {spec.id!r} command {command!r}"
                        " is not a file inside the capsule"
                    )
                command = str(inside)
                raw["blake3"] = hash_file(inside).hex
            raw |= {
                "command": command,
                "args": list(spec.args),
                "env": {**spec.env, **declared_env},
                "cwd": str(capsule.directory),
            }
            raw["sandbox"]["network"] = network
            raw["sandbox"]["net"] = list(capsule.granted.net)
        try:
            configs.append(McpServerConfig.model_validate(raw))
        except ValueError as exc:
            raise CapsuleLoadRefused(
                f"capsule {capsule.name}: [[mcp_server]] {spec.id!r} is invalid: {exc}",
                hint="fix the server entry in the capsule's Capsule.toml and reinstall it",
            ) from exc
    return configs


_GLOB_CHARS = re.compile(r"[*?\[\\]")


def capsule_workspace_paths(granted: Capabilities, workspace: str) -> tuple[list[str], list[str]]:
    """The directories (or files) of ``workspace`` that the accepted ``fs_read`` / ``fs_write``
    patterns reach, as (readable, writable) absolute paths.

    Patterns are gitwildmatch, directories are what the sandbox and MCP roots can express: each
    pattern gives the path before its first wildcard (``docs/**`` -> ``docs``; ``*.md`` matches at
    any depth -> the workspace). So a server may see more than the patterns match inside those
    directories (``docs/*.md`` opens all of ``docs``), never anything outside them; a negation
    (``!secret``) cannot narrow a directory and is left out, and a path whose symlinks lead out of
    the workspace is dropped. Readable includes writable."""
    real = os.path.realpath(workspace)
    writable = _outermost(_pattern_paths(real, granted.fs_write))
    readable = _outermost(_pattern_paths(real, granted.fs_read + granted.fs_write))
    return readable, writable


def _pattern_paths(workspace: str, patterns: tuple[str, ...]) -> list[str]:
    paths: list[str] = []
    for pattern in patterns:
        if pattern.startswith(("!", "/")):
            # An exclusion cannot narrow a directory; an absolute entry (a file outside the
            # workspace) is for the WASM host functions only, never a server's sandbox.
            continue
        body = pattern.rstrip("/")
        # gitignore: a pattern with no slash before its end matches at any depth.
        parts = body.split("/") if "/" in body else []
        fixed: list[str] = []
        for part in parts:
            if _GLOB_CHARS.search(part):
                break
            fixed.append(part)
        path = os.path.realpath(os.path.join(workspace, *fixed))
        if path == workspace or path.startswith(workspace + os.sep):
            paths.append(path)
    return paths


def _outermost(paths: list[str]) -> list[str]:
    """Sorted, without duplicates or paths inside another of them."""
    kept: list[str] = []
    for path in sorted(set(paths)):
        if not any(path == k or path.startswith(k.rstrip(os.sep) + os.sep) for k in kept):
            kept.append(path)
    return kept


def server_instance(config: McpServerConfig, roots: list[str]) -> McpServerConfig:
    """``config`` named for what it runs: ``capsule-<capsule>-<id>-<digest>``.

    The digest covers the config (workspace paths, program, its hash, the capsule's revision
    directory) and the roots, so one name is one exact server: sessions of a workspace share
    it, another workspace or an updated capsule gets its own process. Environment values are
    left out of the digest (only their names count): they may be secrets, and a name is shown.
    """
    raw = config.model_dump(mode="json")
    transport = dict(raw["transport"])
    if "env" in transport:
        transport["env"] = sorted(transport["env"])
    # Sorted-key JSON, not canonical_json: a config has floats (timeouts), which that refuses.
    described = json.dumps({**raw, "transport": transport, "roots": roots}, sort_keys=True)
    digest = content_hash(described.encode()).hex
    try:
        return McpServerConfig.model_validate({**raw, "name": f"{config.name}-{digest[:10]}"})
    except ValueError as exc:
        raise CapsuleLoadRefused(
            f"MCP server {config.name} cannot be named: {exc}",
            hint="give the [[mcp_server]] a shorter id in the capsule's Capsule.toml",
        ) from exc


def open_network_warning(capsule: VerifiedCapsule, configs: list[McpServerConfig]) -> str | None:
    """Why the capsule's servers can reach the network although it was granted no host (this
    kernel cannot deny TCP), or None when they cannot or it was granted a host."""
    if capsule.granted.net or not any(
        c.transport.type == "stdio" and c.sandbox.network for c in configs
    ):
        return None
    from astrid_workspace import NETWORK_ABI, sandbox_status

    return (
        f"capsule {capsule.name}: its MCP servers can reach the network although it was "
        f"granted no host: this kernel's sandbox ({sandbox_status().detail}) cannot deny "
        f"TCP (needs Landlock ABI {NETWORK_ABI}, Linux 6.7 or later)"
    )
