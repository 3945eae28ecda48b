from __future__ import annotations

import pytest

import astrid_core
from astrid_core import (
    ApprovalDenied,
    AstridError,
    AstridTimeoutError,
    BadInputError,
    BudgetDenied,
    CapabilityDenied,
    ConfigError,
    FrontendUnavailable,
    NotFoundError,
    PolicyDenied,
    SecurityDenied,
    StorageError,
    VerificationError,
    WorkspaceDenied,
)

ALL = [
    (ConfigError, "config.invalid", AstridError),
    (BadInputError, "input.invalid", AstridError),
    (SecurityDenied, "security.denied", AstridError),
    (PolicyDenied, "security.policy", SecurityDenied),
    (CapabilityDenied, "security.capability", SecurityDenied),
    (BudgetDenied, "security.budget", SecurityDenied),
    (ApprovalDenied, "security.approval", SecurityDenied),
    (WorkspaceDenied, "security.workspace", SecurityDenied),
    (VerificationError, "verification.failed", AstridError),
    (StorageError, "storage.failed", AstridError),
    (AstridTimeoutError, "timeout", AstridError),
    (NotFoundError, "not_found", AstridError),
    (FrontendUnavailable, "frontend.unavailable", AstridError),
]


@pytest.mark.parametrize(("cls", "code", "parent"), ALL)
def test_codes_hints_and_tree(cls: type[AstridError], code: str, parent: type[Exception]) -> None:
    err = cls("the frobnicator failed")
    assert isinstance(err, parent)
    assert isinstance(err, AstridError)
    assert err.code == code
    assert err.hint, f"{cls.__name__} has no default hint"
    assert err.to_dict() == {"code": code, "message": "the frobnicator failed", "hint": err.hint}
    assert str(err) == f"the frobnicator failed (hint: {err.hint})"


def test_codes_are_unique() -> None:
    codes = [code for _, code, _ in ALL]
    assert len(set(codes)) == len(codes)


def test_hint_and_code_overrides_do_not_leak_to_class() -> None:
    err = StorageError("x", hint="do this", code="storage.locked")
    assert (err.hint, err.code) == ("do this", "storage.locked")
    assert StorageError("y").code == "storage.failed"
    assert str(AstridError("bare", hint="")) == "bare"


def test_stdlib_compatibility() -> None:
    assert isinstance(AstridTimeoutError("t"), TimeoutError)
    assert isinstance(NotFoundError("n"), LookupError)
    with pytest.raises(LookupError):
        raise NotFoundError("session 1 not found")


def test_every_exported_error_is_listed() -> None:
    exported = {
        name
        for name in astrid_core.__all__
        if isinstance(getattr(astrid_core, name), type)
        and issubclass(getattr(astrid_core, name), AstridError)
    }
    assert exported == {"AstridError"} | {cls.__name__ for cls, _, _ in ALL}
