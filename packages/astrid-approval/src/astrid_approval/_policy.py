"""SecurityPolicy: the admin's hard limits. No approval, token or allowance can lift them.

It judges *normalized* actions (see ``_normalize``): resolved paths and parsed shell lines.
Verdicts: DENY (hard limit), ASK (allowed only with a human's approval, never auto-allowed),
or PASS (the other layers decide).
"""

from __future__ import annotations

import contextlib
import fnmatch
import itertools
import os
import re
import shlex
import shutil
import stat
import time
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from enum import StrEnum
from functools import lru_cache
from urllib.parse import unquote, urlsplit

from astrid_core import (
    AstridError,
    BadInputError,
    FileDelete,
    FileWrite,
    McpToolCall,
    NetworkRequest,
    ShellCommand,
)
from astrid_core.net import parse_ip_literal
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
from ._shell import HOME_MARK, SHELLS, ParsedLine, SimpleCommand

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

    def protected_path(self, path: str, *, memo: _Resolver | None = None) -> str | None:
        """The protected entry a write to resolved absolute ``path`` would change (the path,
        or a folder above it), or None: such a write always asks, in every mode. Includes
        the hooks directory git really uses for the repository holding ``path``. ``memo``:
        one decision's cache (the git config of a folder is read once per decision)."""
        if memo is not None and path in memo.protected:
            return memo.protected[path]
        rules = self._protected_rules()
        found = rules.match(path) or rules.match_parent(path)
        if found is None:
            hooks = memo.hooks(path) if memo is not None else git_hooks_dirs(path, self.home)
            for what, target in hooks:
                if is_within_resolved(path, target) or is_within_resolved(target, path):
                    found = f"{target} ({what})"
                    break
        if memo is not None:
            memo.protected[path] = found
        return found

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
        if self.blocked_tools or self.blocked_resources or self.approval_required_tools:
            # (a shell line's resource tokenizes the whole line: only computed when used)
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
            for other in _authority_hosts(action.url):  # where URL parsers disagree
                if other.lower() != action.host.lower():
                    deny += self._host_problems(other, action.port)
        if isinstance(action, ShellCommand) and normalized.shell is not None:
            memo = _Resolver(self.home)  # one decision: each path resolved, each repo read once
            deny += self._shell_problems(normalized.shell, action.cwd, memo)
            ask += self._shell_questions(normalized.shell, action.cwd, memo)
            if normalized.shell.opaque:
                ask.append(
                    "cannot tell what this runs: " + "; ".join(normalized.shell.opaque_reasons)
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
        if "%" in host and unquote(host) != host:  # localhost%2e: a client may decode it
            found = self._host_problems(unquote(host), port)
            if found:
                return found
        host = host.lower().rstrip(".")
        for pattern in self.denied_hosts:
            if fnmatch.fnmatchcase(host, pattern.lower()):
                return [f"host {host} is denied by policy"]
        if self.allow_private_networks:
            return []
        # Judged on the text only, never resolved: a lookup during the decision would reach
        # the network before any approval, and a name can carry data out by itself
        # (``<secret>.attacker.example``). Addresses in every spelling and localhost-like and
        # metadata names are recognised without DNS; what a name resolves to is checked by
        # the egress proxy (and the pinned capsule/MCP transports) once, after approval.
        private = private_addresses(host, port, resolve=False)
        if private:
            where = ", ".join(private)
            return [f"host {host} is a private/loopback/link-local/metadata address ({where})"]
        return []

    # ------------------------------------------------------------------ shell

    def _shell_problems(self, line: ParsedLine, cwd: str, memo: _Resolver) -> list[str]:
        problems: list[str] = []
        if ":(){" in line.line.replace(" ", ""):
            problems.append("fork bomb")
        rules = tuple(self.blocked_commands)
        by_program, globbed = _rule_index(rules)
        inside = self.denied_path(memo.path(cwd, "/"))
        if inside is not None:  # every bare file name would name a file in there
            problems.append(f"the command would run inside the denied path {inside}")
        state = _path_state()
        for command in line.commands:
            command, complete = _brace_expanded(command)
            if not complete:
                problems.append(
                    f"{command.program}: a brace expansion names more than {_EXPANSION_LIMIT} "
                    "words, too many to check"
                )
            identity = _blocked_identity(command, cwd, self.home, rules, state, memo)
            if identity is not None and identity != command.program:
                # what it really is: a symlink, hard link, copy or /proc path of a blocked program
                command = replace(command, program=identity)
            judged = command
            if command.home_paths:  # rm -rf "$HOME" is rm -rf ~
                homes = tuple(h.replace(HOME_MARK, "~") for h in command.home_paths)
                judged = replace(command, argv=(*command.argv, *homes))
            for rule in (*by_program.get(command.program, ()), *globbed):
                if _matches_rule(rule, judged):
                    problems.append(f"command {' '.join(command.argv)[:120]!r} is blocked ({rule})")
            problems += self._command_paths(command, cwd, memo)
            for host in _hosts_in(command):
                problems += self._host_problems(host, 0)
        for host in line.hosts:
            problems += self._host_problems(host, 0)
        if line.parse_error:  # where the tree is wrong, any word may be what runs
            names = frozenset(_blocked_names(rules)) - _SUBCOMMAND_WORDS
            unquoted = re.sub(r"[\"'\\$]", "", line.line.replace("\\\n", ""))
            words = re.findall(r"[\w./+-]+", unquoted)
            for token in re.findall(r"[\w./+{},-]*\{[\w./+{},-]*", unquoted):  # {s,}udo
                words += _brace_expand(token, _EXPANSION_LIMIT)
            found = [w for w in words if w.rsplit("/", 1)[-1] in names]
            if found:
                problems.append(f"a line that does not parse names the blocked {found[0]!r}")
        for target in line.redirect_targets:
            why = self._denied_use(target.replace(HOME_MARK, self.home), cwd, memo)
            if why is not None:
                problems.append(f"redirection to {target}: {why}")
        for pattern in line.pattern_programs:  # "/usr/bin/su?o": bash runs whatever matches
            # ({sudo,id} and s{u,}do expand to words, the first of which runs)
            alternatives = _brace_expand(pattern, _EXPANSION_LIMIT)
            first = alternatives[0].rsplit("/", 1)[-1] if alternatives else pattern
            matched = [
                n
                for n in _blocked_names(rules)
                if n == first or any(fnmatch.fnmatchcase(n, a) for a in (pattern, *alternatives))
            ]
            if matched:
                problems.append(f"the program pattern {pattern!r} can run the blocked {matched[0]}")
        for pipeline in line.pipelines:
            programs = [c.program for c in pipeline]
            for index, program in enumerate(programs[1:], 1):
                if program in SHELLS and any(p in _DOWNLOADERS for p in programs[:index]):
                    problems.append("downloaded content is piped into a shell")
        return sorted(set(problems))

    def _shell_questions(self, line: ParsedLine, cwd: str, memo: _Resolver) -> list[str]:
        """What is not a hard limit but must never pass unasked: a blocked program named as an
        argument of a program the analysis does not know to run its arguments (``perf stat
        sudo id``), and a recursive walk (``grep -r``, ``tar c``, ``cp -r``) of a directory
        holding a denied path (the workspace at ``~`` holds ``~/.ssh``)."""
        questions: list[str] = []
        names = frozenset(_blocked_names(tuple(self.blocked_commands))) - _SUBCOMMAND_WORDS
        rules = self._denied_rules()
        for command in line.commands:
            if not command.program.isascii():
                questions.append(
                    f"the program name {command.program!r} has non-ASCII characters (a look-alike "
                    "or invisible character can pass for another name)"
                )
        for target in (t.replace(HOME_MARK, self.home) for t in line.redirect_targets):
            shielded = self.protected_path(memo.path(target, cwd), memo=memo)
            if shielded is not None:
                questions.append(f"writes to {target}, under the protected path {shielded}")
        for command in line.commands:
            command, _ = _brace_expanded(command)  # a word bash splits is checked word by word
            questions += self._protected_arguments(command, cwd, memo)
            questions += self._pattern_questions(command, cwd, memo)
            if command.program == "curl" and not {"-g", "--globoff"} & set(command.argv):
                globbed = [a for a in command.argv[1:] if re.search(r"\[[^\]]*\]", a)]
                if globbed:
                    questions.append(
                        f"curl expands the [...] pattern in {globbed[0]!r} itself: cannot tell "
                        "which hosts it reaches"
                    )
            if command.program not in _ARGS_NEVER_RUN:
                for arg in command.argv[1:]:
                    if arg.rsplit("/", 1)[-1] in names:
                        questions.append(
                            f"{command.program} is given the blocked program {arg!r} as an "
                            "argument: cannot tell whether it runs it"
                        )
                        break
            for arg in command.argv[1:]:
                if "/" in arg and not arg.startswith("-") and "://" not in arg:
                    real = os.path.basename(memo.real(os.path.join(cwd, arg)))
                    if real in names:
                        questions.append(
                            f"{command.program} {arg}: that is the blocked program {real} "
                            "(a copy or link of it would run it under another name)"
                        )
                        break
            if _walks(command) and rules.rules:
                targets = [a for a in command.argv[1:] if not a.startswith("-")]
                if command.program in _SEARCHERS:
                    targets = targets[1:]  # the first word is the pattern
                targets = targets or ["."]
                for target in targets:
                    for where in command.cwds:
                        base = memo.path(where, cwd) if where != "." else cwd
                        try:
                            walked = memo.path(target, base)
                        except AstridError:
                            continue
                        # A folder above an anchored denied entry (or holding an any-depth
                        # entry's first name): the walk would read what the entry denies.
                        inside = rules.match(walked) or rules.match_parent(walked)
                        if inside:
                            questions.append(
                                f"{command.program} walks {target}, which holds the denied "
                                f"path {inside}"
                            )
        return sorted(set(questions))

    def _pattern_questions(self, command: SimpleCommand, cwd: str, memo: _Resolver) -> list[str]:
        """A glob argument that may name a denied path (both are patterns: ``*.p?m`` against
        ``*.pem``) or, for a program that may write, a protected one (``.git/ho?ks/x``),
        judged by the pattern whatever exists now: asked."""
        questions: list[str] = []
        writes = command.program not in _READ_ONLY_PROGRAMS
        for arg in (p for word in command.argv[1:] for p in _path_words(word)):
            if arg.startswith("-") or "://" in arg or not _has_glob(arg) or "\x00" in arg:
                continue
            for where in command.cwds:
                base = memo.path(where, cwd) if where != "." else cwd
                reach = self._pattern_reach(arg, base, self._denied_rules(), memo)
                if reach is not None and not reach[1]:
                    questions.append(
                        f"{command.program} {arg}: the pattern may name the denied path {reach[0]}"
                    )
                    break
                shielded = (
                    self._pattern_reach(arg, base, self._protected_rules(), memo)
                    if writes
                    else None
                )
                if shielded is not None:
                    questions.append(
                        f"{command.program} {arg}: the pattern may name the protected path "
                        f"{shielded[0]}"
                    )
                    break
        return questions

    def _pattern_reach(
        self, arg: str, base: str, rules: PathRules, memo: _Resolver
    ) -> tuple[str, bool] | None:
        """(entry, certain) when some path the glob ``arg`` can expand to is an entry of
        ``rules`` or below one; certain when every wildcard met a literal name of the entry
        (``~/.ss?/id_rsa`` and ``~/.ssh``), not only another wildcard. None when it cannot."""
        cache_key = (arg, base, id(rules))
        if cache_key in memo.reach:
            return memo.reach[cache_key]
        text = self.home + arg[1:] if arg == "~" or arg.startswith("~/") else arg
        text = os.path.normpath(text if os.path.isabs(text) else os.path.join(base, text))
        parts = text.split("/")[1:]
        literal = 0
        while literal < len(parts) and not _has_glob(parts[literal]):
            literal += 1
        head = memo.real("/" + "/".join(parts[:literal])) if literal else "/"
        names = tuple(p for p in head.split("/") if p)
        tail = tuple(parts[literal:])
        pattern = names + tail
        known = frozenset(names)
        best: tuple[str, bool] | None = None
        key = f"_components_{id(rules)}"
        entries = self.__dict__.get(key)
        if entries is None:  # once per policy object (its rules are compiled once too)
            every = _entry_components(rules, self.home)
            by_first: dict[str, list[tuple[str, tuple[str, ...]]]] = {}
            others: list[tuple[str, tuple[str, ...]]] = []
            for item in every:
                head_name = item[1][0] if item[1] else "**"
                if head_name == "**" or _has_glob(head_name) or "\\" in head_name:
                    others.append(item)
                else:
                    by_first.setdefault(head_name, []).append(item)
            entries = self.__dict__[key] = (rules, every, by_first, tuple(others))
        first_name = pattern[0] if pattern else ""
        if _has_glob(first_name):
            candidates = entries[1]
        else:  # only entries whose first component can be this name
            candidates = (*entries[2].get(first_name, ()), *entries[3])
        for entry, components in candidates:
            if components[:1] == ("**",) and len(components) > 1:
                # any depth: its first name must meet a component (cheap test first)
                first = components[1]
                if (
                    not _has_glob(first)
                    and first not in known
                    and not any(_component_meets(p, first) for p in tail)
                ):
                    continue
            found = _reaches(pattern, components)
            if found == 2:
                best = (entry, True)
                break
            if found == 1 and best is None:
                best = (entry, False)
        memo.reach[cache_key] = best
        return best

    def _protected_arguments(self, command: SimpleCommand, cwd: str, memo: _Resolver) -> list[str]:
        """A path-like argument under a protected path (``.git/hooks``, ``.git/config``, …):
        the line is asked, in every mode, unless the program only reads. Which arguments a
        program writes is not in the text, so any mention counts; renaming or deleting a
        folder above a protected path counts too (``mv .git/hooks x``)."""
        if command.program in _READ_ONLY_PROGRAMS:
            return []
        questions: list[str] = []
        for arg in (p for word in command.argv[1:] for p in _path_words(word)):
            if arg.startswith("-") or "://" in arg or not arg or "\x00" in arg:
                continue
            for where in command.cwds:
                base = memo.path(where, cwd) if where != "." else cwd
                try:
                    resolved = memo.path(arg, base)
                except AstridError:
                    continue
                shielded = self.protected_path(resolved, memo=memo)
                if shielded is not None:
                    questions.append(
                        f"{command.program} {arg} may change the protected path {shielded}"
                    )
                    break
        return questions

    def _command_paths(self, command: SimpleCommand, cwd: str, memo: _Resolver) -> list[str]:
        """Path-like arguments, resolved against every directory the command may run in
        (``cd`` earlier in the line is followed); a glob is checked by what it matches."""
        problems: list[str] = []
        words = (*command.argv[1:], *(h.replace(HOME_MARK, self.home) for h in command.home_paths))
        for arg in (p for word in words for p in _path_words(word)):
            # every word may be a file name: "cat key.pem" with "*.pem" denied (a bare name
            # was skipped, and read the key)
            if arg.startswith("-") or "://" in arg or not arg or "\x00" in arg:
                continue
            for where in command.cwds:
                base = memo.path(where, cwd) if where != "." else cwd
                if _has_glob(arg):  # by the pattern itself, whatever exists now
                    reach = self._pattern_reach(arg, base, self._denied_rules(), memo)
                    if reach is not None and reach[1]:
                        problems.append(
                            f"{command.program} {arg}: the pattern can name the denied path "
                            f"{reach[0]}"
                        )
                        break
                for candidate in _glob_candidates(arg, base, self.home):
                    if candidate == _TOO_MANY:
                        problems.append(
                            f"{command.program} {arg} names more than {_GLOB_LIMIT} paths: "
                            "too many to check"
                        )
                        break
                    why = self._denied_use(candidate, base, memo)
                    if why is not None:
                        problems.append(f"{command.program} touches {arg}: {why}")
                        break
        return problems

    def _denied_use(self, raw: str, base: str, memo: _Resolver) -> str | None:
        """Why using path ``raw`` (relative to ``base``) is denied, else None: where it
        resolves, where it is written (``/proc/self/cwd/..`` resolves in *this* process, the
        text names /proc), or another name (hard link) of a denied file."""
        resolved = memo.path(raw, base)
        root = self.denied_path(resolved)
        if root is None and not raw.startswith("~"):
            lexical = os.path.normpath(raw if raw.startswith("/") else os.path.join(base, raw))
            root = self.denied_path(lexical)
        if root is not None:
            return f"inside the denied path {root}"
        info = memo.lstat(resolved)
        if info is not None:
            return self.denied_link(info)
        return None


def _has_glob(text: str) -> bool:
    return "*" in text or "?" in text or "[" in text


def _entry_components(rules: PathRules, home: str) -> tuple[tuple[str, tuple[str, ...]], ...]:
    """Each entry as path components: anchored ones from ``/`` (``~`` expanded, and each
    resolved form), any-depth ones after a leading ``**``."""
    found: list[tuple[str, tuple[str, ...]]] = []
    for rule in rules.rules:
        entry = rule.entry.rstrip("/") or "/"
        if rule.literal is None:
            body = entry.removeprefix("**/")
            found.append((rule.entry, ("**", *(p for p in body.split("/") if p))))
            continue
        text = home.rstrip("/") + entry[1:] if entry == "~" or entry.startswith("~/") else entry
        text = os.path.normpath(text)
        rest = text[len(_literal_prefix_of(text)) :]
        found.append((rule.entry, tuple(p for p in (rule.literal + rest).split("/") if p)))
    return tuple(dict.fromkeys(found))


def _literal_prefix_of(text: str) -> str:
    parts: list[str] = []
    for part in text.split("/")[1:]:
        if _has_glob(part) or "\\" in part:
            break
        parts.append(part)
    return "/" + "/".join(parts)


def _reaches(pattern: tuple[str, ...], entry: tuple[str, ...]) -> int:
    """Whether a path the glob components ``pattern`` can name is the path the components
    ``entry`` name, or below it: 2 certainly (each wildcard met a literal name), 1 maybe (a
    wildcard met a wildcard), 0 no. ``**`` (in an entry; in a pattern only with globstar,
    which makes the line opaque) spans any number of components."""
    memo: dict[tuple[int, int], int] = {}

    def walk(i: int, j: int) -> int:
        key = (i, j)
        if key in memo:
            return memo[key]
        if j == len(entry):
            found = 2
        elif i == len(pattern):
            found = 0
        elif entry[j] == "**":
            found = max(walk(i, j + 1), walk(i + 1, j))
        elif pattern[i] == "**":
            found = max(walk(i + 1, j), walk(i, j + 1))
        else:
            meets = _component_meets(pattern[i], entry[j])
            found = min(meets, walk(i + 1, j + 1)) if meets else 0
        memo[key] = found
        return found

    return walk(0, 0)


def _component_meets(pattern: str, name: str) -> int:
    """Whether the bash glob ``pattern`` can match the file name ``name`` (itself a gitignore
    glob component): 2 yes, 1 maybe (both are patterns), 0 no. As in bash, a leading dot is
    only matched by a leading dot (dotglob makes the line opaque)."""
    pattern_glob = _has_glob(pattern)
    name_glob = _has_glob(name) or "\\" in name
    if not pattern_glob and not name_glob:
        return 2 if pattern == name else 0
    if name.startswith(".") and not pattern.startswith(".") and pattern_glob:
        return 0
    bash = pattern.replace("[^", "[!")
    if not name_glob:
        return 2 if fnmatch.fnmatchcase(name, bash) else 0
    if not pattern_glob:
        return 2 if fnmatch.fnmatchcase(pattern, name.replace("\\", "")) else 0
    # two patterns: they can meet only if their literal heads and tails agree
    (ph, pt), (nh, nt) = _glob_ends(bash), _glob_ends(name)
    heads = ph.startswith(nh) or nh.startswith(ph)
    tails = pt.endswith(nt) or nt.endswith(pt)
    return 1 if heads and tails else 0


def _glob_ends(text: str) -> tuple[str, str]:
    """The literal text before a glob's first wildcard and after its last."""
    return re.split(r"[*?\[]", text, maxsplit=1)[0], re.split(r"[*?\]]", text)[-1]


class _Resolver:
    """One decision's path cache: ``path(raw, base)`` is ``normalize_path(raw, base).path``,
    ``real(p)`` is ``os.path.realpath(p)``, each computed once per decision; ``hooks`` reads
    the git configuration for a folder once per decision.

    ``real`` resolves a path from its (cached) parent and one ``lstat`` of its last component,
    which is what ``realpath`` does component by component; anything unusual (``.``/``..``,
    a trailing or doubled slash, a symbolic link as the last component) goes to ``realpath``
    itself. Nothing outlives the decision, so nothing here can go stale."""

    __slots__ = ("_hooks", "_paths", "_real", "_stats", "home", "protected", "reach")

    def __init__(self, home: str) -> None:
        self.home = home
        self._paths: dict[tuple[str, str], str] = {}
        self._real: dict[str, str] = {}
        self._stats: dict[str, os.stat_result | None] = {}
        self._hooks: dict[str, tuple[tuple[str, str], ...]] = {}
        self.protected: dict[str, str | None] = {}  # SecurityPolicy.protected_path's answers
        self.reach: dict[tuple[str, str, int], tuple[str, bool] | None] = {}  # _pattern_reach

    def path(self, raw: str, base: str) -> str:
        key = (raw, base)
        found = self._paths.get(key)
        if found is None:
            if not raw or "\x00" in raw:
                return normalize_path(raw, base, self.home).path  # raises the clear error
            text = self.home + raw[1:] if raw == "~" or raw.startswith("~/") else raw
            found = self.real(text if os.path.isabs(text) else os.path.join(base, text))
            self._paths[key] = found
        return found

    def real(self, path: str) -> str:
        found = self._real.get(path)
        if found is not None:
            return found
        head, tail = os.path.split(path)
        if not tail or tail in (".", "..") or not head.startswith("/") or "//" in path:
            found = _realpath(path)
        else:
            joined = self.real(head).rstrip("/") + "/" + tail
            info = self.lstat(joined)  # missing (or under a file): realpath goes on lexically
            link = info is not None and stat.S_ISLNK(info.st_mode)
            found = _realpath(joined) if link else joined
        self._real[path] = found
        return found

    def lstat(self, path: str) -> os.stat_result | None:
        if path in self._stats:
            return self._stats[path]
        try:
            found: os.stat_result | None = os.lstat(path)
        except (OSError, ValueError):
            found = None
        self._stats[path] = found
        return found

    def hooks(self, path: str) -> tuple[tuple[str, str], ...]:
        """``git_hooks_dirs(path)``: the same for every path of one folder."""
        folder = os.path.dirname(path.rstrip("/")) or "/"
        found = self._hooks.get(folder)
        if found is None:
            found = self._hooks[folder] = git_hooks_dirs(path, self.home)
        return found


def _realpath(path: str) -> str:
    """``os.path.realpath``, looked at again when a component flips while it is read."""
    for _ in range(3):
        try:
            return os.path.realpath(path)
        except OSError:
            continue
    raise BadInputError(
        f"{path!r} keeps changing while it is being resolved (a symbolic link is swapped)",
        hint="try again once nothing else is modifying that path",
    )


# Programs that never write the files they are given: naming a protected path to them is no
# reason to ask (everything else may write what it names).
_READ_ONLY_PROGRAMS = frozenset(
    {
        "cat",
        "less",
        "more",
        "head",
        "tail",
        "wc",
        "diff",
        "cmp",
        "stat",
        "file",
        "ls",
        "grep",
        "egrep",
        "fgrep",
        "rg",
        "md5sum",
        "sha256sum",
        "sha1sum",
        "b2sum",
        "od",
        "xxd",
        "hexdump",
    }
)
_GLOB_LIMIT = 4096  # paths one glob or brace expansion may name before the line is refused
_TOO_MANY = "\x00too many"  # a marker no path can be (paths hold no NUL)


@lru_cache(maxsize=4096)
def _path_words(word: str) -> tuple[str, ...]:
    """The paths one argument may name: itself, an option's value (``--file=/x``), a file a
    tool reads by ``@`` (``curl -d @/x``, ``-F f=@/x``), a ``file://`` URL's path. (A pure
    function of the word, cached: every check of a decision asks it for every argument.)"""
    found = [word]
    if word.startswith("-") and "=" in word:
        found = [word.split("=", 1)[1]]
    elif len(word) > 2 and word[0] == "-" and word[1] != "-":
        # a short option with its value attached: curl -d@.ssh/key, -T.ssh/key, tar -C/x
        found.append(word[2:])
    for text in list(found):
        if text.lower().startswith("file:"):
            found.append(unquote(urlsplit(text).path) or "/")
        for mark in ("=@", "@", "=", "<"):
            head, sep, tail = text.partition(mark)
            if (sep and tail.startswith(("/", "~")) and (mark != "@" or head in ("", "-"))) or (
                sep and mark == "=@" and tail
            ):
                found.append(tail)
    found += [text[1:] for text in list(found) if text.startswith("@") and len(text) > 1]
    if ":" in word:  # docker -v ~/.ssh:/k (a local path first; host:path is remote)
        local = word.split(":", 1)[0]
        if local.startswith(("/", "~", ".")):
            found.append(local)
    if "," in word:  # docker --mount type=bind,source=~/.ssh,target=/k
        for piece in word.split(","):
            value = piece.split("=", 1)[1] if "=" in piece else piece
            if value != word and value.startswith(("/", "~", ".")):
                found.append(value)
    return tuple(found)


# Programs that never run an argument as a program (naming "sudo" to them is harmless), and
# words that are blocked programs but mostly subcommands (git init, npm init).
_ARGS_NEVER_RUN = frozenset(
    {"echo", "printf", "grep", "egrep", "fgrep", "rg", "ag", "ack", "man", "info", "which",
     "type", "whereis", "whatis", "apropos", "command", "apt", "apt-get", "apt-cache", "dpkg",
     "rpm", "dnf", "yum", "brew", "pip", "pip3", "npm", "yarn", "pnpm", "cargo", "go", "git",
     "gh", "less", "more", "cat", "head", "tail", "wc", "sort", "uniq", "diff", "cut", "tr",
     "test", "[", "hash", "help", "compgen", "complete", "ls", "stat", "file", "readlink",
     "realpath", "basename", "dirname", "touch", "mkdir", "systemctl", "journalctl", "ps",
     "pgrep", "pkill", "killall"}
)  # fmt: skip
_SUBCOMMAND_WORDS = frozenset({"init", "halt"})
_SEARCHERS = frozenset({"grep", "egrep", "fgrep", "rg", "ag", "ack"})
_WALKERS = frozenset(
    {"grep", "egrep", "fgrep", "rg", "ag", "ack", "find", "tar", "zip", "cp", "rsync", "scp",
     "du", "chmod", "chown", "rm", "tree", "ls", "fd", "git"}
)  # fmt: skip


def _walks(command: SimpleCommand) -> bool:
    """A recursive read or write of the directories it is given."""
    program, args = command.program, command.argv[1:]
    if program not in _WALKERS or program == "git":
        return False
    if program in ("rg", "ag", "ack", "find", "du", "tree", "fd", "rsync"):
        return True
    if program == "tar":
        return any(a.lstrip("-").startswith("c") or a in ("--create",) for a in args[:2])
    if program == "zip":
        return any(a.startswith("-") and "r" in a for a in args)
    short = "".join(a[1:] for a in args if a.startswith("-") and not a.startswith("--"))
    long = {a for a in args if a.startswith("--")}
    if program in ("grep", "egrep", "fgrep"):
        return (
            "r" in short or "R" in short or bool({"--recursive", "--dereference-recursive"} & long)
        )
    if program in ("cp", "scp", "chmod", "chown", "rm", "ls"):
        return (
            "r" in short
            or "R" in short
            or ("a" in short and program == "cp")
            or ("--recursive" in long)
        )
    return False


_EXPANSION_LIMIT = 256  # words one command's brace expansions may produce before it is refused


def _brace_expanded(command: SimpleCommand) -> tuple[SimpleCommand, bool]:
    """The command as bash runs it after brace expansion, and whether the expansion was
    complete: ``rm -rf {~,.}`` is ``rm -rf ~ .`` and ``curl http://{127.0.0.1,x.test}/``
    names two hosts. Braces that were quoted are expanded too (curl expands them itself), so
    this only ever checks more words, never fewer; empty alternatives vanish as in bash."""
    if not any("{" in word for word in command.argv[1:]):
        return command, True
    argv = [command.argv[0]]
    for word in command.argv[1:]:
        if "{" not in word:
            argv.append(word)
            continue
        words = _brace_expand(word, _EXPANSION_LIMIT + 1)
        if len(words) > _EXPANSION_LIMIT:
            return command, False
        argv += [w for w in words if w]
    if len(argv) == len(command.argv) and all(map(str.__eq__, argv, command.argv)):
        return command, True  # "{}" and the like: nothing to expand
    return replace(command, argv=tuple(argv)), True


def _brace_expand(word: str, limit: int) -> list[str]:
    """Bash brace expansion, bounded: ``~/.{ssh,aws}/x`` is ``~/.ssh/x`` and ``~/.aws/x``."""
    start = word.find("{")
    while start != -1:
        depth, end = 0, -1
        commas: list[int] = []
        for index in range(start, len(word)):
            char = word[index]
            if char == "{":
                depth += 1
            elif char == "}":
                depth -= 1
                if depth == 0:
                    end = index
                    break
            elif char == "," and depth == 1:
                commas.append(index)
        if end == -1:
            return [word]
        inner = word[start + 1 : end]
        head, tail = word[:start], word[end + 1 :]
        parts: list[str] = []
        if commas:
            bounds = [start, *commas, end]
            parts = [word[a + 1 : b] for a, b in itertools.pairwise(bounds)]
        elif re.fullmatch(r"-?\d+\.\.-?\d+", inner):
            low, high = (int(x) for x in re.split(r"(?<=\d)\.\.", inner))
            step = 1 if high >= low else -1
            parts = [str(n) for n in itertools.islice(range(low, high + step, step), limit + 1)]
        elif re.fullmatch(r"[A-Za-z]\.\.[A-Za-z]", inner):
            low_c, high_c = ord(inner[0]), ord(inner[-1])
            step = 1 if high_c >= low_c else -1
            parts = [chr(n) for n in range(low_c, high_c + step, step)]
        if parts:
            found: list[str] = []
            for part in parts:
                found += _brace_expand(head + part + tail, limit)
                if len(found) >= limit:
                    break
            return found[:limit]
        start = word.find("{", start + 1)
    return [word]


def _glob_candidates(arg: str, base: str, home: str) -> list[str]:
    """``arg`` itself, and when it is a glob or a brace expansion the paths it names (bounded):
    ``cat ~/.ss*/id*`` is checked as ``~/.ssh/id_ed25519``, ``~/.{ssh,aws}/x`` as both. A
    glob's literal directory prefix is always checked too."""
    if "{" in arg:
        expanded = _brace_expand(arg, _GLOB_LIMIT + 1)
        if len(expanded) > _GLOB_LIMIT:
            return [_TOO_MANY]
        if expanded != [arg]:
            return [c for word in expanded for c in _glob_candidates(word, base, home)]
    if not any(c in arg for c in "*?["):
        return [arg]
    import glob

    expanded = home + arg[1:] if arg[:2] in ("~", "~/") else arg
    pattern = expanded if os.path.isabs(expanded) else os.path.join(base, expanded)
    prefix = re.split(r"[*?\[]", pattern, maxsplit=1)[0]
    found = [prefix or "/", *itertools.islice(glob.iglob(pattern), _GLOB_LIMIT + 1)]
    return found if len(found) <= _GLOB_LIMIT + 1 else [*found[:-1], _TOO_MANY]


_SEARCH_DIRS = ("/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin")


@lru_cache(maxsize=8)
def _blocked_files(
    names: tuple[str, ...], path: str
) -> tuple[dict[tuple[int, int], str], dict[int, tuple[tuple[str, str], ...]]]:
    """The files of the blocked programs on this system: by (device, inode), and by size for
    a content comparison (a copy of ``sudo`` under another name is still ``sudo``)."""
    by_id: dict[tuple[int, int], str] = {}
    by_size: dict[int, list[tuple[str, str]]] = {}
    dirs = dict.fromkeys([*(d for d in path.split(os.pathsep) if d), *_SEARCH_DIRS])
    for name in names:
        for directory in dirs:
            candidate = os.path.join(directory, name)
            try:
                st = os.stat(candidate)
            except OSError:
                continue
            if not stat.S_ISREG(st.st_mode) or st.st_size == 0:
                continue
            by_id[(st.st_dev, st.st_ino)] = name
            by_size.setdefault(st.st_size, []).append((os.path.realpath(candidate), name))
    return by_id, {k: tuple(dict.fromkeys(v)) for k, v in by_size.items()}


@lru_cache(maxsize=256)
def _digest(path: str, dev: int, ino: int, size: int, mtime: int) -> bytes:
    import hashlib

    with open(path, "rb") as handle:
        return hashlib.sha256(handle.read(64 * 1024 * 1024)).digest()


# Names bash runs itself: the file of the same name on PATH is not what runs.
_BUILTINS = frozenset(
    (  # noqa: SIM905 - a word list reads best as words
        "cd echo printf true false : test [ pwd read export local declare typeset readonly "
        "unset set shift exit return break continue eval source . alias unalias type hash "
        "command builtin let wait jobs fg bg kill trap umask ulimit getopts times dirs pushd "
        "popd shopt enable mapfile readarray compgen complete caller disown suspend logout "
        "help history fc"
    ).split()
)


@lru_cache(maxsize=32)
def _blocked_names(rules: tuple[str, ...]) -> tuple[str, ...]:
    words = (_rule_words(rule) for rule in rules)
    return tuple(sorted({w[0] for w in words if w and not any(c in w[0] for c in "*?[")}))


_PATH_STATE: list[tuple[float, str, tuple[tuple[str, int], ...]]] = []
_PATH_STATE_SECONDS = 1.0


def _path_state() -> tuple[tuple[str, int], ...]:
    """PATH's directories with their modification times: a program added to or removed from
    one of them changes its time, so a lookup cached under this state is still right.

    Re-read at most once a second (stat'ing every PATH directory on every decision was a
    third of its cost). A program planted by a command is only ever seen at a decision made
    after that command ran, and one second is shorter than any turn of the agent."""
    now = time.monotonic()
    path = os.environ.get("PATH", "")
    if _PATH_STATE and now - _PATH_STATE[0][0] < _PATH_STATE_SECONDS and _PATH_STATE[0][1] == path:
        return _PATH_STATE[0][2]
    state = _read_path_state(path)
    _PATH_STATE[:] = [(now, path, state)]
    return state


def _read_path_state(path: str) -> tuple[tuple[str, int], ...]:
    state: list[tuple[str, int]] = []
    for directory in dict.fromkeys(path.split(os.pathsep)):
        if directory:
            try:
                state.append((directory, os.stat(directory).st_mtime_ns))
            except OSError:
                state.append((directory, -1))
    return tuple(state)


@lru_cache(maxsize=1024)
def _which(name: str, state: tuple[tuple[str, int], ...]) -> str | None:
    """The resolved file PATH runs for ``name`` (cached while PATH's directories are unchanged;
    the file itself is stat'ed fresh on every decision)."""
    found = shutil.which(name, path=os.pathsep.join(d for d, _ in state))
    return os.path.realpath(found) if found is not None else None


def _blocked_identity(
    command: SimpleCommand,
    cwd: str,
    home: str,
    rules: tuple[str, ...],
    state: tuple[tuple[str, int], ...],
    memo: _Resolver,
) -> str | None:
    """The blocked program a command really runs, judged by the file: the name it resolves
    to (``/proc/self/root/usr/bin/sudo``, ``./x`` -> ``/usr/bin/sudo``), the same inode (a hard
    link) or the same content (a copy). None when it is none of them or cannot be found."""
    names = _blocked_names(rules)
    argv0 = command.argv[0]
    if "/" in argv0:
        expanded = home + argv0[1:] if argv0.startswith("~/") else argv0
        where = command.cwds[-1] if command.cwds else "."
        base = cwd if where == "." else os.path.join(cwd, os.path.expanduser(where))
        path: str | None = os.path.join(base, expanded)
    else:
        if argv0 in names:
            return argv0
        if argv0 in _BUILTINS:
            return None
        path = _which(argv0, state)
    if path is None:
        return None
    try:
        real = memo.real(path) if "/" in argv0 else path
        st = os.stat(real)
    except (OSError, ValueError):
        return None
    if os.path.basename(real) in names:
        return os.path.basename(real)
    by_id, by_size = _blocked_files(names, os.environ.get("PATH", ""))
    found = by_id.get((st.st_dev, st.st_ino))
    if found is not None:
        return found
    same_size = by_size.get(st.st_size)
    if same_size and stat.S_ISREG(st.st_mode):
        try:
            mine = _digest(real, st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)
            for other, name in same_size:
                o = os.stat(other)
                if _digest(other, o.st_dev, o.st_ino, o.st_size, o.st_mtime_ns) == mine:
                    return name
        except OSError:
            return None
    return None


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


_HOST_OPTIONS = frozenset(
    {"--url", "-x", "--proxy", "--preproxy", "--resolve", "--connect-to", "--socks5",
     "--socks4", "--socks5-hostname", "--socks4a", "--proxy-url", "-e"}
)  # fmt: skip
_PORT_FIRST = frozenset({"nc", "ncat", "netcat", "telnet"})


def _authority_hosts(url: str) -> list[str]:
    """Every address-like piece of a URL's authority: URL parsers disagree on
    ``http://127.0.0.1\\@example.com`` or ``http://a@127.0.0.1#@b``; whichever the tool
    picks, a private address anywhere in it is refused."""
    authority = re.split(r"[/?]", url.split("://", 1)[1], maxsplit=1)[0]
    found: list[str] = []
    for piece in re.split(r"[@\\#;,]", authority):
        host = piece[1:].split("]", 1)[0] if piece.startswith("[") else piece.rsplit(":", 1)[0]
        if host and (parse_ip_literal(host) is not None or _name_is_special(host)):
            found.append(host)
    return found


def _name_is_special(host: str) -> bool:
    name = host.lower().rstrip(".")
    return "localhost" in name or name in ("metadata", "instance-data", "metadata.google.internal")


def _host_of(arg: str) -> str | None:
    """The host a URL or a scheme-less ``host[:port][/path]`` names (``[::1]:80``,
    ``user@10.0.0.1:path``, ``2130706433:8080``)."""
    if "://" in arg:
        try:
            return urlsplit(arg).hostname
        except ValueError:
            return None
    text = arg.rsplit("@", 1)[-1].split("/", 1)[0]
    if text.startswith("["):
        return text[1:].split("]", 1)[0] or None
    if text.count(":") == 1:
        text = text.split(":", 1)[0]
    return text or None


_SSH_VALUES = frozenset(f"-{c}" for c in "BbcDEeFIiJLlmOoPpQRSWw")
_VALUE_OPTIONS: dict[str, frozenset[str]] = {
    "curl": frozenset(
        {"-o", "-d", "-H", "-u", "-A", "-e", "-T", "-F", "-X", "-w", "-b", "-c", "-m", "-r",
         "-C", "-E", "-K", "-Y", "-y", "-z", "-U", "--output", "--data", "--data-raw",
         "--data-binary", "--data-urlencode", "--header", "--user", "--user-agent", "--referer",
         "--upload-file", "--form", "--request", "--write-out", "--cookie", "--cookie-jar",
         "--max-time", "--range", "--cert", "--key", "--cacert", "--config", "--retry",
         "--connect-timeout", "--proxy-user", "--output-dir", "--json"}
    ),
    "wget": frozenset(
        {"-O", "-o", "-a", "-P", "-U", "-t", "-T", "-w", "-Q", "-l", "--output-document",
         "--directory-prefix", "--user-agent", "--header", "--post-data", "--user",
         "--password", "--tries", "--timeout", "--wait", "--level", "--output-file"}
    ),
    "nc": frozenset({"-w", "-p", "-s", "-i", "-q", "-X", "-x", "-T", "-O", "-I", "-W", "-M", "-m"}),
    "ncat": frozenset({"-w", "-p", "-s", "-i", "-d", "-o", "-x", "-m", "--proxy"}),
    "netcat": frozenset({"-w", "-p", "-s", "-i", "-q", "-x"}),
    "telnet": frozenset({"-l", "-b", "-e", "-n"}),
    "ssh": _SSH_VALUES,
    "scp": frozenset({"-P", "-i", "-c", "-F", "-l", "-o", "-S", "-J", "-D"}),
    "sftp": frozenset({"-P", "-i", "-c", "-F", "-l", "-o", "-S", "-J", "-D", "-b", "-B", "-R"}),
    "rsync": frozenset({"-e", "--rsh", "-f", "--filter", "--exclude", "--include", "-T"}),
}  # fmt: skip


def _checkable(host: str) -> bool:
    """Worth classifying: an address in any spelling, or a name (dotted, or localhost-like).
    A bare number that fits a port (``80``) is a port, not the address ``0.0.0.80``."""
    if host.isdigit() and int(host) <= 65535:
        return False
    if parse_ip_literal(host) is not None:
        return True
    return bool(re.fullmatch(r"[A-Za-z0-9_.\-]+", host)) and (
        "." in host or "localhost" in host.lower() or host.lower() in ("metadata", "instance-data")
    )


def _hosts_in(command: SimpleCommand) -> list[str]:
    """Hosts a command names: URLs in any argument of any program, and for network tools
    hosts written without a scheme (``curl localhost:8080``, ``nc 127.1 80``)."""
    hosts: list[str] = []
    for assignment in command.assignments:  # e.g. a proxy URL for this command
        value = assignment.split("=", 1)[-1]
        if "://" in value:
            host = _host_of(value)
            if host:
                hosts.append(host)
    args = command.argv[1:]
    net_tool = command.program in _NET_TOOLS
    takes_value = _VALUE_OPTIONS.get(command.program, frozenset())
    positional: list[str] = []
    index = 0
    while index < len(args):
        arg = args[index]
        index += 1
        if arg.startswith("-") and len(arg) > 1:
            name, _, attached = arg.partition("=")
            value: str | None = attached if "=" in arg else None
            if value is None and (arg in takes_value or arg in _HOST_OPTIONS):
                value = args[index] if index < len(args) else None
                index += 1
            if value is None:
                continue
            if net_tool and name in _HOST_OPTIONS:
                for piece in re.split(r"[:,]", value):
                    if _checkable(piece) and (
                        parse_ip_literal(piece) is not None or "localhost" in piece.lower()
                    ):
                        hosts.append(piece)
                host = _host_of(value)
                if host and _checkable(host):
                    hosts.append(host)
            elif "://" in value:
                host = _host_of(value)
                if host:
                    hosts.append(host)
            continue
        if "://" in arg:
            host = _host_of(arg)
            if host:
                hosts.append(host)
            continue
        positional.append(arg)
    for text in (*command.argv[1:], *command.assignments):
        if "://" in text:
            hosts += _authority_hosts(text)
    if net_tool:
        if command.program == "socat":
            for arg in positional:
                for piece in arg.split(":")[1:]:
                    if _checkable(piece.split(",")[0]):
                        hosts.append(piece.split(",")[0])
        elif command.program in _PORT_FIRST:
            # the first word is the host, a number too ("nc 0 22" is 0.0.0.0, this machine),
            # unless it listens (nc -l 8080: the word is its port)
            listens = any(a == "--listen" or (a[:1] == "-" and "l" in a[1:2]) for a in args)
            hosts += [
                h for h in positional[:1] if _checkable(h) or (not listens and parse_ip_literal(h))
            ]
        else:
            for arg in positional:
                host = _host_of(arg)
                # a downloader's word is a URL, and "host:port" names a host: a number there
                # is an address ("curl 0:8080" is 0.0.0.0), not a port
                numeric = command.program in _DOWNLOADERS or ":" in arg
                if host and (_checkable(host) or (numeric and parse_ip_literal(host))):
                    hosts.append(host)
    elif command.program == "git":  # scp-like remotes: git clone user@10.0.0.1:repo
        for arg in positional:
            if ":" in arg and "/" not in arg.split(":", 1)[0]:
                host = _host_of(arg.split(":", 1)[0])
                if (host and parse_ip_literal(host) is not None) or (host or "").endswith(
                    "localhost"
                ):
                    hosts.append(host or "")
    return hosts
