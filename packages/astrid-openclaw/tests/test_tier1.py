"""Tier 1: our own plugins compiled to WASM and run by the real capsule engine (extism), with
the edge cases a JavaScript plugin brings: async results, timers, a promise that never
settles, an infinite loop, a memory hog, randomness after pre-initialization, hosts, paths and
KV it did not declare."""

from __future__ import annotations

import json
import tomllib
from collections.abc import Callable
from pathlib import Path

import pytest

from astrid_capsule.manifest import load_manifest
from astrid_capsule.wasm import WasmLimits
from astrid_core import AstridError, AstridTimeoutError, NetworkRequest
from astrid_openclaw import CompileResult

from .conftest import Denials, RecordingGuard, Upstream, load, tool_export

pytestmark = pytest.mark.anyio
Compiled = Callable[[str], CompileResult]


async def test_kitchen_compiles_to_a_wasm_capsule_with_derived_manifest(
    compiled: Compiled,
) -> None:
    result = compiled("kitchen")
    assert result.tier == "wasm"
    manifest = load_manifest(result.capsule_dir)
    assert manifest.package.name == "kitchen"
    assert manifest.package.version == "1.2.3"
    assert manifest.component is not None
    assert manifest.component.wasi
    # The one host its code names, nothing else; config only because the schema has some.
    assert manifest.capabilities.net == ("example.com",)
    assert manifest.capabilities.config == ("plugin_config",)
    assert manifest.capabilities.fs_read == ()
    assert manifest.capabilities.kv is False
    assert json.loads(manifest.config["plugin_config"]) == {"greeting": "hello", "retries": 2}
    names = [t.name for t in manifest.tool]
    assert names[:2] == ["echo", "web_apis"]
    assert "from_factory" in names
    [echo] = [t for t in manifest.tool if t.name == "echo"]
    assert echo.input_schema == {"type": "object", "properties": {"text": {"type": "string"}}}
    assert [i.event for i in manifest.interceptor] == ["BeforeToolCall", "SessionStart"]
    # What register() logged at build time is shown to the user.
    assert any("kitchen registering" in n for n in result.notes)


async def test_async_tools_timers_and_web_apis(compiled: Compiled, tmp_path: Path) -> None:
    result = compiled("kitchen")
    plugin = load(result, tmp_path, RecordingGuard())
    try:
        out = await plugin.call(tool_export(result, "echo"), json.dumps({"text": "hi"}))
        assert out == b"echo:hi"
        web = json.loads(await plugin.call(tool_export(result, "web_apis"), "{}"))
        assert web == {
            "href": "https://example.com/a/b?x=1&q=a+b%26c#f",
            "search": "a=1&b=x+y",
            "bytes": len("héllo ✓ 𝄞".encode()),
            "back": "héllo ✓ 𝄞",
            "aborted": True,
            "reason": "TimeoutError",
            "order": [1, 2, 2, 3, 2],
            "uuid": 36,
            "envKeys": 0,  # no host environment reaches a plugin
        }
        factory = await plugin.call(tool_export(result, "from_factory"), "{}")
        assert factory == b"factory ok (astrid)"
    finally:
        plugin.close()


async def test_a_throwing_tool_is_an_error_not_a_result(compiled: Compiled, tmp_path: Path) -> None:
    result = compiled("kitchen")
    plugin = load(result, tmp_path, RecordingGuard())
    try:
        with pytest.raises(AstridError, match="kitchen failure on purpose"):
            await plugin.call(tool_export(result, "fails"), "{}")
        # The instance survives its tool's exception.
        assert await plugin.call(tool_export(result, "echo"), '{"text": "again"}') == b"echo:again"
    finally:
        plugin.close()


async def test_a_promise_that_never_settles_fails_at_once(
    compiled: Compiled, tmp_path: Path
) -> None:
    result = compiled("kitchen")
    plugin = load(result, tmp_path, RecordingGuard())
    try:
        with pytest.raises(AstridError, match="never settles"):
            await plugin.call(tool_export(result, "never_settles"), "{}")
    finally:
        plugin.close()


