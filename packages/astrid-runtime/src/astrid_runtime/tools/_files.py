"""File tools: read_file, write_file, edit_file, delete_file, list_directory, glob, grep.

Every tool acts on exactly the path that was authorized: ``action()`` resolves the argument
once (symlinks, ``..``, ``~``), the interceptor decides on that absolute path, and ``run()``
reaches exactly that name through ``astrid_workspace.fs`` (``openat2`` with
``RESOLVE_NO_SYMLINKS``, or an ``O_NOFOLLOW`` walk). A symlink planted anywhere in the path
after the decision therefore makes the tool refuse instead of following it out; new content is
written to an ``O_EXCL|O_NOFOLLOW`` temporary file renamed on the directory's descriptor.

What one decision cannot cover is checked where it is used: every entry a ``grep``/``glob``/
``list_directory`` walk visits is matched against the session policy's denied paths (skipped
and counted), and every file opened is refused if it is a hard link to a denied file.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import stat
from collections.abc import Callable, Generator, Iterator
from typing import Any

import anyio.to_thread
import pathspec

from astrid_approval import SecurityPolicy
from astrid_core import (
    AstridError,
    BadInputError,
    DirectoryList,
    FileDelete,
    FileRead,
    FileWrite,
    JsonObject,
    NotFoundError,
    SecurityDenied,
    SensitiveAction,
)
from astrid_workspace import fs

from ._base import MAX_OUTPUT_CHARS, ToolContext, cap_output, require, resolve_path
from ._content import edit_action, write_action

__all__ = ["ReadFile", "WriteFile", "EditFile", "DeleteFile", "ListDirectory", "Glob", "Grep"]

DEFAULT_READ_LINES = 2000
MAX_LINE_CHARS = 2000
MAX_LIST_ENTRIES = 1000
MAX_GLOB_RESULTS = 1000
MAX_GREP_MATCHES = 500
MAX_WALK_FILES = 20_000
_BINARY_SNIFF_BYTES = 8192

_PATH = {
    "type": "string",
    "description": "file path, absolute or relative to the working directory",
}
# O_NONBLOCK: opening a FIFO someone planted must not hang the tool; regular files ignore it.
_READ_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK


# ---------------------------------------------------------------- reaching the exact path


_DEFAULT_POLICY = SecurityPolicy()


def _policy(ctx: ToolContext) -> SecurityPolicy:
    return ctx.path_policy if ctx.path_policy is not None else _DEFAULT_POLICY


@contextlib.contextmanager
def _absolute_errors(path: str) -> Generator[None]:
    """``fs`` names paths relative to its descriptor (here ``/``); say the absolute path."""
    try:
        yield
    except AstridError as exc:
        rel = path.lstrip("/")
        if rel and rel in exc.message and path not in exc.message:
            exc.message = exc.message.replace(rel, path, 1)
            exc.args = (exc.message,)
        raise


@contextlib.contextmanager
def _slash() -> Generator[int]:
    """A descriptor of ``/``: every path below is reached from it with ``astrid_workspace.fs``
    (openat2 RESOLVE_NO_SYMLINKS, or an O_NOFOLLOW walk), so the object used is the one at the
    exact resolved path that was authorized; a symlink appearing in it is refused."""
    fd = os.open("/", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        yield fd
    finally:
        os.close(fd)


def _link_check(policy: SecurityPolicy, path: str) -> Callable[[os.stat_result], None]:
    """Refuse a file that is another name (hard link) of a denied file, judged on the file
    actually opened."""

    def check(info: os.stat_result) -> None:
        reason = policy.denied_link(info)
        if reason is not None:
            raise SecurityDenied(f"{path}: {reason}", hint="the file was not read or changed")

    return check


def _split(path: str) -> tuple[str, str]:
    parent, name = os.path.split(path)
    if not name:
        raise BadInputError(f"{path} is the root directory, not a file")
    return parent, name


def _open_exact(path: str, policy: SecurityPolicy) -> tuple[int, os.stat_result]:
    """Open ``path`` (file or directory) for reading without following any symlink."""
    with _absolute_errors(path), _slash() as root:
        fd = fs.open_beneath(root, path.lstrip("/"), _READ_FLAGS)
    info = os.fstat(fd)
    try:
        _link_check(policy, path)(info)
    except BaseException:
        os.close(fd)
        raise
    return fd, info


def _open_regular_file(path: str, policy: SecurityPolicy) -> int:
    fd, info = _open_exact(path, policy)
    if stat.S_ISREG(info.st_mode):
        return fd
    os.close(fd)
    if stat.S_ISDIR(info.st_mode):
        raise BadInputError(f"{path} is a directory", hint="use list_directory, glob or grep")
    raise BadInputError(f"{path} is not a regular file (device, socket or pipe)")


def _is_binary(head: bytes) -> bool:
    return b"\x00" in head


def _binary_refusal(path: str, size: int) -> BadInputError:
    return BadInputError(
        f"{path} is a binary file ({size:,} bytes); read_file shows text only",
        hint="inspect it with bash (e.g. `file`, `xxd | head`) if you need to",
    )


def _read_utf8(path: str, policy: SecurityPolicy) -> str:
    fd = _open_regular_file(path, policy)
    with os.fdopen(fd, "rb") as handle:
        data = handle.read()
    if _is_binary(data[:_BINARY_SNIFF_BYTES]):
        raise _binary_refusal(path, len(data))
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadInputError(
            f"{path} is not UTF-8 text (invalid byte at offset {exc.start})",
            hint="edit it with bash, or rewrite it whole with write_file",
        ) from None


def _atomic_write(path: str, data: bytes, policy: SecurityPolicy) -> None:
    """Replace ``path`` with ``data``: readers see the old file or the new one, never half.

    An existing file keeps its permission bits (and owner, where we may set it); a new one gets
    the default mode under the process umask. Missing parent directories are created. The
    temporary file is created O_EXCL|O_NOFOLLOW in the target's directory descriptor and
    renamed on that descriptor (``astrid_workspace.fs.write_atomic``)."""
    _split(path)
    with _absolute_errors(path), _slash() as root:
        fs.write_atomic(
            root, path.lstrip("/"), data, create_parents=True, check=_link_check(policy, path)
        )


def _unlink_file(path: str) -> None:
    _split(path)
    with _absolute_errors(path), _slash() as root:
        fs.unlink(root, path.lstrip("/"))  # a symlink here is removed itself, never its target


# ---------------------------------------------------------------------- approval previews
_PREVIEW_MAX_FILE = 1_000_000  # bytes; a bigger file is not diffed for a prompt
_PREVIEW_MAX_CHARS = 200_000  # what an approval request carries; frontends show the head


def _current_text(path: str, ctx: ToolContext) -> tuple[str, str]:
    """(current text, note) for a diff. Only files inside the workspace are read, through the
    same denied-path and hard-link checks as read_file: a prompt (which may go to Telegram)
    never carries the content of a file outside it, or of a denied one."""
    workspace = ctx.workspace
    if not (path == workspace or path.startswith(workspace.rstrip("/") + "/")):
        return "", "outside the workspace: the current content is not shown"
    try:
        if os.lstat(path).st_size > _PREVIEW_MAX_FILE:
            return "", "the current file is too large to diff"
        return _read_utf8(path, _policy(ctx)), ""
    except (FileNotFoundError, NotFoundError):
        return "", "new file"
    except (AstridError, OSError) as exc:
        message = exc.message if isinstance(exc, AstridError) else (exc.strerror or str(exc))
        return "", f"the current content is not shown: {message}"


def unified_diff(path: str, old: str, new: str, note: str = "") -> str:
    """A unified diff of ``old`` -> ``new`` labelled with ``path``, capped in size."""
    import difflib

    lines = difflib.unified_diff(
        old.splitlines(keepends=True),
        new.splitlines(keepends=True),
        fromfile=f"a{path}" if old or not note else "/dev/null",
        tofile=f"b{path}",
    )
    body = "".join(
        line if line.endswith("\n") else line + "\n\\ No newline at end of file\n" for line in lines
    )
    head = f"({note})\n" if note else ""
    return cap_output(head + (body or "(no change)\n"), _PREVIEW_MAX_CHARS)


def _optional_int(args: JsonObject, name: str, default: int, minimum: int) -> int:
    value = args.get(name)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise BadInputError(f"argument {name!r} must be an integer >= {minimum}")
    return value


# ---------------------------------------------------------------- read / write / edit / delete


class ReadFile:
    name: str = "read_file"
    description: str = (
        f"Read a text file with line numbers. Shows {DEFAULT_READ_LINES} lines by default; "
        "use offset (lines to skip) and limit for more. Binary files are refused."
    )
    input_schema: dict[str, Any] = {
        "type": "object",
        "properties": {
            "path": _PATH,
            "offset": {"type": "integer", "minimum": 0, "description": "lines to skip"},
            "limit": {"type": "integer", "minimum": 1, "description": "lines to show"},
        },
        "required": ["path"],
    }

    def action(self, args: JsonObject, ctx: ToolContext) -> SensitiveAction:
        _optional_int(args, "offset", 0, 0)
        _optional_int(args, "limit", DEFAULT_READ_LINES, 1)
        return FileRead(path=resolve_path(require(args, "path"), ctx))

    async def run(self, args: JsonObject, action: SensitiveAction, ctx: ToolContext) -> str:
        assert isinstance(action, FileRead)
        offset = _optional_int(args, "offset", 0, 0)
        limit = _optional_int(args, "limit", DEFAULT_READ_LINES, 1)
        return await anyio.to_thread.run_sync(
            _numbered_lines, action.path, offset, limit, _policy(ctx)
        )


def _numbered_lines(path: str, offset: int, limit: int, policy: SecurityPolicy) -> str:
    fd = _open_regular_file(path, policy)
    with os.fdopen(fd, "rb") as raw:
        head = raw.read(_BINARY_SNIFF_BYTES)
        if _is_binary(head):
            raise _binary_refusal(path, os.fstat(raw.fileno()).st_size)
        raw.seek(0)
        text = io.TextIOWrapper(raw, encoding="utf-8", errors="replace", newline=None)
        shown: list[str] = []
        used = 0
        total = 0
        budget_hit = False
        for total, line in enumerate(text, 1):
            if total <= offset or len(shown) >= limit or budget_hit:
                continue
            line = line.rstrip("\n")
            if len(line) > MAX_LINE_CHARS:
                line = line[:MAX_LINE_CHARS] + f" [... line cut at {MAX_LINE_CHARS} characters]"
            entry = f"{total:6}\t{line}"
            # Stop at whole lines rather than let cap_output cut one: the marker below can
            # then say exactly where to continue.
            if shown and used + len(entry) + 1 > MAX_OUTPUT_CHARS - 200:
                budget_hit = True
                continue
            shown.append(entry)
            used += len(entry) + 1
    if total == 0:
        return f"{path} is empty"
    if offset >= total:
        raise BadInputError(f"offset {offset} is past the end of {path} ({total} lines)")
    more = total - offset - len(shown)
    body = "\n".join(shown)
    if more > 0:
        body += f"\n[... {more} more lines; continue with offset={offset + len(shown)} ...]"
    return cap_output(body)


class WriteFile:
    name: str = "write_file"
    description: str = (
        "Create or replace a text file atomically (missing parent directories are created; an "
        "existing file keeps its permissions)."
    )
    input_schema: dict[str, Any] = {
        "type": "object",
        "properties": {"path": _PATH, "content": {"type": "string"}},
        "required": ["path", "content"],
    }

    def action(self, args: JsonObject, ctx: ToolContext) -> SensitiveAction:
        if not isinstance(args.get("content"), str):
            raise BadInputError("argument 'content' must be a string")
        return write_action(resolve_path(require(args, "path"), ctx), str(args["content"]))

    def preview(self, args: JsonObject, action: SensitiveAction, ctx: ToolContext) -> str:
        assert isinstance(action, FileWrite)
        old, note = _current_text(action.path, ctx)
        return unified_diff(action.path, old, str(args["content"]), note)

    async def run(self, args: JsonObject, action: SensitiveAction, ctx: ToolContext) -> str:
        assert isinstance(action, FileWrite)
        data = str(args["content"]).encode("utf-8")
        await anyio.to_thread.run_sync(_atomic_write, action.path, data, _policy(ctx))
        return f"wrote {len(data):,} bytes to {action.path}"


class EditFile:
    name: str = "edit_file"
    description: str = (
        "Replace an exact string in a file; it must occur exactly once unless replace_all is "
        "true. Read the file first so old_string matches it character for character."
    )
    input_schema: dict[str, Any] = {
        "type": "object",
        "properties": {
            "path": _PATH,
            "old_string": {"type": "string"},
            "new_string": {"type": "string"},
            "replace_all": {"type": "boolean"},
        },
        "required": ["path", "old_string", "new_string"],
    }

    def action(self, args: JsonObject, ctx: ToolContext) -> SensitiveAction:
        require(args, "old_string")
        if not isinstance(args.get("new_string"), str):
            raise BadInputError("argument 'new_string' must be a string")
        if args["old_string"] == args["new_string"]:
            raise BadInputError("old_string and new_string are identical: nothing to edit")
        if not isinstance(args.get("replace_all", False), bool):
            raise BadInputError("argument 'replace_all' must be true or false")
        return edit_action(
            resolve_path(require(args, "path"), ctx),
            str(args["old_string"]),
            str(args["new_string"]),
            args.get("replace_all") is True,
        )

    def preview(self, args: JsonObject, action: SensitiveAction, ctx: ToolContext) -> str:
        """The diff the edit would make, computed as ``run`` computes it (the person sees the
        result, not only the two strings); if it would fail, the strings themselves."""
        assert isinstance(action, FileWrite)
        old, new = str(args["old_string"]), str(args["new_string"])
        text, note = _current_text(action.path, ctx)
        if not note and old not in text and "\r\n" in text and "\n" in old:
            old, new = old.replace("\n", "\r\n"), new.replace("\n", "\r\n")
        if note or old not in text:
            why = note or "old_string is not in the file: the edit will fail"
            return unified_diff(action.path, old, new, why)
        return unified_diff(action.path, text, text.replace(old, new))

    async def run(self, args: JsonObject, action: SensitiveAction, ctx: ToolContext) -> str:
        assert isinstance(action, FileWrite)
        old, new = str(args["old_string"]), str(args["new_string"])
        replace_all = args.get("replace_all") is True
        text = await anyio.to_thread.run_sync(_read_utf8, action.path, _policy(ctx))
        if old not in text and "\r\n" in text and "\n" in old:
            # read_file shows CRLF files with plain newlines; match (and keep) the file's ones.
            old, new = old.replace("\n", "\r\n"), new.replace("\n", "\r\n")
        count = text.count(old)
        if count == 0:
            raise BadInputError(
                f"old_string was not found in {action.path}",
                hint="read the file again and copy the exact text, including whitespace",
            )
        if count > 1 and not replace_all:
            raise BadInputError(
                f"old_string occurs {count} times in {action.path}; nothing was changed",
                hint="add surrounding lines to make it unique, or pass replace_all=true",
            )
        edited = text.replace(old, new)
        await anyio.to_thread.run_sync(
            _atomic_write, action.path, edited.encode("utf-8"), _policy(ctx)
        )
        return f"replaced {count} occurrence(s) in {action.path}"


class DeleteFile:
    name: str = "delete_file"
    description: str = "Delete a file."
    input_schema: dict[str, Any] = {
        "type": "object",
        "properties": {"path": _PATH},
        "required": ["path"],
    }

    def action(self, args: JsonObject, ctx: ToolContext) -> SensitiveAction:
        return FileDelete(path=resolve_path(require(args, "path"), ctx))

    async def run(self, args: JsonObject, action: SensitiveAction, ctx: ToolContext) -> str:
        assert isinstance(action, FileDelete)
        await anyio.to_thread.run_sync(_unlink_file, action.path)
        return f"deleted {action.path}"


# ---------------------------------------------------------------- list / glob / grep


class ListDirectory:
    name: str = "list_directory"
    description: str = "List a directory's entries (directories end in '/', symbolic links in '@')."
    input_schema: dict[str, Any] = {"type": "object", "properties": {"path": _PATH}}

    def action(self, args: JsonObject, ctx: ToolContext) -> SensitiveAction:
        return DirectoryList(path=resolve_path(str(args.get("path") or "."), ctx))

    async def run(self, args: JsonObject, action: SensitiveAction, ctx: ToolContext) -> str:
        assert isinstance(action, DirectoryList)
        return await anyio.to_thread.run_sync(_list, action.path, _policy(ctx))


def _list(path: str, policy: SecurityPolicy) -> str:
    fd = _open_directory(path, policy)
    skipped = 0
    try:
        with os.scandir(fd) as it:
            entries: list[os.DirEntry[str]] = []
            for entry in it:
                if policy.denied_path(os.path.join(path, entry.name)) is not None:
                    skipped += 1
                else:
                    entries.append(entry)
        entries.sort(key=lambda e: e.name)
        names = [_entry_name(e) for e in entries[:MAX_LIST_ENTRIES]]
    finally:
        os.close(fd)
    if not entries:
        return f"{path} is empty" + _skipped_note(skipped, "\n")
    more = len(entries) - len(names)
    if more > 0:
        names.append(f"[... {more} more entries not shown; use glob to narrow ...]")
    return cap_output("\n".join(names) + _skipped_note(skipped))


def _skipped_note(skipped: int, sep: str = "\n") -> str:
    if not skipped:
        return ""
    return f"{sep}[skipped {skipped} entries under denied paths]"


def _entry_name(entry: os.DirEntry[str]) -> str:
    if entry.is_symlink():
        return entry.name + "@"
    return entry.name + "/" if entry.is_dir(follow_symlinks=False) else entry.name


def _open_directory(path: str, policy: SecurityPolicy) -> int:
    fd, info = _open_exact(path, policy)
    if not stat.S_ISDIR(info.st_mode):
        os.close(fd)
        raise BadInputError(f"{path} is not a directory", hint="use read_file for a file")
    return fd


class _Ignores:
    """The .gitignore files found so far in the walk, nested ones overriding their parents."""

    def __init__(self) -> None:
        self._specs: dict[str, pathspec.GitIgnoreSpec] = {}

    def load(self, rel_dir: str, dir_fd: int) -> None:
        try:
            fd = os.open(".gitignore", _READ_FLAGS, dir_fd=dir_fd)
        except OSError:
            return  # none here, or a symlink we will not follow
        with os.fdopen(fd, "rb") as handle:
            if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
                return
            lines = handle.read(1024 * 1024).decode("utf-8", errors="replace").splitlines()
        self._specs[rel_dir] = pathspec.GitIgnoreSpec.from_lines(lines)

    def ignored(self, rel: str, *, is_dir: bool) -> bool:
        # The deepest .gitignore with an opinion wins, as in git.
        parent = os.path.dirname(rel)
        while True:
            spec = self._specs.get(parent)
            if spec is not None:
                inside = rel[len(parent) + 1 :] if parent else rel
                verdict = spec.check_file(inside + "/" if is_dir else inside).include
                if verdict is not None:
                    return verdict
            if not parent:
                return False
            parent = os.path.dirname(parent)


class _Walk:
    """The files under a directory descriptor that are neither ignored nor denied.

    Symlinked directories are never entered (``os.fwalk`` checks each one it opens), so a walk
    cannot leave the authorized tree; files are yielded by name and opened with O_NOFOLLOW.
    Every directory and file visited is checked against the denied paths (the workspace may be
    ``~``, which holds ``~/.ssh``): a denied one is skipped, and counted for the result."""

    def __init__(self, root_fd: int, root: str, policy: SecurityPolicy) -> None:
        self.root_fd = root_fd
        self.root = root
        self.policy = policy
        self.skipped = 0

    def _denied(self, rel: str) -> bool:
        if self.policy.denied_path(os.path.join(self.root, rel)) is None:
            return False
        self.skipped += 1
        return True

    def __iter__(self) -> Iterator[tuple[str, int]]:
        ignores = _Ignores()
        for dirpath, dirnames, filenames, dir_fd in os.fwalk(
            ".", dir_fd=self.root_fd, follow_symlinks=False
        ):
            rel_dir = os.path.normpath(dirpath) if dirpath != "." else ""
            ignores.load(rel_dir, dir_fd)
            dirnames[:] = sorted(
                d
                for d in dirnames
                if d != ".git"
                and not ignores.ignored(os.path.join(rel_dir, d), is_dir=True)
                and not self._denied(os.path.join(rel_dir, d))
            )
            for name in sorted(filenames):
                rel = os.path.join(rel_dir, name)
                if not ignores.ignored(rel, is_dir=False) and not self._denied(rel):
                    yield rel, dir_fd


def _glob_spec(pattern: str) -> pathspec.GitIgnoreSpec:
    # The pattern is one gitignore-style line; '!' and '#' would change its meaning there.
    escaped = "\\" + pattern if pattern.startswith(("!", "#")) else pattern
    return pathspec.GitIgnoreSpec.from_lines([escaped])


class Glob:
    name: str = "glob"
    description: str = (
        "Find files by glob pattern relative to path, e.g. 'src/**/*.py'; a pattern without "
        f"'/' matches at any depth. Respects .gitignore; at most {MAX_GLOB_RESULTS} results."
    )
    input_schema: dict[str, Any] = {
        "type": "object",
        "properties": {"pattern": {"type": "string"}, "path": _PATH},
        "required": ["pattern"],
    }

    def action(self, args: JsonObject, ctx: ToolContext) -> SensitiveAction:
        require(args, "pattern")
        return DirectoryList(path=resolve_path(str(args.get("path") or "."), ctx))

    async def run(self, args: JsonObject, action: SensitiveAction, ctx: ToolContext) -> str:
        assert isinstance(action, DirectoryList)
        spec = _glob_spec(str(args["pattern"]))
        return await anyio.to_thread.run_sync(_glob, action.path, spec, _policy(ctx))


def _glob(path: str, spec: pathspec.GitIgnoreSpec, policy: SecurityPolicy) -> str:
    root_fd = _open_directory(path, policy)
    matches: list[str] = []
    seen = 0
    walk = _Walk(root_fd, path, policy)
    try:
        for seen, (rel, _) in enumerate(walk, 1):
            if spec.match_file(rel):
                matches.append(rel)
            if seen >= MAX_WALK_FILES:
                break
    finally:
        os.close(root_fd)
    lines = matches[:MAX_GLOB_RESULTS]
    if len(matches) > MAX_GLOB_RESULTS:
        lines.append(f"[... {len(matches) - MAX_GLOB_RESULTS} more matches not shown ...]")
    if seen >= MAX_WALK_FILES:
        lines.append(f"[... stopped after {MAX_WALK_FILES:,} files; narrow the path ...]")
    return cap_output(("\n".join(lines) or "no matches") + _skipped_note(walk.skipped))


class Grep:
    name: str = "grep"
    description: str = (
        "Search file contents with a Python regular expression under a directory (or in one "
        f"file). Respects .gitignore, skips binary files, at most {MAX_GREP_MATCHES} matches."
    )
    input_schema: dict[str, Any] = {
        "type": "object",
        "properties": {"pattern": {"type": "string"}, "path": _PATH},
        "required": ["pattern"],
    }

    def action(self, args: JsonObject, ctx: ToolContext) -> SensitiveAction:
        _compile(require(args, "pattern"))
        # FileRead, not DirectoryList: grep discloses file contents, so it needs read rights.
        return FileRead(path=resolve_path(str(args.get("path") or "."), ctx))

    async def run(self, args: JsonObject, action: SensitiveAction, ctx: ToolContext) -> str:
        assert isinstance(action, FileRead)
        regex = _compile(str(args["pattern"]))
        return await anyio.to_thread.run_sync(_grep, action.path, regex, _policy(ctx))


def _compile(pattern: str) -> re.Pattern[str]:
    try:
        return re.compile(pattern)
    except re.error as exc:
        raise BadInputError(
            f"invalid regular expression {pattern!r}: {exc}",
            hint="grep takes Python `re` syntax; escape literal characters such as ( [ . *",
        ) from exc


def _grep(path: str, regex: re.Pattern[str], policy: SecurityPolicy) -> str:
    fd, info = _open_exact(path, policy)
    hits: list[str] = []
    skipped = 0
    try:
        if stat.S_ISDIR(info.st_mode):
            walk = _Walk(fd, path, policy)
            for seen, (rel, dir_fd) in enumerate(walk, 1):
                if _search_file(rel, os.path.basename(rel), dir_fd, regex, hits, policy):
                    break
                if seen >= MAX_WALK_FILES:
                    hits.append(f"[... stopped after {MAX_WALK_FILES:,} files; narrow the path]")
                    break
            skipped = walk.skipped
        elif stat.S_ISREG(info.st_mode):
            _search_open_file(os.path.basename(path), os.dup(fd), regex, hits)
    finally:
        os.close(fd)
    return cap_output(("\n".join(hits) or "no matches") + _skipped_note(skipped))


def _search_file(
    rel: str,
    name: str,
    dir_fd: int,
    regex: re.Pattern[str],
    hits: list[str],
    policy: SecurityPolicy,
) -> bool:
    """Append matches of one file; True once the match cap is reached."""
    try:
        fd = os.open(name, _READ_FLAGS, dir_fd=dir_fd)
    except OSError:
        return False  # vanished, unreadable, or a symlink we do not follow
    if policy.denied_link(os.fstat(fd)) is not None:
        os.close(fd)
        return False  # another name of a denied file
    return _search_open_file(rel, fd, regex, hits)


def _search_open_file(label: str, fd: int, regex: re.Pattern[str], hits: list[str]) -> bool:
    with os.fdopen(fd, "rb") as raw:
        if not stat.S_ISREG(os.fstat(raw.fileno()).st_mode):
            return False
        if _is_binary(raw.read(_BINARY_SNIFF_BYTES)):
            return False
        raw.seek(0)
        text = io.TextIOWrapper(raw, encoding="utf-8", errors="replace", newline=None)
        for number, line in enumerate(text, 1):
            if regex.search(line):
                hits.append(f"{label}:{number}:{line.rstrip()[:300]}")
                if len(hits) >= MAX_GREP_MATCHES:
                    hits.append(
                        f"[... stopped at {MAX_GREP_MATCHES} matches; narrow the pattern or path]"
                    )
                    return True
    return False
