"""The built-in tools against their spec, called directly: ``action()`` then ``run()``.

Each test builds a real ToolContext on a temporary workspace. The agent loop puts the
SecurityInterceptor between the two calls; here we pass the tool's own action through, which
is what the interceptor hands back when it allows (with the same resolved path).
"""

from __future__ import annotations

import os
import stat
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import anyio
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from astrid_core import (
    AstridTimeoutError,
    BadInputError,
    DirectoryList,
    FileDelete,
    FileRead,
    FileWrite,
    JsonObject,
    NotFoundError,
    SecurityDenied,
    SessionId,
    ShellCommand,
)
from astrid_runtime.tools import (
    MAX_OUTPUT_CHARS,
    Bash,
    DeleteFile,
    EditFile,
    Glob,
    Grep,
    ListDirectory,
    ReadFile,
    Tool,
    ToolContext,
    WriteFile,
    cap_output,
)
from astrid_runtime.tools._bash import bash_sandbox_report
from astrid_workspace import landlock_abi

pytestmark = pytest.mark.anyio


@pytest.fixture
def ws(tmp_path: Path) -> Path:
    workspace = tmp_path / "ws"
    workspace.mkdir()
    return workspace.resolve()


@pytest.fixture
def ctx(ws: Path) -> ToolContext:
    return ToolContext(str(ws), SessionId.new(), bash_timeout_seconds=10)


async def call(tool: Tool, args: JsonObject, ctx: ToolContext) -> str:
    action = tool.action(args, ctx)
    return await tool.run(args, action, ctx)


def alive(pid: int) -> bool:
    """True while ``pid`` runs. A zombie counts as dead: PID 1 here may never reap it."""
    try:
        with open(f"/proc/{pid}/stat") as handle:
            state = handle.read().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state not in ("Z", "X")


async def gone(pid: int) -> bool:
    for _ in range(50):  # SIGKILL is delivered at once; allow the kernel a moment to reap
        if not alive(pid):
            return True
        await anyio.sleep(0.02)
    return False


# ---------------------------------------------------------------- cap_output


def marker_length(limit: int, size: int) -> int:
    return len(cap_output("x" * size, limit)) - limit


@settings(max_examples=200, deadline=None)
@given(text=st.text(max_size=400), limit=st.integers(min_value=0, max_value=300))
def test_cap_output_keeps_the_head_and_bounds_the_length(text: str, limit: int) -> None:
    capped = cap_output(text, limit)
    if len(text) <= limit:
        assert capped == text
    else:
        assert capped.startswith(text[:limit])
        assert len(capped) <= limit + marker_length(limit, len(text))
        assert f"{len(text) - limit:,} more characters not shown" in capped


def test_cap_output_default_is_30000_characters() -> None:
    capped = cap_output("a" * 30_001)
    assert MAX_OUTPUT_CHARS == 30_000
    assert capped.startswith("a" * 30_000)
    assert capped.endswith("\n[... output truncated: 1 more characters not shown ...]")


# ---------------------------------------------------------------- read_file


async def test_read_file_numbers_lines(ctx: ToolContext, ws: Path) -> None:
    (ws / "a.txt").write_text("alpha\nbeta\ngamma\n")
    assert (
        await call(ReadFile(), {"path": "a.txt"}, ctx)
        == "     1\talpha\n     2\tbeta\n     3\tgamma"
    )


async def test_read_file_offset_and_limit_say_where_to_continue(ctx: ToolContext, ws: Path) -> None:
    (ws / "a.txt").write_text("".join(f"line {i}\n" for i in range(1, 11)))
    out = await call(ReadFile(), {"path": "a.txt", "offset": 3, "limit": 2}, ctx)
    assert out == "     4\tline 4\n     5\tline 5\n[... 5 more lines; continue with offset=5 ...]"


async def test_read_file_shows_2000_lines_by_default(ctx: ToolContext, ws: Path) -> None:
    (ws / "big.txt").write_text("".join(f"{i}\n" for i in range(1, 2501)))
    lines = (await call(ReadFile(), {"path": "big.txt"}, ctx)).splitlines()
    assert lines[0] == "     1\t1"
    assert lines[1999] == "  2000\t2000"
    assert lines[2000] == "[... 500 more lines; continue with offset=2000 ...]"
    assert len(lines) == 2001


