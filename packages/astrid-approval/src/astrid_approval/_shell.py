"""Shell command lines parsed with a real bash grammar into every simple command they run.

Policy must see ``sudo`` however it is dressed: after a newline, ``&&`` or ``|``, inside
``if``/``for``/``while``/``case``/functions/``( )``/``{ }``, in ``$(…)``, backticks, ``<(…)``,
here-documents, behind ``coproc``/``env -S``/``nohup``/``xargs``/``find -exec``/``busybox``,
inside ``bash -c "…"``, as ``/usr/bin/sudo``, ``s'u'do`` or ``$'\\x73udo'``. The line is parsed
with tree-sitter-bash (the grammar editors use), never split by hand.

Whatever the text does not fully determine is *opaque* — the interceptor asks a human with
"cannot tell what this runs", in every mode, whatever grant exists: ``eval``, ``source``, a
program name that is computed, a shell or interpreter reading a pipe, here-document or
here-string, interpreters' inline code (``python -c``, ``perl -e``, ``awk 'BEGIN{system(…)}'``,
``sed 's/x/y/e'``), ``/dev/tcp`` redirections, configuration that makes an allowed command run
another (``git -c``, ``PAGER=…``, ``LD_PRELOAD=…``, ``rg --pre``, ``tar --checkpoint-action``),
a computed argument or redirection target (its path cannot be checked), and any parse error.
Limits of the analysis (length, number of commands, depth) make the line opaque: they never
make anything look harmless.
"""

from __future__ import annotations

import os
import re
import shlex
import threading
from dataclasses import dataclass, field
from functools import lru_cache

import tree_sitter_bash
from tree_sitter import Language, Node, Parser

__all__ = [
    "HOME_MARK",
    "SimpleCommand",
    "ParsedLine",
    "parse_command_line",
    "SHELLS",
    "INTERPRETERS",
    "CommandKey",
]

