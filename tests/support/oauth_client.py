"""The official mcp SDK client with its OAuth client provider, driven headlessly.

The product's `lockgate.cli.demo.headless_oauth` holds it (`lockgate demo --check` uses it too);
tests import it from here. The provider hands the authorization URL to a "browser": the
test's `sign_in` callable walks it with an HTTP client (provider login form, consent page)
and returns the query parameters of the final redirect to the client's loopback callback.
"""

from __future__ import annotations

import httpx

from lockgate.cli.demo.headless_oauth import (
    CALLBACK_URI,
    MemoryStorage,
    approve_consent,
    hidden_fields,
    signed_in_client,
)

__all__ = [
    "CALLBACK_URI",
    "MemoryStorage",
    "approve",
    "approve_consent",
    "hidden_fields",
    "signed_in_client",
]


def approve(browser: httpx.Client, base: str, page: str) -> httpx.Response:
    """Press Allow on the gateway's consent `page` (from `base`), as the browser it sits in;
    the gateway's redirect itself (not followed: it carries the code for the client)."""
    return browser.post(
        f"{base}/oauth/consent",
        data={**hidden_fields(page), "decision": "approve"},
        headers={"Origin": base},
        follow_redirects=False,
    )
