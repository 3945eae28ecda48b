"""denied_paths and protected_paths: globs over resolved paths, checked through the real
interceptor (issue #19 points 3 and 8)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from astrid_approval import (
    DEFAULT_DENIED_PATHS,
    SecurityPolicy,
    WorkspaceMode,
    path_entry_problem,
)
from astrid_approval._normalize import normalize_action
from astrid_core import (
    ApprovalOption,
    BadInputError,
    DenialLayer,
    FileDelete,
    FileRead,
    FileWrite,
    McpToolCall,
    ShellCommand,
)
from astrid_core.storage import MemoryStorage
from astrid_crypto import KeyPair

from .conftest import ScriptedFrontend, make_interceptor

pytestmark = pytest.mark.anyio


@pytest.fixture
def home(tmp_path: Path) -> Path:
    home = tmp_path / "home"
    for rel, text in {
        ".ssh/id_ed25519": "PRIVATE KEY",
        ".aws/credentials": "aws_secret",
        ".astrid/keys/runtime.key": "runtime",
        ".config/gcloud/credentials.db": "gcloud",
        ".kube/config": "kube",
        ".docker/config.json": "docker",
        ".netrc": "machine x password y",
        ".git-credentials": "https://u:t@github.com",
        "project/src/main.py": "print()",
    }.items():
        (home / rel).parent.mkdir(parents=True, exist_ok=True)
        (home / rel).write_text(text)
    return home


# ---------------------------------------------------------------------- globs


@pytest.mark.parametrize(
    ("entries", "path", "expected"),
    [
        (("*.pem",), "/srv/app/certs/server.pem", "*.pem"),
        (("*.pem",), "/srv/app/server.pem.bak", None),
        (("**/.env",), "/srv/app/.env", "**/.env"),
        (("**/.env",), "/srv/app/sub/.env/inner", "**/.env"),
        (("**/.env",), "/srv/app/.envrc", None),
        (("/srv/keys/**",), "/srv/keys/a/b", "/srv/keys/**"),
        (("/srv/keys",), "/srv/keyset", None),
        (("~/.ssh",), "HOME/.ssh/id_ed25519", "~/.ssh"),
        (("~/.ssh",), "HOME/.ssh", "~/.ssh"),
        (("~/.ssh",), "HOME/.sshd", None),
        (("secret?.txt",), "/w/secret1.txt", "secret?.txt"),
    ],
)
def test_entries_are_gitwildmatch_globs(
    home: Path, entries: tuple[str, ...], path: str, expected: str | None
) -> None:
    policy = SecurityPolicy(denied_paths=entries, home=str(home))
    assert policy.denied_path(path.replace("HOME", str(home))) == expected


@pytest.mark.parametrize("entry", ["secrets/**", "./x", "../etc", "a/b", ".ssh/id"])
def test_relative_entries_are_refused_with_the_fix(entry: str) -> None:
    assert path_entry_problem(entry) is not None
    with pytest.raises(BadInputError, match="relative") as raised:
        SecurityPolicy(denied_paths=(entry,)).denied_path("/x")
    assert "'**/" in raised.value.hint
    assert "'~/" in raised.value.hint


@pytest.mark.parametrize("entry", ["!~/.ssh", "#x", "", " /x"])
def test_negations_and_junk_are_refused(entry: str) -> None:
    assert path_entry_problem(entry) is not None


def test_a_symlinked_denied_folder_is_denied_under_both_names(home: Path, tmp_path: Path) -> None:
    real = tmp_path / "elsewhere"
    real.mkdir()
    (home / ".gnupg").symlink_to(real)
    policy = SecurityPolicy(home=str(home))
    assert policy.denied_path(str(real / "secring.gpg")) == "~/.gnupg"
    assert policy.denied_path(str(home / ".gnupg" / "x")) == "~/.gnupg"


def test_astrid_home_is_denied_wherever_it_is(home: Path, tmp_path: Path) -> None:
    elsewhere = tmp_path / "astrid-data"
    policy = SecurityPolicy(home=str(home), astrid_home=str(elsewhere))
    assert policy.denied_path(str(elsewhere / "keys" / "runtime.key")) is not None


@settings(max_examples=200, deadline=None)
@given(
    name=st.text(alphabet="abcdefgh.-_", min_size=1, max_size=12).filter(
        lambda s: s not in (".", "..")
    ),
    depth=st.integers(min_value=0, max_value=4),
)
def test_nothing_below_a_denied_folder_escapes_it(name: str, depth: int) -> None:
    policy = SecurityPolicy(home="/home/u")
    for entry in ("~/.ssh", "~/.aws", "~/.astrid", "~/.kube"):
        path = "/home/u/" + entry[2:] + "".join(f"/{name}" for _ in range(depth + 1))
        assert policy.denied_path(path) == entry


def test_a_folder_above_a_denied_path_is_denied_for_writes_only(home: Path) -> None:
    policy = SecurityPolicy(home=str(home))
    assert policy.denied_path(str(home)) is None  # listing ~ is fine
    assert policy.denied_path(str(home), write=True) is not None  # moving ~ moves ~/.ssh
    assert policy.denied_path(str(home.parent), write=True) is not None
    assert policy.denied_path(str(home / "project"), write=True) is None


def test_defaults_cover_the_usual_credentials(home: Path) -> None:
    policy = SecurityPolicy(home=str(home))
    for rel in (
        ".ssh/id_ed25519",
        ".aws/credentials",
        ".astrid/keys/runtime.key",
        ".config/gcloud/credentials.db",
        ".kube/config",
        ".docker/config.json",
        ".netrc",
        ".git-credentials",
        ".gnupg/pubring.kbx",
    ):
        assert policy.denied_path(str(home / rel)) is not None, rel
    assert "~/.astrid" in DEFAULT_DENIED_PATHS


# ---------------------------------------------------------------------- through the interceptor


async def test_glob_entries_deny_through_the_interceptor(home: Path, tmp_path: Path) -> None:
    workspace = tmp_path / "ws"
    (workspace / "certs").mkdir(parents=True)
    policy = SecurityPolicy(
        home=str(home), denied_paths=(*DEFAULT_DENIED_PATHS, "*.pem", "**/.env")
    )
    handler = ScriptedFrontend(then=ApprovalOption.ALLOW_ALWAYS)
    guard = await make_interceptor(
        MemoryStorage(),
        KeyPair.generate(),
        workspace,
        handler=handler,
        policy=policy,
        mode=WorkspaceMode.AUTONOMOUS,
        home=home,
    )
    for path in ("certs/server.pem", "sub/.env", ".env"):
        result = await guard.intercept(FileRead(path=str(workspace / path)), "read")
        assert not result.allowed, path
        assert result.authorization.denied_by is DenialLayer.POLICY
    assert handler.asked == []


async def test_workspace_at_home_still_denies_the_keys(home: Path) -> None:
    handler = ScriptedFrontend(then=ApprovalOption.ALLOW_ALWAYS)
    guard = await make_interceptor(
        MemoryStorage(),
        KeyPair.generate(),
        home,
        handler=handler,
        mode=WorkspaceMode.AUTONOMOUS,
        home=home,
    )
    for rel in (".ssh/id_ed25519", ".astrid/keys/runtime.key", ".aws/credentials"):
        result = await guard.intercept(FileRead(path=str(home / rel)), "read")
        assert not result.allowed, rel
    assert (await guard.intercept(FileRead(path=str(home / "project/src/main.py")), "r")).allowed


async def test_a_hard_link_to_a_denied_file_is_denied_like_the_file(
    home: Path, tmp_path: Path
) -> None:
    workspace = tmp_path / "ws"
    workspace.mkdir()
    os.link(home / ".ssh" / "id_ed25519", workspace / "innocent.txt")
    guard = await make_interceptor(
        MemoryStorage(),
        KeyPair.generate(),
        workspace,
        handler=ScriptedFrontend(then=ApprovalOption.ALLOW_ALWAYS),
        mode=WorkspaceMode.AUTONOMOUS,
        home=home,
    )
    result = await guard.intercept(FileRead(path=str(workspace / "innocent.txt")), "read")
    assert not result.allowed
    assert "hard link" in result.authorization.reason


@pytest.mark.parametrize(
    "rel",
    [
        ".git/hooks/pre-commit",
        ".git/config",
        ".gitmodules",
        ".gitattributes",
        ".astrid/config.toml",
        ".envrc",
        ".vscode/tasks.json",
        ".github/workflows/ci.yml",
        "sub/.git/hooks/post-checkout",
        ".git/config.worktree",
        ".git/commondir",
        ".git/worktrees/feature/config.worktree",
        ".git/modules/lib/hooks/post-checkout",
        ".husky/pre-commit",
        ".git",  # replacing the folder replaces its hooks
        ".github",
    ],
)
async def test_protected_writes_ask_in_autonomous_mode_even_with_a_grant(
    tmp_path: Path, rel: str
) -> None:
    workspace = tmp_path / "ws"
    (workspace / ".git" / "hooks").mkdir(parents=True)
    (workspace / ".github" / "workflows").mkdir(parents=True)
    handler = ScriptedFrontend(then=ApprovalOption.ALLOW_SESSION)
    guard = await make_interceptor(
        MemoryStorage(),
        KeyPair.generate(),
        workspace,
        handler=handler,
        mode=WorkspaceMode.AUTONOMOUS,
    )
    for action in (FileWrite(path=str(workspace / rel)), FileDelete(path=str(workspace / rel))):
        asked = len(handler.asked)
        assert (await guard.intercept(action, "write")).allowed
        assert len(handler.asked) == asked + 1, "a protected write ran without asking"
        assert "protected" in handler.asked[-1].details[0]
        # the session allowance that answer granted does not auto-allow the next one
        assert (await guard.intercept(action, "write again")).allowed
        assert len(handler.asked) == asked + 2
    # reading is not protected: autonomous mode reads without asking
    asked = len(handler.asked)
    assert (await guard.intercept(FileRead(path=str(workspace / rel)), "read")).allowed
    assert len(handler.asked) == asked


@pytest.mark.parametrize(
    ("config", "hooks_rel"),
    [
        ("[core]\n\thooksPath = .husky\n", ".husky/pre-commit"),
        ('[core]\n  bare = false\n  HooksPath = "tools/git hooks"\n', "tools/git hooks/pre-push"),
        ("[user]\n\tname = x\n[CORE]\n\thookspath=ci/h\n", "ci/h/commit-msg"),
    ],
)
async def test_the_hooks_folder_git_really_uses_is_protected(
    tmp_path: Path, config: str, hooks_rel: str
) -> None:
    workspace = tmp_path / "ws"
    (workspace / ".git").mkdir(parents=True)
    (workspace / ".git" / "config").write_text(config)
    handler = ScriptedFrontend(then=ApprovalOption.ALLOW_ONCE)
    guard = await make_interceptor(
        MemoryStorage(),
        KeyPair.generate(),
        workspace,
        handler=handler,
        mode=WorkspaceMode.AUTONOMOUS,
    )
    assert (await guard.intercept(FileWrite(path=str(workspace / hooks_rel)), "w")).allowed
    assert len(handler.asked) == 1
    reason = handler.asked[0].details[0]
    assert "protected" in reason
    assert "core.hooksPath" in reason or ".husky" in reason
    assert (await guard.intercept(FileWrite(path=str(workspace / "src/a.py")), "w")).allowed
    assert len(handler.asked) == 1  # an ordinary file still runs unasked


async def test_a_denied_answer_leaves_the_hook_unwritten(tmp_path: Path) -> None:
    workspace = tmp_path / "ws"
    (workspace / ".git" / "hooks").mkdir(parents=True)
    handler = ScriptedFrontend(then=ApprovalOption.DENY)
    guard = await make_interceptor(
        MemoryStorage(),
        KeyPair.generate(),
        workspace,
        handler=handler,
        mode=WorkspaceMode.AUTONOMOUS,
    )
    hook = FileWrite(path=str(workspace / ".git/hooks/pre-commit"))
    result = await guard.intercept(hook, "w")
    assert not result.allowed
    assert result.authorization.denied_by is DenialLayer.APPROVAL


async def test_an_mcp_tool_naming_a_protected_path_asks_even_with_a_grant(tmp_path: Path) -> None:
    workspace = tmp_path / "ws"
    (workspace / ".git" / "hooks").mkdir(parents=True)
    policy = SecurityPolicy(home=str(tmp_path / "home"))
    hook = str(workspace / ".git" / "hooks" / "pre-commit")
    call = McpToolCall(server="filesystem", tool="write_file", args={"path": hook})
    verdict = policy.check(normalize_action(call, workspace))
    assert verdict.verdict.value == "ask"
    assert "protected" in verdict.reason
    secret = McpToolCall(
        server="filesystem", tool="move_file", args={"source": str(tmp_path / "home/.ssh/id")}
    )
    assert policy.check(normalize_action(secret, workspace)).verdict.value == "deny"


@pytest.mark.parametrize(
    "config",
    [
        "[include]\n\tpath = ../project.gitconfig\n",
        '[includeIf "gitdir:~/"]\n  path = "../project.gitconfig"\n',
    ],
)
async def test_a_config_file_the_repository_includes_is_protected(
    tmp_path: Path, config: str
) -> None:
    """A project's shared git config (``include.path = ../project.gitconfig``) can set
    core.fsmonitor or core.hooksPath just as well as .git/config can."""
    workspace = tmp_path / "ws"
    (workspace / ".git").mkdir(parents=True)
    (workspace / ".git" / "config").write_text(config)
    handler = ScriptedFrontend(then=ApprovalOption.ALLOW_ONCE)
    guard = await make_interceptor(
        MemoryStorage(),
        KeyPair.generate(),
        workspace,
        handler=handler,
        mode=WorkspaceMode.AUTONOMOUS,
    )
    target = FileWrite(path=str(workspace / "project.gitconfig"))
    assert (await guard.intercept(target, "w")).allowed
    assert len(handler.asked) == 1
    assert "included git config" in handler.asked[0].details[0]


@settings(max_examples=300, deadline=None)
@given(
    parts=st.lists(
        st.sampled_from(["a", "b", "link", "up", "loop", "file", "missing", ".", "..", ""]),
        min_size=1,
        max_size=6,
    )
)
def test_the_decisions_path_cache_resolves_exactly_like_realpath(
    tmp_path_factory: pytest.TempPathFactory, parts: list[str]
) -> None:
    """The policy resolves each path once per decision from its resolved parent and one lstat
    of the last component: for symlinks (to a folder, to "..", in a loop), files used as
    folders, missing names, "." and "..", it must name what os.path.realpath names."""
    from astrid_approval._policy import _Resolver  # pyright: ignore[reportPrivateUsage]

    root = tmp_path_factory.mktemp("tree").resolve()
    (root / "a" / "b").mkdir(parents=True)
    (root / "a" / "file").write_text("x")
    (root / "a" / "link").symlink_to(root / "a" / "b")
    (root / "a" / "b" / "up").symlink_to("../..")
    (root / "a" / "loop").symlink_to("loop")
    path = str(root / "a") + "/" + "/".join(parts)
    memo = _Resolver(str(root))
    assert memo.real(path) == os.path.realpath(path), path
    assert memo.real(path) == os.path.realpath(path)  # and again, from the cache
    assert memo.path("/".join(parts) or ".", str(root / "a")) == os.path.realpath(
        os.path.join(str(root / "a"), "/".join(parts) or ".")
    )


# Wildcards in a denied folder's own name, judged by the pattern (issue #20): nothing under
# these names exists when the line is decided (id_dsa, .gnupg/…, *.pem files are absent), so
# expanding the glob against the disk found nothing and the line passed; bash, run later,
# would name whatever exists then.
PATTERN_DENIED = [
    "cat ~/.ss?/id_dsa",
    "cat ~/.s*/id_dsa",
    "cat ~/.*/credentials.csv",
    "cat ~/.[a]ws/config2",
    "cat ~/.[!x]ws/config2",
    "cat ~/.[^x]ws/config2",
    "cat .gn?pg/private-keys-v1.d/k",
    "tar cf /tmp/x.tar ~/.ss[h]/new_key",
    "cp ~/.astri?/keys/next.key /tmp/k",
    "cat ~/.con*/gcloud/legacy_credentials",
    "cat ~/.config/gclo?d/x",
    "cat /e?c/shadow-",
    "cat /???/sudoers.d/x",
    "cat src/../.ss?/id_dsa",
    "cat ~/.{ss?,x}/id_dsa",
    "cd src && cat ../.ss*/id_dsa",
    "cat new-key.pem",
]
PATTERN_ALLOWED = ["ls src/*.py", "cat *.txt", "cat ?ssh/x", "cat [.]ssh/x", "wc -l src/*.md"]


@pytest.mark.parametrize("mode", [WorkspaceMode.AUTONOMOUS, WorkspaceMode.SAFE])
@pytest.mark.parametrize("line", PATTERN_DENIED)
async def test_a_pattern_that_can_name_a_denied_path_is_denied_whatever_exists(
    home: Path, line: str, mode: WorkspaceMode
) -> None:
    handler = ScriptedFrontend(then=ApprovalOption.ALLOW_ALWAYS)
    policy = SecurityPolicy(home=str(home), denied_paths=(*DEFAULT_DENIED_PATHS, "*.pem"))
    guard = await make_interceptor(
        MemoryStorage(), KeyPair.generate(), home, handler=handler, mode=mode, home=home,
        policy=policy,
    )  # fmt: skip
    (home / "src").mkdir(exist_ok=True)
    result = await guard.intercept(ShellCommand(command=line, cwd=str(home)), "x")
    assert result.authorization.denied_by is DenialLayer.POLICY, (line, result.authorization)
    assert handler.asked == []


@pytest.mark.parametrize("line", PATTERN_ALLOWED)
async def test_a_pattern_that_cannot_name_a_denied_path_is_not_refused(
    home: Path, line: str
) -> None:
    """bash's rules: ``?``, ``*`` and ``[.]`` never match a leading dot (dotglob makes the line
    opaque); ``*.txt`` cannot be ``*.pem``."""
    handler = ScriptedFrontend(then=ApprovalOption.ALLOW_ALWAYS)
    policy = SecurityPolicy(home=str(home), denied_paths=(*DEFAULT_DENIED_PATHS, "*.pem"))
    guard = await make_interceptor(
        MemoryStorage(), KeyPair.generate(), home, handler=handler,
        mode=WorkspaceMode.AUTONOMOUS, home=home, policy=policy,
    )  # fmt: skip
    (home / "src").mkdir(exist_ok=True)
    result = await guard.intercept(ShellCommand(command=line, cwd=str(home)), "x")
    assert result.allowed, (line, result.authorization)
    assert handler.asked == []


@pytest.mark.parametrize(
    "line",
    ["cp x .git/ho?ks/pre-commit", "cp x .git/h*/post-checkout", "mv x .gi[t]/config",
     "cat *.p?m.bak > /dev/null; cp y sec/*.p[e]m", "cp x .vsc?de/tasks.json",
     "cp x *.pe?", "shopt -s dotglob; cat *", "cat secrets/*.p?m", "wc -l src/*"],
)  # fmt: skip
async def test_a_pattern_that_may_name_a_protected_or_denied_path_is_asked(
    home: Path, line: str
) -> None:
    handler = ScriptedFrontend(then=ApprovalOption.ALLOW_ONCE)
    policy = SecurityPolicy(home=str(home), denied_paths=(*DEFAULT_DENIED_PATHS, "*.pem"))
    workspace = home / "project"
    (workspace / ".git").mkdir(parents=True, exist_ok=True)
    guard = await make_interceptor(
        MemoryStorage(), KeyPair.generate(), workspace, handler=handler,
        mode=WorkspaceMode.AUTONOMOUS, home=home, policy=policy,
    )  # fmt: skip
    result = await guard.intercept(ShellCommand(command=line, cwd=str(workspace)), "x")
    assert handler.asked or result.authorization.denied_by is DenialLayer.POLICY, line
    assert not (result.allowed and not handler.asked), line
