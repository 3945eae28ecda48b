"""Property: a blocked command survives no composition, wrapper or quoting trick."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from astrid_approval import SecurityPolicy, Verdict, normalize_action, parse_command_line
from astrid_core import ShellCommand

HARMLESS = ["ls -la", "echo hi", "git status", "cat README.md", "grep -r foo .", "true", "pwd"]
WRAPPERS = [
    "",
    "env X=1 ",
    "nohup ",
    "exec ",
    "timeout 5 ",
    "nice -n 5 ",
    "command ",
    "/usr/bin/env ",
    "xargs ",
    "stdbuf -o0 ",
]
SPELLINGS = ["sudo", "/usr/bin/sudo", "s'u'do", '"sudo"', "\\sudo", "./sudo"]
JOINERS = [" && ", " || ", " ; ", " | ", " & "]


def _embed(kind: int, inner: str) -> str:
    return [
        inner,
        f"$({inner})",
        f"`{inner}`",
        f'bash -c "{inner}"',
        f"sh -c '{inner}'",
        f"( {inner} )",
        f"echo $(echo $({inner}))",
    ][kind]


@settings(max_examples=300, deadline=None)
@given(
    before=st.lists(st.sampled_from(HARMLESS), max_size=3),
    after=st.lists(st.sampled_from(HARMLESS), max_size=3),
    wrapper=st.sampled_from(WRAPPERS),
    spelling=st.sampled_from(SPELLINGS),
    joiner=st.sampled_from(JOINERS),
    kind=st.integers(0, 6),
)
def test_sudo_is_found_anywhere(
    before: list[str], after: list[str], wrapper: str, spelling: str, joiner: str, kind: int
) -> None:
    inner = f"{wrapper}{spelling} id"
    line = joiner.join([*before, _embed(kind, inner), *after])
    parsed = parse_command_line(line)
    assert "sudo" in parsed.programs or parsed.opaque, line
    verdict = SecurityPolicy(home="/nonexistent").check(
        normalize_action(ShellCommand(command=line, cwd="/tmp"), "/tmp")
    )
    assert verdict.verdict is not Verdict.PASS, line  # denied, or at least never auto-allowed


@given(st.text(max_size=200))
def test_parser_never_crashes(line: str) -> None:
    parse_command_line(line)


@pytest.mark.parametrize(
    "line", ["a{\U000efc45", "x{\U000efc45}", "\U00017d43{\U000efc45_\xfa\x80", "~\x00h*"]
)
def test_inputs_that_crashed_the_parser_are_analysed(line: str) -> None:
    """tree-sitter-bash segfaulted on "a{" + a 4-byte character (found by Hypothesis above),
    and "~" + NUL raised: the analysis must finish, every time, on any text."""
    from astrid_approval._shell import _parse_cached

    for _ in range(300):  # the crash needed a few hundred parses to show
        _parse_cached.__wrapped__(line)
