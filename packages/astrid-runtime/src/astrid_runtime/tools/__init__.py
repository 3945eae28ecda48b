"""The built-in tools. Each maps its call to a SensitiveAction the interceptor authorizes."""

from ._base import MAX_OUTPUT_CHARS, Tool, ToolContext, ToolRegistry, cap_output
from ._bash import Bash
from ._files import DeleteFile, EditFile, Glob, Grep, ListDirectory, ReadFile, WriteFile
from ._task import Task

__all__ = [
    "Tool",
    "ToolContext",
    "ToolRegistry",
    "cap_output",
    "MAX_OUTPUT_CHARS",
    "ReadFile",
    "WriteFile",
    "EditFile",
    "DeleteFile",
    "ListDirectory",
    "Glob",
    "Grep",
    "Bash",
    "Task",
    "default_tools",
]


def default_tools(*, subagents: bool = True) -> ToolRegistry:
    tools: list[Tool] = [
        ReadFile(),
        WriteFile(),
        EditFile(),
        DeleteFile(),
        ListDirectory(),
        Glob(),
        Grep(),
        Bash(),
    ]
    if subagents:
        tools.append(Task())
    return ToolRegistry(tools)
