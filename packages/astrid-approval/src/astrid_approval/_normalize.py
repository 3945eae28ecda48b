"""Turn a proposed action into what it really means, before policy or patterns see it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from astrid_core import (
    DirectoryList,
    FileDelete,
    FileRead,
    FileWrite,
    SensitiveAction,
    ShellCommand,
)

from ._paths import normalize_path
from ._shell import ParsedLine, parse_command_line

__all__ = ["Normalized", "normalize_action"]

_PATH_ACTIONS = (FileRead, FileWrite, FileDelete, DirectoryList)


@dataclass(frozen=True)
class Normalized:
    action: SensitiveAction  # with resolved path (for path actions)
    path: str | None = None
    shell: ParsedLine | None = None
    warnings: tuple[str, ...] = ()


def normalize_action(
    action: SensitiveAction, workspace: str | Path, home: str | Path | None = None
) -> Normalized:
    if isinstance(action, _PATH_ACTIONS):
        resolved = normalize_path(action.path, workspace, home)
        if resolved.path != action.path:
            action = action.model_copy(update={"path": resolved.path})
        return Normalized(
            action,
            resolved.path,
            None,
            resolved.warnings,
        )
    if isinstance(action, ShellCommand):
        return Normalized(action, None, parse_command_line(action.command))
    return Normalized(action)
