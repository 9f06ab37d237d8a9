"""The official mcp SDK client with its OAuth client provider, driven headlessly.

The provider hands the authorization URL to a "browser": the test's `sign_in` callable walks
it with an HTTP client (provider login form, consent page) and returns the query parameters
of the final redirect to the client's loopback callback.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import httpx2
from mcp import Client
from mcp.client.auth import OAuthClientProvider
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.auth import (
    AuthorizationCodeResult,
    OAuthClientInformationFull,
    OAuthClientMetadata,
    OAuthToken,
)


class MemoryStorage:
    """Token storage of one client run: nothing outlives the test."""

    def __init__(self) -> None:
        self.tokens: OAuthToken | None = None
        self.client_info: OAuthClientInformationFull | None = None

    async def get_tokens(self) -> OAuthToken | None:
        return self.tokens

    async def set_tokens(self, tokens: OAuthToken) -> None:
        self.tokens = tokens

    async def get_client_info(self) -> OAuthClientInformationFull | None:
        return self.client_info

    async def set_client_info(self, client_info: OAuthClientInformationFull) -> None:
        self.client_info = client_info


@asynccontextmanager
async def signed_in_client(
    url: str,
    sign_in: Callable[[str], Awaitable[dict[str, str]]],
    *,
    client_name: str,
    callback_uri: str,
    storage: MemoryStorage | None = None,
) -> AsyncIterator[Client]:
    """An MCP client session on `url` that signs in through `sign_in` when challenged."""
    redirects: list[dict[str, str]] = []

    async def redirect_handler(authorization_url: str) -> None:
        redirects.append(await sign_in(authorization_url))

    async def callback_handler() -> AuthorizationCodeResult:
        params = redirects[-1]
        return AuthorizationCodeResult(
            code=params["code"], state=params.get("state"), iss=params.get("iss")
        )

    provider = OAuthClientProvider(
        server_url=url,
        client_metadata=OAuthClientMetadata(
            client_name=client_name,
            redirect_uris=[callback_uri],  # type: ignore[list-item]
        ),
        storage=storage or MemoryStorage(),
        redirect_handler=redirect_handler,
        callback_handler=callback_handler,
    )
    async with (
        httpx2.AsyncClient(auth=provider, timeout=30) as http,
        Client(streamable_http_client(url, http_client=http), mode="legacy") as client,
    ):
        yield client
