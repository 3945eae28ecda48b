"""What an approval request tells the person: what each option grants (derived from the grant
it mints, so the words cannot promise less than the grant covers), why the policy asks, what
will happen (arguments with secrets masked), and a denial reason written once with the
person's own words for the model."""

from __future__ import annotations

from pathlib import Path

import pytest

from astrid_approval import describe_pattern, human_duration
from astrid_capabilities import ResourcePattern
from astrid_core import (
    ApprovalOption,
    ApprovalRequest,
    FileWrite,
    McpToolCall,
    ShellCommand,
)
from astrid_core.storage import MemoryStorage
from astrid_crypto import KeyPair

from .conftest import ScriptedFrontend, make_interceptor

pytestmark = pytest.mark.anyio


async def asked(workspace: Path, action: object, **kw: object) -> ApprovalRequest:
    handler = ScriptedFrontend(then=ApprovalOption.DENY)
    guard = await make_interceptor(MemoryStorage(), KeyPair.generate(), workspace, handler=handler)
    await guard.intercept(action, "tool x", **kw)  # type: ignore[arg-type]
    assert len(handler.asked) == 1
    return handler.asked[0]


async def test_each_option_says_what_it_grants(workspace: Path) -> None:
    target = str(workspace / "notes.md")
    request = await asked(workspace, FileWrite(path=target))
    grants = request.grants
    assert set(grants) == set(request.options)
    assert grants[ApprovalOption.ALLOW_ONCE].startswith("Allow once: this call only")
    assert grants[ApprovalOption.ALLOW_SESSION] == (
        f"Allow for this session and its sub-agents: exactly `file://{target}` write"
    )
    assert f"`{workspace}`" in grants[ApprovalOption.ALLOW_WORKSPACE]
    assert "no expiry" in grants[ApprovalOption.ALLOW_WORKSPACE]
    assert grants[ApprovalOption.ALLOW_ALWAYS] == (
        f"Always (1 h, every session and workspace): exactly `file://{target}` write"
    )
    assert grants[ApprovalOption.DENY].startswith("Deny:")


@pytest.mark.parametrize("option", [ApprovalOption.ALLOW_SESSION, ApprovalOption.ALLOW_WORKSPACE])
async def test_the_description_is_the_allowance_that_is_minted(
    workspace: Path, option: ApprovalOption
) -> None:
    handler = ScriptedFrontend(then=option)
    guard = await make_interceptor(MemoryStorage(), KeyPair.generate(), workspace, handler=handler)
    star = str(workspace / "src" / "*")  # a literal name with a glob character
    assert (await guard.intercept(FileWrite(path=star), "write")).allowed
    [allowance] = await guard.allowances.list(guard.session_id, guard.workspace.root)
    described = handler.asked[0].grants[option]
    assert describe_pattern(allowance.resource, allowance.permission) in described
    assert "exactly" in described  # the escaped '*' is a name, and the text says so


async def test_a_command_grant_names_exactly_the_commands_it_covers(workspace: Path) -> None:
    request = await asked(workspace, ShellCommand(command="ls -la", cwd=str(workspace)))
    for option in (ApprovalOption.ALLOW_SESSION, ApprovalOption.ALLOW_ALWAYS):
        text = request.grants[option]
        assert "`bash` running exactly `ls -la` and nothing else" in text, text
    assert request.grants[ApprovalOption.ALLOW_SESSION].startswith(
        "Allow for this session and its sub-agents:"
    )
    assert request.preview == f"$ ls -la\n(in {workspace})"


async def test_mcp_arguments_are_shown_in_full_with_secrets_masked(workspace: Path) -> None:
    secret = "sk-ant-" + "a1B2c3D4" * 4
    action = McpToolCall(
        server="docs",
        tool="search",
        args={"query": "greeting style", "api_key": "hunter2-not-a-shape", "note": secret},
    )
    request = await asked(workspace, action)
    assert '"query": "greeting style"' in request.preview
    assert "hunter2-not-a-shape" not in request.preview  # masked by its name
    assert secret not in request.preview  # masked by its shape
    assert request.preview.count("[redacted:") == 2
    assert request.grants[ApprovalOption.ALLOW_SESSION].endswith(
        "MCP tool `docs/search` with any arguments"
    )


async def test_a_tool_preview_is_used_and_redacted(workspace: Path) -> None:
    token = "ghp_" + "x" * 36
    request = await asked(
        workspace,
        FileWrite(path=str(workspace / "a.txt")),
        preview=lambda: f"+TOKEN={token}\n",
    )
    assert request.preview.startswith("+TOKEN=[redacted:")


async def test_a_failing_preview_never_decides(workspace: Path) -> None:
    def broken() -> str:
        raise RuntimeError("disk on fire")

    request = await asked(workspace, FileWrite(path=str(workspace / "a.txt")), preview=broken)
    assert request.preview == "(no preview: disk on fire)"


async def test_why_the_policy_asks_is_carried(workspace: Path) -> None:
    request = await asked(workspace, FileWrite(path="/tmp/outside-the-workspace.txt"))
    assert request.ask_reasons  # not just "tool x"
    assert all(r and r != "tool x" for r in request.ask_reasons)


def SaysNo(reason: str | None) -> ScriptedFrontend:  # noqa: N802 - reads as the person it is
    return ScriptedFrontend(then=ApprovalOption.DENY, reason=reason)


@pytest.mark.parametrize(
    ("said", "reason"),
    [
        (None, "denied by the user"),
        ("", "denied by the user"),
        ("use git rm instead", "denied by the user: use git rm instead"),
        ("  ", "denied by the user"),
    ],
)
async def test_a_denial_is_written_once_with_the_persons_words(
    workspace: Path, said: str | None, reason: str
) -> None:
    guard = await make_interceptor(
        MemoryStorage(), KeyPair.generate(), workspace, handler=SaysNo(said)
    )
    result = await guard.intercept(FileWrite(path=str(workspace / "a.txt")), "write")
    assert not result.allowed
    assert result.authorization.reason == reason


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (3600, "1 h"),
        (90, "90 s"),
        (120, "2 min"),
        (86400, "1 day"),
        (7200, "2 h"),
        (172800, "2 days"),
    ],
)
def test_human_duration(seconds: int, text: str) -> None:
    assert human_duration(seconds) == text


def test_a_wildcard_pattern_is_described_as_a_pattern() -> None:
    assert "the pattern `file:///ws/**`" in describe_pattern("file:///ws/**", "read")
    assert describe_pattern(ResourcePattern.literal("file:///ws/*").pattern, "read") == (
        "exactly `file:///ws/*` read"
    )


async def test_a_command_line_is_shown_as_the_policy_parsed_it(workspace: Path) -> None:
    line = "cat notes.txt | env LC_ALL=C grep -i todo > out.txt"
    request = await asked(workspace, ShellCommand(command=line, cwd=str(workspace)))
    assert request.preview.startswith(f"$ {line}\n(in {workspace})\n")
    assert "runs: cat notes.txt · " in request.preview
    assert "(via env)" in request.preview
    assert "writes to: out.txt" in request.preview


async def test_an_opaque_command_says_what_cannot_be_determined(workspace: Path) -> None:
    request = await asked(workspace, ShellCommand(command='eval "$CMD"', cwd=str(workspace)))
    assert "cannot be fully determined: " in request.preview


async def test_a_huge_argument_preview_is_capped(workspace: Path) -> None:
    action = McpToolCall(server="docs", tool="put", args={"body": "x" * 600_000})
    request = await asked(workspace, action)
    assert len(request.preview) < 210_000
    assert request.preview.endswith("more characters not shown ...]\n")
