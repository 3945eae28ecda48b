"""astrid-gateway: the astridd daemon (JSON-RPC 2.0 over WebSocket) and its client library."""

__version__ = "0.1.0"

__all__ = ["__version__"]