async def test_read_file_stops_at_whole_lines_within_the_output_cap(
    ctx: ToolContext, ws: Path
) -> None:
    (ws / "wide.txt").write_text("".join(f"{i:04d}" + "w" * 996 + "\n" for i in range(100)))
    out = await call(ReadFile(), {"path": "wide.txt"}, ctx)
    assert len(out) <= MAX_OUTPUT_CHARS
    last = out.splitlines()[-1]
    assert last.startswith("[... ")
    assert "continue with offset=" in last
    next_offset = int(last.split("offset=")[1].split()[0])
    assert 0 < next_offset < 100
    following = await call(ReadFile(), {"path": "wide.txt", "offset": next_offset}, ctx)
    assert following.startswith(f"{next_offset + 1:6}\t{next_offset:04d}w")


async def test_read_file_cuts_very_long_lines(ctx: ToolContext, ws: Path) -> None:
    (ws / "min.js").write_text("x" * 5000 + "\nshort\n")
    out = await call(ReadFile(), {"path": "min.js"}, ctx)
    first, second = out.splitlines()
    assert first == "     1\t" + "x" * 2000 + " [... line cut at 2000 characters]"
    assert second == "     2\tshort"


async def test_read_file_shows_crlf_files_with_plain_lines(ctx: ToolContext, ws: Path) -> None:
    (ws / "dos.txt").write_bytes(b"one\r\ntwo\r\n")
    assert await call(ReadFile(), {"path": "dos.txt"}, ctx) == "     1\tone\n     2\ttwo"


async def test_read_file_refuses_binary_files(ctx: ToolContext, ws: Path) -> None:
    (ws / "img.png").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)))
    with pytest.raises(BadInputError, match=r"img\.png is a binary file \(272 bytes\)"):
        await call(ReadFile(), {"path": "img.png"}, ctx)


async def test_read_file_errors_name_the_problem(ctx: ToolContext, ws: Path) -> None:
    with pytest.raises(NotFoundError, match=r"no such file or directory: .*missing\.txt"):
        await call(ReadFile(), {"path": "missing.txt"}, ctx)
    (ws / "sub").mkdir()
    with pytest.raises(BadInputError, match="is a directory") as info:
        await call(ReadFile(), {"path": "sub"}, ctx)
    assert "list_directory" in info.value.hint
    (ws / "a.txt").write_text("1\n2\n")
    with pytest.raises(BadInputError, match=r"offset 5 is past the end of .* \(2 lines\)"):
        await call(ReadFile(), {"path": "a.txt", "offset": 5}, ctx)
    (ws / "empty.txt").write_text("")
    assert await call(ReadFile(), {"path": "empty.txt"}, ctx) == f"{ws}/empty.txt is empty"


@pytest.mark.parametrize(
    "bad",
    [{"offset": -1}, {"offset": "3"}, {"offset": True}, {"limit": 0}, {"limit": 1.5}],
)
def test_read_file_refuses_bad_offsets_before_authorization(
    ctx: ToolContext, bad: JsonObject
) -> None:
    with pytest.raises(BadInputError, match="must be an integer"):
        ReadFile().action({"path": "a.txt", **bad}, ctx)


@settings(max_examples=40, deadline=None)
@given(
    count=st.integers(min_value=1, max_value=60),
    offset=st.integers(min_value=0, max_value=59),
    limit=st.integers(min_value=1, max_value=70),
)
def test_read_file_window_matches_the_lines(count: int, offset: int, limit: int) -> None:
    lines = [f"row {i}" for i in range(count)]
    with tempfile.TemporaryDirectory() as tmp:
        Path(tmp, "f.txt").write_text("\n".join(lines) + "\n")
        context = ToolContext(tmp, SessionId.new())
        args: JsonObject = {"path": "f.txt", "offset": offset, "limit": limit}

        async def read() -> str:
            return await call(ReadFile(), args, context)

        if offset >= count:
            with pytest.raises(BadInputError, match="past the end"):
                anyio.run(read)
            return
        out = anyio.run(read).splitlines()
    shown = lines[offset : offset + limit]
    assert out[: len(shown)] == [f"{offset + i + 1:6}\t{line}" for i, line in enumerate(shown)]
    more = count - offset - len(shown)
    assert out[len(shown) :] == (
        [f"[... {more} more lines; continue with offset={offset + len(shown)} ...]"] if more else []
    )


# ---------------------------------------------------------------- write_file


async def test_write_file_creates_parent_directories(ctx: ToolContext, ws: Path) -> None:
    out = await call(WriteFile(), {"path": "new/deep/f.txt", "content": "héllo\n"}, ctx)
    assert out == f"wrote 7 bytes to {ws}/new/deep/f.txt"
    assert (ws / "new" / "deep" / "f.txt").read_bytes() == "héllo\n".encode()