# Programs that run, later and outside this command, commands read from stdin or a file.
_SCHEDULERS = frozenset({"at", "batch", "crontab"})
SHELLS = frozenset(
    {"sh", "bash", "zsh", "dash", "ksh", "mksh", "ash", "fish", "csh", "tcsh", "yash", "rbash"}
)
INTERPRETERS = frozenset(
    {
        "python",
        "python2",
        "python3",
        "pypy",
        "pypy3",
        "perl",
        "ruby",
        "node",
        "nodejs",
        "deno",
        "bun",
        "php",
        "lua",
        "luajit",
        "rscript",
        "r",
        "julia",
        "tclsh",
        "wish",
        "expect",
        "osascript",
        "pwsh",
        "powershell",
        "irb",
        "jshell",
        "groovy",
        "scala",
    }
)
_INLINE_FLAGS: dict[str, tuple[str, ...]] = {
    # interpreter -> letters that, in a single-dash option cluster, take inline code
    "python": ("c",),
    "pypy": ("c",),
    "perl": ("e", "E"),
    "ruby": ("e",),
    "node": ("e", "p"),
    "bun": ("e", "p"),
    "php": ("r", "B", "R", "E"),
    "lua": ("e",),
    "luajit": ("e",),
    "rscript": ("e",),
    "r": ("e",),
    "julia": ("e", "E"),
    "expect": ("c",),
    "osascript": ("e",),
    "pwsh": ("c", "e", "C", "E"),
    "powershell": ("c", "e", "C", "E"),
    "groovy": ("e",),
    "scala": ("e",),
}
_INLINE_LONG = frozenset(
    {"--eval", "--print", "--command", "--expr", "-command", "-encodedcommand", "-c"}
)
_AWK_RUNS = re.compile(
    r"\bsystem\s*\(|\|\s*(getline|&)|\|&|\bgetline\b|\b(print|printf)\b[^;}]*[|>]"
    r"|@load|@include|\bENVIRON\b\s*\["
)
# Interpreter options that take a value (the value is not the script).
_INTERPRETER_VALUES: dict[str, frozenset[str]] = {
    "python": frozenset({"-m", "-W", "-X", "-Q", "--check-hash-based-pycs"}),
    "pypy": frozenset({"-m", "-W", "-X"}),
    "perl": frozenset({"-I", "-M", "-m", "-x", "-C", "-d", "-D"}),
    "ruby": frozenset({"-I", "-r", "-C", "-E", "-F", "-K", "-T", "--encoding"}),
    "node": frozenset(
        {"-r", "--require", "--import", "--loader", "--experimental-loader", "-C",
         "--conditions", "--input-type", "--env-file", "--title", "--inspect-port"}
    ),
    "bun": frozenset({"-r", "--preload", "--cwd", "--env-file", "--config"}),
    "php": frozenset({"-c", "-d", "-f", "-z", "-t"}),
    "lua": frozenset({"-l"}),
    "julia": frozenset({"-L", "--load", "-p", "-t", "--project"}),
}  # fmt: skip
_AWKS = frozenset({"awk", "gawk", "mawk", "nawk", "busybox-awk"})
_LOADERS = re.compile(
    r"(ld-linux[\w.-]*\.so[\d.]*|ld\.so[\d.]*|ld-musl-[\w.-]+\.so[\d.]*|ld64\.so[\d.]*)"
)
# Wrappers that run their argument as a command: name -> options that take a value.
_WRAPPERS: dict[str, frozenset[str]] = {
    "env": frozenset({"-u", "--unset", "-C", "--chdir", "-S", "--split-string", "-P"}),
    "sudo": frozenset(
        {"-u", "-g", "-h", "-p", "-C", "-U", "-r", "-t", "-D", "-R", "-T", "--user", "--group"}
    ),
    "doas": frozenset({"-u", "-C"}),
    "nohup": frozenset(),
    "exec": frozenset({"-a"}),
    "nice": frozenset({"-n", "--adjustment"}),
    "ionice": frozenset({"-c", "-n", "-p", "--class", "--classdata"}),
    "timeout": frozenset({"-s", "--signal", "-k", "--kill-after"}),
    "xargs": frozenset(
        {"-I", "-i", "-L", "-l", "-n", "-P", "-s", "-d", "-E", "-e", "-a", "--arg-file"}
    ),
    "command": frozenset(),
    "builtin": frozenset(),
    "time": frozenset({"-f", "-o", "--format", "--output"}),
    "stdbuf": frozenset({"-i", "-o", "-e"}),
    "setsid": frozenset(),
    "chroot": frozenset({"--userspec", "--groups"}),
    "strace": frozenset({"-e", "-o", "-p", "-s", "-u", "-E", "-P", "-I", "-b", "-X", "-a"}),
    "ltrace": frozenset({"-e", "-o", "-p", "-s", "-u", "-n", "-a"}),
    "watch": frozenset({"-n", "-d", "--interval", "-q"}),
    "unbuffer": frozenset(),
    "runuser": frozenset({"-u", "-g", "-G", "--user", "--group"}),
    "su": frozenset({"-s", "-g", "-G", "--shell", "--group"}),
    "coproc": frozenset(),
    "nsenter": frozenset({"-t", "--target", "-S", "-G"}),
    "unshare": frozenset({"--map-user", "--map-group", "--propagation", "--setgroups"}),
    "flock": frozenset({"-w", "--timeout", "-E", "--conflict-exit-code"}),
    "taskset": frozenset(),
    "chrt": frozenset(),
    "prlimit": frozenset({"-p", "--pid"}),
    "catchsegv": frozenset(),
    "valgrind": frozenset(),
    "firejail": frozenset(),
    "systemd-run": frozenset({"-u", "--unit", "-p", "--property", "-M", "--machine"}),
    "dbus-launch": frozenset(),
    "xvfb-run": frozenset({"-n", "-s", "-f", "-e", "-a"}),
    "faketime": frozenset({"-f"}),
    "fakeroot": frozenset(),
    "proot": frozenset({"-r", "-b", "-w"}),
    "busybox": frozenset(),
    "toybox": frozenset(),
    "pkexec": frozenset({"--user"}),
    "run0": frozenset({"-u", "--user", "-g", "--group", "-D", "--chdir", "--setenv"}),
    "setpriv": frozenset(),
    "chpst": frozenset({"-u", "-U", "-b", "-e", "-/", "-n", "-l", "-L", "-m", "-d", "-o", "-p"}),
    "torsocks": frozenset({"-a", "-P", "-u", "-p"}),
    "proxychains": frozenset({"-f"}),
    "proxychains4": frozenset({"-f"}),
    "sg": frozenset(),
    "nocache": frozenset(),
    "eatmydata": frozenset(),
    "doas-keepenv": frozenset(),
    "uvx": frozenset({"--with", "--python", "-p", "--from", "--index", "--index-url"}),
}
# Project runners: program -> (subcommands that run a command, their options taking a value).
_RUNNER_VALUES = frozenset(
    {"--with", "--python", "-p", "--package", "--extra", "--group", "--directory", "--project",
     "--env-file", "--index", "--index-url", "--from", "-n", "--name", "--prefix", "-e", "--env",
     "--cwd", "--filter", "-w", "--workspace", "-C", "--dir", "--with-requirements"}
)  # fmt: skip
_RUNNERS: dict[str, tuple[frozenset[str], frozenset[str]]] = {
    "uv": (frozenset({"run", "tool"}), _RUNNER_VALUES),
    "poetry": (frozenset({"run"}), _RUNNER_VALUES),
    "pipenv": (frozenset({"run"}), _RUNNER_VALUES),
    "pdm": (frozenset({"run"}), _RUNNER_VALUES),
    "hatch": (frozenset({"run"}), _RUNNER_VALUES),
    "rye": (frozenset({"run"}), _RUNNER_VALUES),
    "bundle": (frozenset({"exec"}), _RUNNER_VALUES),
    "pnpm": (frozenset({"exec", "dlx"}), _RUNNER_VALUES),
    "yarn": (frozenset({"exec", "dlx"}), _RUNNER_VALUES),
    "npm": (frozenset({"exec"}), _RUNNER_VALUES),
    "conda": (frozenset({"run"}), _RUNNER_VALUES),
    "mamba": (frozenset({"run"}), _RUNNER_VALUES),
    "pixi": (frozenset({"run", "exec"}), _RUNNER_VALUES),
    "direnv": (frozenset({"exec"}), frozenset()),
    "pipx": (frozenset({"run"}), _RUNNER_VALUES),
}
# Commands that take positional words before the command they run.
_LEADING_WORDS = {"chroot": 1, "taskset": 1, "chrt": 1, "flock": 1, "sg": 1}
# Variables that, set anywhere in the line, make a later command run something else.
_DANGEROUS_VARS = frozenset(
    {
        "PAGER", "MANPAGER", "SYSTEMD_PAGER", "EDITOR", "VISUAL", "BROWSER", "BASH_ENV", "ENV",
        "SHELLOPTS", "BASHOPTS", "PS4", "PROMPT_COMMAND", "PATH", "IFS", "HOME", "CDPATH",
        "XDG_CONFIG_HOME", "XDG_CONFIG_DIRS", "PYTHONPATH", "PYTHONSTARTUP", "PYTHONHOME",
        "PYTHONINSPECT", "PERL5LIB", "PERL5OPT", "PERLLIB", "RUBYOPT", "RUBYLIB", "NODE_OPTIONS",
        "NODE_PATH", "LESSOPEN", "LESSCLOSE", "LESSKEY", "SSH_ASKPASS", "SUDO_ASKPASS",
        "GCONV_PATH", "TAR_OPTIONS", "GREP_OPTIONS", "RIPGREP_CONFIG_PATH", "PIP_CONFIG_FILE",
        "CURL_HOME", "WGETRC", "SHELL", "MAKEFLAGS", "JAVA_TOOL_OPTIONS", "_JAVA_OPTIONS",
        "JDK_JAVA_OPTIONS", "DOTNET_STARTUP_HOOKS", "LUA_INIT", "TERMINFO", "INPUTRC",
        "HISTFILE", "RUSTC_WRAPPER", "CC", "CXX", "LD", "AR", "CMAKE_C_COMPILER_LAUNCHER",
        "OPENSSL_CONF",
        "ZDOTDIR",
        "KUBECONFIG",
        "GOFLAGS",
        "GOENV",
        "LESS",
        "MANOPT",
        "FPATH",
        "ANT_OPTS",
        "CLOUDSDK_CONFIG",
        "http_proxy",
        "https_proxy",
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "ALL_PROXY",
        "all_proxy",
        "ftp_proxy",
        "FTP_PROXY",
        "GLOBIGNORE",
        "BASH_XTRACEFD",
        "FIGNORE", "LOCPATH", "NLSPATH", "HOSTALIASES", "RESOLV_HOST_CONF",
    }
)  # fmt: skip
_DANGEROUS_PREFIXES = (
    "GIT_", "LD_", "DYLD_", "BASH_", "NPM_CONFIG_", "npm_config_", "PIP_", "CARGO_",
    "RUSTC_", "PYTHON", "LUA_INIT", "GEM_", "BUNDLE_", "PERL", "COMP_", "UV_", "POETRY_",
    "YARN_", "AWS_CONFIG", "AWS_SHARED", "DOCKER_", "CGO_", "GRADLE_", "MAVEN_", "SBT_",
)  # fmt: skip
# Option prefixes of otherwise allowed programs that run a program named in the option.
_RUNS_VIA_OPTION: dict[str, tuple[str, ...]] = {
    "rg": ("--pre", "--hostname-bin"),
    "grep": ("--pre",),
    "ugrep": ("--filter", "--pre"),
    "tar": (
        "--checkpoint-action", "--to-command", "--use-compress-program", "-I", "--info-script",
        "-F", "--new-volume-script", "--rsh-command", "--rmt-command", "--index-file",
    ),
    "zip": ("-TT", "--unzip-command"),
    "rsync": ("-e", "--rsh", "--rsync-path"),
    "ssh": ("-o", "-F", "-J", "-S", "-R", "-L", "-D", "-W", "-w", "-E", "-I", "-P"),
    "scp": ("-S", "-o", "-F", "-J"),
    "sftp": ("-S", "-o", "-F", "-J", "-D"),
    "less": ("+!", "-k", "--lesskey-file"),
    "man": ("-P", "--pager", "-H", "--html"),
    "vi": ("-c", "+", "--cmd", "-S"),
    "vim": ("-c", "+", "--cmd", "-S"),
    "nvim": ("-c", "+", "--cmd", "-S", "-l"),
    "ex": ("-c", "+", "--cmd", "-S"),
    "emacs": ("--eval", "-l", "--load", "-f", "--funcall", "--batch"),
    "sqlite3": ("-cmd", "-init"),
    "psql": ("-c", "--command", "-f"),
    "mysql": ("-e", "--execute"),
    "make": ("--eval", "-E", "SHELL="),
    "fd": ("-x", "--exec", "-X", "--exec-batch"),
    "parallel": ("",),
    "gdb": ("-ex", "-x", "--eval-command", "-batch"),
    "tmux": ("",),
    "screen": ("",),
    "script": ("-c", "--command"),
    "dpkg": ("--", "-i"),
    "npx": ("-c", "--call"),
    "npm": ("exec", "x"),
    "openssl": ("-engine",),
    "curl": ("-K", "--config", "--unix-socket", "--abstract-unix-socket"),
    "wget": ("--execute", "-e", "--config", "--use-askpass", "-i", "--input-file"),
    "aria2c": ("-i", "--input-file", "--on-download-complete", "--on-download-start"),
    "zathura": ("",),
    "socat": ("exec:", "system:", "unix", "abstract", "open:", "create:", "pipe:", "gopen:"),
    "nc": ("-e", "-c", "--exec", "--sh-exec", "--lua-exec", "-U", "--unixsock"),
    "ncat": ("-e", "-c", "--exec", "--sh-exec", "--lua-exec", "-U", "--unixsock"),
    "netcat": ("-e", "-c"),
}  # fmt: skip
_SHOPT_OPAQUE = frozenset(
    {"expand_aliases", "dotglob", "extglob", "nocaseglob", "extdebug", "globasciiranges",
     "cdable_vars", "execfail", "sourcepath", "globstar", "nocasematch", "failglob",
     "nullglob"}
)  # fmt: skip
# Programs whose targets (hosts, files) xargs would fill in from its input: not checkable.
_TAKES_TARGETS = frozenset(
    {"curl", "wget", "nc", "ncat", "netcat", "telnet", "ssh", "scp", "sftp", "rsync", "socat",
     "aria2c", "cat", "cp", "mv", "rm", "tee", "dd", "chmod", "chown", "ln", "tar", "zip"}
)  # fmt: skip
_NO_PATH_ARGS = frozenset(
    {"echo", "printf", "true", "false", ":", "test", "[", "sleep", "expr", "seq", "exit",
     "return", "let", "local", "export", "declare", "typeset", "readonly", "shift", "set",
     "unset", "wait", "kill", "break", "continue", "read"}
)  # fmt: skip
_SUBSTITUTIONS = frozenset({"command_substitution", "process_substitution"})
_SHELL_NAME = re.compile(
    r"(bash|sh|zsh|dash|ksh|mksh|oksh|loksh|pdksh|ash|yash|fish|csh|tcsh|rbash|posh)[\d.]*"
)
_QUOTED = frozenset({"raw_string", "string", "ansi_c_string", "word"})
_BACKTICKS = re.compile(r"`((?:\\.|[^`\\])*)`", re.S)
_REPARSED = frozenset({"expansion", "heredoc_body", "command_substitution"})
_CODE_MARK = re.compile(r"\$\(|`|\\x")  # quoted text that arithmetic could run as code
_ARITHMETIC = frozenset({"arithmetic_expansion", "c_style_for_statement", "test_command"})
_LOOPS = frozenset(
    {"for_statement", "c_style_for_statement", "while_statement", "function_definition"}
)

