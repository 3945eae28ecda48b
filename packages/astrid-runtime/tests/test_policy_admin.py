"""``astrid policy apply`` on the runtime: grants minted with the runtime key and the apply's
audit id, the applied settings reach new sessions, a workspace file only adds restrictions,
and a second apply replaces the first one's tokens in one transaction."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from astrid_audit import OutcomeKind
from astrid_core import ApprovalOption, ConfigError

from .conftest import Human, collect, open_runtime, turns

pytestmark = pytest.mark.anyio

READ_NOTES = """\
version = 1
[[grant]]
name = "read the notes"
files = "{ws}/**"
permissions = ["read"]
caveats = [{{ arg_matches = "path", glob = "{ws}/*.txt" }}]
"""


async def test_apply_mints_audited_grants_and_strict_reaches_sessions(
    tmp_path: Path, workspace: Path
) -> None:
    runtime = await open_runtime(
        tmp_path,
        turns(
            ("reading", [("read_file", {"path": "important.txt"})]),
            ("deleting", [("delete_file", {"path": "old.log"})]),
            ("ok", []),
        ),
    )
    human = Human([ApprovalOption.ALLOW_ONCE])
    runtime.set_frontend(human)  # type: ignore[arg-type]
    try:
        text = "strict = true\n" + READ_NOTES.format(ws=workspace)
        applied: Any = await runtime.apply_policy(text, "policy.toml")
        [token] = applied["tokens"]
        assert token["approval_audit_id"] == applied["audit_id"]
        entry = await runtime.audit.get(applied["audit_id"])
        assert entry is not None
        assert entry.outcome.kind is OutcomeKind.CONFIG_CHANGE
        assert entry.outcome.detail["event"] == "policy_apply"
        info = await runtime.create_session(str(workspace))
        events = await collect(runtime, info.session_id, "read then delete")
        results = [e for e in events if e["type"] == "tool_call_result"]
        assert results[0]["ok"] is True  # covered by the policy grant, nobody asked
        assert results[1]["denied"] is True  # strict: not asked, denied at once
        assert "strict policy" in results[1]["output"]
        assert human.asked == []
        assert (workspace / "old.log").exists()
        again: Any = await runtime.apply_policy(READ_NOTES.format(ws=workspace), "policy.toml")
        assert again["revoked"] == [token["id"]]
        listed: Any = await runtime.list_policy()
        assert listed["settings"]["strict"] is False
        tokens = {row["id"]: row["status"] for row in await runtime.list_tokens()}
        assert tokens[token["id"]] == "revoked"
    finally:
        await runtime.aclose()


async def test_a_workspace_policy_only_adds_restrictions(tmp_path: Path, workspace: Path) -> None:
    runtime = await open_runtime(tmp_path, turns(("ok", [])))
    try:
        (workspace / ".astrid").mkdir()
        local = workspace / ".astrid" / "policy.toml"
        local.write_text('strict = true\n[[label]]\nresource = "mcp://**"\nsink = true\n')
        settings = runtime.policy.for_workspace(str(workspace))
        assert settings.strict is True
        assert settings.label_for("mcp://mail/read")[1] is True
        for loosening, fix in (
            ('[[grant]]\nname = "x"\nmcp = "a/b"\n', "astrid policy apply"),
            ('on_caveat_mismatch = "ask"\n', 'on_caveat_mismatch = "deny"'),
            ('[[label]]\nresource = "mcp://**"\nsink = false\n', "sink = true"),
        ):
            local.write_text(loosening)
            with pytest.raises(ConfigError) as caught:
                runtime.policy.for_workspace(str(workspace))
            assert fix in (caught.value.hint or ""), caught.value
            assert "policy.toml line" in caught.value.message
    finally:
        await runtime.aclose()


async def test_two_concurrent_applies_leave_only_the_last_ones_tokens_live(
    tmp_path: Path, workspace: Path
) -> None:
    """Attack: two `astrid policy apply` at once. Each read the same previous record, so each
    revoked only that one's tokens: the first apply's grants stayed live while the record (what
    `policy list` and `policy revoke` see) named only the second's — a grant nobody can list or
    revoke. Applies are serialized: what is live is exactly what the record names."""
    import anyio

    runtime = await open_runtime(tmp_path, turns(("ok", [])))
    try:
        texts = [
            READ_NOTES.format(ws=workspace).replace("read the notes", f"n{i}") for i in range(3)
        ]
        async with anyio.create_task_group() as tg:
            for i, text in enumerate(texts):
                tg.start_soon(runtime.apply_policy, text, f"policy{i}.toml")
        listed: Any = await runtime.list_policy()
        named = {str(row["id"]) for row in listed["tokens"]}
        live = {str(row["id"]) for row in await runtime.list_tokens() if row["status"] == "valid"}
        assert live == named, (live, named)
    finally:
        await runtime.aclose()
