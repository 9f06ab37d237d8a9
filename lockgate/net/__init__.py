"""Outbound HTTP under the SSRF rules."""

__all__ = ["fetch", "oauth_client", "tls", "urlcheck"]
