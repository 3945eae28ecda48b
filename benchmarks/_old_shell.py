"""BASELINE ONLY: astrid_approval/_shell.py as it was before tree-sitter (commit b4be71e), kept
verbatim so benchmarks/interceptor.py can measure the new parser against it in the same run.
Not used by any package; never import it from code."""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field

__all__ = ["SimpleCommand", "ParsedLine", "parse_command_line", "SHELLS"]

SHELLS = frozenset({"sh", "bash", "zsh", "dash", "ksh", "ash", "fish", "busybox"})
_OPERATORS = frozenset({";", "&&", "||", "|", "&", "|&", ";;", "(", ")", "{", "}", "!"})
_REDIRECT = frozenset({"<", ">", ">>", "<<", "<<<", "<>", ">|", "&>", "&>>", ">&", "<&"})
# Wrappers that run their argument as a command: name -> options that take a value.
_WRAPPERS: dict[str, frozenset[str]] = {
    "env": frozenset({"-u", "--unset", "-C", "--chdir", "-S", "--split-string"}),
    "sudo": frozenset({"-u", "-g", "-h", "-p", "-C", "-U", "-r", "-t", "-D", "--user", "--group"}),
    "doas": frozenset({"-u", "-C"}),
    "nohup": frozenset(),
    "exec": frozenset({"-a"}),
    "nice": frozenset({"-n", "--adjustment"}),
    "ionice": frozenset({"-c", "-n", "-p"}),
    "timeout": frozenset({"-s", "--signal", "-k", "--kill-after"}),
    "xargs": frozenset({"-I", "-i", "-L", "-l", "-n", "-P", "-s", "-d", "-E", "-a", "--arg-file"}),
    "command": frozenset(),
    "builtin": frozenset(),
    "time": frozenset({"-f", "-o"}),
    "stdbuf": frozenset({"-i", "-o", "-e"}),
    "setsid": frozenset(),
    "chroot": frozenset(),
    "strace": frozenset({"-e", "-o", "-p"}),
    "watch": frozenset({"-n", "-d"}),
    "unbuffer": frozenset(),
    "runuser": frozenset({"-u", "-g"}),
    "su": frozenset({"-s", "-g"}),
}
_MAX_DEPTH = 8


@dataclass(frozen=True)
class SimpleCommand:
    program: str  # basename, as the shell would look it up
    argv: tuple[str, ...]  # including argv[0] as written
    via: tuple[str, ...] = ()  # wrappers it was found behind, e.g. ("env", "sudo")


@dataclass
class ParsedLine:
    commands: list[SimpleCommand] = field(default_factory=list[SimpleCommand])
    opaque_reasons: list[str] = field(default_factory=list[str])
    pipelines: list[list[SimpleCommand]] = field(default_factory=list[list[SimpleCommand]])
    redirect_targets: list[str] = field(default_factory=list[str])

    @property
    def opaque(self) -> bool:
        return bool(self.opaque_reasons)

    @property
    def programs(self) -> set[str]:
        found = {c.program for c in self.commands}
        for c in self.commands:
            found.update(c.via)
        return found


def parse_command_line(line: str) -> ParsedLine:
    result = ParsedLine()
    _parse(line, result, depth=0)
    return result


def _substitutions(line: str, result: ParsedLine) -> list[str]:
    """Extract the bodies of $( ), ` `, <( ) and >( ) (outside single quotes)."""
    bodies: list[str] = []
    i, n = 0, len(line)
    in_single = in_double = False
    while i < n:
        ch = line[i]
        if ch == "\\" and not in_single:
            i += 2
            continue
        if ch == "'" and not in_double:
            in_single = not in_single
        elif ch == '"' and not in_single:
            in_double = not in_double
        elif not in_single and (
            line.startswith("$(", i) or (not in_double and line.startswith(("<(", ">("), i))
        ):
            if line.startswith("$((", i):  # arithmetic: no command, but may hide $( ) inside
                i += 3
                continue
            depth, j = 1, i + 2
            while j < n and depth:
                if line[j] == "(":
                    depth += 1
                elif line[j] == ")":
                    depth -= 1
                j += 1
            if depth:
                result.opaque_reasons.append("unbalanced command substitution")
                return bodies
            bodies.append(line[i + 2 : j - 1])
            i = j
            continue
        elif ch == "`" and not in_single:
            j = line.find("`", i + 1)
            if j < 0:
                result.opaque_reasons.append("unbalanced backtick substitution")
                return bodies
            bodies.append(line[i + 1 : j])
            i = j + 1
            continue
        i += 1
    return bodies