async def test_write_file_replaces_atomically_and_leaves_no_temp_files(
    ctx: ToolContext, ws: Path
) -> None:
    target = ws / "f.txt"
    target.write_text("old content\n")
    target.chmod(0o640)
    before = target.stat().st_ino
    with target.open() as reader_of_old:  # a reader that opened before the write
        await call(WriteFile(), {"path": "f.txt", "content": "new\n"}, ctx)
        assert reader_of_old.read() == "old content\n"  # never a half-written mix
    assert target.read_text() == "new\n"
    assert target.stat().st_ino != before  # renamed into place, not rewritten in place
    assert stat.S_IMODE(target.stat().st_mode) == 0o640
    assert sorted(p.name for p in ws.iterdir()) == ["f.txt"]


async def test_write_file_gives_new_files_the_umask_mode(ctx: ToolContext, ws: Path) -> None:
    old = os.umask(0o027)
    try:
        await call(WriteFile(), {"path": "fresh.txt", "content": "x"}, ctx)
    finally:
        os.umask(old)
    assert stat.S_IMODE((ws / "fresh.txt").stat().st_mode) == 0o640


async def test_write_file_refuses_a_directory_and_cleans_up(ctx: ToolContext, ws: Path) -> None:
    (ws / "d").mkdir()
    with pytest.raises(BadInputError, match="not a regular file"):
        await call(WriteFile(), {"path": "d", "content": "x"}, ctx)
    (ws / "plain").write_text("")
    with pytest.raises(BadInputError, match="plain is not a directory"):
        await call(WriteFile(), {"path": "plain/f.txt", "content": "x"}, ctx)
    assert sorted(p.name for p in ws.iterdir()) == ["d", "plain"]


def test_write_file_needs_string_content(ctx: ToolContext) -> None:
    with pytest.raises(BadInputError, match="'content' must be a string"):
        WriteFile().action({"path": "f.txt", "content": 3}, ctx)


# ---------------------------------------------------------------- edit_file


async def test_edit_file_replaces_a_unique_string(ctx: ToolContext, ws: Path) -> None:
    (ws / "f.py").write_text("a = 1\nb = 2\n")
    (ws / "f.py").chmod(0o755)
    out = await call(
        EditFile(), {"path": "f.py", "old_string": "b = 2", "new_string": "b = 3"}, ctx
    )
    assert out == f"replaced 1 occurrence(s) in {ws}/f.py"
    assert (ws / "f.py").read_text() == "a = 1\nb = 3\n"
    assert stat.S_IMODE((ws / "f.py").stat().st_mode) == 0o755


async def test_edit_file_not_found_changes_nothing(ctx: ToolContext, ws: Path) -> None:
    (ws / "f.py").write_text("a = 1\n")
    with pytest.raises(BadInputError, match="old_string was not found"):
        await call(EditFile(), {"path": "f.py", "old_string": "zzz", "new_string": "y"}, ctx)
    assert (ws / "f.py").read_text() == "a = 1\n"


async def test_edit_file_refuses_an_ambiguous_string_and_names_the_count(
    ctx: ToolContext, ws: Path
) -> None:
    (ws / "f.py").write_text("x = 0\nx = 0\nx = 0\n")
    args: JsonObject = {"path": "f.py", "old_string": "x = 0", "new_string": "x = 1"}
    with pytest.raises(BadInputError, match="occurs 3 times") as info:
        await call(EditFile(), args, ctx)
    assert "replace_all" in info.value.hint
    assert (ws / "f.py").read_text() == "x = 0\nx = 0\nx = 0\n"
    out = await call(EditFile(), {**args, "replace_all": True}, ctx)
    assert out == f"replaced 3 occurrence(s) in {ws}/f.py"
    assert (ws / "f.py").read_text() == "x = 1\nx = 1\nx = 1\n"


async def test_edit_file_keeps_crlf_line_endings(ctx: ToolContext, ws: Path) -> None:
    (ws / "dos.txt").write_bytes(b"one\r\ntwo\r\nthree\r\n")
    args: JsonObject = {"path": "dos.txt", "old_string": "one\ntwo", "new_string": "1\n2"}
    await call(EditFile(), args, ctx)
    assert (ws / "dos.txt").read_bytes() == b"1\r\n2\r\nthree\r\n"


