"""Path normalization: what a path *really* names, before any policy looks at it.

``~`` is expanded, relative paths are joined to the workspace, symlinks are resolved for the
part of the path that exists, and ``..`` is resolved for the rest — so a file that does not
exist yet is judged by where it would be created. Look-alike characters (Unicode that changes
under NFKC, invisible format characters, bidi overrides) do not bypass anything at the OS
level, but they can fool the human reading the approval prompt, so they are flagged and such a
path is never auto-allowed.
"""

from __future__ import annotations

import os
import re
import stat
import time
import unicodedata
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import cast

from astrid_core import BadInputError

__all__ = [
    "NormalizedPath",
    "normalize_path",
    "is_within",
    "is_within_resolved",
    "PathRules",
    "compile_path_rules",
    "path_entry_problem",
    "path_entry_fix",
    "denied_identities",
    "git_hooks_dirs",
]


@dataclass(frozen=True)
class NormalizedPath:
    path: str
    warnings: tuple[str, ...] = field(default_factory=tuple)


_ASCII_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_INVISIBLE = ("path contains invisible or control characters",)


def _warnings(raw: str) -> tuple[str, ...]:
    if raw.isascii():  # the common case: no look-alikes; of Cc/Cf, ASCII has only Cc
        return _INVISIBLE if _ASCII_CONTROL.search(raw) else ()
    found: list[str] = []
    if any(unicodedata.category(c) in ("Cf", "Cc") for c in raw):
        found.append("path contains invisible or control characters")
    if unicodedata.normalize("NFKC", raw) != raw:
        found.append("path contains look-alike (compatibility) characters")
    elif any(ord(c) > 127 for c in raw):
        found.append("path contains non-ASCII characters; check it carefully")
    return tuple(found)


def normalize_path(
    raw: str, workspace: str | Path, home: str | Path | None = None
) -> NormalizedPath:
    if not raw or "\x00" in raw:
        raise BadInputError(
            f"invalid path {raw!r}", hint="paths must be non-empty without NUL bytes"
        )
    home_dir = str(home) if home is not None else os.path.expanduser("~")
    text = raw
    if text == "~" or text.startswith("~/"):
        text = home_dir + text[1:]
    candidate = text if os.path.isabs(text) else os.path.join(str(workspace), text)
    # realpath resolves symlinks of every existing component and '..' lexically afterwards:
    # "/ws/link-to-etc/../etc/passwd" and "/ws/new/../../etc/x" both come out as what they name.
    for _ in range(3):
        try:
            resolved = os.path.realpath(candidate)
            break
        except OSError:  # a component flipped between lstat and readlink: look again
            continue
    else:
        raise BadInputError(
            f"{raw!r} keeps changing while it is being resolved (a symbolic link is swapped)",
            hint="try again once nothing else is modifying that path",
        )
    return NormalizedPath(resolved, _warnings(raw))


def is_within(path: str, root: str) -> bool:
    """True when the normalized ``path`` is ``root`` or below it (``root`` is resolved first)."""
    return is_within_resolved(path, os.path.realpath(root))


def is_within_resolved(path: str, resolved_root: str) -> bool:
    """``is_within`` for a root that is already resolved (the policy resolves its roots once)."""
    return path == resolved_root or path.startswith(resolved_root.rstrip("/") + "/")


# ---------------------------------------------------------------------- path rules (globs)

_GLOB_CHARS = frozenset("*?[\\")
_MAX_REPO_DEPTH = 64
_MAX_GIT_CONFIG_BYTES = 1024 * 1024


def path_entry_problem(entry: str) -> str | None:
    """Why ``entry`` cannot be a ``denied_paths``/``protected_paths`` glob, or None.

    Entries are gitwildmatch globs over *resolved absolute* paths: absolute (``/srv/keys``),
    ``~``-relative (``~/.ssh``), or matching at any depth (``**/.env``, or a name without a
    slash such as ``*.pem``). A relative path with a slash (``secrets/**``) would silently mean
    "relative to /", and a negation (``!x``) would punch a hole in the built-in list."""
    if not entry or entry != entry.strip() or any(c in entry for c in "\x00\n\r"):
        return "it is empty, has surrounding spaces or a control character"
    if entry.startswith("!"):
        return "negation ('!') cannot lift an entry; lists of denied or protected paths only grow"
    if entry.startswith("#"):
        return "it starts with '#'; write '\\#' for a name that starts with '#'"
    if entry in ("~", "/") or entry.startswith(("/", "~/", "**/")):
        return None
    if "/" not in entry.rstrip("/"):
        return None  # a name, matched at any depth (gitignore semantics)
    return "it is a relative path; relative to what?"