async def test_an_infinite_loop_is_stopped_by_the_time_limit(
    compiled: Compiled, tmp_path: Path
) -> None:
    result = compiled("kitchen")
    plugin = load(result, tmp_path, RecordingGuard(), limits=WasmLimits(timeout_seconds=1.0))
    try:
        with pytest.raises(AstridTimeoutError):
            await plugin.call(tool_export(result, "spin"), "{}")
        # The capsule is replaced after a stopped call and answers again.
        assert await plugin.call(tool_export(result, "echo"), '{"text": "ok"}') == b"echo:ok"
    finally:
        plugin.close()


async def test_a_memory_hog_hits_the_ceiling(compiled: Compiled, tmp_path: Path) -> None:
    result = compiled("kitchen")
    limits = WasmLimits(memory_bytes=32 * 1024 * 1024, timeout_seconds=20.0)
    plugin = load(result, tmp_path, RecordingGuard(), limits=limits)
    try:
        with pytest.raises(AstridError) as caught:
            await plugin.call(tool_export(result, "hog"), "{}")
        assert "memory" in caught.value.message.lower()
    finally:
        plugin.close()


async def test_math_random_is_reseeded_per_instance(compiled: Compiled, tmp_path: Path) -> None:
    result = compiled("kitchen")
    draws: list[dict[str, float]] = []
    for _ in range(2):
        plugin = load(result, tmp_path, RecordingGuard())
        try:
            draws.append(json.loads(await plugin.call(tool_export(result, "random"), "{}")))
        finally:
            plugin.close()
    # The value drawn while loading is frozen in the snapshot (the same in every instance) ...
    assert draws[0]["atLoad"] == draws[1]["atLoad"]
    # ... but each new instance draws its own sequence afterwards.
    assert draws[0]["now"] != draws[1]["now"]


async def test_fetch_reaches_a_declared_host_through_the_guard(
    compiled: Compiled, tmp_path: Path, upstream: Upstream
) -> None:
    result = compiled("kitchen")
    guard = RecordingGuard()
    plugin = load(result, tmp_path, guard, net=("127.0.0.1",), allow_private=True)
    url = f"http://127.0.0.1:{upstream.port}/hello?x=1"
    try:
        out = await plugin.call(tool_export(result, "fetch_url"), json.dumps({"url": url}))
    finally:
        plugin.close()
    assert out.decode() == '200 true {"path": "/hello?x=1"}'
    assert guard.seen == [NetworkRequest(method="GET", url=url)]


@pytest.mark.parametrize(
    ("fn", "request_", "why"),
    [
        ("http_request", {"url": "http://localhost:1/"}, "not in the capsule's declared net hosts"),
        ("read_file", {"path": "secret.txt"}, "declared fs_read"),
        ("read_file", {"path": "/etc/passwd"}, "outside the workspace"),
        ("write_file", {"path": "x.txt", "content": "x"}, "fs_write"),
        ("kv_set", {"key": "k", "value": 1}, "did not declare kv"),
    ],
)
async def test_undeclared_host_path_and_kv_are_refused_and_reported(
    compiled: Compiled, tmp_path: Path, fn: str, request_: dict[str, object], why: str
) -> None:
    (tmp_path / "secret.txt").write_text("top secret")
    result = compiled("kitchen")
    guard = RecordingGuard()
    denials = Denials()
    plugin = load(result, tmp_path, guard, net=("example.com",), denials=denials)
    try:
        raw = await plugin.call(
            tool_export(result, "raw_host"), json.dumps({"fn": fn, "request": request_})
        )
    finally:
        plugin.close()
    reply = json.loads(raw)
    assert reply["ok"] is False
    assert why in reply["error"]
    assert "top secret" not in raw.decode()
    assert guard.seen == []  # refused before any authorization could allow it
    assert [(c, f) for c, f, _ in denials.items] == [("kitchen", fn)]