_COPROC = re.compile(
    r"(?:\bcoproc\s+(?:[A-Za-z_]\w*\s+)?|(?<![\w$])!\s+|\btime\s+(?:-p\s+)?)"
    r"(?=[{(]|\[\[|(?:if|for|while|until|case|select|function)(?:\s|$))"
)
_RESERVED = frozenset(
    {"{", "}", "then", "do", "done", "fi", "esac", "in", "elif", "else", "[[", "]]", "if",
     "for", "while", "until", "case", "select", "function", "coproc", "!", "time"}
)  # fmt: skip

MAX_LINE_CHARS = 65_536
MAX_COMMANDS = 512
MAX_DEPTH = 12  # nested shells (-c, eval'd text)
MAX_TREE_DEPTH = 200
MAX_CWDS = 8

CommandKey = tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...], tuple[str, ...]]


@dataclass(frozen=True)
class SimpleCommand:
    program: str  # basename, as the shell would look it up
    argv: tuple[str, ...]  # including argv[0] as written (quotes removed)
    via: tuple[str, ...] = ()  # wrappers it was found behind, e.g. ("env", "sudo")
    assignments: tuple[str, ...] = ()  # NAME=value words before it
    redirects: tuple[str, ...] = ()  # "> file", "2>&1", "<<< text"
    cwds: tuple[str, ...] = (".",)  # where it may run, relative to the line's cwd (cd tracking)
    home_paths: tuple[str, ...] = ()  # arguments computed only by $HOME (HOME_MARK for it)

    @property
    def key(self) -> CommandKey:
        """What an approval of this command covers: all of it, exactly."""
        return (self.assignments, self.argv, self.redirects, self.cwds)


@dataclass
class ParsedLine:
    commands: list[SimpleCommand] = field(default_factory=list[SimpleCommand])
    opaque_reasons: list[str] = field(default_factory=list[str])
    pipelines: list[list[SimpleCommand]] = field(default_factory=list[list[SimpleCommand]])
    redirect_targets: list[str] = field(default_factory=list[str])
    hosts: list[str] = field(default_factory=list[str])  # /dev/tcp/HOST/… targets
    statements: list[str] = field(default_factory=list[str])  # assignments, declarations
    pattern_programs: list[str] = field(default_factory=list[str])  # "/???/su?o": a glob runs
    parse_error: bool = False
    line: str = ""

    @property
    def opaque(self) -> bool:
        return bool(self.opaque_reasons)

    @property
    def programs(self) -> set[str]:
        found = {c.program for c in self.commands}
        for c in self.commands:
            found.update(c.via)
        return found

    @property
    def keys(self) -> frozenset[CommandKey]:
        """What approving this line approves: every simple command, and every assignment or
        declaration that is not part of one (``X=1; ls`` is not ``ls``)."""
        statements = {((f"statement:{text}",), (), (), ()) for text in self.statements}
        return frozenset({c.key for c in self.commands} | statements)


_LANGUAGE = Language(tree_sitter_bash.language())


_LOCAL = threading.local()


def _parser() -> Parser:
    """One parser per thread (a tree-sitter parser is not safe to share between threads)."""
    parser: Parser | None = getattr(_LOCAL, "parser", None)
    if parser is None:
        parser = _LOCAL.parser = Parser(_LANGUAGE)
    return parser


def parse_command_line(line: str) -> ParsedLine:
    """Every simple command ``line`` runs, and why it is opaque if it is.

    Cached: a line is parsed once however many times it is judged. The result is shared, so
    callers must not modify it."""
    return _parse_cached(line)


@lru_cache(maxsize=1024)
def _parse_cached(line: str) -> ParsedLine:
    analysis = _Analysis()
    analysis.result.line = line
    try:
        analysis.text(line, depth=0, via=(), piped=False)
    except (RecursionError, ValueError, UnicodeError, MemoryError) as exc:
        # whatever the analysis could not finish is opaque: it never makes a line look harmless
        analysis.opaque(f"the analysis failed ({type(exc).__name__}): cannot tell what this runs")
    result = analysis.result
    if len(result.commands) > MAX_COMMANDS:
        analysis.opaque(f"more than {MAX_COMMANDS} commands: too many to analyse")
    result.opaque_reasons = list(dict.fromkeys(result.opaque_reasons))
    return result


# ---------------------------------------------------------------------- words


# Stands for $HOME in a word's other reading (the policy puts its home there).
HOME_MARK = "\ue000"
_HOME_EXPANSIONS = frozenset({"$HOME", "${HOME}"})


@dataclass(frozen=True)
class _Word:
    value: str | None  # None: computed at run time
    pattern: bool = False  # unquoted glob or brace expansion
    home: str | None = None  # computed only by $HOME: the word with HOME_MARK for it


_ANSI = re.compile(
    r"\\(x[0-9a-fA-F]{1,2}|u[0-9a-fA-F]{1,4}|U[0-9a-fA-F]{1,8}|[0-7]{1,3}|c.|.)", re.S
)
_ANSI_SIMPLE = {"n": "\n", "t": "\t", "r": "\r", "a": "\a", "b": "\b", "f": "\f", "v": "\v",
                "e": "\x1b", "E": "\x1b", "\\": "\\", "'": "'", '"': '"', "?": "?"}  # fmt: skip


def _ansi_c(body: str) -> str:
    def one(match: re.Match[str]) -> str:
        esc = match.group(1)
        head = esc[0]
        if head in "xuU":
            return chr(min(int(esc[1:], 16), 0x10FFFF))
        if head in "01234567":
            return chr(int(esc, 8) & 0xFF)
        if head == "c":
            return chr(ord(esc[1]) & 0x1F)
        return _ANSI_SIMPLE.get(esc, "\\" + esc)

    # bash keeps a $'...' string as a C string: a NUL ends it ($'su\0ls' is "su")
    return _ANSI.sub(one, body).split("\x00", 1)[0]


_UNQUOTED_GLOB = re.compile(r"(?<!\\)[*?\[]|(?<!\\)\{[^}]*(,|\.\.)[^}]*\}|[@!+]\(")


_BACKSLASH = re.compile(r"\\(.)", re.S)
_STRING_ESCAPE = re.compile(r"\\([\\\"$`])")


def _unescape_word(raw: str) -> str:
    if "\\" not in raw:
        return raw
    return _BACKSLASH.sub(r"\1", raw.replace("\\\n", ""))