def path_entry_fix(entry: str) -> str:
    tail = entry.lstrip("./")
    return (
        f"write it as an absolute path ('/path/to/{tail}'), relative to your home "
        f"('~/{tail}'), or at any depth ('**/{tail}')"
    )


@dataclass(frozen=True)
class _Rule:
    entry: str
    regex: re.Pattern[str]
    literal: str | None  # the glob-free absolute prefix of an anchored entry, else None
    first_name: str | None  # for an any-depth entry: its first component if literal


@dataclass(frozen=True)
class PathRules:
    """Compiled ``denied_paths``/``protected_paths`` entries (see ``path_entry_problem``)."""

    rules: tuple[_Rule, ...]
    combined: re.Pattern[str] | None
    # For match_parent, precomputed: every folder above (or at) an anchored entry's literal
    # prefix; one regex of the partial matches of any-depth entries ("**/.git" for
    # "**/.git/hooks"); the literal first component of each any-depth entry.
    ancestors: dict[str, str] = field(default_factory=dict[str, str])
    partials: tuple[tuple[re.Pattern[str], str], ...] = ()
    partials_combined: re.Pattern[str] | None = None
    first_names: tuple[tuple[str, str], ...] = ()

    def match(self, path: str) -> str | None:
        """The entry whose glob matches resolved absolute ``path`` (or a folder above it)."""
        rel = path.lstrip("/")
        if not rel or self.combined is None or self.combined.match(rel) is None:
            return None
        for rule in self.rules:
            if rule.regex.match(rel):
                return rule.entry
        return None  # pragma: no cover - combined matched, so one rule does

    def match_parent(self, path: str) -> str | None:
        """The entry of which ``path`` is a parent folder: renaming, replacing or deleting
        ``path`` would change what the entry protects. Anchored entries: ``path`` is above the
        entry's literal prefix. Any-depth entries (``**/.git/hooks``): ``path`` is a partial
        match (``.../.git``), or it is a folder holding the entry's first component."""
        path = path.rstrip("/") or "/"
        found = self.ancestors.get(path)
        if found is not None:
            return found
        rel = path.lstrip("/")
        if self.partials_combined is not None and self.partials_combined.match(rel):
            for regex, entry in self.partials:
                if regex.match(rel):
                    return entry
        if self.first_names:
            try:
                is_dir = stat.S_ISDIR(os.lstat(path).st_mode)
            except OSError:
                is_dir = False
            if is_dir:
                for name, entry in self.first_names:
                    if os.path.lexists(os.path.join(path, name)):
                        return entry
        return None


@lru_cache(maxsize=1024)
def _compile_one(pattern: str) -> re.Pattern[str]:
    from pathspec.patterns.gitignore.spec import GitIgnoreSpecPattern

    compiled = cast(
        "re.Pattern[str] | None",
        GitIgnoreSpecPattern(pattern).regex,  # pyright: ignore[reportUnknownMemberType]
    )
    if compiled is None:
        raise BadInputError(f"{pattern!r} is not a path pattern")
    # Named groups cannot repeat in the combined alternation; they carry nothing we use.
    return re.compile(re.sub(r"\(\?P<\w+>", "(?:", compiled.pattern))


def _literal_prefix(absolute: str) -> str:
    parts: list[str] = []
    for part in absolute.split("/")[1:]:
        if any(c in _GLOB_CHARS for c in part):
            break
        parts.append(part)
    return "/" + "/".join(parts)


