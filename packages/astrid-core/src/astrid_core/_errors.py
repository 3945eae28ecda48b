"""One exception tree for all of Astrid.

Every error a user can see carries a stable machine-readable ``code`` (for frontends, JSON-RPC
error data and tests) and a ``hint`` that says what to do about it. Security denials are errors
too, so that code which forgets to look at a result still cannot proceed by accident.
"""

from __future__ import annotations

__all__ = [
    "AstridError",
    "ConfigError",
    "BadInputError",
    "SecurityDenied",
    "PolicyDenied",
    "CapabilityDenied",
    "BudgetDenied",
    "ApprovalDenied",
    "WorkspaceDenied",
    "VerificationError",
    "StorageError",
    "AstridTimeoutError",
    "NotFoundError",
    "FrontendUnavailable",
]


class AstridError(Exception):
    """Root of every error Astrid raises on purpose."""

    code: str = "astrid.error"
    default_hint: str = ""

    def __init__(self, message: str, *, hint: str | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint if hint is not None else self.default_hint
        if code is not None:
            self.code = code

    def __str__(self) -> str:
        if self.hint:
            return f"{self.message} (hint: {self.hint})"
        return self.message

    def to_dict(self) -> dict[str, str]:
        """The wire form used by the daemon and the audit log."""
        return {"code": self.code, "message": self.message, "hint": self.hint}


class ConfigError(AstridError):
    """A configuration file or value is missing, malformed or not allowed."""

    code = "config.invalid"
    default_hint = "run `astrid config validate` to see every problem with its file and key"


class BadInputError(AstridError):
    """Input that fails validation: wrong type, oversize, hostile path, malformed frame."""

    code = "input.invalid"
    default_hint = "check the value named in the message"


class SecurityDenied(AstridError):
    """An action was refused by a security layer. Subclasses name the layer."""

    code = "security.denied"
    default_hint = "the action was not performed; nothing was changed"


class PolicyDenied(SecurityDenied):
    """Refused by the admin security policy (a hard limit no approval can lift)."""

    code = "security.policy"
    default_hint = "an administrator's policy blocks this; change the [security] config to allow it"


class CapabilityDenied(SecurityDenied):
    """No valid capability token or allowance covers the action."""

    code = "security.capability"
    default_hint = "approve the action when asked, or issue a capability that covers it"


class BudgetDenied(SecurityDenied):
    """The action would exceed a per-action, session or workspace budget."""

    code = "security.budget"
    default_hint = "raise the [budget] limits or start a new session"


class ApprovalDenied(SecurityDenied):
    """The human (or the approval timeout) said no."""

    code = "security.approval"
    default_hint = "the user denied the action"


class WorkspaceDenied(SecurityDenied):
    """The action leaves the workspace and the escape policy forbids it."""

    code = "security.workspace"
    default_hint = 'work inside the workspace, or set [workspace] escape_policy = "ask"'


class VerificationError(AstridError):
    """A signature, hash, chain link, proof or manifest did not verify.

    One type for every such failure so callers cannot handle one and forget another.
    """

    code = "verification.failed"
    default_hint = "the data was altered or signed by an untrusted key; do not use it"


class StorageError(AstridError):
    """The storage backend failed or is owned by another process."""

    code = "storage.failed"
    default_hint = "check the state directory (ASTRID_HOME) and that no other astridd owns it"


class AstridTimeoutError(AstridError, TimeoutError):
    """An operation did not finish within its time limit."""

    code = "timeout"
    default_hint = "raise the matching [timeouts] value or check the peer is alive"


class NotFoundError(AstridError, LookupError):
    """A session, token, entry, server or file does not exist."""

    code = "not_found"
    default_hint = "list what exists (e.g. `astrid sessions list`) and use one of those ids"


class FrontendUnavailable(AstridError):
    """No human-facing client is connected to answer an approval or elicitation.

    The approval layer treats this as "defer", never as "allow" or "deny".
    """

    code = "frontend.unavailable"
    default_hint = "connect a frontend (`astrid chat`); pending approvals are delivered then"