def _word(node: Node) -> _Word:
    kind = node.type
    text = _text(node)
    if kind in ("word", "number", "variable_name", "file_descriptor"):
        pattern = kind == "word" and bool(_UNQUOTED_GLOB.search(text))
        value = _unescape_word(text)
        if kind == "word" and text.startswith("~") and not text.startswith(("~/",)) and text != "~":
            head = text.split("/", 1)[0]
            if head in ("~+", "~-") or any(c in head for c in "\\'\"$"):
                return _Word(None)  # $PWD / $OLDPWD, or a quoted tilde: not followed
            try:
                expanded = os.path.expanduser(value)  # ~root/… is /root/…, as bash expands it
            except (ValueError, KeyError):  # a NUL or an odd name: not a path we can follow
                return _Word(None)
            return _Word(expanded, pattern)
        return _Word(value, pattern)
    if kind == "raw_string":
        return _Word(text[1:-1])
    if kind == "ansi_c_string":
        return _Word(_ansi_c(text[2:-1]))
    if kind in ("simple_expansion", "expansion") and text in _HOME_EXPANSIONS:
        return _Word(None, home=HOME_MARK)
    if kind in ("string", "translated_string"):
        parts: list[str] = []
        computed = False
        for child in node.named_children:
            if child.type in ("simple_expansion", "expansion") and _text(child) in _HOME_EXPANSIONS:
                parts.append(HOME_MARK)
                computed = True
                continue
            if child.type != "string_content":
                return _Word(None)
            parts.append(_STRING_ESCAPE.sub(r"\1", _text(child).replace("\\\n", "")))
        if computed:
            return _Word(None, home="".join(parts))
        return _Word("".join(parts))
    if kind == "concatenation":
        values: list[str] = []
        pattern = False
        homes = False
        for child in node.children:
            part = _word(child)
            if part.value is None and part.home is None:
                return _Word(None)
            homes = homes or part.value is None
            values.append(part.value if part.value is not None else part.home or "")
            pattern = pattern or part.pattern
        # the grammar splits "s{u,}do" into five words, none a pattern alone: bash expands it
        pattern = pattern or bool(_UNQUOTED_GLOB.search(text))
        if homes:
            return _Word(None, pattern, home="".join(values))
        return _Word("".join(values), pattern)
    if kind in ("$", '"'):  # stray tokens inside a concatenation ("$" before a quote)
        return _Word(text)
    return _Word(None)  # expansions, substitutions, arithmetic, brace expressions


def _text(node: Node) -> str:
    """The node's text from the *original* bytes (the parser saw a masked copy, see below)."""
    source: bytes = _LOCAL.sources[-1]
    return source[node.start_byte : node.end_byte].decode("utf-8", "surrogateescape")


# tree-sitter-bash 0.25 corrupts memory (a segfault, found by Hypothesis) on some non-ASCII
# input such as "a{" followed by a 4-byte character. Bash gives no byte >= 0x80 a syntactic
# meaning, so the parser is given a copy with each such byte replaced by "a": the same tree,
# the same byte offsets; every text is then read from the original bytes.
_MASK = bytes(range(128)) + b"a" * 128


# ---------------------------------------------------------------------- analysis


