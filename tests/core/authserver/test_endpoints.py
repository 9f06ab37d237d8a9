"""lockgate/authserver/endpoints.py and grants.py without mitmproxy: the authorization server's
decisions, from an authorization request to the tokens a code is redeemed for.

Why it exists: these decisions (which requests go back refused to the redirect URI, which
grant a token request gets) used to live in the OAuth addons and could only be reached
through a flow; here they are called directly, on a real store in a temporary folder.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from lockgate.authserver.codes import pkce_s256
from lockgate.authserver.endpoints import AuthServer, RedirectRefusal
from lockgate.authserver.grants import TokenGrants
from lockgate.authserver.keys import SigningKey
from lockgate.authserver.requests import OAuthError
from lockgate.authserver.store import Store
from lockgate.authserver.tokens import verify_access_token
from lockgate.policy.gateway import GatewayConfig
from lockgate.profile.model import parse_profile

PROFILE = """
[identity]
kind = "dev"

[upstreams.notes]
url = "http://127.0.0.1:9001/mcp"

[routes.notes]
upstream = "notes"

[routes.scoped]
upstream = "notes"
access.scopes = ["notes.read"]
"""
REDIRECT = "http://127.0.0.1:9/cb"


@pytest.fixture
def auth(tmp_path: Path) -> Iterator[AuthServer]:
    config = GatewayConfig()
    config.use(parse_profile(PROFILE))
    server = AuthServer(config)
    server._key = SigningKey.generate()
    server._store = Store.open(tmp_path / "oauth.db")
    yield server
    server.close()


def register(auth: AuthServer) -> str:
    client = auth.store().register_client(
        redirect_uris=(REDIRECT,),
        client_name="test",
        grant_types=("authorization_code", "refresh_token"),
        token_endpoint_auth_method="none",
        metadata={},
    )
    return client.client_id


def params(auth: AuthServer, client_id: str, verifier: str, **over: str) -> dict[str, str]:
    return {
        "client_id": client_id,
        "redirect_uri": REDIRECT,
        "response_type": "code",
        "code_challenge": pkce_s256(verifier),
        "code_challenge_method": "S256",
        "resource": auth.config.route_url("notes"),
        "state": "st",
    } | over


def test_an_unknown_client_or_redirect_is_refused_before_any_redirect(auth: AuthServer) -> None:
    client_id = register(auth)
    verifier = secrets.token_urlsafe(40)
    with pytest.raises(OAuthError) as e:
        auth.authorization_request(params(auth, "lg-nobody", verifier))
    assert e.value.error == "invalid_client"
    with pytest.raises(OAuthError):
        auth.authorization_request(params(auth, client_id, verifier, redirect_uri="http://x/"))


@pytest.mark.parametrize(
    ("over", "error"),
    [
        ({"response_type": "token"}, "unsupported_response_type"),
        ({"code_challenge_method": "plain"}, "invalid_request"),
        ({"resource": "http://elsewhere/mcp/notes"}, "invalid_target"),
    ],
)
def test_a_bad_request_goes_back_to_the_redirect_uri(
    auth: AuthServer, over: dict[str, str], error: str
) -> None:
    client_id = register(auth)
    with pytest.raises(RedirectRefusal) as e:
        auth.authorization_request(params(auth, client_id, secrets.token_urlsafe(40), **over))
    assert e.value.error == error
    assert e.value.fields["redirect_uri"] == REDIRECT and e.value.fields["state"] == "st"


def test_a_scope_the_route_does_not_offer_is_refused(auth: AuthServer) -> None:
    client_id = register(auth)
    request = params(
        auth,
        client_id,
        secrets.token_urlsafe(40),
        resource=auth.config.route_url("scoped"),
        scope="notes.write",
    )
    with pytest.raises(RedirectRefusal) as e:
        auth.authorization_request(request)
    assert e.value.error == "invalid_scope"


def test_an_approved_request_is_redeemed_for_tokens_once(auth: AuthServer) -> None:
    client_id = register(auth)
    verifier = secrets.token_urlsafe(40)
    fields = auth.authorization_request(params(auth, client_id, verifier))
    events: list[dict[str, Any]] = []
    assert auth.remembered(fields, auth.user, events) is None  # never approved yet
    _, pending, _ = auth.pending.add(**fields, user=auth.user)
    code = auth.approve(pending, events)
    assert auth.remembered(fields, auth.user, events) is not None  # approved now
    grants = TokenGrants(auth)
    form = {
        "grant_type": "authorization_code",
        "client_id": client_id,
        "code": code,
        "redirect_uri": REDIRECT,
        "code_verifier": verifier,
        "resource": auth.config.route_url("notes"),
    }
    body = grants.token(form, events, None)
    claims = verify_access_token(
        body["access_token"],
        keys=auth.signing_key(),
        audience=auth.config.route_url("notes"),
        issuer=auth.issuer,
    )
    assert claims.sub == auth.user.sub and body["refresh_token"]
    with pytest.raises(OAuthError) as e:
        grants.token(form, events, None)  # a code is good once
    assert e.value.error == "invalid_grant"
    names = [(ev["event"], ev["outcome"]) for ev in events]
    assert ("auth.token_issued", "success") in names
    assert ("auth.token_refused", "denied") in names
    assert all(code not in str(ev) and verifier not in str(ev) for ev in events)


def test_an_unknown_grant_type_or_client_is_refused(auth: AuthServer) -> None:
    grants = TokenGrants(auth)
    with pytest.raises(OAuthError) as e:
        grants.token({"grant_type": "password"}, [], None)
    assert e.value.error == "unsupported_grant_type"
    events: list[dict[str, Any]] = []
    with pytest.raises(OAuthError) as e:
        grants.token({"grant_type": "refresh_token", "client_id": "lg-x"}, events, None)
    assert e.value.error == "invalid_client"
    assert events[0]["reason"] == "unknown_client"
