"""Who the user is: the company's OIDC provider, browser sign-in and the CLI session."""

__all__ = ["browser", "claims", "cli_login", "provider", "refresh", "session"]
