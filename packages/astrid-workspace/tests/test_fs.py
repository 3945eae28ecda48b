"""astrid_workspace.fs under attack: symlinks swapped in at every component and at every
temporary name, both with openat2 and with the portable O_NOFOLLOW walk."""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from astrid_core import AstridError, BadInputError, NotFoundError
from astrid_workspace import fs
from astrid_workspace.testing import Flipper

SECRET = b"SECRET-runtime-key"


@pytest.fixture(params=["openat2", "walk"])
def resolver(request: pytest.FixtureRequest) -> Iterator[str]:
    if request.param == "openat2":
        if not fs.openat2_available():
            pytest.skip("this kernel has no openat2")
        yield "openat2"
        return
    undo = fs.disable_openat2_for_tests()
    try:
        yield "walk"
    finally:
        undo()


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """tmp/ws (the granted directory) and tmp/secret/runtime.key (what must stay unreached)."""
    ws = tmp_path / "ws"
    (ws / "notes").mkdir(parents=True)
    (ws / "notes" / "x.md").write_text("hello\n")
    secret = tmp_path / "secret"
    secret.mkdir()
    (secret / "runtime.key").write_bytes(SECRET)
    return tmp_path


@pytest.fixture
def root(tree: Path) -> Iterator[int]:
    fd = fs.open_root(str(tree / "ws"))
    yield fd
    os.close(fd)


def test_reads_writes_lists_and_removes_beneath_the_descriptor(resolver: str, root: int) -> None:
    assert fs.read_bytes(root, "notes/x.md", 100) == b"hello\n"
    fs.write_atomic(root, "notes/y.md", b"new", create_parents=False)
    fs.write_atomic(root, "deep/er/z.md", b"z", create_parents=True)
    assert fs.read_bytes(root, "deep/er/z.md", 10) == b"z"
    assert [e.name for e in fs.list_dir(root, "notes")] == ["x.md", "y.md"]
    assert fs.exists(root, "notes/y.md")
    assert not fs.exists(root, "notes/none")
    assert fs.stat_beneath(root, "notes/y.md").st_size == 3
    fs.make_dirs(root, "a/b/c")
    assert fs.stat_beneath(root, "a/b/c").st_nlink >= 2
    fs.unlink(root, "notes/y.md")
    assert not fs.exists(root, "notes/y.md")
    with pytest.raises(NotFoundError):
        fs.read_bytes(root, "notes/y.md", 10)
    with pytest.raises(BadInputError, match="over the 3-byte limit"):
        fs.read_bytes(root, "notes/x.md", 3)


def test_an_existing_file_keeps_its_mode(resolver: str, root: int, tree: Path) -> None:
    target = tree / "ws" / "notes" / "x.md"
    target.chmod(0o640)
    fs.write_atomic(root, "notes/x.md", b"changed")
    assert target.read_bytes() == b"changed"
    assert target.stat().st_mode & 0o777 == 0o640
    assert not [p for p in target.parent.iterdir() if p.name.endswith(fs.TEMP_SUFFIX)]


@pytest.mark.parametrize("rel", ["../secret/runtime.key", "/etc/passwd", "notes/../../secret"])
def test_paths_that_leave_the_directory_are_refused(resolver: str, root: int, rel: str) -> None:
    with pytest.raises((fs.PathChanged, BadInputError)):
        fs.read_bytes(root, rel, 100)


@pytest.mark.parametrize("where", ["last", "middle", "to-dir"])
def test_a_symlink_anywhere_is_refused_not_followed(
    resolver: str, root: int, tree: Path, where: str
) -> None:
    ws = tree / "ws"
    if where == "last":
        (ws / "notes" / "x.md").unlink()
        (ws / "notes" / "x.md").symlink_to(tree / "secret" / "runtime.key")
        rel = "notes/x.md"
    elif where == "middle":
        (ws / "keys").symlink_to(tree / "secret")
        rel = "keys/runtime.key"
    else:  # a link to a directory *inside* the tree is refused too: paths come resolved
        (ws / "alias").symlink_to(ws / "notes")
        rel = "alias/x.md"
    with pytest.raises(fs.PathChanged, match="changed after it was authorized"):
        fs.read_bytes(root, rel, 100)
    with pytest.raises(fs.PathChanged):
        fs.write_atomic(root, rel, b"PWNED")
    with pytest.raises(fs.PathChanged):
        fs.stat_beneath(root, rel)
    assert (tree / "secret" / "runtime.key").read_bytes() == SECRET


