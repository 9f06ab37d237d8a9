"""addons/oauth/ (the OAuthServer composite) and client_auth.py's kind = "dev" side, in-process.

Why it exists: what the end-to-end test (tests/e2e/test_dev_signin.py) cannot reach from
outside: tokens signed with the gateway's own key but expired, or for another issuer; the
client's Authorization header stripped even when the token is good; the OAuth endpoints
left alone under kind = "none"; the consent page escaping what a client registered.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from mitmproxy import http

from lockgate.addons._flow import state
from lockgate.addons.client_auth import bearer_token
from tests.addons.conftest import BASE, LISTEN, NOTES_URL, OAuthStack, gateway_section, mcp_flow
from tests.support.gateway import profile_text


def profile(kind: str) -> str:
    routes = {"notes": "notes", "other": "notes"}
    return profile_text({"notes": NOTES_URL}, routes, gateway_section(), kind=kind)


class Env(OAuthStack):
    def send(
        self,
        path: str,
        method: str = "POST",
        headers: dict[str, str] | None = None,
        body: bytes = b"",
    ) -> http.HTTPFlow:
        return self.request_side(mcp_flow(path, body, method, headers, host=LISTEN))


def _env(tmp_path: Path, kind: str) -> Iterator[Env]:
    return Env().started(tmp_path, profile(kind))


@pytest.fixture
def dev(tmp_path: Path) -> Iterator[Env]:
    yield from _env(tmp_path, "dev")


def refused(f: http.HTTPFlow) -> tuple[str, dict[str, object]]:
    assert f.response is not None and f.response.status_code == 401
    assert f.response.headers["content-type"] == "application/json"
    [event] = state(f).events
    assert event["event"] == "auth.token_refused"
    return f.response.headers["www-authenticate"], event


def test_a_good_token_passes_with_its_user_and_the_header_stripped(dev: Env) -> None:
    f = dev.send("/mcp/notes", headers={"authorization": f"Bearer {dev.token()}"})
    assert f.response is None
    assert "authorization" not in f.request.headers
    assert state(f).user == "dev-user" and state(f).client == "lg-test"


def test_an_expired_token_is_refused_as_expired(dev: Env) -> None:
    old = dev.token(now=time.time() - 3600)
    challenge, event = refused(dev.send("/mcp/notes", headers={"authorization": f"Bearer {old}"}))
    assert 'error="invalid_token"' in challenge
    assert event["reason"] == "expired"
    assert old not in json.dumps(event)


@pytest.mark.parametrize(
    ("kw", "reason"),
    [
        ({"route": "other"}, "wrong_audience"),
        ({"issuer": "http://127.0.0.1:9999"}, "wrong_issuer"),
    ],
)
def test_tokens_for_elsewhere_are_refused(dev: Env, kw: dict[str, str], reason: str) -> None:
    token = dev.token(**kw)
    f = dev.send("/mcp/notes", headers={"authorization": f"Bearer {token}"})
    assert "authorization" not in f.request.headers
    _, event = refused(f)
    assert event["reason"] == reason


def test_no_token_gets_the_challenge_without_an_error(dev: Env) -> None:
    challenge, event = refused(dev.send("/mcp/notes"))
    assert challenge == (
        f'Bearer resource_metadata="{BASE}/.well-known/oauth-protected-resource/mcp/notes"'
    )
    assert event["reason"] == "missing"


def test_basic_auth_is_not_a_bearer_token(dev: Env) -> None:
    _, event = refused(dev.send("/mcp/notes", headers={"authorization": "Basic eDp5"}))
    assert event["reason"] == "malformed"
    assert bearer_token("bearer abc") == "abc"
    assert bearer_token("Bearer a b") is None


def test_the_consent_page_escapes_what_the_client_registered(dev: Env) -> None:
    name = '<script>alert("x")</script>'
    r = dev.send(
        "/oauth/register",
        body=json.dumps(
            {"client_name": name, "redirect_uris": ["http://127.0.0.1:5/cb?a=<b>"]}
        ).encode(),
    )
    assert r.response is not None and r.response.status_code == 201, r.response.text
    client_id = json.loads(r.response.content or b"")["client_id"]
    q = (
        f"client_id={client_id}&redirect_uri=http%3A%2F%2F127.0.0.1%3A5%2Fcb%3Fa%3D%3Cb%3E"
        "&response_type=code&code_challenge=" + "A" * 43 + "&code_challenge_method=S256"
        f"&resource={BASE}/mcp/notes&state=s"
    )
    f = dev.send(f"/oauth/authorize?{q}", method="GET")
    assert f.response is not None and f.response.status_code == 200
    page = f.response.text or ""
    assert "<script>" not in page and "&lt;script&gt;" in page
    assert "a=&lt;b&gt;" in page
    assert [e["event"] for e in state(r).events] == ["auth.client_registered"]


def test_kind_none_leaves_oauth_paths_to_the_404(tmp_path: Path) -> None:
    for env in _env(tmp_path, "none"):
        f = env.send("/.well-known/oauth-authorization-server", method="GET")
        assert f.response is not None and f.response.status_code == 404
        f = env.send("/mcp/notes")
        assert f.response is None and state(f).user
