"""Who may talk to the bot, and which callback buttons are still valid."""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterable
from dataclasses import dataclass, field

from astrid_core import ConfigError

__all__ = ["AccessPolicy", "CallbackRegistry", "PendingButton", "CallbackRejected"]


class AccessPolicy:
    """An explicit allow-list. An empty list is refused unless ``allow_any_user`` is set."""

    def __init__(self, allowed_user_ids: Iterable[int], *, allow_any_user: bool = False) -> None:
        self.allowed = frozenset(int(u) for u in allowed_user_ids)
        self.allow_any_user = allow_any_user
        if not self.allowed and not allow_any_user:
            raise ConfigError(
                "[telegram] allowed_user_ids is empty: the bot would answer anyone on Telegram",
                hint="list your Telegram user ids in [telegram] allowed_user_ids, or set "
                "allow_any_user = true if you really want a public bot",
            )

    def permits(self, user_id: int) -> bool:
        return self.allow_any_user or user_id in self.allowed


class CallbackRejected(Exception):
    """A button press that must not be acted on; the message is shown to the presser."""


@dataclass
class PendingButton:
    request_id: str
    owner_user_id: int
    chat_id: int
    session_id: str
    created: float = field(default_factory=time.monotonic)


class CallbackRegistry:
    """Maps unguessable per-request nonces to pending approvals.

    callback_data is ``ap:<nonce>:<option index>``. A nonce is consumed by its first valid
    press, so a replayed or stale callback finds nothing; only the session's owner may press.
    """

    def __init__(self, ttl_seconds: float = 24 * 3600) -> None:
        self._pending: dict[str, PendingButton] = {}
        self.ttl = ttl_seconds

    def issue(self, button: PendingButton) -> str:
        nonce = secrets.token_urlsafe(9)
        self._pending[nonce] = button
        return nonce

    def nonce_for(self, request_id: str) -> str | None:
        for nonce, button in self._pending.items():
            if button.request_id == request_id:
                return nonce
        return None

    def resolve(self, data: str, user_id: int, options: int) -> tuple[PendingButton, int]:
        parts = data.split(":")
        if len(parts) != 3 or parts[0] != "ap" or not parts[2].isdigit():
            raise CallbackRejected("unknown button")
        nonce, index = parts[1], int(parts[2])
        button = self._pending.get(nonce)
        if button is None:
            raise CallbackRejected("this approval was already answered or has expired")
        if time.monotonic() - button.created > self.ttl:
            del self._pending[nonce]
            raise CallbackRejected("this approval has expired")
        if user_id != button.owner_user_id:
            raise CallbackRejected("only the person who started this session can answer")
        if not 0 <= index < options:
            raise CallbackRejected("unknown option")
        del self._pending[nonce]
        return button, index

    def forget(self, request_id: str) -> None:
        for nonce in [n for n, b in self._pending.items() if b.request_id == request_id]:
            del self._pending[nonce]
