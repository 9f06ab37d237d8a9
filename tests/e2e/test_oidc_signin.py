"""`[identity] kind = "oidc"`: sign-in through a real OpenID Connect provider, end to end.

Why it exists: with kind "oidc" the gateway's `/oauth/authorize` must send the browser
through the company's provider (code flow, PKCE, state, nonce), validate the ID token at
`/oauth/callback`, and issue gateway tokens that carry the provider's sub, email and groups,
so that `access.groups` on a route admits exactly the users whose groups intersect. The
provider is `oidc-provider-mock` started as a process; its sign-in form is submitted with
`sub=alice`, as a headless browser would. The `mcp` SDK client does the whole dance.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack
from typing import Any

import httpx
import pytest

from lockgate.audit.verify import verify
from tests.support.gateway import profile_text, running_gateway
from tests.support.oauth import (
    ENV,
    authorize_url,
    exchange,
    mcp_post,
    pkce,
    read_notes_signed_in,
    redirect_params,
    register,
)
from tests.support.oauth_client import MemoryStorage
from tests.support.oidc_mock import OidcMock, OidcStack, oidc_identity, oidc_mock
from tests.support.upstreams import sdk_upstream

ALICE = {"sub": "alice", "email": "a@example.com", "groups": ["eng"]}


Stack = OidcStack


@pytest.fixture(scope="module")
def provider() -> Iterator[str]:
    """The provider with alice; its issuer URL (tests/core/ops/test_doctor.py uses it too)."""
    with oidc_mock(ALICE) as mock:
        yield mock.issuer


@pytest.fixture(scope="module")
def stack(provider: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with ExitStack() as es:
        notes = es.enter_context(sdk_upstream())
        routes = {
            "notes": "notes",
            "eng": ["notes", 'access.groups = ["eng"]'],
            "fin": ["notes", 'access.groups = ["finance"]'],
        }
        profile = profile_text({"notes": notes}, routes, identity=oidc_identity(provider))
        gw = es.enter_context(
            running_gateway(profile, tmp_path_factory.mktemp("oidc-signin"), env=ENV)
        )
        yield Stack(gw, OidcMock(provider))


async def browse(
    browser: httpx.AsyncClient, stack: Stack, authorization_url: str
) -> tuple[httpx.Response, list[str]]:
    """Follow the sign-in as a browser would, as alice at the provider; returns the answer
    that goes to the client's redirect URI and the hosts visited."""
    visited: list[str] = []
    r = await stack.mock.browse(browser, stack.base, authorization_url, "alice", visited)
    return r, visited


@pytest.mark.anyio
async def test_the_sdk_client_signs_in_through_the_provider_and_calls_tools(
    stack: Stack,
) -> None:
    url = stack.gw.route_url("eng")
    visits: list[list[str]] = []
    redirects: list[dict[str, str]] = []
    storage = MemoryStorage()

    async with httpx.AsyncClient() as browser:

        async def open_browser(authorization_url: str) -> dict[str, str]:
            answer, visited = await browse(browser, stack, authorization_url)
            visits.append(visited)
            redirects.append(redirect_params(answer))
            return redirects[-1]

        await read_notes_signed_in(
            url, open_browser, client_name="SDK oidc client", storage=storage
        )

        # The browser went through the provider, and the gateway set its session cookie.
        [visited] = visits
        assert any(v.startswith(stack.issuer) for v in visited)
        assert any(c.name == "lockgate_session" for c in browser.cookies.jar)

        # A second sign-in in the same browser session skips the provider.
        client_id = register(stack.base)
        verifier, challenge = pkce()
        resource = stack.gw.route_url("fin")
        answer, visited = await browse(
            browser, stack, authorize_url(stack.base, client_id, resource, challenge)
        )
        assert not any(v.startswith(stack.issuer) for v in visited)
        code = redirect_params(answer)["code"]

    # The token carries alice's groups: "eng" is admitted above, "finance" is refused.
    r = exchange(stack.base, client_id, code, verifier, resource)
    assert r.status_code == 200, r.text
    tokens: dict[str, Any] = r.json()
    refused = mcp_post(resource, tokens["access_token"])
    assert refused.status_code == 403, refused.text
    assert "alice" in refused.json()["error"]["message"]

    # A refreshed token keeps the provider's groups: still admitted on "eng".
    assert storage.tokens is not None and storage.tokens.refresh_token
    assert storage.client_info is not None
    again = httpx.post(
        f"{stack.base}/oauth/token",
        data={
            "grant_type": "refresh_token",
            "refresh_token": storage.tokens.refresh_token,
            "client_id": storage.client_info.client_id,
        },
    )
    assert again.status_code == 200, again.text
    assert mcp_post(url, again.json()["access_token"]).status_code == 200

    events = stack.gw.wait_for_events(
        lambda evs: any(e.get("event") == "tool.call" and e.get("route") == "eng" for e in evs)
    )
    login = [e for e in events if e["event"] == "auth.login"]
    assert login and login[0]["user"] == "alice" and login[0]["outcome"] == "success"
    call = next(e for e in events if e["event"] == "tool.call" and e.get("route") == "eng")
    assert call["user"] == "alice" and call["outcome"] == "success"
    text = stack.gw.audit_path.read_text()
    assert storage.tokens is not None and storage.tokens.access_token not in text
    assert redirects[-1]["code"] not in text
    assert verify(stack.gw.audit_path).ok


