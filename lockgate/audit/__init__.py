"""The audit trail: the keyed log, reading and verifying it, queries and the live view's model."""

__all__ = ["cells", "events", "filter", "log", "query", "read", "redact", "verify", "watch"]
