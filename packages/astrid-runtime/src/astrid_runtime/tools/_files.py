"""File tools: read_file, write_file, edit_file, delete_file, list_directory, glob, grep."""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path
from typing import Any

import anyio.to_thread
import pathspec

from astrid_core import (
    BadInputError,
    DirectoryList,
    FileDelete,
    FileRead,
    FileWrite,
    JsonObject,
    NotFoundError,
    SensitiveAction,
)

from ._base import ToolContext, cap_output, require, resolve_path

__all__ = ["ReadFile", "WriteFile", "EditFile", "DeleteFile", "ListDirectory", "Glob", "Grep"]

_PATH = {
    "type": "string",
    "description": "file path, absolute or relative to the working directory",
}


def _is_binary(head: bytes) -> bool:
    return b"\x00" in head


class ReadFile:
    name: str = "read_file"
    description: str = "Read a text file with line numbers (offset/limit for large files)."
    input_schema: dict[str, Any] = {
        "type": "object",
        "properties": {
            "path": _PATH,
            "offset": {"type": "integer", "minimum": 0},
            "limit": {"type": "integer", "minimum": 1},
        },
        "required": ["path"],
    }

    def action(self, args: JsonObject, ctx: ToolContext) -> SensitiveAction:
        return FileRead(path=resolve_path(require(args, "path"), ctx))

    async def run(self, args: JsonObject, action: SensitiveAction, ctx: ToolContext) -> str:
        assert isinstance(action, FileRead)
        offset = int(args.get("offset", 0) or 0)  # type: ignore[arg-type]
        limit = int(args.get("limit", 2000) or 2000)  # type: ignore[arg-type]

        def read() -> str:
            path = Path(action.path)
            if not path.is_file():
                raise NotFoundError(f"no such file: {action.path}")
            data = path.read_bytes()
            if _is_binary(data[:8192]):
                return f"{action.path} is a binary file ({len(data)} bytes); not shown"
            lines = data.decode("utf-8", errors="replace").splitlines()
            shown = lines[offset : offset + limit]
            body = "\n".join(f"{offset + i + 1:6}\t{line}" for i, line in enumerate(shown))
            more = len(lines) - offset - len(shown)
            return body + (f"\n[... {more} more lines; use offset/limit ...]" if more > 0 else "")

        return cap_output(await anyio.to_thread.run_sync(read))


def _atomic_write(path: str, text: str) -> None:
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    mode = target.stat().st_mode & 0o7777 if target.exists() else 0o644
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, target)  # readers see the old or the new file, never half of one
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _read_text(path: str) -> str:
    if not Path(path).is_file():
        raise NotFoundError(f"no such file: {path}")
    return Path(path).read_text(encoding="utf-8")


def _unlink_file(path: str) -> None:
    target = Path(path)
    if target.is_dir() and not target.is_symlink():
        raise BadInputError(f"{path} is a directory; delete_file removes files only")
    target.unlink()


class WriteFile:
    name: str = "write_file"
    description: str = "Create or replace a text file (atomic)."
    input_schema: dict[str, Any] = {
        "type": "object",
        "properties": {"path": _PATH, "content": {"type": "string"}},
        "required": ["path", "content"],
    }

    def action(self, args: JsonObject, ctx: ToolContext) -> SensitiveAction:
        if not isinstance(args.get("content"), str):
            raise BadInputError("argument 'content' must be a string")
        return FileWrite(path=resolve_path(require(args, "path"), ctx))

    async def run(self, args: JsonObject, action: SensitiveAction, ctx: ToolContext) -> str:
        assert isinstance(action, FileWrite)
        content = str(args["content"])
        await anyio.to_thread.run_sync(_atomic_write, action.path, content)
        return f"wrote {len(content.encode())} bytes to {action.path}"


