"""Setting up MCP client applications to use the gateway."""

__all__ = ["install", "jsonc", "merge", "registry"]