async def test_edit_file_refuses_binary_and_non_utf8_files(ctx: ToolContext, ws: Path) -> None:
    (ws / "bin").write_bytes(b"ab\x00cd")
    (ws / "latin1.txt").write_bytes("café".encode("latin-1"))
    with pytest.raises(BadInputError, match="binary file"):
        await call(EditFile(), {"path": "bin", "old_string": "ab", "new_string": "x"}, ctx)
    with pytest.raises(BadInputError, match="not UTF-8 text"):
        await call(EditFile(), {"path": "latin1.txt", "old_string": "caf", "new_string": "x"}, ctx)
    assert (ws / "bin").read_bytes() == b"ab\x00cd"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({"old_string": "same", "new_string": "same"}, "identical"),
        ({"old_string": "", "new_string": "x"}, "'old_string' must be a non-empty"),
        ({"old_string": "a", "new_string": None}, "'new_string' must be a string"),
        ({"old_string": "a", "new_string": "b", "replace_all": "yes"}, "true or false"),
    ],
)
def test_edit_file_refuses_bad_arguments_before_authorization(
    ctx: ToolContext, args: JsonObject, message: str
) -> None:
    with pytest.raises(BadInputError, match=message):
        EditFile().action({"path": "f.py", **args}, ctx)


# ---------------------------------------------------------------- delete_file


async def test_delete_file(ctx: ToolContext, ws: Path) -> None:
    (ws / "old.log").write_text("x")
    (ws / "d").mkdir()
    assert await call(DeleteFile(), {"path": "old.log"}, ctx) == f"deleted {ws}/old.log"
    assert not (ws / "old.log").exists()
    with pytest.raises(BadInputError, match="is a directory"):
        await call(DeleteFile(), {"path": "d"}, ctx)
    with pytest.raises(NotFoundError, match="no such file"):
        await call(DeleteFile(), {"path": "old.log"}, ctx)


# ---------------------------------------------------------------- list_directory


async def test_list_directory_marks_directories_and_links(
    ctx: ToolContext, ws: Path, tmp_path: Path
) -> None:
    (ws / "b.txt").write_text("")
    (ws / "a_dir").mkdir()
    (ws / "link").symlink_to(tmp_path)
    assert await call(ListDirectory(), {}, ctx) == "a_dir/\nb.txt\nlink@"
    assert await call(ListDirectory(), {"path": "a_dir"}, ctx) == f"{ws}/a_dir is empty"
    with pytest.raises(BadInputError, match="is not a directory"):
        await call(ListDirectory(), {"path": "b.txt"}, ctx)
    with pytest.raises(NotFoundError):
        await call(ListDirectory(), {"path": "nope"}, ctx)


async def test_list_directory_caps_entries_with_a_marker(ctx: ToolContext, ws: Path) -> None:
    for i in range(1005):
        (ws / f"f{i:04d}").touch()
    lines = (await call(ListDirectory(), {}, ctx)).splitlines()
    assert len(lines) == 1001
    assert lines[999] == "f0999"
    assert lines[1000] == "[... 5 more entries not shown; use glob to narrow ...]"


# ---------------------------------------------------------------- glob and grep


def make_tree(ws: Path, files: dict[str, str]) -> None:
    for rel, content in files.items():
        path = ws / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content)


@pytest.fixture
def repo(ws: Path) -> Path:
    make_tree(
        ws,
        {
            ".gitignore": "build/\n*.log\n",
            ".git/config": "needle in git metadata\n",
            "src/app.py": "import os\nneedle = 1\n",
            "src/pkg/util.py": "def needle():\n    pass\n",
            "src/.gitignore": "generated.py\n!keep.log\n",
            "src/generated.py": "needle = 'generated'\n",
            "src/keep.log": "needle kept by the nested .gitignore\n",
            "src/other.log": "needle in an ignored log\n",
            "build/out.py": "needle = 'built'\n",
            "README.md": "no match here\n",
        },
    )
    return ws


async def test_glob_matches_at_any_depth_and_by_path(ctx: ToolContext, repo: Path) -> None:
    assert await call(Glob(), {"pattern": "*.py"}, ctx) == "src/app.py\nsrc/pkg/util.py"
    assert await call(Glob(), {"pattern": "src/**/*.py"}, ctx) == "src/app.py\nsrc/pkg/util.py"
    assert await call(Glob(), {"pattern": "*.py", "path": "src/pkg"}, ctx) == "util.py"
    assert await call(Glob(), {"pattern": "*.rs"}, ctx) == "no matches"