class _Analysis:
    def __init__(self) -> None:
        self.result = ParsedLine()
        self.cwds: tuple[str, ...] = (".",)
        self.literal_quotes_with_code = False
        self.has_arithmetic = False
        self.stdin_text: str | None = None  # the here-string/document of the current command
        self.computed_values = False  # a variable gets a value the text does not show
        self.inherited_stdin: str | None = None  # a here-document hung on a whole list
        self.pipe_text: str | None = None  # what the previous stage of a pipeline prints
        self.written: set[str] = set()  # files the line writes (relative to its cwd)
        self.links = False  # the line makes a symbolic or hard link

    def opaque(self, reason: str) -> None:
        self.result.opaque_reasons.append(reason)

    # -- a whole shell text (the line, or a string a nested shell runs)
    def text(self, source: str, *, depth: int, via: tuple[str, ...], piped: bool) -> None:
        if depth > MAX_DEPTH:
            self.opaque("shells nested too deep to analyse")
            return
        if len(source) > MAX_LINE_CHARS:
            self.opaque(f"longer than {MAX_LINE_CHARS} characters: too long to analyse")
            return
        # tree-sitter-bash reads "coproc { …; }", "! case …" or "time if …" as a command named
        # coproc/!/time: blank the prefix so the compound is parsed as what it is (coproc runs
        # it in the background, ! negates its status, time times it: none changes what runs).
        source = _COPROC.sub(lambda m: " " * len(m.group(0)), source)
        # tree-sitter-bash takes a backslash-newline for a space, bash joins the two lines:
        # "s\\<newline>udo" is sudo. Both readings are analysed; whatever either finds counts.
        variants = [source]
        if "\\\n" in source:
            variants.append(source.replace("\\\n", ""))
        for variant in variants:
            # tree-sitter-bash also swallows a newline into a word that starts with a
            # backslash ("ls\\n\\sudo" is one word to it, two commands to bash): a space
            # after the newline means the same to bash and ends the word for the grammar.
            self.tree(variant.replace("\n\\", "\n \\"), depth=depth, via=via)
        if self.has_arithmetic and (self.literal_quotes_with_code or self.computed_values):
            # bash evaluates array subscripts in arithmetic: x='a[$(id)]'; echo $((x)) runs id
            self.opaque("arithmetic evaluates a value that may hold a command substitution")

    def tree(self, source: str, *, depth: int, via: tuple[str, ...]) -> None:
        data = source.encode("utf-8", "surrogateescape")
        tree = _parser().parse(data.translate(_MASK) if not data.isascii() else data)
        root = tree.root_node
        if root.has_error:
            self.opaque("the line does not parse as bash")
            self.result.parse_error = True
        sources: list[bytes] = getattr(_LOCAL, "sources", None) or []
        _LOCAL.sources = sources
        sources.append(data)
        try:
            self.node(root, depth=depth, via=via, tree_depth=0, in_loop=False)
        finally:
            sources.pop()

    def node(self, node: Node, *, depth: int, via: tuple[str, ...], tree_depth: int,
             in_loop: bool) -> None:  # fmt: skip
        if not node.is_named:  # punctuation and keywords: leaves, nothing runs in them
            return
        if tree_depth > MAX_TREE_DEPTH:
            self.opaque("nested too deep to analyse")
            return
        if len(self.result.commands) > MAX_COMMANDS:
            return
        kind = node.type
        if kind == "pipeline":
            self.pipeline(node, depth=depth, via=via, tree_depth=tree_depth, in_loop=in_loop)
            return
        if kind in ("command", "redirected_statement"):
            self.statement(node, depth=depth, via=via, tree_depth=tree_depth, in_loop=in_loop,
                           piped=False)  # fmt: skip
            return
        if kind in ("variable_assignment", "variable_assignments"):
            self.assignment_names(node)
            self.result.statements.append(_text(node))
        elif kind in ("declaration_command", "unset_command"):
            self.declaration(node)
            self.result.statements.append(_text(node))
        elif kind == "for_statement":
            variable = node.child_by_field_name("variable")
            if variable is not None:
                self.check_variable(_text(variable))
            values = [
                c for i, c in enumerate(node.children) if node.field_name_for_child(i) == "value"
            ]
            if not values or any(_word(v).value is None for v in values):
                self.computed_values = True
        elif kind in _ARITHMETIC or (kind == "compound_statement" and _text(node)[:2] == "(("):
            self.has_arithmetic = True
        elif kind in _QUOTED and _CODE_MARK.search(_text(node)):
            self.literal_quotes_with_code = True
        elif kind in ("file_redirect", "herestring_redirect", "heredoc_redirect"):
            self.redirect(node)
        if kind in _REPARSED:
            self.reparse(node, kind, depth=depth, via=via)
        if node.child_count == 0:
            return
        inner_loop = in_loop or kind in _LOOPS
        for child in node.children:
            if child.is_named:
                self.node(child, depth=depth, via=via, tree_depth=tree_depth + 1,
                          in_loop=inner_loop)  # fmt: skip

    def reparse(self, node: Node, kind: str, *, depth: int, via: tuple[str, ...]) -> None:
        """Where tree-sitter-bash leaves substitutions unparsed, parse their text again:
        ``${x:-`cmd`}`` (a word in an expansion), the body of a ``<<-`` here-document, and
        backticks nested in backticks (``\\`cmd\\```, which bash unescapes and runs)."""
        text = _text(node)
        if "`" not in text and "$(" not in text:
            return
        if kind == "expansion":
            for child in node.named_children:
                if child.type == "word":
                    word = _text(child)
                    if "`" in word or "$(" in word:
                        self.text(": " + word, depth=depth + 1, via=via, piped=False)
        elif kind == "heredoc_body":
            start = node.prev_sibling
            while start is not None and start.type != "heredoc_start":
                start = start.prev_sibling
            if start is not None and any(c in _text(start) for c in "'\"\\"):
                return  # a quoted delimiter: the body is not expanded
            for span in _BACKTICKS.finditer(text):  # the grammar leaves `...` in bodies as text
                inner = re.sub(r"\\([\\`$])", r"\1", span.group(1))
                self.text(inner, depth=depth + 1, via=via, piped=False)
            if node.child_count == 0 and "$(" in text:  # a <<- body: parsed as a << body
                body = "\n".join(line.lstrip("\t") for line in text.split("\n"))
                marker = "ASTRID_HEREDOC_END"
                self.text(f": <<{marker}\n{body}\n{marker}", depth=depth + 1, via=via,
                          piped=False)  # fmt: skip
        elif kind == "command_substitution" and text.startswith("`") and "\\`" in text:
            inner = re.sub(r"\\([\\`$])", r"\1", text[1:-1])
            self.text(inner, depth=depth + 1, via=via, piped=False)

    def pipeline(self, node: Node, *, depth: int, via: tuple[str, ...], tree_depth: int,
                 in_loop: bool) -> None:  # fmt: skip
        start = len(self.result.commands)
        position = 0
        parent = node.parent
        if parent is not None and parent.type == "heredoc_redirect":
            # "cat <<EOF | bash": the grammar puts the pipeline inside the here-document;
            # its first stage reads what the command owning the here-document prints
            position = 1
            owner = parent.parent.child_by_field_name("body") if parent.parent else None
            body = next((c for c in parent.children if c.type == "heredoc_body"), None)
            named = owner.child_by_field_name("name") if owner is not None else None
            literal = owner is not None and owner.named_child_count == 1
            self.pipe_text = (
                _text(body)
                if body is not None and named is not None and _text(named) == "cat" and literal
                else None
            )
        for child in node.children:
            if child.type in ("|", "|&"):
                continue
            if child.type in ("command", "redirected_statement"):
                before = len(self.result.commands)
                self.statement(child, depth=depth, via=via, tree_depth=tree_depth + 1,
                               in_loop=in_loop, piped=position > 0)  # fmt: skip
                # what this stage writes, when the text shows it: a shell reading the pipe
                # next runs it ("echo sudo id | bash")
                made = self.result.commands[before:]
                self.pipe_text = _literal_output(made[-1]) if made else None
            else:
                if position > 0 and child.type not in ("negated_command",):
                    pass  # a compound reading a pipe: its commands are analysed as usual
                self.node(child, depth=depth, via=via, tree_depth=tree_depth + 1, in_loop=in_loop)
            position += 1
        found = self.result.commands[start:]
        if found:
            self.result.pipelines.append(list(found))

    def statement(self, node: Node, *, depth: int, via: tuple[str, ...], tree_depth: int,
                  in_loop: bool, piped: bool) -> None:  # fmt: skip
        body = node
        redirects: list[Node] = []
        if node.type == "redirected_statement":
            inner = node.child_by_field_name("body")
            redirects = [c for c in node.children if c.type.endswith("redirect")]
            if inner is None or inner.type != "command":
                feeds: str | None = None
                for redirect in redirects:
                    shown = self.redirect(redirect)
                    if redirect.type in ("heredoc_redirect", "herestring_redirect"):
                        feeds = shown[3:]
                    for child in redirect.children:
                        self.node(child, depth=depth, via=via, tree_depth=tree_depth + 1,
                                  in_loop=in_loop)  # fmt: skip
                if inner is not None:
                    # the grammar hangs "x && bash <<EOF" 's here-document on the whole list;
                    # bash gives it to the last command: any command in it may read it
                    outer, self.inherited_stdin = self.inherited_stdin, feeds
                    try:
                        self.node(inner, depth=depth, via=via, tree_depth=tree_depth + 1,
                                  in_loop=in_loop)  # fmt: skip
                    finally:
                        self.inherited_stdin = outer
                return
            body = inner
        assignments: list[str] = []
        words: list[_Word] = []
        children = body.children  # each access builds new node objects: read once
        for child in children:
            child_type = child.type
            if child_type in ("command_name", "word") and "\n" in _text(child):
                # a newline inside an unquoted word is the grammar gone wrong, not bash
                self.opaque("the line does not parse as bash (a newline inside a word)")
                self.result.parse_error = True
            if child_type == "variable_assignment":
                assignments.append(self.assignment_names(child))
            elif child_type == "command_name":
                named = child.named_children
                words.append(_word(named[0]) if named else _Word(None))
            elif child_type.endswith("redirect"):
                redirects.append(child)
            elif child.is_named and child_type != "comment":
                words.append(_word(child))
        # Everything nested (substitutions in words, here-document bodies) runs too.
        for child in children:
            if child.child_count == 0:
                if child.is_named:  # a leaf word: only the quoted-code check applies
                    self.node(child, depth=depth, via=via, tree_depth=tree_depth + 1,
                              in_loop=in_loop)  # fmt: skip
                continue
            for part in child.children if child.type.endswith("redirect") else (child,):
                self.node(part, depth=depth, via=via, tree_depth=tree_depth + 1, in_loop=in_loop)
        feeds_stdin = False
        rendered: list[str] = []
        self.stdin_text = None
        for redirect in redirects:
            rendered.append(self.redirect(redirect))
            if redirect.type in ("heredoc_redirect", "herestring_redirect") or (
                _redirect_op(redirect) in ("<", "<>")
            ):
                feeds_stdin = True
            if redirect.type in ("heredoc_redirect", "herestring_redirect"):
                self.stdin_text = rendered[-1][3:]
            if redirect.parent is not body:
                for child in redirect.children:
                    self.node(child, depth=depth, via=via, tree_depth=tree_depth + 1,
                              in_loop=in_loop)  # fmt: skip
        if self.stdin_text is None and self.inherited_stdin is not None:
            self.stdin_text = self.inherited_stdin
            feeds_stdin = True
        if not words:
            return
        self.simple(
            words,
            depth=depth,
            via=via,
            assignments=tuple(assignments),
            redirects=tuple(rendered),
            stdin=piped or feeds_stdin,
            in_loop=in_loop,
        )

    # -- assignments and redirections
    def assignment_names(self, node: Node) -> str:
        name_node = node.child_by_field_name("name")
        name = _text(name_node) if name_node is not None else ""
        if node.type == "variable_assignments":
            for child in node.named_children:
                self.assignment_names(child)
            return _text(node)
        self.check_variable(name.split("[", 1)[0])
        if "[" in name:
            self.has_arithmetic = True
        value_node = node.child_by_field_name("value")
        value = _word(value_node).value if value_node is not None else ""
        if value is None:
            self.computed_values = True
        return f"{name}={value if value is not None else '<computed>'}"

    def check_variable(self, name: str) -> None:
        if name in _DANGEROUS_VARS or name.startswith(_DANGEROUS_PREFIXES):
            self.opaque(f"sets {name}, which changes what a later command runs or reaches")

    def declaration(self, node: Node) -> None:
        for child in node.named_children:
            if child.type == "variable_name":
                self.check_variable(_text(child))
            elif child.type == "word":
                value = _word(child).value or ""
                if value in ("-f", "-F") or (value.startswith("-") and "i" in value):
                    self.has_arithmetic = True
                if value.startswith("-") and "n" in value:
                    self.opaque("a name reference (declare -n) can assign any variable")

    def redirect(self, node: Node) -> str:
        op = _redirect_op(node)
        if node.type == "herestring_redirect":
            target = next((c for c in node.named_children), None)
            value = _word(target).value if target is not None else ""
            return f"<<< {value if value is not None else '<computed>'}"
        if node.type == "heredoc_redirect":
            body = next((c for c in node.children if c.type == "heredoc_body"), None)
            return f"<< {_text(body) if body is not None else ''}"
        destination = node.child_by_field_name("destination")
        if destination is None:
            return op
        word = _word(destination)
        if (
            op.endswith("&")
            and word.value is not None
            and (word.value.isdigit() or word.value == "-")
        ):
            return f"{op}{word.value}"
        if word.value is None:
            self.opaque("a redirection target is computed at run time: cannot tell which file")
            if word.home is not None:  # $HOME/...: still checked as a path
                self.redirect_target(word.home)
            return f"{op} <computed>"
        if word.pattern:
            self.opaque("a redirection target is a pattern: cannot tell which file")
        self.redirect_target(word.value)
        if ">" in op:
            self.wrote(word.value)
        return f"{op} {word.value}"

    def redirect_target(self, target: str) -> None:
        norm = os.path.normpath(target) if target else target
        if norm.startswith(("/dev/tcp/", "/dev/udp/")) or re.match(r"^/+dev/+(tcp|udp)/", target):
            parts = [p for p in norm.split("/") if p]
            if len(parts) >= 3:
                self.result.hosts.append(parts[2])
            self.opaque("redirection to /dev/tcp or /dev/udp opens a network connection")
        for cwd in self.cwds:
            joined = target if target.startswith(("/", "~")) else os.path.join(cwd, target)
            self.result.redirect_targets.append(os.path.normpath(joined) if cwd != "." else target)

    def wrote(self, target: str) -> None:
        """The line writes ``target``: running it later in the same line runs text the
        decision never saw (``echo 'sudo id' > x; bash x``)."""
        for cwd in self.cwds:
            self.written.add(os.path.normpath(os.path.join(cwd, target)))

    def runs_written(self, words: tuple[str, ...]) -> bool:
        return any(
            os.path.normpath(os.path.join(cwd, word)) in self.written
            for word in words
            if word and not word.startswith("-")
            for cwd in self.cwds
        )

    # -- one simple command (after its words are known)
    def simple(
        self,
        words: list[_Word],
        *,
        depth: int,
        via: tuple[str, ...],
        assignments: tuple[str, ...] = (),
        redirects: tuple[str, ...] = (),
        stdin: bool = False,
        in_loop: bool = False,
    ) -> None:
        first = words[0]
        if first.value is None:
            self.opaque("the program name is computed at run time (a variable or substitution)")
            return
        if first.pattern:
            self.opaque(f"the program name {first.value!r} is a pattern")
            self.result.pattern_programs.append(first.value.rsplit("/", 1)[-1] or first.value)
            return
        if not first.value:
            self.opaque("the program name is empty")
            return
        if first.value in _RESERVED:
            # a misparse: what follows the keyword is still what would run
            self.opaque(f"the line does not parse as bash ({first.value!r} as a command)")
            self.result.parse_error = True
            if len(words) > 1:
                self.simple(words[1:], depth=depth, via=via, stdin=stdin, in_loop=in_loop)
            return
        argv = tuple(w.value if w.value is not None else "<computed>" for w in words)
        program = first.value.rsplit("/", 1)[-1] or first.value
        homes = tuple(w.home for w in words[1:] if w.value is None and w.home is not None)
        command = SimpleCommand(program, argv, via, assignments, redirects, self.cwds, homes)
        if self.written:
            runner = program in SHELLS or _family(program) in INTERPRETERS or program in _WRAPPERS
            if self.runs_written(argv if runner else argv[:1]):
                self.opaque(f"{program} runs a file this line writes: its text is not in the line")
        if program == "ln" or (
            program == "cp" and any(a in ("-s", "-l", "--symbolic-link", "--link") for a in argv)
        ):
            self.links = True
        if self.links and self.result.commands:  # (this command is not in the list yet)
            self.opaque("the line makes a link: later paths in it may lead anywhere")
        if program in ("tee", "cp", "mv", "install", "ln", "dd", "curl", "wget"):
            for value in argv[1:]:  # what they may write (over-approximated: any word)
                self.wrote(value)
        self.result.commands.append(command)
        if len(self.result.commands) > MAX_COMMANDS:
            return
        rest = words[1:]
        if any(w.value is None for w in rest) and program not in _NO_PATH_ARGS:
            self.opaque(
                f"an argument of {program} is computed at run time: "
                "cannot tell which paths it names"
            )
        self.behaviour(program, rest, depth=depth, via=via, stdin=stdin, in_loop=in_loop)

    def behaviour(self, program: str, rest: list[_Word], *, depth: int, via: tuple[str, ...],
                  stdin: bool, in_loop: bool) -> None:  # fmt: skip
        args = [w.value or "" for w in rest]
        base = _family(program)
        if program in ("eval",):
            self.opaque("eval runs text built at run time")
            if rest and all(w.value is not None for w in rest):  # what it would run, literally
                self.text(" ".join(args), depth=depth + 1, via=(*via, "eval"), piped=False)
            return
        if program in ("source", "."):
            self.opaque(f"{program} runs a script file in this shell")
            return
        if program in ("cd", "pushd", "popd"):
            self.change_directory(program, rest, in_loop)
            return
        if program == "alias" and any("=" in a for a in args):
            self.opaque("alias defines a command from text")
        if program == "shopt" and any(a in _SHOPT_OPAQUE for a in args):
            self.opaque("shopt changes what names and patterns mean (aliases, dotglob, extglob)")
        if program in ("local", "declare", "typeset") and any(
            a.startswith("-") and "n" in a for a in args
        ):
            self.opaque("a name reference (declare -n) can assign any variable")
        if program in ("enable", "hash") and any(a.startswith(("-f", "-p")) for a in args):
            self.opaque(f"{program} {' '.join(args[:1])} makes a name run another program")
        if program in ("mapfile", "readarray", "complete", "compgen", "bind") and any(
            a.startswith(("-C", "-x")) for a in args
        ):
            self.opaque(f"{program} runs a callback command")
        if program in ("read", "mapfile", "readarray", "getopts") or (
            program == "printf" and "-v" in args
        ):
            self.computed_values = True
        if program in ("read", "printf", "getopts", "mapfile", "readarray", "export", "declare",
                       "local", "readonly", "typeset"):  # fmt: skip
            for arg in args:
                self.check_variable(arg.split("=", 1)[0])
        if program == "trap":
            positional = [a for a in args if not a.startswith("-")]
            if positional:
                self.text(positional[0], depth=depth + 1, via=(*via, "trap"), piped=False)
            return
        if program in SHELLS or _SHELL_NAME.fullmatch(program):
            self.shell(program, rest, depth=depth, via=via, stdin=stdin)
            return
        if base in INTERPRETERS:
            self.interpreter(program, base, args, stdin=stdin)
            return
        if base in _AWKS:
            self.awk(args)
            return
        if program in ("sed", "gsed"):
            self.sed(args)
            return
        if _LOADERS.fullmatch(program):
            self.loader(args, depth=depth, via=(*via, program))
            return
        if program in _SCHEDULERS:  # what they run is in their input or a file, and runs later
            self.opaque(f"{program} schedules commands that are not in this line")
            return
        self.option_runs(program, args)
        if program == "find":
            self.find_exec(rest, depth=depth, via=(*via, program))
            return
        if program == "ssh":
            self.ssh(rest, depth=depth, via=(*via, program))
            return
        if program == "watch":
            inner = _after_options(rest, _WRAPPERS["watch"], program)
            if any(w.value == "-x" or w.value == "--exec" for w in rest):
                if inner:
                    self.simple(inner, depth=depth, via=(*via, program))
            elif inner:
                self.joined_text(inner, depth=depth, via=(*via, program))
            return
        if program in ("su", "runuser", "sg"):
            command = _option_value(rest, ("-c", "--command", "--session-command"))
            if command is not None:
                if command.value is None:
                    self.opaque(f"{program} -c runs computed text")
                else:
                    self.text(command.value, depth=depth + 1, via=(*via, program), piped=False)
                return
        if program == "flock" and any(w.value in ("-c", "--command") for w in rest):
            command = _option_value(rest, ("-c", "--command"))
            if command is not None and command.value is not None:
                self.text(command.value, depth=depth + 1, via=(*via, program), piped=False)
            else:
                self.opaque("flock -c runs computed text")
            return
        if program == "env":
            self.env(rest, depth=depth, via=via)
            return
        if program == "command" and any(w.value in ("-v", "-V") for w in rest):
            return  # only looks the name up
        if program in ("busybox", "toybox"):
            start = next(
                (i for i, w in enumerate(rest) if not (w.value or "").startswith("-")), len(rest)
            )
            inner = rest[start:]
            if inner:
                self.simple(inner, depth=depth, via=(*via, program), stdin=stdin)
            elif stdin:
                self.opaque(f"{program} reads commands from its input")
            return
        runner = _RUNNERS.get(program)
        if runner is not None and args and args[0] in runner[0]:
            inner = _after_options(rest[1:], runner[1], program)
            if inner:
                self.simple(inner, depth=depth, via=(*via, program), stdin=stdin)
            return
        if program in ("nix-shell", "nix") and any(a in ("--run", "--command", "-c") for a in args):
            code = _option_value(rest, ("--run", "--command", "-c"))
            if code is None or code.value is None:
                self.opaque(f"{program} runs computed text")
            else:
                self.text(code.value, depth=depth + 1, via=(*via, program), piped=False)
            return
        options = _WRAPPERS.get(program)
        if options is not None:
            inner = _after_options(rest, options, program)
            skip = _LEADING_WORDS.get(program, 0)
            inner = inner[skip:]
            if not inner:  # xargs alone runs echo; the others alone run nothing
                return
            if program == "xargs":
                name = inner[0].value
                replace = _option_value(rest, ("-I", "--replace"))
                token = replace.value if replace is not None and replace.value else "{}"
                if (
                    name is None
                    or name in _WRAPPERS
                    or name in SHELLS
                    or _family(name) in INTERPRETERS
                    or name in _TAKES_TARGETS
                    or token in name
                ):
                    self.opaque("xargs completes this command from its input")
            self.simple(inner, depth=depth, via=(*via, program), stdin=stdin or program == "xargs")

    def env(self, rest: list[_Word], *, depth: int, via: tuple[str, ...]) -> None:
        i = 0
        words = list(rest)
        while i < len(words):
            word = words[i]
            value = word.value
            if value is None:
                self.opaque("env runs a computed command")
                return
            if value == "--":
                i += 1
                break
            split_value: str | None = None
            if value in ("-S", "--split-string") and i + 1 < len(words):
                split_value = words[i + 1].value
                if split_value is None:
                    self.opaque("env -S splits computed text")
                    return
                i += 2
            elif value.startswith("--split-string="):
                split_value = value.split("=", 1)[1]
                i += 1
            elif value.startswith("-S") and len(value) > 2:
                split_value = value[2:]
                i += 1
            elif value.startswith("-") and not value.startswith("--") and "S" in value[1:]:
                self.opaque("env -S in an option cluster")
                return
            if split_value is not None:
                if "$" in split_value or "\\c" in split_value:
                    self.opaque("env -S expands variables")
                    return
                try:
                    split = shlex.split(split_value)
                except ValueError:
                    self.opaque("env -S string cannot be split")
                    return
                words = [*(_Word(s) for s in split), *words[i:]]
                i = 0
                continue
            if value in ("-C", "--chdir") and i + 1 < len(words):
                target = words[i + 1].value
                if target is None:
                    self.opaque("env -C changes to a computed directory")
                    return
                self.cwds = _join_cwds(self.cwds, target)
                i += 2
                continue
            if value in _WRAPPERS["env"]:
                i += 2
                continue
            if value.startswith("-"):
                i += 1
                continue
            if "=" in value and value.split("=", 1)[0].isidentifier():
                self.check_variable(value.split("=", 1)[0])
                i += 1
                continue
            break
        inner = words[i:]
        if inner:
            self.simple(inner, depth=depth, via=(*via, "env"))

    def joined_text(self, words: list[_Word], *, depth: int, via: tuple[str, ...]) -> None:
        if any(w.value is None for w in words):
            self.opaque("runs computed text as a shell command")
            return
        self.text(" ".join(w.value or "" for w in words), depth=depth + 1, via=via, piped=False)

    def shell(self, program: str, rest: list[_Word], *, depth: int, via: tuple[str, ...],
              stdin: bool) -> None:  # fmt: skip
        i = 0
        reads_stdin = True
        while i < len(rest):
            value = rest[i].value
            if value is None:
                self.opaque(f"{program} is given a computed argument")
                return
            if value in ("-o", "-O", "+o", "+O", "--rcfile", "--init-file"):
                if value in ("--rcfile", "--init-file"):
                    self.opaque(f"{program} {value} runs a startup file")
                i += 2
                continue
            if value == "-c" or (
                value.startswith("-") and not value.startswith("--") and "c" in value[1:]
            ):
                if i + 1 >= len(rest):
                    self.opaque(f"{program} -c without a command")
                    return
                code = rest[i + 1].value
                if code is None:
                    self.opaque(f"{program} -c runs computed text")
                    return
                self.text(code, depth=depth + 1, via=(*via, program), piped=False)
                return
            if value in ("-s", "-", "-i") or (
                value.startswith("-") and not value.startswith("--") and "s" in value[1:]
            ):
                break
            if value == "--":
                reads_stdin = i + 1 >= len(rest)
                break
            if value.startswith("-") or value.startswith("+"):
                i += 1
                continue
            reads_stdin = False  # a script file: it runs like any program
            break
        if reads_stdin:
            why = "a pipe or redirected input" if stdin else "its input"
            self.opaque(f"{program} reads commands from {why}")
            text, self.stdin_text = self.stdin_text, None
            if text is None and stdin:
                text, self.pipe_text = self.pipe_text, None
            if text:  # still find what it would run: a blocked command in it is denied
                self.text(text, depth=depth + 1, via=(*via, program), piped=False)

    def interpreter(self, program: str, base: str, args: list[str], *, stdin: bool) -> None:
        """Inline code anywhere before the script makes it opaque; so does no script at all.

        Options that take a value are skipped with their value (``python3 -W ignore -c …``);
        an unknown word is taken for the script only when it looks like a file, otherwise the
        scan goes on (it may be an option's value)."""
        letters = _INLINE_FLAGS.get(base, ())
        if base == "deno" and args[:1] == ["eval"]:
            self.opaque("deno eval runs inline code")
            return
        takes_value = _INTERPRETER_VALUES.get(base, frozenset())
        script = False
        i = 0
        while i < len(args):
            arg = args[i]
            if (
                arg in _INLINE_LONG
                or arg.lower() in _INLINE_LONG
                or arg.startswith(("--eval=", "--print=", "--command="))
            ):
                self.opaque(f"{program} runs inline code")
                return
            if arg in ("-", "--"):
                script = arg == "--" and i + 1 < len(args) and args[i + 1] != "-"
                break
            if arg in takes_value:
                if base == "python" and arg == "-m":
                    script = True
                    break
                i += 2
                continue
            if arg.startswith("-") and not arg.startswith("--"):
                if any(letter in arg[1:] for letter in letters):
                    self.opaque(f"{program} runs inline code")
                    return
                i += 1
                continue
            if arg.startswith("--"):
                i += 1
                continue
            script = True
            if "/" in arg or "." in arg:
                break  # a script file: what follows are its own arguments
            i += 1
        if not script:
            why = "a pipe or redirected input" if stdin else "its input"
            self.opaque(f"{program} reads code from {why}")

    def awk(self, args: list[str]) -> None:
        program_text: str | None = None
        i = 0
        while i < len(args):
            arg = args[i]
            if arg in ("-l", "--load", "-E", "--exec", "-i", "--include") or arg.startswith(
                ("--load=", "--exec=", "--include=")
            ):
                self.opaque("awk loads code")
                return
            if arg in ("-f", "--file") or arg.startswith("--file="):
                return  # a program file: like any script
            if arg in ("-e", "--source") and i + 1 < len(args):
                program_text = args[i + 1]
                break
            if arg.startswith("--source="):
                program_text = arg.split("=", 1)[1]
                break
            if arg in ("-v", "-F", "--assign", "--field-separator"):
                i += 2
                continue
            if arg.startswith("-"):
                i += 1
                continue
            program_text = arg
            break
        if program_text is None:
            return
        if _AWK_RUNS.search(program_text):
            self.opaque("the awk program runs commands or writes files")

    def sed(self, args: list[str]) -> None:
        scripts: list[str] = []
        i = 0
        saw_script = False
        while i < len(args):
            arg = args[i]
            if arg in ("-e", "--expression") and i + 1 < len(args):
                scripts.append(args[i + 1])
                saw_script = True
                i += 2
                continue
            if arg.startswith("--expression="):
                scripts.append(arg.split("=", 1)[1])
                saw_script = True
            elif arg in ("-f", "--file"):
                return
            elif arg.startswith("-") and arg not in ("-",):
                pass
            elif not saw_script:
                scripts.append(arg)
                saw_script = True
            i += 1
        for script in scripts:
            if _sed_runs(script):
                self.opaque("the sed script runs commands or reads/writes files (e/w/r)")
                return

    def loader(self, args: list[str], *, depth: int, via: tuple[str, ...]) -> None:
        i = 0
        while i < len(args):
            arg = args[i]
            if arg in ("--library-path", "--preload", "--argv0", "--audit", "--inhibit-rpath"):
                i += 2
                continue
            if arg.startswith("--"):
                i += 1
                continue
            self.simple([_Word(a) for a in args[i:]], depth=depth, via=via)
            return
        self.opaque("the dynamic loader is run without a program")

    def option_runs(self, program: str, args: list[str]) -> None:
        prefixes = _RUNS_VIA_OPTION.get(program)
        if program == "git":
            self.git(args)
            return
        if not prefixes:
            return
        for arg in args:
            for prefix in prefixes:
                if _option_matches(arg.lower() if program == "socat" else arg, prefix):
                    self.opaque(f"{program} {prefix or arg} can make it run another program")
                    return

    def git(self, args: list[str]) -> None:
        """git runs other programs through configuration and a few options: global ``-c``,
        ``--config-env``, ``--exec-path`` (before the subcommand), ``config`` writes, and the
        options of the subcommands that take a program."""
        i = 0
        while i < len(args) and args[i].startswith("-"):
            arg = args[i]
            if any(_option_matches(arg, p) for p in ("-c", "--config-env", "--exec-path")):
                self.opaque(f"git {arg.split('=', 1)[0]} can make it run another program")
                return
            i += 2 if arg in ("-C", "--git-dir", "--work-tree", "--namespace") else 1
        sub = args[i] if i < len(args) else ""
        rest = args[i + 1 :]
        writes_config = sub == "config" and not any(
            a in ("--get", "--list", "-l", "--get-all", "--get-regexp", "--show-origin")
            for a in rest
        )
        runs = {
            "clone": ("--upload-pack", "-u", "--template", "-c", "--config"),
            "fetch": ("--upload-pack",),
            "pull": ("--upload-pack",),
            "ls-remote": ("--upload-pack",),
            "push": ("--receive-pack", "--exec"),
            "archive": ("--exec",),
            "rebase": ("--exec", "-x"),
            "difftool": ("",),
            "mergetool": ("",),
            "filter-branch": ("",),
            "bisect": ("run",),
            "submodule": ("foreach",),
            "diff": ("--ext-diff",),
            "log": ("--ext-diff",),
            "show": ("--ext-diff",),
            "grep": ("-O", "--open-files-in-pager"),
            "send-email": ("",),
            "daemon": ("",),
            "instaweb": ("",),
            "credential": ("",),
        }.get(sub, ())
        if writes_config or any(_option_matches(a, p) for a in rest or [""] for p in runs):
            self.opaque(f"git {sub} can make it run a configured or given program")

    def find_exec(self, rest: list[_Word], *, depth: int, via: tuple[str, ...]) -> None:
        i = 0
        while i < len(rest):
            value = rest[i].value
            if value in ("-exec", "-execdir", "-ok", "-okdir"):
                j = i + 1
                while j < len(rest) and rest[j].value not in (";", "+"):
                    j += 1
                inner = rest[i + 1 : j]
                if not inner:
                    self.opaque("find -exec without a command")
                elif inner[0].value is not None and "{}" in inner[0].value:
                    self.opaque("find -exec runs the found files themselves")
                else:
                    self.simple(inner, depth=depth, via=via)
                i = j + 1
                continue
            if value in ("-fprint", "-fprintf", "-fls", "-delete"):
                pass
            i += 1

    def ssh(self, rest: list[_Word], *, depth: int, via: tuple[str, ...]) -> None:
        takes_value = set("BbcDEeFIiJLlmOoPpQRSWw")
        i = 0
        while i < len(rest):
            value = rest[i].value or ""
            if value.startswith("-") and len(value) > 1:
                i += 2 if value[-1] in takes_value and len(value) == 2 else 1
                continue
            break
        remote = rest[i + 1 :]
        if remote:
            self.joined_text(remote, depth=depth, via=via)

    def change_directory(self, program: str, rest: list[_Word], in_loop: bool) -> None:
        if program != "cd":
            self.opaque(f"{program} changes the directory in a way the analysis does not follow")
            return
        targets = [w for w in rest if not (w.value or "").startswith("-") or w.value == "-"]
        if in_loop:
            self.opaque("cd inside a loop or function: cannot tell the directory")
            return
        if not targets:
            self.cwds = _join_cwds(self.cwds, "~")
            return
        target = targets[0]
        if target.value is None or target.value == "-" or target.pattern:
            self.opaque("cd to a computed directory: cannot tell which paths later commands use")
            return
        self.cwds = _join_cwds(self.cwds, target.value)
        if len(self.cwds) > MAX_CWDS:
            self.opaque("too many directory changes to follow")


