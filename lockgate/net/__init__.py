"""Outbound HTTP under the SSRF rules."""

__all__ = ["oauth_client", "urlcheck"]
