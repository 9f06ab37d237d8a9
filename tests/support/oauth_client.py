"""The official mcp SDK client with its OAuth client provider, driven headlessly.

The product's `lockgate.cli.headless_oauth` holds it (`lockgate demo --check` uses it too);
tests import it from here. The provider hands the authorization URL to a "browser": the
test's `sign_in` callable walks it with an HTTP client (provider login form, consent page)
and returns the query parameters of the final redirect to the client's loopback callback.
"""

from __future__ import annotations

from lockgate.cli.headless_oauth import (
    CALLBACK_URI,
    MemoryStorage,
    approve_consent,
    hidden_fields,
    signed_in_client,
)

__all__ = ["CALLBACK_URI", "MemoryStorage", "approve_consent", "hidden_fields", "signed_in_client"]
