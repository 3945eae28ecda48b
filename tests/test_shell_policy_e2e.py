"""Issue #19 end to end: the real bash tool behind the real SecurityInterceptor.

Before the tree-sitter parser, ``ls\\nmount`` ran in autonomous mode (a newline was a space to
shlex) and ``ls && touch pwned`` rode an "allow for this session" of ``ls``. Here each line is
decided by the interceptor exactly as the agent loop does, and run by the bash tool only when
allowed; the files a refused line would have written must not exist afterwards.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from astrid_approval import (
    AllowanceStore,
    ApprovalManager,
    BudgetConfig,
    BudgetTracker,
    DeferredResolutionStore,
    SecurityInterceptor,
    SecurityPolicy,
    WorkspaceBoundary,
    WorkspaceMode,
)
from astrid_audit import AuditLog
from astrid_capabilities import CapabilityStore
from astrid_core import ApprovalOption, DenialLayer, SessionId
from astrid_core.storage import MemoryStorage
from astrid_core.testing import ScriptedFrontend
from astrid_crypto import KeyPair
from astrid_runtime.tools import Bash, ToolContext

pytestmark = pytest.mark.anyio


Human = ScriptedFrontend  # a scripted person at a frontend (astrid_core.testing)


async def _guard(
    workspace: Path, home: Path, mode: WorkspaceMode, human: Human
) -> SecurityInterceptor:
    storage, key, session = MemoryStorage(), KeyPair.generate(), SessionId.new()
    return SecurityInterceptor(
        policy=SecurityPolicy(home=str(home)),
        capabilities=CapabilityStore(storage, [key.public_key]),
        allowances=AllowanceStore(storage, key),
        budget=BudgetTracker(storage, BudgetConfig(), session=str(session)),
        workspace=WorkspaceBoundary(str(workspace), mode),
        approvals=ApprovalManager(DeferredResolutionStore(storage), human),
        audit=await AuditLog.open(storage, key),
        key=key,
        session_id=session,
        home=home,
    )


async def _run(guard: SecurityInterceptor, ctx: ToolContext, command: str) -> str | None:
    """What the agent loop does: decide, then run only what was allowed."""
    bash = Bash()
    args = {"command": command}
    result = await guard.intercept(bash.action(args, ctx), "the agent wants it")
    if not result.allowed:
        return None
    return await bash.run(args, result.action, ctx)


@pytest.fixture
def dirs(tmp_path: Path) -> tuple[Path, Path]:
    home = (tmp_path / "home").resolve()
    workspace = home / "project"
    workspace.mkdir(parents=True)
    (home / ".ssh").mkdir()
    (home / ".ssh" / "id_ed25519").write_text("PRIVATE KEY")
    return workspace, home


@pytest.mark.parametrize(
    "command",
    [
        "echo hi\ndd if=/dev/zero of=pwned bs=1 count=1",
        "if true; then dd if=/dev/zero of=pwned bs=1 count=1; fi",
        "for i in 1; do dd if=/dev/zero of=pwned bs=1 count=1; done",
        "coproc dd if=/dev/zero of=pwned bs=1 count=1",
        "sh <<< 'dd if=/dev/zero of=pwned bs=1 count=1'",
        "env -S 'dd if=/dev/zero of=pwned bs=1 count=1'",
        "f() { dd if=/dev/zero of=pwned bs=1 count=1; }; f",
    ],
)
async def test_a_blocked_program_hidden_in_the_line_never_runs(
    dirs: tuple[Path, Path], command: str
) -> None:
    workspace, home = dirs
    human = Human(then=ApprovalOption.ALLOW_ONCE)
    guard = await _guard(workspace, home, WorkspaceMode.AUTONOMOUS, human)
    ctx = ToolContext(str(workspace), guard.session_id, bash_timeout_seconds=10)
    assert await _run(guard, ctx, command) is None
    assert not (workspace / "pwned").exists()
    assert human.asked == []  # a policy deny, not a question


@pytest.mark.parametrize(
    "command",
    [
        'python3 -c \'open("pwned", "w")\'',
        "echo dG91Y2ggcHduZWQ= | base64 -d | sh",
        "awk 'BEGIN{system(\"touch pwned\")}'",
        "sed -n '1e touch pwned' notes.txt",
    ],
)
async def test_opaque_lines_are_put_to_the_human_in_autonomous_mode(
    dirs: tuple[Path, Path], command: str
) -> None:
    workspace, home = dirs
    human = Human(then=ApprovalOption.DENY)
    guard = await _guard(workspace, home, WorkspaceMode.AUTONOMOUS, human)
    ctx = ToolContext(str(workspace), guard.session_id, bash_timeout_seconds=10)
    assert await _run(guard, ctx, command) is None
    assert len(human.asked) == 1
    assert not (workspace / "pwned").exists()


async def test_an_ls_session_allowance_does_not_run_ls_and_touch(dirs: tuple[Path, Path]) -> None:
    workspace, home = dirs
    human = Human(then=ApprovalOption.ALLOW_SESSION)
    guard = await _guard(workspace, home, WorkspaceMode.SAFE, human)
    ctx = ToolContext(str(workspace), guard.session_id, bash_timeout_seconds=10)
    assert await _run(guard, ctx, "ls") == ""
    human.then = ApprovalOption.DENY
    assert await _run(guard, ctx, "ls") == ""  # covered: not asked again
    assert len(human.asked) == 1
    assert await _run(guard, ctx, "ls && touch pwned") is None
    assert len(human.asked) == 2
    assert not (workspace / "pwned").exists()


async def test_cd_into_a_denied_directory_does_not_print_the_key(tmp_path: Path) -> None:
    home = (tmp_path / "home").resolve()
    (home / ".ssh").mkdir(parents=True)
    (home / ".ssh" / "id_ed25519").write_text("PRIVATE KEY")
    human = Human(then=ApprovalOption.ALLOW_ONCE)
    guard = await _guard(home, home, WorkspaceMode.AUTONOMOUS, human)  # astrid run from ~
    ctx = ToolContext(str(home), guard.session_id, bash_timeout_seconds=10)
    for command in ("cd .ssh && cat id_ed25519", "cat .ss*/id_*", "cd .ssh; cat *"):
        result = await guard.intercept(Bash().action({"command": command}, ctx), "x")
        assert result.authorization.denied_by is DenialLayer.POLICY, command
    assert await _run(guard, ctx, "cd .ssh && cat id_ed25519") is None
