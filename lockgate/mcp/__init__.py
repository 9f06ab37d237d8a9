"""The wire: JSON-RPC, SSE, resource URIs and MCP session ownership."""

__all__ = ["exchange", "jsonrpc", "sessions", "sse", "uris"]