@lru_cache(maxsize=64)
def compile_path_rules(
    entries: tuple[str, ...], home: str, extra_roots: tuple[str, ...] = ()
) -> PathRules:
    """Compile entries once per distinct list. An anchored entry is matched both as written
    (``~`` expanded) and with its glob-free prefix resolved (``~/.astrid`` that is a symlink
    to ``/data/astrid`` protects both names). ``extra_roots`` are literal absolute paths
    (``$ASTRID_HOME``) added as entries of their own. Invalid entries raise BadInputError
    (the config layer reports them earlier, with the file and key)."""
    rules: list[_Rule] = []
    for entry in (*entries, *extra_roots):
        problem = path_entry_problem(entry)
        if problem is not None:
            raise BadInputError(
                f"path entry {entry!r} is invalid: {problem}", hint=path_entry_fix(entry)
            )
        tilde = entry == "~" or entry.startswith("~/")
        text = home.rstrip("/") + entry[1:] if tilde else entry
        if not text.startswith("/"):
            name = text.removeprefix("**/").split("/")[0]
            first = None if any(c in _GLOB_CHARS for c in name) else name
            rules.append(_Rule(entry, _compile_one(text), None, first))
            continue
        text = os.path.normpath(text) + ("/" if text.endswith("/") and text != "/" else "")
        literal = _literal_prefix(text.rstrip("/") or "/")
        forms = {text}
        resolved = os.path.realpath(literal)
        if resolved != literal:
            forms.add(resolved + text[len(literal) :])
        for form in sorted(forms):
            form_literal = _literal_prefix(form.rstrip("/") or "/")
            rules.append(_Rule(entry, _compile_one(form), form_literal, None))
    return _assemble(rules)


def _assemble(rules: list[_Rule]) -> PathRules:
    def union(patterns: list[re.Pattern[str]]) -> re.Pattern[str] | None:
        return re.compile("|".join(f"(?:{p.pattern})" for p in patterns)) if patterns else None

    ancestors: dict[str, str] = {}
    partials: list[tuple[re.Pattern[str], str]] = []
    first_names: list[tuple[str, str]] = []
    for rule in rules:
        if rule.literal is not None:
            current: str = rule.literal
            while True:
                ancestors.setdefault(current, rule.entry)
                if current == "/":
                    break
                current = os.path.dirname(current)
            continue
        if rule.first_name is not None:
            first_names.append((rule.first_name, rule.entry))
        parts = rule.entry.removeprefix("**/").rstrip("/").split("/")
        for cut in range(1, len(parts)):
            partials.append((_compile_one("**/" + "/".join(parts[:cut])), rule.entry))
    return PathRules(
        tuple(rules),
        union([r.regex for r in rules]),
        ancestors,
        tuple(partials),
        union([p for p, _ in partials]),
        tuple(first_names),
    )


# ---------------------------------------------------------------------- hard links


_IDENTITY_TTL_SECONDS = 2.0
_MAX_IDENTITY_FILES = 2048  # per denied root
_identity_cache: dict[tuple[str, ...], tuple[float, frozenset[tuple[int, int]]]] = {}


def denied_identities(rules: PathRules) -> frozenset[tuple[int, int]]:
    """(st_dev, st_ino) of the regular files under the anchored denied entries that exist, so
    a hard link to one of them (another name for the same file) is denied like the file.
    Bounded (2048 files per root) and cached for two seconds; only consulted for files with
    more than one link, which are rare."""
    roots = tuple(sorted({r.literal for r in rules.rules if r.literal and r.literal != "/"}))
    now = time.monotonic()
    cached = _identity_cache.get(roots)
    if cached is not None and now - cached[0] < _IDENTITY_TTL_SECONDS:
        return cached[1]
    found: set[tuple[int, int]] = set()
    # Each root has its own bound, so a large /etc cannot crowd out ~/.ssh.
    for root in roots:
        _collect_identities(root, found, len(found) + _MAX_IDENTITY_FILES)
    result = frozenset(found)
    _identity_cache[roots] = (now, result)
    return result


def _collect_identities(root: str, found: set[tuple[int, int]], bound: int) -> None:
    try:
        info = os.lstat(root)
    except OSError:
        return
    if stat.S_ISREG(info.st_mode):
        found.add((info.st_dev, info.st_ino))
        return
    if not stat.S_ISDIR(info.st_mode) or root in ("/proc", "/sys", "/dev"):
        return
    for dirpath, _dirs, files in os.walk(root, followlinks=False):
        for name in files:
            if len(found) >= bound:
                return
            try:
                child = os.lstat(os.path.join(dirpath, name))
            except OSError:
                continue
            if stat.S_ISREG(child.st_mode):
                found.add((child.st_dev, child.st_ino))


