"""`--auto OPTION` against questions that do not offer OPTION."""

from __future__ import annotations

import pytest

from astrid_cli._turns import auto_answer

ALL = ["allow_once", "allow_session", "allow_workspace", "allow_always", "deny"]


@pytest.mark.parametrize(
    ("option", "offered", "answer"),
    [
        ("allow_always", ALL, "allow_always"),
        # untrusted content preceded the request: only Once or Deny are offered
        ("allow_always", ["allow_once", "deny"], "allow_once"),
        ("allow_session", ["allow_once", "deny"], "allow_once"),
        ("allow_workspace", ["allow_once", "allow_session", "deny"], "allow_session"),
        # never wider than what the flag said
        ("allow_once", ["allow_session", "allow_always", "deny"], "deny"),
        ("allow_session", ["allow_always", "deny"], "deny"),
        ("deny", ["allow_once"], "deny"),
        ("allow_always", ["deny"], "deny"),
    ],
)
def test_an_auto_allow_falls_back_to_a_narrower_allow_never_a_wider_one(
    option: str, offered: list[str], answer: str
) -> None:
    assert auto_answer(option, offered) == answer
