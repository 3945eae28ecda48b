"""``astrid mcp install-client``: route an MCP client's servers through Astrid.

The client's ``mcpServers`` move into Astrid's ``config.toml`` as ``[[servers]]`` entries, and
the client gets one server instead: ``{"command": "astrid", "args": ["mcp", "serve"]}``. Without
``--write`` nothing is written: the diff of both files is printed (a dry run). With it, the
client's file is first copied to ``<file>.astrid-backup`` and both files are written whole.
A server already in Astrid's config (same name) is not added twice; nothing is lost: every
key of the client file other than the moved servers stays as it was.
"""

from __future__ import annotations

import difflib
import json
import os
import re
import shutil
import sys
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from astrid_core import AstridError

__all__ = ["CLIENTS", "Plan", "plan_install", "write_plan", "default_client_config"]

CLIENTS = ("claude-code", "claude-desktop", "cursor")
ASTRID_ENTRY: dict[str, Any] = {"command": "astrid", "args": ["mcp", "serve"]}
_NAME_BAD = re.compile(r"[/\s\x00-\x1f\x7f]+")


def default_client_config(client: str, cwd: Path, home: Path) -> Path:
    """Where each client keeps its MCP servers (project file first, when there is one)."""
    if client == "claude-code":
        project = cwd / ".mcp.json"
        return project if project.exists() else home / ".claude.json"
    if client == "cursor":
        project = cwd / ".cursor" / "mcp.json"
        return project if project.exists() else home / ".cursor" / "mcp.json"
    if sys.platform == "darwin":
        return home / "Library/Application Support/Claude/claude_desktop_config.json"
    return home / ".config" / "Claude" / "claude_desktop_config.json"


@dataclass(frozen=True)
class Plan:
    client_path: Path
    client_before: str
    client_after: str
    astrid_path: Path
    astrid_before: str
    astrid_after: str
    moved: tuple[str, ...]
    skipped: tuple[str, ...]  # already in Astrid's config under that name

    def diff(self) -> str:
        parts: list[str] = []
        for path, before, after in (
            (self.client_path, self.client_before, self.client_after),
            (self.astrid_path, self.astrid_before, self.astrid_after),
        ):
            parts.extend(
                difflib.unified_diff(
                    before.splitlines(keepends=True),
                    after.splitlines(keepends=True),
                    fromfile=f"{path} (now)",
                    tofile=f"{path} (after --write)",
                )
            )
        return "".join(parts)


def _toml_value(value: Any) -> str:
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)  # a JSON string is a TOML basic string
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"  # pyright: ignore[reportUnknownVariableType]
    if isinstance(value, dict):
        items = ", ".join(f"{json.dumps(str(k))} = {_toml_value(v)}" for k, v in value.items())  # pyright: ignore[reportUnknownVariableType, reportUnknownArgumentType]
        return "{ " + items + " }" if items else "{}"
    return json.dumps(value)


def _server_toml(name: str, entry: Mapping[str, Any]) -> str:
    lines = ["", "[[servers]]", f"name = {_toml_value(name)}"]
    if entry.get("url"):
        lines.append(f"url = {_toml_value(str(entry['url']))}")
        if entry.get("headers"):
            lines.append(f"headers = {_toml_value(dict(entry['headers']))}")
    else:
        lines.append(f"command = {_toml_value(str(entry.get('command', '')))}")
        if entry.get("args"):
            lines.append(f"args = {_toml_value([str(a) for a in entry['args']])}")
        if entry.get("env"):
            lines.append(f"env = {_toml_value({str(k): str(v) for k, v in entry['env'].items()})}")
        if entry.get("cwd"):
            lines.append(f"cwd = {_toml_value(str(entry['cwd']))}")
    return "\n".join(lines) + "\n"


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return ""


def plan_install(client_path: Path, astrid_path: Path) -> Plan:
    """What --write would do; raises a clear error on a file it cannot read as JSON/TOML."""
    client_text = _read(client_path)
    try:
        client: dict[str, Any] = json.loads(client_text) if client_text.strip() else {}
    except json.JSONDecodeError as exc:
        raise AstridError(
            f"{client_path} is not valid JSON (line {exc.lineno}, column {exc.colno})",
            hint=f"fix {client_path}, or pass --config with the right file",
            code="config.invalid",
        ) from None
    servers = client.get("mcpServers") or {}
    if not isinstance(servers, dict):
        raise AstridError(
            f"{client_path}: mcpServers is not an object",
            hint="fix the file by hand first",
            code="config.invalid",
        )
    astrid_text = _read(astrid_path)
    try:
        existing = {
            str(s.get("name"))
            for s in tomllib.loads(astrid_text).get("servers", [])
            if isinstance(s, dict)
        }
    except tomllib.TOMLDecodeError as exc:
        raise AstridError(
            f"{astrid_path} is not valid TOML: {exc}",
            hint="run `astrid config validate` and fix it first",
            code="config.invalid",
        ) from None
    moved: list[str] = []
    skipped: list[str] = []
    additions: list[str] = []
    for raw_name, entry in servers.items():  # pyright: ignore[reportUnknownVariableType]
        if entry == ASTRID_ENTRY or not isinstance(entry, dict):
            continue
        name = _NAME_BAD.sub("-", str(raw_name))[:128] or "server"  # pyright: ignore[reportUnknownArgumentType]
        if name in existing:
            skipped.append(name)
            continue
        existing.add(name)
        moved.append(name)
        additions.append(_server_toml(name, entry))  # pyright: ignore[reportUnknownArgumentType]
    after = dict(client)
    after["mcpServers"] = {"astrid": ASTRID_ENTRY}
    client_after = json.dumps(after, indent=2, ensure_ascii=False) + "\n"
    astrid_after = astrid_text
    if additions:
        if astrid_after and not astrid_after.endswith("\n"):
            astrid_after += "\n"
        astrid_after += "".join(additions)
    return Plan(
        client_path,
        client_text,
        client_after,
        astrid_path,
        astrid_text,
        astrid_after,
        tuple(moved),
        tuple(skipped),
    )


def write_plan(plan: Plan) -> None:
    """Back up the client file, then write Astrid's config first (0600: it may now hold the
    servers' secrets), then the client's: an interruption never leaves the client pointing at
    Astrid while the servers are in neither file."""
    if plan.client_before:
        shutil.copy2(
            plan.client_path, plan.client_path.with_name(plan.client_path.name + ".astrid-backup")
        )
    plan.astrid_path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    _write_whole(plan.astrid_path, plan.astrid_after, 0o600)
    plan.client_path.parent.mkdir(parents=True, exist_ok=True)
    _write_whole(plan.client_path, plan.client_after, 0o600)


def _write_whole(path: Path, text: str, mode: int) -> None:
    temp = path.with_name(f".{path.name}.astrid-tmp")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, mode)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temp, path)
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)