async def test_glob_honours_nested_gitignore_and_skips_git(ctx: ToolContext, repo: Path) -> None:
    everything = (await call(Glob(), {"pattern": "*"}, ctx)).splitlines()
    assert everything == [
        ".gitignore",
        "README.md",
        "src/.gitignore",
        "src/app.py",
        "src/keep.log",  # the nested .gitignore re-includes what the root one ignores
        "src/pkg/util.py",
    ]


async def test_glob_takes_a_leading_bang_literally(ctx: ToolContext, ws: Path) -> None:
    make_tree(ws, {"!important.txt": "", "other.txt": ""})
    assert await call(Glob(), {"pattern": "!important.txt"}, ctx) == "!important.txt"


async def test_glob_caps_results_with_a_marker(ctx: ToolContext, ws: Path) -> None:
    for i in range(1003):
        (ws / f"m{i:04d}.txt").touch()
    lines = (await call(Glob(), {"pattern": "*.txt"}, ctx)).splitlines()
    assert len(lines) == 1001
    assert lines[-1] == "[... 3 more matches not shown ...]"


async def test_grep_honours_nested_gitignore_and_skips_git(ctx: ToolContext, repo: Path) -> None:
    out = await call(Grep(), {"pattern": r"needle\b"}, ctx)
    assert out.splitlines() == [
        "src/app.py:2:needle = 1",
        "src/keep.log:1:needle kept by the nested .gitignore",
        "src/pkg/util.py:1:def needle():",
    ]
    assert await call(Grep(), {"pattern": "needle", "path": "src/app.py"}, ctx) == (
        "app.py:2:needle = 1"
    )
    assert await call(Grep(), {"pattern": "absent"}, ctx) == "no matches"


async def test_grep_skips_binary_files(ctx: ToolContext, ws: Path) -> None:
    (ws / "blob.bin").write_bytes(b"needle\x00\x01\x02needle")
    (ws / "text.txt").write_text("a needle\n")
    assert await call(Grep(), {"pattern": "needle"}, ctx) == "text.txt:1:a needle"


async def test_grep_caps_matches_with_a_marker(ctx: ToolContext, ws: Path) -> None:
    (ws / "many.txt").write_text("hit\n" * 600)
    lines = (await call(Grep(), {"pattern": "hit"}, ctx)).splitlines()
    assert len(lines) == 501
    assert lines[499] == "many.txt:500:hit"
    assert lines[500] == "[... stopped at 500 matches; narrow the pattern or path]"


def test_grep_regex_errors_are_clear_and_come_before_authorization(ctx: ToolContext) -> None:
    with pytest.raises(BadInputError, match=r"invalid regular expression '\(unclosed'") as info:
        Grep().action({"pattern": "(unclosed"}, ctx)
    assert "escape" in info.value.hint


async def test_walks_do_not_follow_symlinks_out_of_the_tree(
    ctx: ToolContext, ws: Path, tmp_path: Path
) -> None:
    outside = tmp_path / "outside"
    make_tree(outside, {"secret.txt": "needle SECRET\n", "deep/more.py": "needle = 2\n"})
    (ws / "dir_link").symlink_to(outside)
    (ws / "file_link.txt").symlink_to(outside / "secret.txt")
    (ws / "mine.txt").write_text("needle mine\n")
    assert await call(Grep(), {"pattern": "needle"}, ctx) == "mine.txt:1:needle mine"
    assert await call(Glob(), {"pattern": "*.py"}, ctx) == "no matches"


# ---------------------------------------------------------------- bash


async def test_bash_runs_and_reports_exit_status(ctx: ToolContext) -> None:
    assert await call(Bash(), {"command": "echo hello"}, ctx) == "hello"
    assert await call(Bash(), {"command": "echo oops >&2; exit 3"}, ctx) == "oops\n[exit status 3]"


async def test_bash_working_directory_persists(ctx: ToolContext, ws: Path) -> None:
    (ws / "sub" / "inner").mkdir(parents=True)
    assert await call(Bash(), {"command": "cd sub"}, ctx) == ""
    assert ctx.cwd == f"{ws}/sub"
    assert await call(Bash(), {"command": "pwd"}, ctx) == f"{ws}/sub"
    assert Bash().action({"command": "ls"}, ctx) == ShellCommand(command="ls", cwd=f"{ws}/sub")
    # It persists whichever way the command ends, and symlinks are resolved.
    assert await call(Bash(), {"command": "cd inner && exit 4"}, ctx) == "[exit status 4]"
    assert ctx.cwd == f"{ws}/sub/inner"
    (ws / "via").symlink_to(ws / "sub")
    await call(Bash(), {"command": f"cd {ws}/via"}, ctx)
    assert ctx.cwd == f"{ws}/sub"


