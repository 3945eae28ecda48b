"""Manifest-first Astrid extensions: WASM (extism), MCP and static engines."""

__all__: list[str] = []
