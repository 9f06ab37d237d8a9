"""Dynamic client registration hardening, over real HTTP against a real gateway.

Why it exists: `/oauth/register` writes a database row per call and is open to anything that
can reach the gateway, so it is rate limited per client address (429, Retry-After, a JSON
OAuth error, an audit event). Native MCP clients (VS Code, Cursor, Claude) register
redirect URIs with their own schemes (RFC 8252 section 7.1): those are accepted, the consent
page tells the user which app the answer goes to, and the code goes there; schemes a browser
would run stay refused.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from lockgate.authserver.ratelimit import REGISTRATIONS_PER_WINDOW
from tests.support.gateway import GatewayProcess, profile_text, running_gateway
from tests.support.oauth import authorize_url, pkce
from tests.support.oauth_client import approve
from tests.support.upstreams import sdk_upstream

ENV = {"LOCKGATE_SIGNING_KEY_SOURCE": "memory"}
VSCODE = "vscode://vscode.github-authentication/did-authenticate"


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProcess]:
    with ExitStack() as es:
        notes = es.enter_context(sdk_upstream())
        profile = profile_text({"notes": notes}, {"notes": "notes"}, kind="dev")
        yield es.enter_context(
            running_gateway(profile, tmp_path_factory.mktemp("register"), env=ENV)
        )


def register(gw: GatewayProcess, uris: list[str]) -> httpx.Response:
    return httpx.post(
        f"{gw.base_url}/oauth/register", json={"client_name": "Editor", "redirect_uris": uris}
    )


def test_native_app_scheme_is_accepted_and_shown_on_the_consent_page(gw: GatewayProcess) -> None:
    r = register(gw, [VSCODE])
    assert r.status_code == 201, r.text
    client_id = r.json()["client_id"]
    verifier, challenge = pkce()
    url = authorize_url(
        gw.base_url, client_id, gw.route_url("notes"), challenge, redirect_uri=VSCODE, state="s1"
    )
    with httpx.Client() as browser:
        page = browser.get(url)
        assert page.status_code == 200, page.text
        assert "Opens the app registered for &quot;vscode:&quot;" in page.text
        answer = approve(browser, gw.base_url, page.text)
    assert answer.status_code == 302
    location = answer.headers["location"]
    assert location.startswith(VSCODE + "?")
    code = parse_qs(urlsplit(location).query)["code"][0]
    token = httpx.post(
        f"{gw.base_url}/oauth/token",
        data={
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": VSCODE,
            "client_id": client_id,
            "code_verifier": verifier,
            "resource": gw.route_url("notes"),
        },
    )
    assert token.status_code == 200 and token.json()["token_type"] == "Bearer"


@pytest.mark.parametrize(
    "uri",
    ["javascript:alert(1)", "data:text/html,hi", "file:///etc/passwd", "http://evil.example/cb"],
)
def test_dangerous_redirect_uris_stay_refused(gw: GatewayProcess, uri: str) -> None:
    r = register(gw, [uri])
    assert r.status_code == 400 and r.json()["error"] == "invalid_redirect_uri"


def test_registration_is_rate_limited_per_address(gw: GatewayProcess) -> None:
    # Earlier tests in this module registered too: count what is left of the window.
    statuses = [
        register(gw, ["http://127.0.0.1:9/cb"]).status_code
        for _ in range(REGISTRATIONS_PER_WINDOW + 1)
    ]
    assert 429 in statuses
    first = statuses.index(429)
    assert all(s in (201, 400) for s in statuses[:first]), statuses
    limited = register(gw, ["http://127.0.0.1:9/cb"])
    assert limited.status_code == 429
    assert 1 <= int(limited.headers["retry-after"]) <= 60
    assert limited.json()["error"] == "temporarily_unavailable"
    assert "Too many client registrations" in limited.json()["error_description"]
    events = gw.wait_for_events(lambda evs: any(e.get("reason") == "rate_limited" for e in evs))
    refused = [e for e in events if e.get("reason") == "rate_limited"]
    assert refused and refused[0]["event"] == "auth.client_registered"
    assert refused[0]["outcome"] == "denied"