class EditFile:
    name: str = "edit_file"
    description: str = (
        "Replace an exact string in a file; it must be unique unless replace_all is true."
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
        return FileWrite(path=resolve_path(require(args, "path"), ctx))

    async def run(self, args: JsonObject, action: SensitiveAction, ctx: ToolContext) -> str:
        assert isinstance(action, FileWrite)
        old, new = str(args["old_string"]), str(args["new_string"])
        text = await anyio.to_thread.run_sync(_read_text, action.path)
        count = text.count(old)
        if count == 0:
            raise BadInputError(f"old_string was not found in {action.path}")
        if count > 1 and not args.get("replace_all"):
            raise BadInputError(
                f"old_string occurs {count} times in {action.path}; "
                "make it unique or pass replace_all=true"
            )
        await anyio.to_thread.run_sync(_atomic_write, action.path, text.replace(old, new))
        return f"replaced {count if args.get('replace_all') else 1} occurrence(s) in {action.path}"


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


class ListDirectory:
    name: str = "list_directory"
    description: str = "List a directory's entries."
    input_schema: dict[str, Any] = {"type": "object", "properties": {"path": _PATH}}

    def action(self, args: JsonObject, ctx: ToolContext) -> SensitiveAction:
        return DirectoryList(path=resolve_path(str(args.get("path") or "."), ctx))

    async def run(self, args: JsonObject, action: SensitiveAction, ctx: ToolContext) -> str:
        assert isinstance(action, DirectoryList)
        entries = sorted(os.scandir(action.path), key=lambda e: e.name)
        lines = [f"{e.name}/" if e.is_dir() else e.name for e in entries[:1000]]
        return cap_output("\n".join(lines) or "(empty)")


def _ignore_spec(root: str) -> pathspec.PathSpec:
    lines = [".git/"]
    gitignore = Path(root) / ".gitignore"
    if gitignore.is_file():
        lines += gitignore.read_text(errors="replace").splitlines()
    return pathspec.PathSpec.from_lines("gitignore", lines)


def _walk(root: str) -> list[str]:
    spec = _ignore_spec(root)
    found: list[str] = []
    for dirpath, dirnames, filenames in os.walk(root):
        rel_dir = os.path.relpath(dirpath, root)
        dirnames[:] = sorted(
            d
            for d in dirnames
            if not spec.match_file(os.path.normpath(os.path.join(rel_dir, d)) + "/")
        )
        for name in sorted(filenames):
            rel = os.path.normpath(os.path.join(rel_dir, name))
            if not spec.match_file(rel):
                found.append(rel)
        if len(found) > 20_000:
            break
    return found


class Glob:
    name: str = "glob"
    description: str = "Find files by glob pattern (respects .gitignore), e.g. 'src/**/*.py'."
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
        spec = pathspec.PathSpec.from_lines("gitignore", [str(args["pattern"])])
        files = [
            f for f in await anyio.to_thread.run_sync(_walk, action.path) if spec.match_file(f)
        ]
        return cap_output("\n".join(files[:1000]) or "no matches")


class Grep:
    name: str = "grep"
    description: str = "Search file contents with a regular expression (respects .gitignore)."
    input_schema: dict[str, Any] = {
        "type": "object",
        "properties": {"pattern": {"type": "string"}, "path": _PATH},
        "required": ["pattern"],
    }

    def action(self, args: JsonObject, ctx: ToolContext) -> SensitiveAction:
        try:
            re.compile(require(args, "pattern"))
        except re.error as exc:
            raise BadInputError(f"invalid regular expression: {exc}") from exc
        return DirectoryList(path=resolve_path(str(args.get("path") or "."), ctx))

    async def run(self, args: JsonObject, action: SensitiveAction, ctx: ToolContext) -> str:
        assert isinstance(action, DirectoryList)
        regex = re.compile(str(args["pattern"]))

        def search() -> list[str]:
            hits: list[str] = []
            for rel in _walk(action.path):
                try:
                    with open(os.path.join(action.path, rel), encoding="utf-8") as handle:
                        for number, line in enumerate(handle, 1):
                            if regex.search(line):
                                hits.append(f"{rel}:{number}:{line.rstrip()[:300]}")
                                if len(hits) >= 500:
                                    return hits
                except (UnicodeDecodeError, OSError):
                    continue
            return hits

        return cap_output("\n".join(await anyio.to_thread.run_sync(search)) or "no matches")