def test_write_through_a_planted_symlink_directory_is_refused(
    resolver: str, root: int, tree: Path
) -> None:
    (tree / "ws" / "out").symlink_to(tree / "secret")
    for call in (
        lambda: fs.write_atomic(root, "out/new.txt", b"PWNED", create_parents=True),
        lambda: fs.make_dirs(root, "out/sub"),
        lambda: fs.unlink(root, "out/runtime.key"),
        lambda: fs.list_dir(root, "out"),
    ):
        with pytest.raises(fs.PathChanged):
            call()
    assert sorted(p.name for p in (tree / "secret").iterdir()) == ["runtime.key"]


def test_symlinks_planted_at_every_temporary_name_are_never_written_through(
    resolver: str, root: int, tree: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The temporary name is random, but an attacker who could predict it gets nothing: we
    force the first choices onto names where symlinks wait (the old fixed name included)."""
    notes = tree / "ws" / "notes"
    victim = tree / "secret" / "runtime.key"
    planted = [".x.md.astrid-tmp", f".x.md.{'0' * 12}{fs.TEMP_SUFFIX}"]
    for name in planted:
        (notes / name).symlink_to(victim)
    # token_hex(6) is 12 hex digits: the first two choices land on the planted symlink.
    tokens = iter(["0" * 12, "0" * 12, "1" * 12])
    chosen: list[str] = []

    def token_hex(n: int) -> str:
        chosen.append(next(tokens))
        return chosen[-1]

    monkeypatch.setattr(fs.secrets, "token_hex", token_hex)  # pyright: ignore[reportPrivateImportUsage]
    fs.write_atomic(root, "notes/x.md", b"new content")
    assert chosen == ["0" * 12, "0" * 12, "1" * 12]  # the planted name was met, twice
    assert (notes / "x.md").read_bytes() == b"new content"
    assert victim.read_bytes() == SECRET
    for name in planted:
        assert (notes / name).is_symlink()  # untouched, not replaced, not followed


def test_unlink_removes_a_symlink_itself_never_its_target(
    resolver: str, root: int, tree: Path
) -> None:
    (tree / "ws" / "notes" / "link").symlink_to(tree / "secret" / "runtime.key")
    fs.unlink(root, "notes/link")
    assert (tree / "secret" / "runtime.key").read_bytes() == SECRET


def test_a_fifo_does_not_hang_a_read(resolver: str, root: int, tree: Path) -> None:
    os.mkfifo(tree / "ws" / "notes" / "pipe")
    with pytest.raises(BadInputError, match="not a regular file"):
        fs.read_bytes(root, "notes/pipe", 10)


# ---------------------------------------------------------------------- racing flippers


_FLIPPER = r"""
import os, sys, time
path, target, kind, seconds = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])
link, real = path + ".flip-link", path + ".flip-real"
deadline = time.monotonic() + seconds
flips = 0
while time.monotonic() < deadline and flips < 2_000_000:
    try:
        if os.path.lexists(link):
            os.unlink(link)
        os.symlink(target, link)
        os.rename(link, path)  # now a symlink (a directory cannot be renamed over: see below)
    except OSError:
        pass
    try:
        if kind == "dir":
            os.makedirs(real, exist_ok=True)
        else:
            with open(real, "w") as handle:
                handle.write("hello\n")
        if kind == "dir" and os.path.isdir(path) and not os.path.islink(path):
            os.rename(path, path + ".flip-old")  # move the real directory aside first
            os.rename(real, path)
            os.rename(path + ".flip-old", real)
        else:
            os.rename(real, path)
    except OSError:
        pass
    flips += 1
