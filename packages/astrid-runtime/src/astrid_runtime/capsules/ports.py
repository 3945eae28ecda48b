"""The runtime as the capsule runners see it: a small public port instead of its internals.

``HeadlessSessions`` is what the cron runner needs to run a capsule's tool in a session that
nobody watches: the configuration, the workspace jobs run in, and sessions it can open, make
and save. ``AgentRuntime`` provides it (``AgentRuntime.headless``); the runner never touches
the runtime's private state, and the runtime module imports the runner, never the reverse.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from astrid_approval import BudgetTracker, SecurityInterceptor
    from astrid_core import SessionId

    from ..agent import AgentLoop
    from ..config import AstridConfig
    from ..sessions import Session

__all__ = ["HeadlessSession", "HeadlessSessions"]


class HeadlessSession(Protocol):
    """One open session: its record, its interceptor and budget, and its agent loop."""

    @property
    def session(self) -> Session: ...
    @property
    def interceptor(self) -> SecurityInterceptor: ...
    @property
    def loop(self) -> AgentLoop: ...
    @property
    def budget(self) -> BudgetTracker: ...


class HeadlessSessions(Protocol):
    """Sessions and configuration, for work that runs with nobody present."""

    @property
    def config(self) -> AstridConfig:
        """The daemon's configuration as loaded."""
        ...

    @property
    def config_file(self) -> Path:
        """Where the user sets it (named in hints)."""
        ...

    def default_workspace(self) -> str:
        """``[workspace] root``, resolved and checked; AstridError when it is unusable."""
        ...

    def config_for(self, workspace: str) -> AstridConfig:
        """The configuration with ``workspace``'s own ``.astrid/config.toml`` applied."""
        ...

    async def open(self, session_id: SessionId) -> HeadlessSession:
        """A stored session, opened in this daemon; AstridError when it is gone or unreadable."""
        ...

    async def create(self, workspace: str, title: str) -> HeadlessSession:
        """A new session in ``workspace``, made by the runtime's normal session path."""
        ...

    async def save(self, session: Session) -> None: ...
