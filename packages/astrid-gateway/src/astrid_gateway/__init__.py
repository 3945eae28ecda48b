"""astridd: the Astrid daemon (JSON-RPC 2.0 over WebSocket) and its client library."""

__all__: list[str] = []
