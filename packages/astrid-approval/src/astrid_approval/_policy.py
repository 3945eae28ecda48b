"""SecurityPolicy: the admin's hard limits. No approval, token or allowance can lift them.

It judges *normalized* actions (see ``_normalize``): resolved paths and parsed shell lines.
Verdicts: DENY (hard limit), ASK (allowed only with a human's approval, never auto-allowed),
or PASS (the other layers decide).
"""

from __future__ import annotations

import contextlib
import fnmatch
import os
import re
import shlex
import stat
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from enum import StrEnum
from functools import lru_cache
from urllib.parse import urlsplit

from astrid_core import FileDelete, FileWrite, McpToolCall, NetworkRequest, ShellCommand
from astrid_crypto import canonical_json

from ._network import private_addresses
from ._normalize import Normalized
from ._paths import (
    PathRules,
    compile_path_rules,
    denied_identities,
    git_hooks_dirs,
    is_within_resolved,
    normalize_path,
)
from ._shell import SHELLS, ParsedLine, SimpleCommand

__all__ = [
    "SecurityPolicy",
    "PolicyVerdict",
    "Verdict",
    "DEFAULT_BLOCKED_COMMANDS",
    "DEFAULT_DENIED_PATHS",
    "DEFAULT_PROTECTED_PATHS",
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
    # gitwildmatch globs over resolved absolute paths (see _paths.path_entry_problem); a folder
    # entry covers everything below it. Never read, never written, wherever the workspace is.
    "/etc",
    "/boot",
    "/sys",
    "/proc",
    "/dev",
    # Credentials and the keys to other machines and accounts.
    "~/.ssh",
    "~/.gnupg",
    "~/.aws",
    "~/.azure",
    "~/.config/gcloud",
    "~/.kube",
    "~/.docker",
    "~/.netrc",
    "~/.git-credentials",
    "~/.config/gh",
    "~/.config/hub",
    "~/.config/op",
    "~/.password-store",
    "~/.local/share/keyrings",
    "~/.pgpass",
    "~/.pypirc",
    "~/.npmrc",
    "~/.vault-token",
    "~/.terraform.d",
    "~/.cargo/credentials",
    "~/.cargo/credentials.toml",
    # Browser profiles hold session cookies.
    "~/.mozilla",
    "~/.config/google-chrome",
    "~/.config/chromium",
    "~/.config/BraveSoftware",
    # All of the runtime's own state, not only its keys: its config.toml (an agent that could
    # edit it could add hooks or loosen the policy for the next start), the audit database,
    # stored OAuth tokens, installed capsules and the daemon's token. $ASTRID_HOME is added
    # wherever it is (SecurityPolicy.astrid_home and the environment variable).
    "~/.astrid",
)
# Written only after a human said yes, in every mode: files that make something run later,
# outside any sandbox (git hooks and config, direnv, editor tasks, CI, shell start-up files).
# The hooks directory git really uses (core.hooksPath) is added per repository.
DEFAULT_PROTECTED_PATHS: tuple[str, ...] = (
    "**/.git/hooks",
    "**/.git/config",
    "**/.git/config.worktree",  # extensions.worktreeConfig: core.fsmonitor works here too
    "**/.git/worktrees",  # linked worktrees' gitdir/commondir pointers and their config
    "**/.git/commondir",  # redirects where git reads config (and hooks) from
    "**/.git/info/attributes",
    "**/.git/modules",  # submodules' own config and hooks
    "**/.gitmodules",
    "**/.gitattributes",
    "**/.astrid",
    "**/.envrc",
    "**/.vscode",
    "**/.idea",
    "**/.devcontainer",
    "**/.github/workflows",
    "**/.husky",
    "**/.pre-commit-config.yaml",
    "**/.mcp.json",
    "~/.gitconfig",
    "~/.config/git",
    "~/.bashrc",
    "~/.bash_profile",
    "~/.bash_login",
    "~/.bash_logout",
    "~/.profile",
    "~/.zshrc",
    "~/.zshenv",
    "~/.zprofile",
    "~/.config/fish",
    "~/.config/autostart",
    "~/.config/systemd",
    "~/.config/environment.d",
    "~/.local/bin",
    "~/bin",
    "~/.ripgreprc",
    "~/.pam_environment",
)
# MCP tool arguments that name a file (checked against denied and protected paths).
_MCP_PATH_KEYS = frozenset(
    {
        "path",
        "file",
        "filename",
        "directory",
        "dir",
        "source",
        "destination",
        "target",
        "new_path",
        "old_path",
    }
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


@dataclass(frozen=True)
class SecurityPolicy:
    blocked_tools: tuple[str, ...] = ()  # resource globs, e.g. "mcp://github/delete_*"
    blocked_resources: frozenset[str] = frozenset()  # exact resources ("deny always" answers)
    blocked_commands: tuple[str, ...] = DEFAULT_BLOCKED_COMMANDS
    denied_paths: tuple[str, ...] = DEFAULT_DENIED_PATHS
    protected_paths: tuple[str, ...] = DEFAULT_PROTECTED_PATHS
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

    def _denied_rules(self) -> PathRules:
        # Compiled once per policy object (a walk asks for every file it visits).
        cached = self.__dict__.get("_denied_rules_cache")
        if cached is None:
            cached = self.__dict__["_denied_rules_cache"] = self._compile_denied_rules()
        return cached

    def _compile_denied_rules(self) -> PathRules:
        extra = tuple(
            dict.fromkeys(
                os.path.abspath(p)
                for p in (self.astrid_home, os.environ.get("ASTRID_HOME"))
                if p and os.path.isabs(os.path.expanduser(p))
            )
        )
        return compile_path_rules(tuple(self.denied_paths), self.home, extra)

    def _protected_rules(self) -> PathRules:
        cached = self.__dict__.get("_protected_rules_cache")
        if cached is None:
            cached = compile_path_rules(tuple(self.protected_paths), self.home)
            self.__dict__["_protected_rules_cache"] = cached
        return cached

    def denied_path(self, path: str, *, write: bool = False) -> str | None:
        """The denied entry that resolved absolute ``path`` falls under, or None. ``write``:
        the path is about to be written, renamed, replaced or deleted, so a folder *above* a
        denied path counts too (moving ``~`` away moves ``~/.ssh``)."""
        rules = self._denied_rules()
        found = rules.match(path)
        if found is None and write:
            found = rules.match_parent(path)
        return found

    def protected_path(self, path: str) -> str | None:
        """The protected entry a write to resolved absolute ``path`` would change (the path,
        or a folder above it), or None: such a write always asks, in every mode. Includes
        the hooks directory git really uses for the repository holding ``path``."""
        rules = self._protected_rules()
        found = rules.match(path) or rules.match_parent(path)
        if found is not None:
            return found
        for what, target in git_hooks_dirs(path, self.home):
            if is_within_resolved(path, target) or is_within_resolved(target, path):
                return f"{target} ({what})"
        return None

    def denied_link(self, info: os.stat_result) -> str | None:
        """A reason when ``info`` (an lstat/fstat) is another name (hard link) of a denied
        file, else None. Files with a single link are never looked up."""
        if info.st_nlink <= 1 or not stat.S_ISREG(info.st_mode):
            return None
        if (info.st_dev, info.st_ino) in denied_identities(self._denied_rules()):
            return "it is a hard link to a denied file"
        return None

    def _path_problems(self, path: str, *, write: bool) -> tuple[list[str], list[str]]:
        """(deny reasons, ask reasons) for an action on resolved absolute ``path``."""
        root = self.denied_path(path, write=write)
        if root is not None:
            return [f"path {path} is inside the denied path {root}"], []
        with contextlib.suppress(OSError):
            link = self.denied_link(os.lstat(path))
            if link is not None:
                return [f"path {path}: {link}"], []
        if write:
            protected = self.protected_path(path)
            if protected is not None:
                return [], [f"{path} is protected ({protected}): writing it always asks"]
        return [], []

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
            path_deny, path_ask = self._path_problems(
                normalized.path, write=isinstance(action, FileWrite | FileDelete)
            )
            deny += path_deny
            ask += path_ask
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
                if isinstance(value, str) and key.lower() in _MCP_PATH_KEYS:
                    resolved = normalize_path(value, "/", self.home).path
                    root = self.denied_path(resolved)
                    if root is not None:
                        deny.append(f"argument {key}={value!r} is inside the denied path {root}")
                        continue
                    # The tool may write it (we cannot tell): a protected path always asks.
                    protected = self.protected_path(resolved)
                    if protected is not None:
                        ask.append(f"argument {key}={value!r} names the protected {protected}")
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
