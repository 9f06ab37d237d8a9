"""Fixtures every tests/core module may use: one definition each, in tests/support/doubles.py."""

from tests.support.doubles import anyio_backend, new_upstream, no_keyring, oidc_issuer, upstream

__all__ = ["anyio_backend", "new_upstream", "no_keyring", "oidc_issuer", "upstream"]