def _literal_output(command: SimpleCommand) -> str | None:
    """What a command prints when the text shows it: ``echo``/``printf`` words, ``cat`` of a
    here-document or here-string. None otherwise."""
    if "<computed>" in command.argv:
        return None
    if command.program in ("echo", "printf"):
        words = [w for w in command.argv[1:] if not (w.startswith("-") and len(w) <= 3)]
        return " ".join(words).replace("\\n", "\n")
    if command.program == "cat" and len(command.argv) == 1:
        for redirect in command.redirects:
            if redirect.startswith(("<< ", "<<< ")):
                return redirect.split(" ", 1)[1]
    return None


def _option_matches(arg: str, prefix: str) -> bool:
    """``arg`` is the option ``prefix`` (or carries it): ``-oProxyCommand=x`` and ``-avze`` carry
    ``-o`` and ``-e``; ``--pre=x`` carries ``--pre``; a non-option prefix (``exec:``) starts it."""
    if prefix == "" or arg == prefix:
        return True
    if not prefix.startswith("-") or prefix.endswith(("=", ":")) or prefix[0] == "+":
        return arg.startswith(prefix)
    if prefix.startswith("--"):
        return arg.startswith(prefix + "=") or (len(prefix) > 2 and arg.startswith(prefix))
    if len(prefix) == 2 and arg.startswith("-") and not arg.startswith("--"):
        return arg.startswith(prefix) or arg.endswith(prefix[1])  # attached value, or cluster
    return arg.startswith(prefix)


