"""Tier 2: a published plugin that needs Node (@robertogongora/graphiti imports fs, os, path,
module; it also has an npm dependency, @sinclair/typebox) becomes a capsule whose MCP server
runs it under Node. The adapter is spoken to with the real MCP SDK client."""

from __future__ import annotations

import json
import shutil
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from mcp import ClientSession
from mcp.client.stdio import StdioServerParameters, stdio_client

from astrid_capsule.manifest import load_manifest
from astrid_openclaw import CompileResult

from .conftest import Upstream

pytestmark = pytest.mark.anyio
Compiled = Callable[[str], CompileResult]
GRAPHITI = "@robertogongora/graphiti@0.6.2"


async def test_graphiti_from_npm_is_tier2_and_says_why(compiled: Compiled) -> None:
    result = compiled(GRAPHITI)
    assert result.tier == "node"
    assert result.reason == "it imports Node built-ins: fs, fs/promises, module, os, path"
    manifest = load_manifest(result.capsule_dir)
    assert manifest.component is None
    [server] = manifest.mcp_server
    assert (server.command, server.args) == ("node", ("plugin/astrid-entry.mjs",))
    config = json.loads(server.env["ASTRID_OPENCLAW_CONFIG"])
    assert config["url"] == "http://localhost:8100"
    # The host of its default server URL (configSchema) is what it asks to reach.
    assert manifest.capabilities.net == ("localhost",)
    # One self-contained file: plugin, its npm dependency and the adapter.
    bundle = (result.capsule_dir / "plugin" / "astrid-entry.mjs").read_text()
    assert "TypeBox" in bundle or "typebox" in bundle.lower()


async def test_the_mcp_adapter_serves_the_plugin_tools(
    compiled: Compiled, upstream: Upstream, tmp_path: Path
) -> None:
    result = compiled(GRAPHITI)
    node = shutil.which("node")
    assert node is not None
    config = {"url": f"http://127.0.0.1:{upstream.port}", "debug": False}
    params = StdioServerParameters(
        command=node,
        args=[str(result.capsule_dir / "plugin" / "astrid-entry.mjs")],
        env={"ASTRID_OPENCLAW_CONFIG": json.dumps(config), "HOME": str(tmp_path)},
        cwd=str(result.capsule_dir),
    )
    async with (
        stdio_client(params, errlog=sys.stderr) as (r, w),
        ClientSession(r, w) as session,
    ):
        await session.initialize()
        tools = {t.name: t for t in (await session.list_tools()).tools}
        assert {"graphiti_search", "graphiti_ingest"} <= set(tools)
        assert tools["graphiti_search"].input_schema["required"] == ["query"]
        answer = await session.call_tool("graphiti_search", {"query": "astrid"})
    assert answer.is_error is False
    [content] = answer.content
    assert content.type == "text"
    assert content.text == "Found 1 facts:\n\n1. **astrid**: astrid is known [ongoing]"
    [request] = [r for r in upstream.requests if r["path"] == "/search"]
    assert json.loads(request["body"]) == {
        "query": "astrid",
        "group_ids": ["core"],
        "max_facts": 10,
    }


@pytest.mark.parametrize(
    ("manifest", "code", "reason"),
    [
        (
            {"id": "chan", "configSchema": {}, "channels": ["chat"]},
            "export default function register(api) {}",
            "its manifest declares channels, which need a Node process",
        ),
        (
            {"id": "prov", "configSchema": {}},
            "export default function register(api) { api.registerProvider({ id: 'p' }); }",
            "it registers provider, which need a Node process",
        ),
        (
            {"id": "throws", "configSchema": {}},
            "export default function register(api) { throw new Error('no WASM for me'); }",
            "register(api) failed in the WASM engine: Error: no WASM for me",
        ),
    ],
)
def test_the_compiler_says_why_it_chose_node(
    toolchain: None,
    tmp_path: Path,
    manifest: dict[str, object],
    code: str,
    reason: str,
) -> None:
    from astrid_openclaw import build_capsule_dir

    source = tmp_path / "plugin"
    source.mkdir()
    (source / "openclaw.plugin.json").write_text(json.dumps(manifest))
    (source / "package.json").write_text(
        json.dumps({"name": "x", "version": "1.0.0", "main": "index.js", "type": "module"})
    )
    (source / "index.js").write_text(code)
    result = build_capsule_dir(str(source), tmp_path / "out")
    assert result.tier == "node"
    assert result.reason.startswith(reason)
    assert not (tmp_path / "out" / "plugin.wasm").exists()
    assert (tmp_path / "out" / "plugin" / "astrid-entry.mjs").is_file()
    assert load_manifest(tmp_path / "out").mcp_server  # the reason, in a comment, keeps it TOML
