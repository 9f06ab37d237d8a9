"""The gateway toward upstreams: discovery, OAuth, stored credentials and their state."""

__all__ = ["connect", "discovery", "oauth", "registration", "state", "tokens"]
