"""What a route shows, and to whom."""

__all__ = ["access", "gateway", "routes", "view"]
