"""The gateway's own OAuth server, driven over plain HTTP as a client and its browser would.

Why it exists: the sign-in tests (dev and OIDC identity, consent, CIMD, refresh, sessions,
CORS...) all register a client, build an authorization URL with PKCE, read the code from the
redirect to a loopback callback nobody listens on, and exchange it. `dev_gateway()` starts the
`kind = "dev"` gateway most of them sign in to. The signing key lives in memory
(`LOCKGATE_SIGNING_KEY_SOURCE=memory`, test-only): the gateway's keyring path is covered by
tests/core/authserver/test_tokens.py.
"""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
from collections.abc import Awaitable, Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx

from tests.support.demo_mcp import DEMO_TOOLS, text_of
from tests.support.gateway import GatewayStack, profile_text, running_gateway
from tests.support.mcp_http import initialize_request
from tests.support.oauth_client import MemoryStorage, approve, signed_in_client
from tests.support.oidc_mock import OidcStack
from tests.support.recorder import Recorder, recording_upstream
from tests.support.upstreams import sdk_upstream

CALLBACK = "http://127.0.0.1:9/callback"  # nothing listens: the test reads the redirect
ENV = {"LOCKGATE_SIGNING_KEY_SOURCE": "memory"}


@dataclass
class DevStack(GatewayStack):
    recorder: Recorder


@contextmanager
def dev_gateway(tmp: Path, *, notes: bool = False) -> Iterator[DevStack]:
    """A `kind = "dev"` gateway (signing key in memory): route `rec` to a recording upstream
    and, with `notes`, route `notes` (listed first) to the demo upstream."""
    with ExitStack() as es:
        upstreams = {"notes": es.enter_context(sdk_upstream())} if notes else {}
        recorder = es.enter_context(recording_upstream())
        upstreams["rec"] = recorder.url
        profile = profile_text(upstreams, {name: name for name in upstreams}, kind="dev")
        gw = es.enter_context(running_gateway(profile, tmp, env=ENV))
        yield DevStack(gw, recorder)


async def read_notes_signed_in(
    url: str,
    open_browser: Callable[[str], Awaitable[dict[str, str]]],
    *,
    client_name: str,
    storage: MemoryStorage,
) -> None:
    """The SDK client signs in to route `url` through `open_browser` (which returns the
    callback's query), then lists the demo tools and reads note 1."""
    async with signed_in_client(
        url, open_browser, client_name=client_name, callback_uri=CALLBACK, storage=storage
    ) as client:
        tools = await client.list_tools()
        assert {t.name for t in tools.tools} == DEMO_TOOLS
        result = await client.call_tool("get_note", {"id": "1"})
        assert not result.is_error and text_of(result)


# --- a headless browser and client, over plain HTTP ---------------------------------------


def hidden_fields(page: str) -> dict[str, str]:
    return dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)">', page))


def pkce() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    digest = hashlib.sha256(verifier.encode()).digest()
    return verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def register(base: str, redirect_uris: list[str] | None = None, name: str = "raw client") -> str:
    r = httpx.post(
        f"{base}/oauth/register",
        json={"client_name": name, "redirect_uris": redirect_uris or [CALLBACK]},
    )
    assert r.status_code == 201, r.text
    return str(r.json()["client_id"])


def authorize_url(base: str, client_id: str, resource: str, challenge: str, **extra: str) -> str:
    params = {
        "response_type": "code",
        "client_id": client_id,
        "redirect_uri": CALLBACK,
        "state": "st-1",
        "code_challenge": challenge,
        "code_challenge_method": "S256",
        "resource": resource,
        **extra,
    }
    return f"{base}/oauth/authorize?{urlencode(params)}"


def redirect_params(resp: httpx.Response) -> dict[str, str]:
    assert resp.status_code == 302, (resp.status_code, resp.text[:300])
    location = resp.headers["location"]
    assert location.startswith(CALLBACK + "?")
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}


def get_code(base: str, client_id: str, resource: str, challenge: str) -> str:
    """Authorize as the local user; approve the consent page if one is shown."""
    with httpx.Client() as browser:
        r = browser.get(authorize_url(base, client_id, resource, challenge))
        if r.status_code == 200:
            r = approve(browser, base, r.text)
        params = redirect_params(r)
    assert params["state"] == "st-1" and params["iss"] == base
    return params["code"]


def exchange(base: str, client_id: str, code: str, verifier: str, resource: str) -> httpx.Response:
    return httpx.post(
        f"{base}/oauth/token",
        data={
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": CALLBACK,
            "client_id": client_id,
            "code_verifier": verifier,
            "resource": resource,
        },
    )


def refresh(base: str, client_id: str, token: str) -> httpx.Response:
    return httpx.post(
        f"{base}/oauth/token",
        data={"grant_type": "refresh_token", "refresh_token": token, "client_id": client_id},
    )


def sign_in(stack: GatewayStack, route: str) -> dict[str, Any]:
    """A whole raw flow for one route: register, consent, exchange; the token response."""
    client_id = register(stack.base)
    verifier, challenge = pkce()
    resource = stack.gw.route_url(route)
    code = get_code(stack.base, client_id, resource, challenge)
    r = exchange(stack.base, client_id, code, verifier, resource)
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    body["client_id"] = client_id
    return body


def mcp_post(url: str, token: str | None) -> httpx.Response:
    """An initialize request to `url`, with `token` as the bearer when given."""
    headers = {"Accept": "application/json, text/event-stream"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    return httpx.post(url, json=initialize_request(client="raw"), headers=headers)


def sync_sign_in(stack: OidcStack, route: str, sub: str, scope: str = "") -> str:
    """A raw flow for one route as `sub`: register, provider, consent, exchange; the token."""
    client_id = register(stack.base)
    verifier, challenge = pkce()
    resource = stack.gw.route_url(route)
    extra = {"scope": scope} if scope else {}
    with httpx.Client() as browser:
        r = browser.get(authorize_url(stack.base, client_id, resource, challenge, **extra))
        assert r.status_code == 302 and r.headers["location"].startswith(stack.issuer)
        r = stack.mock.login(browser, r.headers["location"], sub)
        r = browser.get(r.headers["location"])
        assert r.status_code == 200 and "/oauth/consent" in r.text, r.text[:300]
        code = redirect_params(approve(browser, stack.base, r.text))["code"]
    token = exchange(stack.base, client_id, code, verifier, resource)
    assert token.status_code == 200, token.text
    return str(token.json()["access_token"])