def _join_cwds(cwds: tuple[str, ...], target: str) -> tuple[str, ...]:
    """The directories a later command may run in: a ``cd`` may fail (``cd x; cat y`` then
    reads ``y`` where it started), so the old ones stay possible too."""
    new = [
        target if target.startswith(("/", "~")) else os.path.normpath(os.path.join(cwd, target))
        for cwd in cwds
    ]
    return tuple(dict.fromkeys([*cwds, *new]))


def _family(program: str) -> str:
    """``python3.12`` -> ``python``, ``nodejs`` -> ``node``: the interpreter it is."""
    name = program.lower()
    match = re.fullmatch(r"(python|pypy|perl|ruby|php|lua|node|tclsh|wish)[\d.]*(-[\w.]+)?", name)
    if match:
        return match.group(1)
    if name == "nodejs":
        return "node"
    if name in ("mawk", "gawk", "nawk", "awk"):
        return name
    return name


def _redirect_op(node: Node) -> str:
    for child in node.children:
        if not child.is_named:
            return child.type
    return ""


def _option_value(words: list[_Word], names: tuple[str, ...]) -> _Word | None:
    for index, word in enumerate(words):
        value = word.value or ""
        if value in names and index + 1 < len(words):
            return words[index + 1]
        for name in names:
            if name.startswith("--") and value.startswith(name + "="):
                return _Word(value.split("=", 1)[1])
    return None


