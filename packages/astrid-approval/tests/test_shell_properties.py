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


STRUCTURES = [
    "{0}",
    "\n{0}\n",
    "if true; then {0}; fi",
    "if false; then :; else {0}; fi",
    "for i in 1; do {0}; done",
    "while true; do {0}; break; done",
    "until false; do {0}; done",
    "case x in x) {0};; esac",
    "f() {{ {0}; }}; f",
    "function g {{ {0}; }}",
    "( {0} )",
    "{{ {0}; }}",
    "coproc {0}",
    "sh <<< '{0}'",
    "bash <<'EOF'\n{0}\nEOF",
    "cat <<EOF\n$({0})\nEOF",
    "env -S '{0}'",
    "busybox sh -c '{0}'",
    "trap '{0}' EXIT",
    "cat <({0})",
    'echo "$({0})"',
    "x=$({0})",
    "[[ -n $({0}) ]]",
    "! {0}",
    "time {0}",
    "watch {0}",
    "su -c '{0}' root",
    "ssh host {0}",
    "find . -exec {0} \\;",
]


@settings(max_examples=300, deadline=None)
@given(
    outer=st.sampled_from(STRUCTURES),
    inner=st.sampled_from(STRUCTURES),
    wrapper=st.sampled_from(WRAPPERS),
    spelling=st.sampled_from([*SPELLINGS, "$'\\x73udo'", "s\\\nudo"]),
    before=st.sampled_from(["", "ls; ", "echo hi\n", "true && "]),
)
def test_sudo_is_denied_inside_any_nesting_of_bash_structures(
    outer: str, inner: str, wrapper: str, spelling: str, before: str
) -> None:
    """Two levels of any structure, any wrapper, any spelling: a policy DENY, never a pass or
    a question (a question could be answered yes)."""
    line = before + outer.format(inner.format(f"{wrapper}{spelling} id"))
    if "$({0})" in outer and inner.startswith("("):
        return  # "$(( … ))" is arithmetic to bash, not a subshell: nothing runs
    quoted = ("'" in outer) + ("'" in inner)
    if quoted > 1 or (quoted and "'" in spelling + wrapper):
        return  # single quotes inside single quotes end them: a different line
    verdict = SecurityPolicy(home="/nonexistent").check(
        normalize_action(ShellCommand(command=line, cwd="/tmp"), "/tmp")
    )
    joined = outer in ("watch {0}", "ssh host {0}") and any(q in inner + spelling for q in "'\"\\")
    if joined:  # watch and ssh join their words: the inner quotes are gone. Never a pass.
        assert verdict.verdict is not Verdict.PASS, (line, verdict.reasons)
        return
    if outer in _EXEC_ONLY and inner not in ("{0}", "time {0}", "watch {0}", "ssh host {0}"):
        return  # env -S and find -exec run a program, not shell text: "if" is a program name
    if any("does not parse" in r for r in verdict.reasons):
        # a line bash would refuse as a syntax error (coproc f() {…}): asked, never a pass
        assert verdict.verdict is not Verdict.PASS, (line, verdict.reasons)
        return
    assert verdict.verdict is Verdict.DENY, (line, verdict.reasons)


_EXEC_ONLY = ("env -S '{0}'", "find . -exec {0} \\;")
