"""Small building blocks the wings share, with no knowledge of the gateway itself."""

__all__ = ["expiring", "threads"]
