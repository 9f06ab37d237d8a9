"""What a route shows, and to whom."""

__all__ = ["access", "routes", "view"]
