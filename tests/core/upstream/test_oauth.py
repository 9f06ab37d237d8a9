"""lockgate.upstream.oauth: the pending connect, the authorization URL and the token calls,
then the whole client side against the `mcp` SDK's own authorization server
(tests/support/protected_upstream.py): DCR, PKCE with the resource indicator, code exchange,
refresh."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from lockgate.upstream import discovery, oauth, registration
from lockgate.upstream._errors import RefreshRefused, UpstreamOAuthError
from tests.core.upstream.metadata_docs import docs_server
from tests.support.process import free_port
from tests.support.protected_upstream import protected_upstream


def _pending(
    found: discovery.Discovery, redirect_uri: str = "http://127.0.0.1:1/cb"
) -> tuple[str, str, oauth.PendingConnect]:
    """A connect of alice to upstream "u" (client "c"), pending in a fresh PendingConnects."""
    return oauth.PendingConnects().add(
        upstream="u",
        user="alice",
        discovery=found,
        client=registration.UpstreamClient("c"),
        redirect_uri=redirect_uri,
    )


@pytest.mark.anyio
async def test_a_javascript_authorization_url_never_reaches_a_browser() -> None:
    """Even if metadata changed after discovery, the URL is checked when it is built."""
    with docs_server() as docs:
        docs.json("/.well-known/oauth-protected-resource", {"authorization_servers": [docs.base]})
        docs.json("/.well-known/oauth-authorization-server", docs.as_doc())
        found = await discovery.discover(f"{docs.base}/", None)
    evil = discovery.Discovery(
        **{
            **found.__dict__,
            "metadata": found.metadata.model_copy(
                update={"authorization_endpoint": "javascript:alert(1)//"}
            ),
        }
    )
    state, challenge, record = _pending(evil, "http://127.0.0.1:1/connect/u/callback")
    with pytest.raises(UpstreamOAuthError, match="authorization_endpoint"):
        await oauth.authorization_url(record, state, challenge)


@pytest.mark.anyio
async def test_a_token_endpoint_that_redirects_is_not_followed() -> None:
    with docs_server() as docs:
        docs.redirect("/token", "http://10.0.0.1/token")
        docs.json("/.well-known/oauth-protected-resource", {"authorization_servers": [docs.base]})
        docs.json("/.well-known/oauth-authorization-server", docs.as_doc())
        found = await discovery.discover(f"{docs.base}/", None)
        _, _, record = _pending(found)
        with pytest.raises(UpstreamOAuthError, match="redirect"):
            await oauth.exchange_code(record, "some-code")
        assert "/token" in docs.hits


@pytest.mark.anyio
async def test_an_unreachable_token_endpoint_is_an_upstream_error_naming_the_step() -> None:
    """Token calls go through net.fetch's pinned client; its errors come back in the
    upstream's words (the step named, no body, no query)."""
    port = free_port()
    found = discovery.Discovery(
        "http://127.0.0.1:9/mcp",
        "http://127.0.0.1:9/mcp",
        "http://127.0.0.1:9/prm",
        "http://127.0.0.1:9",
        discovery.ServerMetadata(
            issuer="http://127.0.0.1:9",
            authorization_endpoint="http://127.0.0.1:9/a",
            token_endpoint=f"http://127.0.0.1:{port}/token?secret=q",
        ),
        (),
    )
    _, _, record = _pending(found)
    with pytest.raises(UpstreamOAuthError, match="token_endpoint failed") as e:
        await oauth.exchange_code(record, "some-code")
    assert "secret=q" not in str(e.value) and "some-code" not in str(e.value)


def test_pending_flows_are_single_use_browser_bound_and_short_lived() -> None:
    now = [1000.0]
    pending = oauth.PendingConnects(ttl=60, clock=lambda: now[0])
    found = discovery.Discovery(
        "http://x/mcp",
        "http://x/mcp",
        "http://x/prm",
        "http://x",
        discovery.ServerMetadata(
            issuer="http://x", authorization_endpoint="http://x/a", token_endpoint="http://x/t"
        ),
        (),
    )
    fields = {
        "upstream": "u",
        "user": "alice",
        "discovery": found,
        "client": registration.UpstreamClient("c"),
        "redirect_uri": "http://127.0.0.1:1/cb",
    }
    state, _, record = pending.add(**fields)  # type: ignore[arg-type]
    assert pending.take(state, "another-browser") is None
    assert pending.take(state, record.browser) is None  # the failed try consumed it
    state, _, record = pending.add(**fields)  # type: ignore[arg-type]
    assert pending.take(state, record.browser) is record
    assert pending.take(state, record.browser) is None  # single use
    state, _, record = pending.add(**fields)  # type: ignore[arg-type]
    now[0] += 61
    assert pending.take(state, record.browser) is None  # expired
    assert "verifier" not in repr(record) or record.verifier not in repr(record)


@pytest.mark.anyio
async def test_dcr_pkce_resource_code_exchange_and_refresh_against_the_sdk() -> None:
    with protected_upstream("alpha") as up:
        challenge = await discovery.probe(up.url)
        assert "resource_metadata=" in challenge
        found = await discovery.discover(up.url, challenge)
        redirect_uri = "http://127.0.0.1:9/connect/alpha/callback"
        client = await registration.register(found, redirect_uri=redirect_uri)
        assert client.auth_method == "none" and client.client_id in up.provider.clients
        pending = oauth.PendingConnects()
        state, pkce, record = pending.add(
            upstream="alpha",
            user="alice",
            discovery=found,
            client=client,
            redirect_uri=redirect_uri,
        )
        url = await oauth.authorization_url(record, state, pkce)
        async with httpx.AsyncClient() as browser:
            answer = await browser.get(url)
        assert answer.status_code == 302
        location = answer.headers["location"]
        assert location.startswith(redirect_uri + "?")
        params = {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}
        assert params["state"] == state
        taken = pending.take(params["state"], record.browser)
        assert taken is record
        tokens = await oauth.exchange_code(record, params["code"])
        [asked] = up.provider.authorizations
        assert asked.resource == up.url  # the resource indicator is the upstream's URL
        assert asked.code_challenge == pkce
        assert tokens.access_token in up.provider.issued
        assert tokens.refresh_token in up.provider.issued_refresh
        assert tokens.expires_at is not None and tokens.resource == up.url
        assert tokens.issuer == up.issuer
        with pytest.raises(UpstreamOAuthError):
            await oauth.exchange_code(record, params["code"])  # a code is single use

        again = await oauth.refresh(tokens, upstream="alpha")
        assert again.access_token != tokens.access_token
        assert again.access_token in up.provider.issued and up.provider.refreshes == 1
        with pytest.raises(RefreshRefused):
            await oauth.refresh(tokens, upstream="alpha")  # the rotated-away refresh token
        up.provider.refuse_refresh = True
        with pytest.raises(RefreshRefused) as e:
            await oauth.refresh(again, upstream="alpha")
        assert again.refresh_token is not None and again.refresh_token not in str(e.value)