def _parse(line: str, result: ParsedLine, depth: int) -> None:
    if depth > _MAX_DEPTH:
        result.opaque_reasons.append("nesting too deep")
        return
    if "<<" in line and "<<<" not in line:
        result.opaque_reasons.append("here-document")
    for body in _substitutions(line, result):
        _parse(body, result, depth + 1)
    lexer = shlex.shlex(line, posix=True, punctuation_chars=";&|()<>")
    lexer.whitespace_split = True
    lexer.commenters = ""
    try:
        tokens = list(lexer)
    except ValueError as exc:  # unbalanced quotes
        result.opaque_reasons.append(f"cannot tokenize: {exc}")
        return
    pipeline: list[SimpleCommand] = []
    words: list[str] = []
    skip_next = False
    for token in [*tokens, ";"]:
        if skip_next:  # the target of a redirection is a file name, not a command word
            skip_next = False
            if not token.startswith("&"):
                result.redirect_targets.append(token)
            continue
        if token in _REDIRECT or (token[:-1].isdigit() and token[-1:] in "<>" and len(token) > 1):
            skip_next = True
            continue
        if token in _OPERATORS or set(token) <= set(";&|()<>"):
            if words:
                pipeline.extend(_simple(words, result, depth))
                words = []
            if token not in ("|", "|&"):
                if pipeline:
                    result.pipelines.append(pipeline)
                pipeline = []
            continue
        words.append(token)


def _simple(
    words: list[str], result: ParsedLine, depth: int, via: tuple[str, ...] = ()
) -> list[SimpleCommand]:
    # Leading NAME=value assignments are environment for the command, not the command.
    while (
        words
        and "=" in words[0]
        and not words[0].startswith("=")
        and words[0].split("=", 1)[0].isidentifier()
    ):
        words = words[1:]
    if not words:
        return []
    first = words[0]
    if any(c in first for c in "$`*?[{~") or first.startswith("-"):
        result.opaque_reasons.append(f"program name {first!r} is computed or a pattern")
        return []
    if first.endswith("()") or first == "function":
        result.opaque_reasons.append("function definition")
        return []
    program = first.rsplit("/", 1)[-1]
    command = SimpleCommand(program, tuple(words), via)
    found = [command]
    result.commands.append(command)
    rest = words[1:]
    if program in ("eval", "source", "."):
        if program == "eval":
            _parse(" ".join(rest), result, depth + 1)
        else:
            result.opaque_reasons.append(f"{program} runs a script file")
        return found
    if program in SHELLS:
        inner = _shell_c_argument(rest)
        if inner is not None:
            _parse(inner, result, depth + 1)
        elif any(not a.startswith("-") for a in rest) or not rest:
            pass  # `bash script.sh` or a bare shell reading stdin: the pipeline check handles it
        return found
    if program == "find":
        return found + _find_exec(rest, result, depth, (*via, program))
    if program == "watch":  # watch joins its arguments and runs them with sh -c
        inner_words = _after_options(rest, _WRAPPERS["watch"], program)
        if inner_words:
            _parse(" ".join(inner_words), result, depth + 1)
        return found
    options = _WRAPPERS.get(program)
    if options is not None:
        inner_words = _after_options(rest, options, program)
        if inner_words:
            nested = _simple(inner_words, result, depth, (*via, program))
            return found + nested
    return found


def _find_exec(
    args: list[str], result: ParsedLine, depth: int, via: tuple[str, ...]
) -> list[SimpleCommand]:
    found: list[SimpleCommand] = []
    for index, arg in enumerate(args):
        if arg in ("-exec", "-execdir", "-ok", "-okdir"):
            # The command runs until ';' or '+': the tokenizer already ended the words at ';'.
            inner = [w for w in args[index + 1 :] if w != "+"]
            found += _simple(inner, result, depth, via)
            break
    return found


def _shell_c_argument(args: list[str]) -> str | None:
    for index, arg in enumerate(args):
        if arg == "-c" or (arg.startswith("-") and not arg.startswith("--") and "c" in arg[1:]):
            return args[index + 1] if index + 1 < len(args) else ""
        if not arg.startswith("-"):
            return None
    return None


def _after_options(args: list[str], takes_value: frozenset[str], program: str) -> list[str]:
    i = 0
    while i < len(args):
        arg = args[i]
        if arg == "--":
            return args[i + 1 :]
        if program == "env" and "=" in arg and not arg.startswith("-"):
            i += 1
            continue
        if program == "timeout" and not arg.startswith("-") and _looks_like_duration(arg):
            return args[i + 1 :]
        if arg.startswith("-"):
            i += 2 if arg in takes_value else 1
            continue
        if program in ("nice",) and arg.lstrip("+-").isdigit():
            i += 1
            continue
        return args[i:]
    return []


def _looks_like_duration(text: str) -> bool:
    return text.rstrip("smhd").replace(".", "", 1).isdigit()
