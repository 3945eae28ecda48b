"""write_file / edit_file put their content into the action by size and BLAKE3 hash: it counts
toward security.max_argument_bytes and the audit entry names it without holding it."""

from __future__ import annotations

from pathlib import Path

import pytest
import rfc8785

from astrid_approval import SecurityPolicy
from astrid_approval._normalize import normalize_action
from astrid_core import BadInputError, FileWrite, SessionId
from astrid_crypto import content_hash
from astrid_runtime.tools import EditFile, WriteFile
from astrid_runtime.tools._base import ToolContext


@pytest.fixture
def ctx(tmp_path: Path) -> ToolContext:
    return ToolContext(str(tmp_path.resolve()), SessionId.new(), bash_timeout_seconds=10)


def test_write_file_action_carries_the_content_size_and_hash(ctx: ToolContext) -> None:
    action = WriteFile().action({"path": "a.txt", "content": "héllo"}, ctx)
    assert isinstance(action, FileWrite)
    assert action.content_bytes == len("héllo".encode())
    assert action.content_blake3 == content_hash("héllo".encode()).hex
    assert "héllo" not in action.model_dump_json()


def test_edit_file_action_carries_the_edit(ctx: ToolContext) -> None:
    args = {"path": "a.txt", "old_string": "a", "new_string": "b" * 10, "replace_all": True}
    action = EditFile().action(args, ctx)  # pyright: ignore[reportArgumentType]
    assert isinstance(action, FileWrite)
    edit = rfc8785.dumps({"new_string": "b" * 10, "old_string": "a", "replace_all": True})
    assert action.content_bytes == len(edit)
    assert action.content_blake3 == content_hash(edit).hex


def test_two_mib_of_content_is_over_the_limit(ctx: ToolContext) -> None:
    policy = SecurityPolicy(home="/nonexistent-home")
    for tool, args in (
        (WriteFile(), {"path": "big.txt", "content": "x" * (2 * 1024 * 1024)}),
        (EditFile(), {"path": "big.txt", "old_string": "x", "new_string": "y" * 2_000_000}),
    ):
        action = tool.action(args, ctx)  # pyright: ignore[reportArgumentType]
        verdict = policy.check(normalize_action(action, ctx.cwd, "/nonexistent-home"))
        assert verdict.verdict.value == "deny", verdict
        assert "arguments and content are" in verdict.reason
    small = WriteFile().action({"path": "ok.txt", "content": "x" * 1000}, ctx)
    assert policy.check(normalize_action(small, ctx.cwd, "/nonexistent-home")).verdict.value != (
        "deny"
    )


def test_content_that_is_not_unicode_is_refused(ctx: ToolContext) -> None:
    with pytest.raises(BadInputError, match="not valid Unicode"):
        WriteFile().action({"path": "a.txt", "content": "\ud800"}, ctx)
