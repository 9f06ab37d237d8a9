"""What IT writes: the profile's data model and the MCP Registry shape."""

__all__ = ["model", "registry"]