async def test_bash_recovers_when_the_working_directory_is_removed(
    ctx: ToolContext, ws: Path
) -> None:
    (ws / "tmpdir").mkdir()
    await call(Bash(), {"command": "cd tmpdir"}, ctx)
    (ws / "tmpdir").rmdir()
    with pytest.raises(NotFoundError, match="no longer exists"):
        await call(Bash(), {"command": "pwd"}, ctx)
    assert ctx.cwd == str(ws)
    assert await call(Bash(), {"command": "pwd"}, ctx) == str(ws)


async def test_bash_timeout_kills_the_whole_process_group(ctx: ToolContext, ws: Path) -> None:
    ctx.bash_timeout_seconds = 0.5
    command = "sleep 1000 & echo $! > bg.pid; echo $$ > sh.pid; echo started; sleep 1000"
    began = time.monotonic()
    with pytest.raises(AstridTimeoutError, match=r"timed out after 0\.5 s") as info:
        await call(Bash(), {"command": command}, ctx)
    assert time.monotonic() - began < 5
    assert "started" in info.value.message  # what it printed before the kill is reported
    for name in ("bg.pid", "sh.pid"):
        assert await gone(int((ws / name).read_text()))


async def test_bash_cancellation_kills_the_whole_process_group(ctx: ToolContext, ws: Path) -> None:
    command = "sleep 1000 & echo $! > bg.pid; sleep 1000"
    with anyio.move_on_after(0.5) as scope:
        await call(Bash(), {"command": command}, ctx)
    assert scope.cancelled_caught
    assert await gone(int((ws / "bg.pid").read_text()))


async def test_bash_background_jobs_end_with_the_command(ctx: ToolContext, ws: Path) -> None:
    began = time.monotonic()
    assert await call(Bash(), {"command": "sleep 1000 & echo $! > bg.pid; echo done"}, ctx) == (
        "done"
    )
    assert time.monotonic() - began < 3  # not held open until the timeout by the job's pipe
    assert await gone(int((ws / "bg.pid").read_text()))