"""


class _Flipper(Flipper):
    """The shared flipper with this module's directory mechanics (the real directory is moved
    aside and back, so it is never missing between flips)."""

    def __init__(self, path: Path, target: Path, kind: str = "file", seconds: float = 20) -> None:
        super().__init__(path, target, kind, seconds, script=_FLIPPER)


def _race(attempt: Callable[[], None], iterations: int = 3000, seconds: float = 10.0) -> int:
    """Run ``attempt`` ``iterations`` times or for ``seconds``, whichever ends first."""
    deadline = time.monotonic() + seconds
    done = 0
    while done < iterations and time.monotonic() < deadline:
        attempt()
        done += 1
    return done


def test_reads_raced_by_a_file_symlink_flipper_never_return_the_secret(
    resolver: str, root: int, tree: Path
) -> None:
    target = tree / "ws" / "notes" / "x.md"
    leaked = refused = clean = 0

    def read() -> None:
        nonlocal leaked, refused, clean
        try:
            data = fs.read_bytes(root, "notes/x.md", 1000)
        except (fs.PathChanged, NotFoundError):
            refused += 1
            return
        if SECRET in data:
            leaked += 1
        clean += 1

    with _Flipper(target, tree / "secret" / "runtime.key"):
        attempts = _race(read)
    assert leaked == 0
    assert attempts >= 100
    assert refused > 0, (refused, clean)  # the race really happened both ways
    assert clean > 0, (refused, clean)


def test_writes_raced_by_a_directory_symlink_flipper_stay_inside(
    resolver: str, root: int, tree: Path
) -> None:
    notes = tree / "ws" / "notes"
    outside = tree / "secret"

    outcomes = {"written": 0, "refused": 0}

    def write() -> None:
        try:
            fs.write_atomic(root, "notes/x.md", b"PWNED")
            outcomes["written"] += 1
        except (fs.PathChanged, NotFoundError, BadInputError):
            outcomes["refused"] += 1
        except OSError:
            outcomes["refused"] += 1  # the directory moved between lookup and rename
        with contextlib.suppress(fs.PathChanged, NotFoundError, BadInputError):
            fs.unlink(root, "notes/runtime.key")

    with _Flipper(notes, outside, "dir"):
        _race(write)
    assert sorted(p.name for p in outside.iterdir()) == ["runtime.key"]
    assert (outside / "runtime.key").read_bytes() == SECRET
    assert outcomes["written"] > 0, outcomes
    assert outcomes["refused"] > 0, outcomes


# ---------------------------------------------------------------------- property


_NAMES = st.sampled_from(["a", "b", "c", "x.md", ".git", "link"])


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    links=st.lists(
        st.tuples(st.lists(_NAMES, min_size=1, max_size=3), st.sampled_from(["out", "in", "loop"])),
        max_size=4,
    ),
    rel=st.lists(_NAMES, min_size=1, max_size=4),
    data=st.binary(max_size=16),
)
def test_whatever_links_exist_nothing_outside_is_read_or_written(
    tmp_path_factory: pytest.TempPathFactory,
    links: list[tuple[list[str], str]],
    rel: list[str],
    data: bytes,
) -> None:
    """Random trees of real folders and symlinks (out of the tree, inside it, loops): every
    operation either stays inside the directory or is refused; the outside never changes."""
    base = tmp_path_factory.mktemp("prop")
    ws, outside = base / "ws", base / "outside"
    ws.mkdir()
    outside.mkdir()
    (outside / "x.md").write_bytes(SECRET)
    for parts, kind in links:
        where = ws.joinpath(*parts)
        if not os.path.realpath(where.parent).startswith(str(ws.resolve())):
            continue  # setting up through a link made earlier would write outside itself
        with contextlib.suppress(OSError):
            where.parent.mkdir(parents=True, exist_ok=True)
            target = {"out": outside, "in": ws, "loop": where}[kind]
            where.symlink_to(target)
    root = fs.open_root(str(ws))
    path = "/".join(rel)
    try:
        for operation in (
            lambda: fs.read_bytes(root, path, 100),
            lambda: fs.write_atomic(root, path, data, create_parents=True),
            lambda: fs.make_dirs(root, path + "/d"),
            lambda: fs.list_dir(root, path),
            lambda: fs.stat_beneath(root, path),
            lambda: fs.unlink(root, path),
        ):
            try:
                result = operation()
            except (AstridError, OSError):
                continue
            if isinstance(result, bytes):
                assert SECRET not in result
    finally:
        os.close(root)
    assert sorted(p.name for p in outside.iterdir()) == ["x.md"]
    assert (outside / "x.md").read_bytes() == SECRET
