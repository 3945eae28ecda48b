"""SecurityPolicy: the admin's hard limits. No approval, token or allowance can lift them.

It judges *normalized* actions (see ``_normalize``): resolved paths and parsed shell lines.
Verdicts: DENY (hard limit), ASK (allowed only with a human's approval, never auto-allowed),
or PASS (the other layers decide).
"""

from __future__ import annotations

import fnmatch
import os
import re
import shlex
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from enum import StrEnum
from functools import lru_cache
from urllib.parse import urlsplit

from astrid_core import McpToolCall, NetworkRequest, ShellCommand
from astrid_crypto import canonical_json

from ._network import private_addresses
from ._normalize import Normalized
from ._paths import is_within_resolved, normalize_path
from ._shell import SHELLS, ParsedLine, SimpleCommand

__all__ = [
    "SecurityPolicy",
    "PolicyVerdict",
    "Verdict",
    "DEFAULT_BLOCKED_COMMANDS",
    "DEFAULT_DENIED_PATHS",
]

DEFAULT_BLOCKED_COMMANDS: tuple[str, ...] = (
    "rm -rf /",  # any recursive rm of /, /*, ~ or a top-level system directory
    "sudo",
    "su",
    "doas",
    "pkexec",
    "runuser",
    "mkfs*",
    "dd",
    "fdisk",
    "parted",
    "wipefs",
    "mkswap",
    "swapoff",
    "chmod 777",  # any world-writable mode (777, a+rwx, ...)
    "chown -R /",
    "shutdown",
    "reboot",
    "halt",
    "poweroff",
    "init",
    "telinit",
    "kexec",
    "systemctl poweroff",
    "systemctl reboot",
    "systemctl halt",
    "systemctl kexec",
    "insmod",
    "rmmod",
    "modprobe",
    "mount",
    "umount",
    "nsenter",
    "setcap",
    "passwd",
    "useradd",
    "userdel",
    "usermod",
    "visudo",
    "crontab -r",
    "iptables -F",
)
DEFAULT_DENIED_PATHS: tuple[str, ...] = (
    "/etc",
    "/boot",
    "/sys",
    "/proc",
    "/dev",
    "~/.ssh",
    "~/.gnupg",
    "~/.aws",
    # All of the runtime's own state, not only its keys: its config.toml (an agent that could
    # edit it could add hooks or loosen the policy for the next start), the audit database,
    # stored OAuth tokens, installed capsules and the daemon's token.
    "~/.astrid",
)
_SYSTEM_DIRS = frozenset(
    {
        "/",
        "/bin",
        "/boot",
        "/dev",
        "/etc",
        "/home",
        "/lib",
        "/lib64",
        "/opt",
        "/proc",
        "/root",
        "/run",
        "/sbin",
        "/srv",
        "/sys",
        "/usr",
        "/var",
    }
)
_NET_TOOLS = frozenset(
    {
        "curl",
        "wget",
        "nc",
        "ncat",
        "netcat",
        "telnet",
        "ftp",
        "http",
        "https",
        "httpie",
        "ssh",
        "scp",
        "sftp",
        "rsync",
        "socat",
        "aria2c",
        "lynx",
        "w3m",
    }
)
_DOWNLOADERS = frozenset({"curl", "wget", "fetch", "aria2c", "http", "https"})


class Verdict(StrEnum):
    PASS = "pass"  # noqa: S105 - a verdict, not a password
    ASK = "ask"
    DENY = "deny"


@dataclass(frozen=True)
class PolicyVerdict:
    verdict: Verdict
    reasons: tuple[str, ...] = ()

    @property
    def reason(self) -> str:
        return "; ".join(self.reasons)


@lru_cache(maxsize=32)
def _resolve_denied_roots(
    denied_paths: tuple[str, ...], home: str, astrid_home: str | None
) -> tuple[str, ...]:
    """The denied roots, resolved once per distinct policy: they are system directories and
    the runtime's key files, which the agent cannot re-point (they are denied to it), and
    resolving a dozen paths on every decision was a third of the policy's cost. A path is
    checked against both the resolved and the literal form of each root."""
    roots = [normalize_path(entry, "/", home).path for entry in denied_paths]
    if astrid_home:  # $ASTRID_HOME may be elsewhere than ~/.astrid: deny it wherever it is
        roots.append(normalize_path(astrid_home, "/", home).path)
    literal = [
        os.path.normpath(home + entry[1:] if entry[:2] in ("~", "~/") else entry)
        for entry in denied_paths
    ]
    return tuple(dict.fromkeys([*roots, *(r for r in literal if os.path.isabs(r))]))


