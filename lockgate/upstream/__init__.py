"""The gateway toward upstreams: discovery, OAuth, stored credentials and their state."""

__all__ = [
    "catalog",
    "connect",
    "credentials",
    "discovery",
    "oauth",
    "registration",
    "secrets",
    "state",
    "tokens",
]
