"""The official mcp SDK client with its OAuth client provider, signing in without a browser.

`lockgate demo --check` and the tests need a real MCP client to go through the gateway's own
OAuth flow (discovery from the 401, registration, consent, PKCE, token) with nobody at a
browser. The SDK's provider hands the authorization URL to a "browser": here a callable walks
it with an HTTP client and returns the query parameters of the final redirect to the
client's loopback callback, which nobody needs to listen on.

`approve_consent` is that browser for kind "dev": it opens the consent page and presses
Allow, the way a user would (same-origin form post with the page's CSRF token, and the
HttpOnly consent cookie the page set, kept in its cookie jar like a browser's). ``probe``
sees the filled-in form first, so `demo --check` can show that a process without the
cookie cannot submit it.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from urllib.parse import parse_qs, urlsplit

import httpx
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

# Nothing listens here: the code is read from the redirect's Location header.
CALLBACK_URI = "http://127.0.0.1:9/callback"
_HIDDEN = re.compile(r'<input type="hidden" name="([^"]+)" value="([^"]*)">')


class MemoryStorage:
    """Token storage of one client run: nothing outlives the process."""

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


class ConsentError(Exception):
    """The gateway did not show a consent page or did not redirect back with a code."""


def hidden_fields(page: str) -> dict[str, str]:
    """The consent form's hidden inputs (request id and CSRF token)."""
    return dict(_HIDDEN.findall(page))


def redirect_params(response: httpx.Response, callback_uri: str) -> dict[str, str]:
    """The query parameters of a redirect to ``callback_uri``."""
    location = response.headers.get("location", "")
    if response.status_code != 302 or not location.startswith(callback_uri):
        raise ConsentError(
            f"expected a redirect to {callback_uri}, got HTTP {response.status_code}"
        )
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}


ConsentProbe = Callable[[str, dict[str, str]], Awaitable[None]]


async def approve_consent(
    authorization_url: str, *, callback_uri: str = CALLBACK_URI, probe: ConsentProbe | None = None
) -> dict[str, str]:
    """Open the gateway's authorization URL and press Allow on its consent page (kind "dev",
    or an already signed-in session); returns the redirect's parameters (code, state, iss)."""
    parts = urlsplit(authorization_url)
    origin = f"{parts.scheme}://{parts.netloc}"
    async with httpx.AsyncClient(trust_env=False, timeout=30) as browser:
        page = await browser.get(authorization_url)
        if page.status_code != 200:  # approved before: straight back to the client
            return redirect_params(page, callback_uri)
        fields = hidden_fields(page.text)
        if "request" not in fields or "csrf" not in fields:
            raise ConsentError("the gateway's answer has no consent form")
        if probe is not None:
            await probe(f"{origin}/oauth/consent", {**fields, "decision": "approve"})
        answer = await browser.post(
            f"{origin}/oauth/consent",
            data={**fields, "decision": "approve"},
            headers={"Origin": origin},
        )
        return redirect_params(answer, callback_uri)


@asynccontextmanager
async def signed_in_client(
    url: str,
    sign_in: Callable[[str], Awaitable[dict[str, str]]] = approve_consent,
    *,
    client_name: str,
    callback_uri: str = CALLBACK_URI,
    storage: MemoryStorage | None = None,
    client_metadata_url: str | None = None,
    read_timeout_seconds: float | None = None,
) -> AsyncIterator[Client]:
    """An MCP client session on `url` that signs in through `sign_in` when challenged.

    With ``client_metadata_url`` the SDK identifies itself with that client ID metadata
    document when the gateway supports them, instead of registering.
    """
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
        client_metadata_url=client_metadata_url,
    )
    async with (
        httpx2.AsyncClient(auth=provider, timeout=30) as http,
        Client(
            streamable_http_client(url, http_client=http),
            mode="legacy",
            read_timeout_seconds=read_timeout_seconds,
        ) as client,
    ):
        yield client
