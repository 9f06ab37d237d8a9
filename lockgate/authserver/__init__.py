"""The gateway as the OAuth 2.1 authorization server its MCP clients expect."""

__all__ = [
    "cimd",
    "codes",
    "consent",
    "endpoints",
    "grants",
    "keys",
    "migrations",
    "ratelimit",
    "requests",
    "store",
    "tokens",
]
