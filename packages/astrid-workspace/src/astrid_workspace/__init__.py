"""Operational workspace boundaries: process confinement, the one environment scrubber, the
egress proxy, and file access beneath a directory descriptor."""

from . import fs  # descriptor-based file access: use exactly what was authorized
from ._confine import (
    HOME_SECRETS,
    Confinement,
    Layers,
    Limits,
    SandboxUnavailable,
    bwrap_path,
    confined_argv,
    confinement_layers,
    process_argv,
    sandbox_summary,
)
from ._env import ENV_ALLOW_LIST, looks_secret, scrubbed_environment
from ._hosts import HostListGuard, ListedThenGuard
from ._landlock import NETWORK_ABI, SandboxError, landlock_abi
from ._pinned import (
    Pin,
    PinnedAsyncBackend,
    PinnedSyncBackend,
    install_pin,
    pin_host,
    pin_host_sync,
)
from ._process_group import find_server_group, kill_group_remains
from ._protect import PROTECTED_PATHS, ProtectedSnapshot, Quarantined, protected_bind_targets
from ._proxy import (
    AddressPredicate,
    EgressProxy,
    EgressRefused,
    IPAddress,
    Resolver,
    check_host_name,
    global_only,
    system_resolver,
)
from ._status import SandboxStatus, launcher_argv, sandbox_status

__all__ = [
    # confinement, environment, egress
    "HOME_SECRETS",
    "PROTECTED_PATHS",
    "ProtectedSnapshot",
    "Quarantined",
    "protected_bind_targets",
    "Confinement",
    "Layers",
    "Limits",
    "SandboxUnavailable",
    "bwrap_path",
    "confined_argv",
    "confinement_layers",
    "process_argv",
    "sandbox_summary",
    "ENV_ALLOW_LIST",
    "looks_secret",
    "scrubbed_environment",
    "NETWORK_ABI",
    "SandboxError",
    "landlock_abi",
    "find_server_group",
    "kill_group_remains",
    "SandboxStatus",
    "launcher_argv",
    "sandbox_status",
    "HostListGuard",
    "ListedThenGuard",
    "Pin",
    "PinnedAsyncBackend",
    "PinnedSyncBackend",
    "install_pin",
    "pin_host",
    "pin_host_sync",
    "AddressPredicate",
    "EgressProxy",
    "EgressRefused",
    "IPAddress",
    "Resolver",
    "check_host_name",
    "global_only",
    "system_resolver",
    # file access beneath a directory descriptor
    "fs",
]