def test_a_callback_with_an_unknown_state_is_refused(stack: Stack) -> None:
    r = httpx.get(f"{stack.base}/oauth/callback?state=forged&code=anything")
    assert r.status_code == 400
    assert "unknown, already finished or expired" in r.text
    assert "set-cookie" not in r.headers


def test_a_state_is_single_use(stack: Stack) -> None:
    client_id = register(stack.base)
    resource = stack.gw.route_url("notes")
    with httpx.Client() as browser:
        r = browser.get(authorize_url(stack.base, client_id, resource, pkce()[1]))
        assert r.status_code == 302 and r.headers["location"].startswith(stack.issuer)
        signed = stack.mock.login(browser, r.headers["location"], "alice")
        callback = signed.headers["location"]
        assert callback.startswith(f"{stack.base}/oauth/callback?")
        first = browser.get(callback)
        assert first.status_code == 200 and "/oauth/consent" in first.text
        second = browser.get(callback)
        assert second.status_code == 400


def test_a_callback_in_another_browser_is_refused(stack: Stack) -> None:
    """Login CSRF: a callback URL the attacker got from their own sign-in is no good in the
    victim's browser, which lacks the login cookie set with the redirect to the provider."""
    client_id = register(stack.base)
    with httpx.Client() as attacker:
        r = attacker.get(
            authorize_url(stack.base, client_id, stack.gw.route_url("notes"), pkce()[1])
        )
        assert "lockgate_login=" in r.headers["set-cookie"]
        assert "HttpOnly" in r.headers["set-cookie"]
        callback = stack.mock.login(attacker, r.headers["location"], "alice").headers["location"]
    with httpx.Client() as victim:
        refused = victim.get(callback)
    assert refused.status_code == 400
    assert "set-cookie" not in refused.headers


def test_the_provider_redirect_carries_pkce_state_and_nonce(stack: Stack) -> None:
    client_id = register(stack.base)
    r = httpx.get(authorize_url(stack.base, client_id, stack.gw.route_url("notes"), pkce()[1]))
    assert r.status_code == 302
    from urllib.parse import parse_qs, urlsplit

    q = {k: v[0] for k, v in parse_qs(urlsplit(r.headers["location"]).query).items()}
    assert q["code_challenge_method"] == "S256" and len(q["code_challenge"]) == 43
    assert q["state"] and q["nonce"] and q["client_id"] == "lockgate-test"
    assert q["redirect_uri"] == f"{stack.base}/oauth/callback"
    assert q["response_type"] == "code" and "openid" in q["scope"].split()


def test_an_unregistered_redirect_uri_never_reaches_the_provider(stack: Stack) -> None:
    client_id = register(stack.base)
    r = httpx.get(
        authorize_url(
            stack.base,
            client_id,
            stack.gw.route_url("notes"),
            pkce()[1],
            redirect_uri="http://127.0.0.1:9/elsewhere",
        )
    )
    assert r.status_code == 400
    assert "location" not in r.headers