async def test_bash_environment_holds_no_secrets(
    ctx: ToolContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    secrets = {
        "FAKE_API_KEY": "fake-key-value-1",
        "ANTHROPIC_API_KEY": "sk-ant-value-2",
        "AWS_SECRET_ACCESS_KEY": "aws-secret-value-3",
        "GITHUB_TOKEN": "ghp-value-4",
    }
    for name, value in secrets.items():
        monkeypatch.setenv(name, value)
    out = await call(Bash(), {"command": "env"}, ctx)
    assert "PATH=" in out
    for name, value in secrets.items():
        assert name not in out
        assert value not in out
    ctx.env_allow = ("FAKE_API_KEY",)  # an explicit allowance passes exactly that one
    out = await call(Bash(), {"command": "env"}, ctx)
    assert "FAKE_API_KEY=fake-key-value-1" in out
    assert "sk-ant-value-2" not in out


@pytest.mark.parametrize("timeout", [600.5, 601, 3600, 0, -1, "10", True])
def test_bash_refuses_timeouts_outside_the_limit(ctx: ToolContext, timeout: object) -> None:
    with pytest.raises(BadInputError, match="timeout"):
        Bash().action({"command": "true", "timeout": timeout}, ctx)  # type: ignore[dict-item]


async def test_bash_accepts_600_s_and_clamps_a_larger_configured_default(
    ctx: ToolContext,
) -> None:
    Bash().action({"command": "true", "timeout": 600}, ctx)
    ctx.bash_timeout_seconds = 1000
    assert await call(Bash(), {"command": "echo ok"}, ctx) == "ok"


async def test_bash_output_is_capped_with_a_marker(ctx: ToolContext) -> None:
    out = await call(Bash(), {"command": "head -c 100000 /dev/zero | tr '\\0' x"}, ctx)
    assert out == "x" * 30_000 + "\n[... output truncated: 70,000 more characters not shown ...]"


async def test_bash_huge_output_is_drained_not_held(ctx: ToolContext) -> None:
    ctx.bash_timeout_seconds = 5
    command = "head -c 20000000 /dev/zero | tr '\\0' y; echo finished >&2; exit 2"
    out = await call(Bash(), {"command": command}, ctx)
    assert out.startswith("y" * 30_000 + "\n[... output truncated: ")
    assert "more bytes not shown ...]" in out
    assert out.endswith("[exit status 2]")
    assert len(out) < MAX_OUTPUT_CHARS + 200


async def test_bash_refuses_a_working_directory_swapped_for_a_symlink(
    ctx: ToolContext, ws: Path, tmp_path: Path
) -> None:
    (ws / "sub").mkdir()
    await call(Bash(), {"command": "cd sub"}, ctx)
    action = Bash().action({"command": "touch planted"}, ctx)
    (ws / "sub").rename(ws / "sub.orig")
    (ws / "sub").symlink_to(tmp_path)
    with pytest.raises(SecurityDenied, match="changed after it was authorized"):
        await Bash().run({"command": "touch planted"}, action, ctx)
    assert not (tmp_path / "planted").exists()


@pytest.fixture
def sandboxed(ws: Path) -> ToolContext:
    if landlock_abi() == 0:
        pytest.skip("this kernel has no Landlock")
    return ToolContext(str(ws), SessionId.new(), sandbox_bash=True)


async def test_bash_sandbox_grants_declared_paths_only(
    sandboxed: ToolContext, tmp_path: Path
) -> None:
    declared, other = tmp_path / "cache", tmp_path / "other"
    declared.mkdir()
    other.mkdir()
    sandboxed.sandbox_paths = (str(declared),)
    assert await call(Bash(), {"command": f"echo hi > {declared}/f && cat {declared}/f"}, sandboxed)
    assert (declared / "f").read_text() == "hi\n"
    out = await call(Bash(), {"command": f"echo hi > {other}/f"}, sandboxed)
    assert "Permission denied" in out or "No such file or directory" in out  # not mounted
    assert not (other / "f").exists()
    await call(Bash(), {"command": "mkdir -p sub && cd sub"}, sandboxed)  # cwd still persists
    assert sandboxed.cwd.endswith("/ws/sub")


def test_bash_sandbox_report_names_the_protection() -> None:
    description, warning = bash_sandbox_report(sandbox_bash=True)
    abi = landlock_abi()
    assert "namespaces (bubblewrap)" in description
    assert f"Landlock ABI {abi}" in description if abi else "no Landlock" in description
    assert "seccomp" in description
    assert warning is None
    description, warning = bash_sandbox_report(sandbox_bash=True, mode="landlock")
    assert "no namespaces" in description
    assert warning is not None
    assert "Landlock alone" in warning
    assert bash_sandbox_report(sandbox_bash=False)[1] is None


# ---------------------------------------------------------------- actions and exact paths


def tool_id(value: object) -> str | None:
    return getattr(value, "name", None)  # None: pytest numbers the other parameters


ActionKind = type[FileRead] | type[FileWrite] | type[FileDelete] | type[DirectoryList]

PATH_TOOLS: list[tuple[Tool, ActionKind, JsonObject]] = [
    (ReadFile(), FileRead, {}),
    (WriteFile(), FileWrite, {"content": "x"}),
    (EditFile(), FileWrite, {"old_string": "a", "new_string": "b"}),
    (DeleteFile(), FileDelete, {}),
    (ListDirectory(), DirectoryList, {}),
    (Glob(), DirectoryList, {"pattern": "*"}),
    (Grep(), FileRead, {"pattern": "x"}),
]


@pytest.mark.parametrize(("tool", "kind", "extra"), PATH_TOOLS, ids=tool_id)
def test_every_path_tool_authorizes_the_resolved_path(
    tool: Tool,
    kind: ActionKind,
    extra: JsonObject,
    ctx: ToolContext,
    ws: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    home = tmp_path / "home"
    (ws / "sub").mkdir()
    (ws / "real").mkdir()
    (ws / "link").symlink_to(ws / "real")
    monkeypatch.setenv("HOME", str(home))
    ctx.cwd = str(ws / "sub")
    cases = {
        "a.txt": f"{ws}/sub/a.txt",
        "../a.txt": f"{ws}/a.txt",
        "./x/../../sub/./a.txt": f"{ws}/sub/a.txt",
        "~/notes.txt": f"{home}/notes.txt",
        "../link/a.txt": f"{ws}/real/a.txt",
        f"{ws}/link": f"{ws}/real",
        "../../../../../../../etc/passwd": "/etc/passwd",
    }
    for raw, resolved in cases.items():
        action = tool.action({"path": raw, **extra}, ctx)
        assert isinstance(action, kind)
        assert action.path == resolved, raw


def test_bash_authorizes_the_command_in_the_session_cwd(ctx: ToolContext, ws: Path) -> None:
    assert Bash().action({"command": "ls -la"}, ctx) == ShellCommand(command="ls -la", cwd=str(ws))
    with pytest.raises(BadInputError, match="'command' must be a non-empty"):
        Bash().action({"command": ""}, ctx)


def test_a_nul_byte_in_a_path_is_refused(ctx: ToolContext) -> None:
    for tool, _, extra in PATH_TOOLS:
        with pytest.raises(BadInputError, match="NUL"):
            tool.action({"path": "a\x00b", **extra}, ctx)


SwapCheck = Callable[[Path], None]


def untouched(outside: Path) -> None:
    assert (outside / "a.txt").read_text() == "SECRET"
    assert sorted(p.name for p in outside.iterdir()) == ["a.txt"]


@pytest.mark.parametrize(
    ("tool", "args"),
    [
        (ReadFile(), {"path": "sub/a.txt"}),
        (WriteFile(), {"path": "sub/a.txt", "content": "pwned"}),
        (WriteFile(), {"path": "sub/new.txt", "content": "pwned"}),
        (EditFile(), {"path": "sub/a.txt", "old_string": "SECRET", "new_string": "pwned"}),
        (DeleteFile(), {"path": "sub/a.txt"}),
        (ListDirectory(), {"path": "sub"}),
        (Glob(), {"pattern": "*", "path": "sub"}),
        (Grep(), {"pattern": "SECRET", "path": "sub"}),
        (Grep(), {"pattern": "SECRET", "path": "sub/a.txt"}),
    ],
    ids=tool_id,
)
async def test_a_directory_swapped_for_a_symlink_after_authorization_is_not_followed(
    tool: Tool, args: JsonObject, ctx: ToolContext, ws: Path, tmp_path: Path
) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "a.txt").write_text("SECRET")
    (ws / "sub").mkdir()
    (ws / "sub" / "a.txt").write_text("inside SECRET")
    action = tool.action(args, ctx)  # authorized: a path inside the workspace
    (ws / "sub").rename(ws / "sub.orig")
    (ws / "sub").symlink_to(outside)  # the swap, between the decision and the run
    with pytest.raises(SecurityDenied, match="changed after it was authorized"):
        await tool.run(args, action, ctx)
    untouched(outside)


@pytest.mark.parametrize(
    ("tool", "args"),
    [
        (ReadFile(), {"path": "a.txt"}),
        (WriteFile(), {"path": "a.txt", "content": "pwned"}),
        (EditFile(), {"path": "a.txt", "old_string": "SECRET", "new_string": "pwned"}),
        (Grep(), {"pattern": "SECRET", "path": "a.txt"}),
    ],
    ids=tool_id,
)
async def test_a_file_swapped_for_a_symlink_after_authorization_is_not_followed(
    tool: Tool, args: JsonObject, ctx: ToolContext, ws: Path, tmp_path: Path
) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "a.txt").write_text("SECRET")
    (ws / "a.txt").write_text("inside SECRET")
    action = tool.action(args, ctx)
    (ws / "a.txt").unlink()
    (ws / "a.txt").symlink_to(outside / "a.txt")
    with pytest.raises(SecurityDenied, match="changed after it was authorized"):
        await tool.run(args, action, ctx)
    untouched(outside)


