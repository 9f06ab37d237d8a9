"""`[identity] kind = "dev"`: the gateway as OAuth 2.1 server and resource server, end to end.

Why it exists: a spec-compliant MCP client pointed at a route must discover the gateway's
authorization server from the 401, register, get the user's consent, exchange the code
(PKCE S256, resource indicator) and call tools with a token valid for that route only; the
upstream must never see that token. The official `mcp` SDK client with its
`OAuthClientProvider` does the whole dance here, driven headlessly: its redirect handler
opens the consent page with an HTTP client and submits the form, and the code is read from
the redirect to a loopback callback URL nobody listens on. Then every refusal the issue
lists is checked over real HTTP, each with its status and error.

The signing key lives in memory for these tests (`LOCKGATE_SIGNING_KEY_SOURCE=memory`,
test-only): the gateway's keyring path is covered by tests/core/authserver/test_tokens.py.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from urllib.parse import urlencode

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from lockgate.audit.verify import verify
from lockgate.authserver.keys import SigningKey
from lockgate.authserver.tokens import issue_access_token
from lockgate.identity.claims import UserClaims
from tests.support.gateway import lockgate_up_args
from tests.support.oauth import (
    CALLBACK,
    ENV,
    DevStack,
    authorize_url,
    dev_gateway,
    exchange,
    get_code,
    hidden_fields,
    mcp_post,
    pkce,
    read_notes_signed_in,
    redirect_params,
    refresh,
    register,
    sign_in,
)
from tests.support.oauth_client import MemoryStorage
from tests.support.process import wait_until


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevStack]:
    with dev_gateway(tmp_path_factory.mktemp("dev-signin"), notes=True) as stack:
        yield stack


# --- the SDK client, end to end -----------------------------------------------------------


@pytest.mark.anyio
async def test_the_sdk_client_signs_in_and_calls_tools(stack: DevStack) -> None:
    url = stack.gw.route_url("notes")
    pages: list[httpx.Response] = []
    redirects: list[dict[str, str]] = []
    storage = MemoryStorage()

    async def open_browser(authorization_url: str) -> dict[str, str]:
        async with httpx.AsyncClient() as browser:
            page = await browser.get(authorization_url)
            pages.append(page)
            assert page.status_code == 200, page.text
            answer = await browser.post(
                f"{stack.base}/oauth/consent",
                data={**hidden_fields(page.text), "decision": "approve"},
                headers={"Origin": stack.base},
            )
            redirects.append(redirect_params(answer))
            return redirects[-1]

    await read_notes_signed_in(url, open_browser, client_name="SDK <test> client", storage=storage)

    # The consent page named the client (escaped), its redirect URI and the route.
    [page] = pages
    assert "SDK &lt;test&gt; client" in page.text and "<test>" not in page.text
    assert CALLBACK in page.text and url in page.text
    assert page.headers["x-frame-options"] == "DENY"
    assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
    assert storage.tokens is not None and storage.tokens.refresh_token
    assert storage.client_info is not None

    events = stack.gw.wait_for_events(
        lambda evs: any(e.get("event") == "tool.call" and e.get("route") == "notes" for e in evs)
    )
    kinds = [e["event"] for e in events]
    for kind in ("auth.client_registered", "auth.consent", "auth.token_issued"):
        assert kind in kinds
    call = next(e for e in events if e["event"] == "tool.call" and e.get("route") == "notes")
    assert call["outcome"] == "success" and call["user"]
    assert call["client"] == storage.client_info.client_id
    # Nothing secret in the log: no token, no code.
    text = stack.gw.audit_path.read_text()
    assert storage.tokens.access_token not in text
    assert storage.tokens.refresh_token not in text
    assert redirects[-1]["code"] not in text
    assert verify(stack.gw.audit_path).ok


def test_the_upstream_never_sees_the_gateway_token(stack: DevStack) -> None:
    tokens = sign_in(stack, "rec")
    stack.recorder.clear()
    r = mcp_post(stack.gw.route_url("rec"), tokens["access_token"])
    assert r.status_code == 200, r.text
    seen = stack.recorder.seen()
    assert seen, "the request did not reach the upstream"
    for req in seen:
        assert "authorization" not in req.headers
        assert tokens["access_token"].encode() not in req.body


def test_a_second_authorization_of_an_approved_client_skips_the_consent_page(
    stack: DevStack,
) -> None:
    client_id = register(stack.base)
    resource = stack.gw.route_url("notes")
    get_code(stack.base, client_id, resource, pkce()[1])  # approves
    r = httpx.get(authorize_url(stack.base, client_id, resource, pkce()[1]))
    assert "code" in redirect_params(r)


# --- the resource server's refusals -------------------------------------------------------


def test_no_token_is_a_401_pointing_at_the_resource_metadata(stack: DevStack) -> None:
    url = stack.gw.route_url("notes")
    r = mcp_post(url, None)
    assert r.status_code == 401
    metadata_url = f"{stack.base}/.well-known/oauth-protected-resource/mcp/notes"
    assert r.headers["www-authenticate"] == f'Bearer resource_metadata="{metadata_url}"'
    assert r.json()["error"]["message"]
    prm = httpx.get(metadata_url).json()
    assert prm["resource"] == url and prm["authorization_servers"] == [stack.base]
    asm = httpx.get(f"{stack.base}/.well-known/oauth-authorization-server").json()
    assert asm["issuer"] == stack.base
    assert asm["code_challenge_methods_supported"] == ["S256"]
    variant = httpx.get(f"{stack.base}/.well-known/oauth-authorization-server/mcp/notes")
    assert variant.status_code == 200 and variant.json() == asm


def _refused(r: httpx.Response) -> str:
    assert r.status_code == 401, r.text
    challenge = r.headers["www-authenticate"]
    assert (
        challenge.startswith('Bearer resource_metadata="') and 'error="invalid_token"' in challenge
    )
    return challenge


def test_a_token_for_another_route_is_refused(stack: DevStack) -> None:
    tokens = sign_in(stack, "rec")
    stack.recorder.clear()
    _refused(mcp_post(stack.gw.route_url("notes"), tokens["access_token"]))
    events = stack.gw.wait_for_events(
        lambda evs: any(e.get("reason") == "wrong_audience" for e in evs)
    )
    assert any(
        e["event"] == "auth.token_refused" and e["reason"] == "wrong_audience" for e in events
    )


def test_garbage_foreign_and_expired_tokens_are_refused(stack: DevStack) -> None:
    url = stack.gw.route_url("notes")
    _refused(mcp_post(url, "not-a-token"))
    foreign = SigningKey(Ed25519PrivateKey.generate())
    forged = issue_access_token(
        foreign, issuer=stack.base, audience=url, user=UserClaims(sub="x"), client_id="c"
    )
    _refused(mcp_post(url, forged))
    # A real token with its payload altered breaks the signature. Expired tokens, signed
    # with the gateway's own key, are refused in tests/addons/test_oauth_server.py.
    tokens = sign_in(stack, "notes")
    header, payload, sig = tokens["access_token"].split(".")
    _refused(mcp_post(url, f"{header}.{payload}x.{sig}"))
    r = mcp_post(url, tokens["access_token"])
    assert r.status_code == 200


# --- the authorization server's refusals --------------------------------------------------


def test_a_replayed_code_is_invalid_grant_and_revokes_the_grant(stack: DevStack) -> None:
    client_id = register(stack.base)
    verifier, challenge = pkce()
    resource = stack.gw.route_url("notes")
    code = get_code(stack.base, client_id, resource, challenge)
    first = exchange(stack.base, client_id, code, verifier, resource)
    assert first.status_code == 200
    again = exchange(stack.base, client_id, code, verifier, resource)
    assert again.status_code == 400 and again.json()["error"] == "invalid_grant"
    # The grant issued from the replayed code is gone: its refresh token no longer works.
    r = refresh(stack.base, client_id, first.json()["refresh_token"])
    assert r.status_code == 400 and r.json()["error"] == "invalid_grant"


def test_a_wrong_pkce_verifier_is_invalid_grant(stack: DevStack) -> None:
    client_id = register(stack.base)
    _, challenge = pkce()
    resource = stack.gw.route_url("notes")
    code = get_code(stack.base, client_id, resource, challenge)
    r = exchange(stack.base, client_id, code, pkce()[0], resource)
    assert r.status_code == 400 and r.json()["error"] == "invalid_grant"
    assert r.headers["cache-control"] == "no-store"


def test_an_unregistered_redirect_uri_is_a_400_without_redirect(stack: DevStack) -> None:
    client_id = register(stack.base)
    url = authorize_url(
        stack.base,
        client_id,
        stack.gw.route_url("notes"),
        pkce()[1],
    ).replace(
        urlencode({"redirect_uri": CALLBACK}),
        urlencode({"redirect_uri": "https://evil.example/cb"}),
    )
    r = httpx.get(url)
    assert r.status_code == 400 and "location" not in r.headers
    assert "redirect_uri" in r.text


def test_registration_refuses_bad_redirect_uris(stack: DevStack) -> None:
    for uri in ("http://evil.example/cb", "https://ok.example/cb#frag", "javascript:alert(1)"):
        r = httpx.post(f"{stack.base}/oauth/register", json={"redirect_uris": [uri]})
        assert r.status_code == 400, uri
        assert r.json()["error"] == "invalid_redirect_uri"
    r = httpx.post(
        f"{stack.base}/oauth/register", content=b"{", headers={"content-type": "application/json"}
    )
    assert r.status_code == 400 and r.json()["error"] == "invalid_client_metadata"


def test_authorize_requires_pkce_and_a_route_resource(stack: DevStack) -> None:
    client_id = register(stack.base)
    base = stack.base
    no_pkce = authorize_url(
        base, client_id, stack.gw.route_url("notes"), "x", code_challenge_method="plain"
    )
    assert redirect_params(httpx.get(no_pkce))["error"] == "invalid_request"
    elsewhere = authorize_url(base, client_id, "https://elsewhere.example/mcp", pkce()[1])
    assert redirect_params(httpx.get(elsewhere))["error"] == "invalid_target"


def test_a_reused_refresh_token_revokes_the_grant(stack: DevStack) -> None:
    tokens = sign_in(stack, "notes")
    first = tokens["refresh_token"]
    rotated = refresh(stack.base, tokens["client_id"], first)
    assert rotated.status_code == 200, rotated.text
    second = rotated.json()["refresh_token"]
    assert second != first
    assert mcp_post(stack.gw.route_url("notes"), rotated.json()["access_token"]).status_code == 200
    reused = refresh(stack.base, tokens["client_id"], first)
    assert reused.status_code == 400 and reused.json()["error"] == "invalid_grant"
    # The whole grant is revoked: the successor stops working too.
    after = refresh(stack.base, tokens["client_id"], second)
    assert after.status_code == 400 and after.json()["error"] == "invalid_grant"
    events = stack.gw.wait_for_events(lambda evs: any(e.get("reason") == "reused" for e in evs))
    assert any(e["event"] == "auth.token_refused" and e["reason"] == "reused" for e in events)


def test_revoking_a_refresh_token_ends_its_grant(stack: DevStack) -> None:
    tokens = sign_in(stack, "notes")
    route = stack.gw.route_url("notes")
    assert mcp_post(route, tokens["access_token"]).status_code == 200
    r = httpx.post(
        f"{stack.base}/oauth/revoke",
        data={"token": tokens["refresh_token"], "client_id": tokens["client_id"]},
    )
    assert r.status_code == 200
    after = refresh(stack.base, tokens["client_id"], tokens["refresh_token"])
    assert after.status_code == 400 and after.json()["error"] == "invalid_grant"
    # The access token of a revoked grant stops working too (within GRANT_RECHECK seconds),
    # instead of living out its 15 minutes.

    def refused() -> httpx.Response | None:
        r = mcp_post(route, tokens["access_token"])
        return r if r.status_code != 200 else None

    cut = wait_until(refused, "the revoked grant's access token to stop", timeout=15, interval=0.5)
    assert cut.status_code == 401
    assert 'error="invalid_token"' in cut.headers["www-authenticate"]
    events = stack.gw.wait_for_events(
        lambda evs: any(e.get("reason") == "grant_revoked" for e in evs)
    )
    assert any(e["event"] == "auth.token_refused" for e in events)


# --- the consent page ---------------------------------------------------------------------


def _consent_page(stack: DevStack) -> tuple[httpx.Client, dict[str, str]]:
    client_id = register(stack.base, name="Consent test")
    browser = httpx.Client()
    page = browser.get(authorize_url(stack.base, client_id, stack.gw.route_url("rec"), pkce()[1]))
    assert page.status_code == 200
    assert page.headers["x-frame-options"] == "DENY"
    assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
    return browser, hidden_fields(page.text)


def test_consent_from_a_foreign_origin_is_refused(stack: DevStack) -> None:
    browser, fields = _consent_page(stack)
    with closing(browser):
        for origin in ("http://127.0.0.1:1", "https://evil.example", None):
            headers = {"Origin": origin} if origin else {}
            r = browser.post(
                f"{stack.base}/oauth/consent",
                data={**fields, "decision": "approve"},
                headers=headers,
            )
            assert r.status_code == 403, origin
            assert "location" not in r.headers
        # Cross-site, per the browser's own fetch metadata.
        r = browser.post(
            f"{stack.base}/oauth/consent",
            data={**fields, "decision": "approve"},
            headers={"Origin": stack.base, "Sec-Fetch-Site": "cross-site"},
        )
        assert r.status_code == 403
        # The refusals did not use up the form: the user can still approve it.
        ok = browser.post(
            f"{stack.base}/oauth/consent",
            data={**fields, "decision": "approve"},
            headers={"Origin": stack.base},
        )
        assert "code" in redirect_params(ok)


def test_consent_without_the_csrf_token_is_refused_and_forms_are_single_use(
    stack: DevStack,
) -> None:
    browser, fields = _consent_page(stack)
    with closing(browser):
        url = f"{stack.base}/oauth/consent"
        own = {"Origin": stack.base}
        no_csrf = {k: v for k, v in fields.items() if k != "csrf"}
        assert (
            browser.post(url, data={**no_csrf, "decision": "approve"}, headers=own).status_code
            == 403
        )
        wrong = {**fields, "csrf": "x" * 43}
        assert (
            browser.post(url, data={**wrong, "decision": "approve"}, headers=own).status_code == 403
        )
        denied = browser.post(url, data={**fields, "decision": "deny"}, headers=own)
        assert redirect_params(denied)["error"] == "access_denied"
        again = browser.post(url, data={**fields, "decision": "approve"}, headers=own)
        assert again.status_code == 403


def test_an_unknown_oauth_path_is_a_json_404(stack: DevStack) -> None:
    r = httpx.get(f"{stack.base}/oauth/nothing")
    assert r.status_code == 404 and r.json()["error"] == "not_found"


# --- starting up ----------------------------------------------------------------------------


def _up(tmp_path: Path, identity: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    profile = tmp_path / "p.toml"
    profile.write_text(
        f'[identity]\n{identity}\n[upstreams.a]\nurl = "http://127.0.0.1:9/mcp"\n'
        '[routes.a]\nupstream = "a"\n'
    )
    return subprocess.run(
        [sys.executable, *lockgate_up_args(profile)],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "LOCKGATE_HOME": str(tmp_path), **env},
    )


def test_kind_oidc_with_an_unreachable_provider_is_one_sentence(tmp_path: Path) -> None:
    result = _up(
        tmp_path,
        'kind = "oidc"\nissuer = "http://127.0.0.1:9"\nclient_id = "lockgate"',
        ENV,
    )
    assert result.returncode == 1
    assert "The identity provider http://127.0.0.1:9 could not be reached" in result.stderr, (
        result.stderr
    )
    assert "Traceback" not in result.stderr


def test_an_unknown_signing_key_source_is_refused(tmp_path: Path) -> None:
    result = _up(tmp_path, 'kind = "dev"', {"LOCKGATE_SIGNING_KEY_SOURCE": "file"})
    assert result.returncode == 1
    assert "LOCKGATE_SIGNING_KEY_SOURCE='file' is not a signing key source" in result.stderr
    assert "Traceback" not in result.stderr