async def test_fetch_to_an_undeclared_host_fails_in_the_plugin(
    compiled: Compiled, tmp_path: Path, upstream: Upstream
) -> None:
    result = compiled("kitchen")
    denials = Denials()
    plugin = load(result, tmp_path, RecordingGuard(), net=("example.com",), denials=denials)
    url = f"http://127.0.0.1:{upstream.port}/steal"
    try:
        out = await plugin.call(tool_export(result, "fetch_url"), json.dumps({"url": url}))
    finally:
        plugin.close()
    assert out.decode().startswith("fetch error: fetch failed: http_request: host '127.0.0.1'")
    assert upstream.requests == []
    assert [f for _, f, _ in denials.items] == ["http_request"]


async def test_plugin_config_comes_from_the_granted_config(
    compiled: Compiled, tmp_path: Path
) -> None:
    result = compiled("kitchen")
    config = {"plugin_config": json.dumps({"greeting": "salut"})}
    plugin = load(result, tmp_path, RecordingGuard(), config=config)
    try:
        assert json.loads(await plugin.call(tool_export(result, "config"), "{}")) == {
            "greeting": "salut"
        }
    finally:
        plugin.close()


async def test_before_tool_call_hook_can_deny(compiled: Compiled, tmp_path: Path) -> None:
    result = compiled("kitchen")
    plugin = load(result, tmp_path, RecordingGuard())
    event = {"event": "BeforeToolCall", "tool": "capsule__kitchen__echo", "session_id": "s"}
    try:
        deny = await plugin.call(
            "hook_BeforeToolCall", json.dumps({**event, "arguments": {"text": "forbidden"}})
        )
        allow = await plugin.call(
            "hook_BeforeToolCall", json.dumps({**event, "arguments": {"text": "fine"}})
        )
    finally:
        plugin.close()
    assert json.loads(deny) == {"decision": "deny", "reason": "kitchen says no"}
    assert json.loads(allow) == {}


async def test_legacy_forms_register_tools(compiled: Compiled, tmp_path: Path) -> None:
    result = compiled("legacy")
    assert result.tier == "wasm"
    assert [t["name"] for t in result.tools] == ["shout", "old_handler", "pair_a", "pair_b"]
    plugin = load(result, tmp_path, RecordingGuard())
    try:
        assert await plugin.call(tool_export(result, "shout"), '{"text": "hey"}') == b"HEY"
        assert await plugin.call(tool_export(result, "old_handler"), '{"n": 4}') == b"handled 4"
        assert await plugin.call(tool_export(result, "pair_a"), "{}") == b"A"
        assert await plugin.call(tool_export(result, "pair_b"), "{}") == b"[image: image/png]"
    finally:
        plugin.close()


async def test_commonjs_activate_form(compiled: Compiled, tmp_path: Path) -> None:
    result = compiled("activate")
    assert result.plugin.id == "activate-form"
    manifest = tomllib.loads((result.capsule_dir / "Capsule.toml").read_text())
    assert manifest["capabilities"] == {"net": []}  # no host named, no config schema
    plugin = load(result, tmp_path, RecordingGuard())
    try:
        assert await plugin.call(tool_export(result, "ping"), "{}") == b"pong"
    finally:
        plugin.close()


async def test_a_plugin_with_an_npm_dependency_bundles_it(
    compiled: Compiled, tmp_path: Path
) -> None:
    result = compiled("typed")
    assert result.tier == "wasm"
    [calc] = result.tools
    # TypeBox's schema, as JSON Schema (its Symbol keys are not part of it).
    assert calc["parameters"]["required"] == ["a", "b"]
    assert calc["parameters"]["properties"]["op"]["anyOf"] == [
        {"const": "add", "type": "string"},
        {"const": "mul", "type": "string"},
    ]
    plugin = load(result, tmp_path, RecordingGuard())
    try:
        assert await plugin.call("tool_0", '{"a": 6, "b": 7, "op": "mul"}') == b"42"
        with pytest.raises(AstridError, match="invalid parameters"):
            await plugin.call("tool_0", '{"a": "six"}')
    finally:
        plugin.close()