async def test_delete_of_a_swapped_file_removes_the_link_not_its_target(
    ctx: ToolContext, ws: Path, tmp_path: Path
) -> None:
    (tmp_path / "precious").write_text("keep")
    (ws / "a.txt").write_text("")
    action = DeleteFile().action({"path": "a.txt"}, ctx)
    (ws / "a.txt").unlink()
    (ws / "a.txt").symlink_to(tmp_path / "precious")
    await DeleteFile().run({"path": "a.txt"}, action, ctx)
    assert not (ws / "a.txt").is_symlink()
    assert (tmp_path / "precious").read_text() == "keep"


async def test_run_uses_the_authorized_path_not_the_argument(ctx: ToolContext, ws: Path) -> None:
    # The interceptor hands back the action it decided on; run() must not re-read args["path"].
    (ws / "decided.txt").write_text("decided")
    (ws / "argument.txt").write_text("argument")
    decided = FileRead(path=str(ws / "decided.txt"))
    assert await ReadFile().run({"path": "argument.txt"}, decided, ctx) == "     1\tdecided"
    await WriteFile().run(
        {"path": "argument.txt", "content": "new"}, FileWrite(path=str(ws / "decided.txt")), ctx
    )
    assert (ws / "decided.txt").read_text() == "new"
    assert (ws / "argument.txt").read_text() == "argument"