@dataclass(frozen=True)
class SecurityPolicy:
    blocked_tools: tuple[str, ...] = ()  # resource globs, e.g. "mcp://github/delete_*"
    blocked_resources: frozenset[str] = frozenset()  # exact resources ("deny always" answers)
    blocked_commands: tuple[str, ...] = DEFAULT_BLOCKED_COMMANDS
    denied_paths: tuple[str, ...] = DEFAULT_DENIED_PATHS
    denied_hosts: tuple[str, ...] = ()
    allow_private_networks: bool = False
    approval_required_tools: tuple[str, ...] = ()  # resource globs that always ask
    max_argument_bytes: int = 1024 * 1024
    home: str = field(default_factory=lambda: os.path.expanduser("~"))
    astrid_home: str | None = None

    def with_blocked(self, resources: Iterable[str]) -> SecurityPolicy:
        """A session-scoped tightening ("deny always"): the policy only ever grows.

        Exact resources, not globs: a user denying the file ``/tmp/*`` blocks that file only."""
        return replace(self, blocked_resources=self.blocked_resources | frozenset(resources))

    # ------------------------------------------------------------------ paths

    @property
    def _denied_roots(self) -> tuple[str, ...]:
        return _resolve_denied_roots(tuple(self.denied_paths), self.home, self.astrid_home)

    def denied_path(self, path: str) -> str | None:
        for root in self._denied_roots:
            if is_within_resolved(path, root):
                return root
        return None

    # ------------------------------------------------------------------ judging

    def _size_problems(self, normalized: Normalized) -> list[str]:
        """Arguments (as signed: RFC 8785, format v2) plus content (a file's new bytes) over
        the limit, or arguments that cannot be signed at all (NaN, an integer beyond 2^53 that
        is no double): a denial, recorded by digest, never an exception without a decision."""
        action = normalized.action
        try:
            size = len(canonical_json(action.arguments(), 2))
        except Exception as exc:  # BadInputError (or RecursionError): fail closed, say why
            why = getattr(exc, "message", None) or type(exc).__name__
            hint = getattr(exc, "hint", None)
            return [f"arguments cannot be signed: {why[:300]}" + (f" ({hint})" if hint else "")]
        size += action.content_size()
        if size > self.max_argument_bytes:
            return [
                f"arguments and content are {size} bytes, "
                f"over the {self.max_argument_bytes}-byte limit (security.max_argument_bytes)"
            ]
        return []

    def check(self, normalized: Normalized) -> PolicyVerdict:
        action = normalized.action
        deny: list[str] = []
        ask: list[str] = list(normalized.warnings)
        deny += self._size_problems(normalized)
        resource = action.resource
        if any(fnmatch.fnmatchcase(resource, p) for p in self.blocked_tools):
            deny.append(f"{resource} is blocked by policy")
        if resource in self.blocked_resources:
            deny.append(f"{resource} was denied always in this session")
        if any(fnmatch.fnmatchcase(resource, p) for p in self.approval_required_tools):
            ask.append(f"{resource} always requires approval")
        if normalized.path is not None:
            root = self.denied_path(normalized.path)
            if root is not None:
                deny.append(f"path {normalized.path} is inside the denied path {root}")
        if isinstance(action, NetworkRequest):
            deny += self._host_problems(action.host, action.port)
        if isinstance(action, ShellCommand) and normalized.shell is not None:
            deny += self._shell_problems(normalized.shell, action.cwd)
            if normalized.shell.opaque:
                ask.append(
                    "the command line cannot be fully understood: "
                    + "; ".join(normalized.shell.opaque_reasons)
                )
        if isinstance(action, McpToolCall):
            for key, value in action.args.items():
                if isinstance(value, str) and key.lower() in (
                    "path",
                    "file",
                    "filename",
                    "directory",
                    "dir",
                ):
                    root = self.denied_path(normalize_path(value, "/", self.home).path)
                    if root is not None:
                        deny.append(f"argument {key}={value!r} is inside the denied path {root}")
        if deny:
            return PolicyVerdict(Verdict.DENY, tuple(deny))
        if ask:
            return PolicyVerdict(Verdict.ASK, tuple(ask))
        return PolicyVerdict(Verdict.PASS)

    def _host_problems(self, host: str, port: int) -> list[str]:
        host = host.lower().rstrip(".")
        for pattern in self.denied_hosts:
            if fnmatch.fnmatchcase(host, pattern.lower()):
                return [f"host {host} is denied by policy"]
        if self.allow_private_networks:
            return []
        private = private_addresses(host, port)
        if private:
            where = ", ".join(private)
            return [f"host {host} is a private/loopback/link-local/metadata address ({where})"]
        return []

    # ------------------------------------------------------------------ shell

    def _shell_problems(self, line: ParsedLine, cwd: str) -> list[str]:
        problems: list[str] = []
        raw_text = " ".join(" ".join(c.argv) for c in line.commands)
        if ":(){" in raw_text.replace(" ", ""):
            problems.append("fork bomb")
        by_program, globbed = _rule_index(tuple(self.blocked_commands))
        for command in line.commands:
            for rule in (*by_program.get(command.program, ()), *globbed):
                if _matches_rule(rule, command):
                    problems.append(f"command {' '.join(command.argv)[:120]!r} is blocked ({rule})")
            problems += self._command_paths(command, cwd)
            if command.program in _NET_TOOLS:
                for host in _hosts_in(command):
                    problems += self._host_problems(host, 0)
        for target in line.redirect_targets:
            root = self.denied_path(normalize_path(target, cwd, self.home).path)
            if root is not None:
                problems.append(f"redirection to {target} is inside the denied path {root}")
        for pipeline in line.pipelines:
            programs = [c.program for c in pipeline]
            for index, program in enumerate(programs[1:], 1):
                if program in SHELLS and any(p in _DOWNLOADERS for p in programs[:index]):
                    problems.append("downloaded content is piped into a shell")
        return sorted(set(problems))

    def _command_paths(self, command: SimpleCommand, cwd: str) -> list[str]:
        problems: list[str] = []
        for arg in command.argv[1:]:
            if arg.startswith("-") and "=" in arg:
                arg = arg.split("=", 1)[1]
            if not (arg.startswith(("/", "~", "./", "../")) or "/" in arg):
                continue
            if "://" in arg:
                continue
            root = self.denied_path(normalize_path(arg, cwd, self.home).path)
            if root is not None:
                problems.append(f"{command.program} touches {arg}, inside the denied path {root}")
        return problems