def _after_options(args: list[_Word], takes_value: frozenset[str], program: str) -> list[_Word]:
    i = 0
    while i < len(args):
        arg = args[i].value
        if arg is None:
            return args[i:]
        if arg == "--":
            return args[i + 1 :]
        if program == "timeout" and not arg.startswith("-") and _looks_like_duration(arg):
            return args[i + 1 :]
        if program == "stdbuf" and re.fullmatch(r"-[ioe].+", arg):
            i += 1
            continue
        if arg.startswith("-") and len(arg) > 1:
            i += 2 if arg in takes_value else 1
            continue
        if program in ("nice",) and arg.lstrip("+-").isdigit():
            i += 1
            continue
        return args[i:]
    return []


def _looks_like_duration(text: str) -> bool:
    return text.rstrip("smhd").replace(".", "", 1).isdigit()


_SED_S = re.compile(r"s(.)(?:\\.|(?!\1).)*\1(?:\\.|(?!\1).)*\1([gpiImMe0-9w]*)", re.S)


def _sed_runs(script: str) -> bool:
    """True if a sed script may execute (``e``, ``s///e``), write files (``w``, ``W``) or read
    files the policy cannot see (``r``, ``R``)."""
    for match in _SED_S.finditer(script):
        if "e" in match.group(2) or "w" in match.group(2):
            return True
    stripped = _SED_S.sub("", script)
    stripped = re.sub(r"/(?:\\.|[^/])*/", "", stripped)  # addresses
    return bool(re.search(r"(^|[;\n{}!\s\d$,])\s*[ewWrR](\s|$|;|})", stripped))
