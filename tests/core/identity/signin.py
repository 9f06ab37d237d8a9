"""Signing in at the test provider as a user's browser would, for the identity tests."""

from __future__ import annotations

import asyncio

import httpx

from lockgate.identity import cli_login, refresh
from lockgate.identity.provider import Provider
from lockgate.identity.session import IdpSession
from lockgate.profile.model import IdentitySection


async def sign_in_at_provider(browser: httpx.AsyncClient, url: str, sub: str = "alice") -> str:
    """Do what the user does in the browser: the provider's form, then its redirect to our
    loopback listener. Returns the listener's page."""
    form = await browser.get(url)
    assert form.status_code == 200, form.text[:300]
    signed = await browser.post(url, data={"sub": sub})
    assert signed.status_code == 302, signed.text[:300]
    location = signed.headers["location"]
    assert location.startswith("http://127.0.0.1:") and "/callback?" in location
    page = await browser.get(location)
    assert page.status_code == 200
    return page.text


async def browser_login(provider: Provider, client: refresh.IdpClient) -> IdpSession:
    urls: asyncio.Queue[str] = asyncio.Queue()
    task = asyncio.create_task(cli_login.login_browser(provider, client, show=urls.put_nowait))
    url = await asyncio.wait_for(urls.get(), 30)
    async with httpx.AsyncClient() as browser:
        assert "Signed in to lockgate" in await sign_in_at_provider(browser, url)
    return await asyncio.wait_for(task, 30)


def identity_at(issuer: str) -> IdentitySection:
    return IdentitySection(kind="oidc", issuer=issuer, client_id="lockgate-cli")
