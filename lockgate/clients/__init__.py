"""Setting up MCP client applications to use the gateway."""

__all__ = ["registry"]
