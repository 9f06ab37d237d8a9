"""The wire: JSON-RPC, SSE, resource URIs and MCP session ownership."""

__all__ = ["jsonrpc", "sessions", "sse", "uris"]
