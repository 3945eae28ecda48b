"""What an action does to its resource; capability tokens grant these."""

from __future__ import annotations

from enum import StrEnum

__all__ = ["Permission"]


class Permission(StrEnum):
    INVOKE = "invoke"
    READ = "read"
    WRITE = "write"
    DELETE = "delete"
    LIST = "list"
    EXECUTE = "execute"
    NETWORK = "network"
    SPAWN = "spawn"
    SPEND = "spend"