# ---------------------------------------------------------------------- git hooks


_hooks_cache: dict[str, tuple[tuple[int, int, int], tuple[tuple[str, str], ...]]] = {}
_MAX_GIT_CONFIGS = 16


def git_hooks_dirs(path: str, home: str) -> tuple[tuple[str, str], ...]:
    """What git would run from, for the repository holding ``path``, as (what, absolute path):
    the hooks directories it really uses (``core.hooksPath`` from the repository's own config
    -- ``.git/config``, or the gitdir a ``.git`` file points to and its common dir -- and from
    the user's global config), and every config file those include (``[include]``/
    ``[includeIf]`` ``path``: a project's ``../.gitconfig`` can set ``core.fsmonitor``). Read
    as files (O_NOFOLLOW, at most 1 MiB, at most 16 files), never by running git."""
    found: list[tuple[str, str]] = []
    top, configs = _repository_configs(path)
    user = [os.path.join(home, ".gitconfig"), os.path.join(home, ".config/git/config")]
    queue = [*configs, *user]
    seen: set[str] = set()
    while queue and len(seen) < _MAX_GIT_CONFIGS:
        config = queue.pop(0)
        if config in seen:
            continue
        seen.add(config)
        for kind, value in _config_refs(config):
            value = home + value[1:] if value.startswith("~/") else value
            if kind == "hooks":
                base = top if top is not None else home
                found.append(("core.hooksPath", os.path.realpath(os.path.join(base, value))))
            else:
                included = os.path.realpath(os.path.join(os.path.dirname(config), value))
                found.append(("included git config", included))
                queue.append(included)
    return tuple(dict.fromkeys(found))


def _repository_configs(path: str) -> tuple[str | None, list[str]]:
    current: str = os.path.dirname(path.rstrip("/")) or "/"
    for _ in range(_MAX_REPO_DEPTH):
        dot_git = os.path.join(current, ".git")
        try:
            info = os.lstat(dot_git)
        except OSError:
            info = None
        if info is not None and stat.S_ISDIR(info.st_mode):
            return current, [os.path.join(dot_git, "config")]
        if info is not None and stat.S_ISREG(info.st_mode):
            return current, _linked_configs(current, dot_git)
        if current == "/":
            break
        current = os.path.dirname(current)
    return None, []


def _linked_configs(top: str, dot_git: str) -> list[str]:
    text = _read_small(dot_git)
    match = re.match(r"gitdir:\s*(.+)", text.strip())
    if match is None:
        return []
    gitdir = os.path.join(top, match.group(1).strip())
    configs = [os.path.join(gitdir, "config")]
    common = _read_small(os.path.join(gitdir, "commondir")).strip()
    if common:
        configs.append(os.path.join(gitdir, common, "config"))
    return configs


def _read_small(path: str) -> str:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return ""
    with os.fdopen(fd, "rb") as handle:
        if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
            return ""
        return handle.read(_MAX_GIT_CONFIG_BYTES).decode("utf-8", errors="replace")


def _config_refs(config: str) -> tuple[tuple[str, str], ...]:
    """("hooks", core.hooksPath) and ("include", include path) values of one config file."""
    try:
        info = os.stat(config)
    except OSError:
        return ()
    key = (info.st_ino, info.st_mtime_ns, info.st_size)
    cached = _hooks_cache.get(config)
    if cached is not None and cached[0] == key:
        return cached[1]
    values: list[tuple[str, str]] = []
    section = ""
    for raw in _read_small(config).splitlines():
        line = raw.strip()
        header = re.match(r"\[\s*([A-Za-z0-9.-]+)", line)
        if header is not None:
            section = header.group(1).lower()
            line = line[line.find("]") + 1 :].strip()
        found = re.match(r"(hookspath|path)\s*=\s*(.*)", line, re.IGNORECASE)
        if found is None:
            continue
        value = found.group(2).split(" #")[0].split(" ;")[0].strip().strip('"')
        key_name = found.group(1).lower()
        if not value:
            continue
        if section == "core" and key_name == "hookspath":
            values.append(("hooks", value))
        elif section in ("include", "includeif") and key_name == "path":
            values.append(("include", value))
    result = tuple(values)
    _hooks_cache[config] = (key, result)
    return result