@lru_cache(maxsize=256)
def _rule_words(rule: str) -> tuple[str, ...]:
    """A blocked-command rule split into words, once: splitting every rule for every simple
    command of every decision was nine tenths of a shell decision's cost."""
    return tuple(shlex.split(rule))


@lru_cache(maxsize=32)
def _rule_index(rules: tuple[str, ...]) -> tuple[dict[str, tuple[str, ...]], tuple[str, ...]]:
    """The rules by the literal program they name, and those whose program is a glob: a
    command is only matched against the rules that can apply to it (there are ~60)."""
    literal: dict[str, list[str]] = {}
    globbed: list[str] = []
    for rule in rules:
        words = _rule_words(rule)
        if words and not any(c in words[0] for c in "*?["):
            literal.setdefault(words[0], []).append(rule)
        else:
            globbed.append(rule)
    return {k: tuple(v) for k, v in literal.items()}, tuple(globbed)


def _matches_rule(rule: str, command: SimpleCommand) -> bool:
    words = _rule_words(rule)
    if not words or not fnmatch.fnmatchcase(command.program, words[0]):
        return False
    args = list(command.argv[1:])
    if rule == "rm -rf /":
        return _dangerous_rm(args)
    if rule == "chmod 777":
        return any(re.fullmatch(r"0?777|[ugoa]*\+rwx|a=rwx|o\+w|[ugo]*a\+w", a) for a in args)
    if rule == "chown -R /":
        return any(a in ("-R", "--recursive") for a in args) and any(
            a.rstrip("/") == "" for a in args
        )
    return all(word in args for word in words[1:])


def _dangerous_rm(args: list[str]) -> bool:
    recursive = any(
        a in ("-r", "-R", "--recursive")
        or (a.startswith("-") and not a.startswith("--") and ("r" in a or "R" in a))
        for a in args
    )
    if not recursive:
        return False
    for target in (a for a in args if not a.startswith("-")):
        cleaned = target.rstrip("/") or "/"
        if cleaned in ("/", "/*", "~", "~/", "$HOME", "${HOME}", "*", "/.", ".."):
            return True
        if cleaned.rstrip("/*") in _SYSTEM_DIRS:
            return True
    return "--no-preserve-root" in args


def _hosts_in(command: SimpleCommand) -> list[str]:
    hosts: list[str] = []
    positional = [a for a in command.argv[1:] if not a.startswith("-")]
    for arg in positional:
        if "://" in arg:
            host = urlsplit(arg).hostname
            if host:
                hosts.append(host)
        elif (
            command.program in ("nc", "ncat", "netcat", "telnet", "socat")
            and positional
            and arg == positional[0]
        ):
            hosts.append(arg.split(":")[0])
        elif command.program in ("ssh", "scp", "sftp", "rsync") and "@" in arg:
            hosts.append(arg.split("@", 1)[1].split(":")[0])
        elif (
            command.program in ("curl", "wget")
            and re.fullmatch(r"[\w.\-\[\]:]+(/.*)?", arg)
            and "." in arg
        ):
            hosts.append(arg.split("/")[0].split(":")[0])
    return hosts
