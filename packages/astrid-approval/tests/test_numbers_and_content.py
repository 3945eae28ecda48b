"""Any JSON value gets a decision and an audit entry (floats included), caveats compare
numbers by value, and a file's content is part of the action: through the real interceptor
and audit log, on memory and SurrealDB embedded storage."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from astrid_approval import SecurityInterceptor, SecurityPolicy
from astrid_audit import OutcomeKind, verify_storage
from astrid_audit._log import NS_ENTRY
from astrid_capabilities import ArgIn, CapabilityToken, ResourcePattern
from astrid_core import (
    ApprovalOption,
    AuditEntryId,
    FileWrite,
    JsonObject,
    McpToolCall,
    ProofKind,
    ShellCommand,
)
from astrid_core.storage import MemoryStorage, Storage, open_storage
from astrid_crypto import KeyPair, content_hash

from .conftest import ScriptedFrontend, make_interceptor

pytestmark = pytest.mark.anyio


@pytest.fixture(params=["memory", "surrealkv"])
async def storage(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Storage]:
    store: Storage = (
        MemoryStorage()
        if request.param == "memory"
        else await open_storage(f"surrealkv://{tmp_path / 'db'}")
    )
    yield store
    await store.aclose()


async def _entries_for(guard: SecurityInterceptor, entry_id: AuditEntryId | None) -> Any:
    assert entry_id is not None
    entry = await guard.audit.get(entry_id)
    assert entry is not None
    return entry


async def test_an_mcp_call_with_floats_gets_a_decision_and_a_verifiable_entry(
    storage: Storage, workspace: Path
) -> None:
    key = KeyPair.generate()
    handler = ScriptedFrontend(then=ApprovalOption.ALLOW_ONCE)
    guard = await make_interceptor(storage, key, workspace, handler=handler)
    call = McpToolCall(
        server="bank", tool="pay", args={"amount": 98.7, "fee": 0.25, "n": [1e-7, -0.0, 1e21]}
    )
    result = await guard.intercept(call, "pay the invoice")  # raised BadInputError before
    assert result.allowed
    assert len(handler.asked) == 1
    entry = await _entries_for(guard, result.audit_entry_id)
    assert entry.v == 2
    assert entry.action["args"]["amount"] == 98.7
    report = await verify_storage(storage, [key.public_key])
    assert report.entries == len(await guard.audit.entries()) >= 2


async def test_a_float_caveat_matches_by_value(storage: Storage, workspace: Path) -> None:
    key = KeyPair.generate()
    handler = ScriptedFrontend(then=ApprovalOption.DENY)
    guard = await make_interceptor(storage, key, workspace, handler=handler)
    token = CapabilityToken.issue(
        key,
        ResourcePattern.literal("mcp://bank/pay"),
        ["invoke"],
        scope="persistent",
        approval_audit_id=AuditEntryId.new(),
        caveats=(ArgIn("amount", (98.7,)),),
    )
    await guard.capabilities.add(token)
    for amount in (98.7, 98.70, json.loads("98.700")):
        result = await guard.intercept(
            McpToolCall(server="bank", tool="pay", args={"amount": amount}), "pay"
        )
        assert result.allowed, result.authorization.reason
        assert result.authorization.proof is not None
        assert result.authorization.proof.kind is ProofKind.CAPABILITY
    assert handler.asked == []
    for other in (98.71, True, "98.7"):
        result = await guard.intercept(
            McpToolCall(server="bank", tool="pay", args={"amount": other}), "pay"
        )
        assert not result.allowed  # the grant's caveat refuses it: denied, nobody asked
        assert "caveat arg_in" in result.authorization.reason
    assert handler.asked == []
    unsignable = await guard.intercept(
        McpToolCall(server="bank", tool="pay", args={"amount": 2**53 + 1}), "pay"
    )
    assert not unsignable.allowed  # no double holds it: denied by policy, nobody asked
    assert "cannot be signed" in unsignable.authorization.reason
    assert handler.asked == []
    assert (await verify_storage(storage, [key.public_key])).entries == len(
        await guard.audit.entries()
    )


async def test_unsignable_arguments_are_denied_and_recorded_by_digest(
    storage: Storage, workspace: Path
) -> None:
    key = KeyPair.generate()
    guard = await make_interceptor(
        storage, key, workspace, handler=ScriptedFrontend(then=ApprovalOption.ALLOW_ALWAYS)
    )
    cases: list[JsonObject] = [{"id": 2**53 + 1}, {"x": float("nan")}, {"x": [float("inf")]}]
    for args in cases:
        result = await guard.intercept(McpToolCall(server="s", tool="t", args=args), "call")
        assert not result.allowed
        assert "cannot be signed" in result.authorization.reason
        entry = await _entries_for(guard, result.audit_entry_id)
        assert entry.outcome.kind is OutcomeKind.POLICY_BLOCKED
        assert set(entry.action) == {"kind", "elided"}
    assert (await verify_storage(storage, [key.public_key])).entries == 3


async def test_denied_oversize_actions_are_recorded_by_hash_and_prefix(
    storage: Storage, workspace: Path
) -> None:
    key = KeyPair.generate()
    guard = await make_interceptor(
        storage, key, workspace, handler=ScriptedFrontend(then=ApprovalOption.ALLOW_ALWAYS)
    )
    big = McpToolCall(server="s", tool="t", args={"text": "A" * 1_100_000})
    result = await guard.intercept(big, "call")
    assert not result.allowed
    assert "over the 1048576-byte limit" in result.authorization.reason
    entry = await _entries_for(guard, result.audit_entry_id)
    elided = entry.action["elided"]
    assert elided["bytes"] > 1_100_000
    assert len(elided["prefix"]) == 4096

    # A bash line over the limit (a smaller one: the shell parser's cost grows with length).
    small_limit = await make_interceptor(
        storage,
        key,
        workspace,
        handler=ScriptedFrontend(then=ApprovalOption.ALLOW_ALWAYS),
        policy=SecurityPolicy(home=str(workspace.parent / "home"), max_argument_bytes=100_000),
    )
    line = "echo " + "B" * 120_000
    denied = await small_limit.intercept(ShellCommand(command=line, cwd=str(workspace)), "run")
    assert not denied.allowed
    entry = await _entries_for(small_limit, denied.audit_entry_id)
    assert (
        entry.action["elided"]["blake3"]
        == content_hash(
            json.dumps(
                {"command": line, "cwd": str(workspace), "kind": "shell_command"},
                separators=(",", ":"),
                ensure_ascii=False,
            ).encode()
        ).hex
    )
    stored = sum(len(json.dumps(raw)) for _, raw in await storage.scan(NS_ENTRY))
    assert stored < 50_000  # neither the arguments nor the line in full
    assert (await verify_storage(storage, [key.public_key])).entries >= 2


async def test_write_content_counts_toward_the_limit_and_is_recorded_by_hash(
    storage: Storage, workspace: Path
) -> None:
    key = KeyPair.generate()
    guard = await make_interceptor(
        storage, key, workspace, handler=ScriptedFrontend(then=ApprovalOption.ALLOW_ONCE)
    )
    target = str(workspace / "src" / "big.txt")
    big = b"x" * (2 * 1024 * 1024)
    denied = await guard.intercept(
        FileWrite(path=target, content_bytes=len(big), content_blake3=content_hash(big).hex),
        "write",
    )
    assert not denied.allowed  # before: the 1 MiB limit saw only the path
    assert "arguments and content are" in denied.authorization.reason

    small = "héllo\n".encode()
    digest = content_hash(small).hex
    allowed = await guard.intercept(
        FileWrite(path=target, content_bytes=len(small), content_blake3=digest), "write"
    )
    assert allowed.allowed
    entry = await _entries_for(guard, allowed.audit_entry_id)
    assert entry.action["content_bytes"] == len(small)
    assert entry.action["content_blake3"] == digest
    assert "héllo" not in json.dumps(entry.action, ensure_ascii=False)
    assert (await verify_storage(storage, [key.public_key])).entries >= 3
