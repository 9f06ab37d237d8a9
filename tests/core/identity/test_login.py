"""lockgate.identity.session against a real OpenID provider (`oidc-provider-mock`, a process).

Why it exists: `lockgate login` must sign the user in with PKCE, state and nonce through a
loopback redirect, keep the provider's refresh token in the OS keyring, and end the session
the moment the provider refuses to refresh; the gateway's `SessionKeeper` must do the same
without blocking. Here the provider's sign-in form is submitted with httpx, as a browser
would, and the provider is made to refuse with its `POST /users/<sub>/revoke-tokens`.
Keyring tests use the real Secret Service (skipped locally without one, run by .ci/run).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from lockgate.audit import log as audit
from lockgate.audit.log import AuditLog, read_events, verify
from lockgate.identity import session as login
from lockgate.identity.provider import OIDCError, Provider, discover
from lockgate.profile.model import IdentitySection
from tests.support import keyring_env
from tests.support.oidc_mock import mock_provider


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


@pytest.fixture(scope="module")
def issuer() -> Iterator[str]:
    with mock_provider() as url:
        yield url


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def client(issuer: str) -> login.Client:
    identity = IdentitySection(
        kind="oidc", issuer=issuer, client_id="lockgate-cli", scopes=("openid", "email")
    )
    return login.Client(identity=identity)


async def browser_login(provider: Provider, client: login.Client) -> login.IdpSession:
    urls: asyncio.Queue[str] = asyncio.Queue()
    task = asyncio.create_task(login.login_browser(provider, client, show=urls.put_nowait))
    url = await asyncio.wait_for(urls.get(), 30)
    async with httpx.AsyncClient() as browser:
        assert "Signed in to lockgate" in await sign_in_at_provider(browser, url)
    return await asyncio.wait_for(task, 30)


@pytest.mark.anyio
async def test_browser_login_validates_the_id_token_and_keeps_the_refresh_token(
    issuer: str, client: login.Client
) -> None:
    provider = await discover(issuer)
    session = await browser_login(provider, client)
    assert (session.sub, session.email, session.groups) == ("alice", "a@example.com", ("eng",))
    assert session.issuer == issuer and session.client_id == "lockgate-cli"
    assert session.refresh_token and session.alive()
    assert session.refresh_token not in repr(session)


@pytest.mark.anyio
async def test_the_authorization_url_carries_pkce_state_nonce_and_a_loopback_redirect(
    issuer: str, client: login.Client
) -> None:
    provider = await discover(issuer)
    urls: asyncio.Queue[str] = asyncio.Queue()
    task = asyncio.create_task(
        login.login_browser(provider, client, show=urls.put_nowait, timeout=30)
    )
    url = await asyncio.wait_for(urls.get(), 30)
    from urllib.parse import parse_qs, urlsplit

    q = {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}
    assert q["code_challenge_method"] == "S256" and len(q["code_challenge"]) == 43
    assert len(q["state"]) >= 40 and len(q["nonce"]) >= 30
    assert q["redirect_uri"].startswith("http://127.0.0.1:") and q["redirect_uri"].endswith(
        "/callback"
    )
    async with httpx.AsyncClient() as other:
        # Another path, another method, a forged state: refused, and the login still waits.
        base = q["redirect_uri"].removesuffix("/callback")
        assert (await other.get(f"{base}/favicon.ico")).status_code == 404
        forged = await other.get(f"{q['redirect_uri']}?state=forged&code=stolen")
        assert forged.status_code == 400
        assert forged.headers["referrer-policy"] == "no-referrer"
        assert not task.done()
        assert "Signed in" in await sign_in_at_provider(other, url)
    session = await asyncio.wait_for(task, 30)
    assert session.sub == "alice"
    # One request answered, then the listener is gone.
    with pytest.raises(httpx.ConnectError):
        httpx.get(q["redirect_uri"])


@pytest.mark.anyio
async def test_a_denied_sign_in_is_a_clear_error(issuer: str, client: login.Client) -> None:
    provider = await discover(issuer)
    urls: asyncio.Queue[str] = asyncio.Queue()
    task = asyncio.create_task(login.login_browser(provider, client, show=urls.put_nowait))
    url = await asyncio.wait_for(urls.get(), 30)
    async with httpx.AsyncClient() as browser:
        denied = await browser.post(url, data={"action": "deny"})
        assert denied.status_code == 302
        await browser.get(denied.headers["location"])
    with pytest.raises(OIDCError, match="refused the sign-in \\(access_denied\\)"):
        await asyncio.wait_for(task, 30)


@pytest.mark.anyio
async def test_an_unfinished_sign_in_times_out(issuer: str, client: login.Client) -> None:
    provider = await discover(issuer)
    with pytest.raises(OIDCError, match="not finished within"):
        await login.login_browser(provider, client, show=lambda url: None, timeout=0.2)


@pytest.mark.anyio
async def test_the_device_grant_is_refused_clearly_when_the_provider_has_none(
    issuer: str, client: login.Client
) -> None:
    provider = await discover(issuer)
    assert provider.metadata.device_authorization_endpoint is None
    with pytest.raises(OIDCError, match="does not offer the device authorization grant"):
        await login.start_device(provider, client)


@pytest.mark.anyio
async def test_refresh_and_a_refusal_without_storage(issuer: str, client: login.Client) -> None:
    """refresh_session itself stores nothing: a refresh rotates, a refusal says SessionEnded."""
    provider = await discover(issuer)
    session = await browser_login(provider, client)
    later = session.refreshed_at + 1
    fresh = await login.refresh_session(provider, client, session, now=later)
    assert fresh.sub == "alice" and fresh.refreshed_at == later and fresh.refresh_token
    httpx.post(f"{issuer}/users/alice/revoke-tokens").raise_for_status()
    with pytest.raises(login.SessionEnded, match="ended the session of alice"):
        await login.refresh_session(provider, client, fresh)


@pytest.mark.anyio
async def test_an_unreachable_provider_fails_closed_and_keeps_the_session(
    client: login.Client,
) -> None:
    with mock_provider() as gone:
        provider = await discover(gone)
        session = await browser_login(provider, login.Client(identity=_identity(gone)))
    # The provider process is gone now.
    with pytest.raises(login.ProviderUnavailable, match="could not be reached"):
        await login.refresh_session(provider, login.Client(identity=_identity(gone)), session)


def _identity(issuer: str) -> IdentitySection:
    return IdentitySection(kind="oidc", issuer=issuer, client_id="lockgate-cli")


def test_browser_urls_must_be_https_or_loopback() -> None:
    assert login.browser_url("https://idp.example.com/authorize")
    assert login.browser_url("http://127.0.0.1:5/authorize")
    for bad in ("javascript:alert(1)", "http://idp.example.com/a", "file:///etc/passwd"):
        with pytest.raises(OIDCError, match="will not open"):
            login.browser_url(bad)


def test_entries_cannot_collide() -> None:
    issuer = "https://idp.example.com/"
    assert login.session_entry(issuer, "a#1") != login.session_entry(issuer, "a") + "#1"
    assert login.session_entry(issuer, "current") != login.current_entry(issuer)
    assert "#" not in login.session_entry(issuer, "a#1")


# --- audit events from the CLI -------------------------------------------------------------


def test_cli_events_wait_while_a_gateway_holds_the_log_then_land_in_order(
    tmp_path: Path,
) -> None:
    path = tmp_path / "audit.jsonl"
    with AuditLog(path) as gateway:
        gateway.append({"event": "gateway.start"})
        assert login.record_event(path, {"event": "auth.login", "user": "alice"}) == "pending"
        assert login.record_event(path, {"event": "auth.logout", "user": "alice"}) == "pending"
    assert audit.pending_path(path).exists()
    assert login.record_event(path, {"event": "auth.login", "user": "bob"}) == "written"
    events = [(e["event"], e.get("user")) for e in read_events(path)]
    assert events == [
        ("gateway.start", None),
        ("auth.login", "alice"),
        ("auth.logout", "alice"),
        ("auth.login", "bob"),
    ]
    assert verify(path).ok
    assert not audit.pending_path(path).exists()


# --- the keyring (real Secret Service) -----------------------------------------------------


@pytest.fixture
def real_keyring() -> Iterator[None]:
    for _ in keyring_env.real_keyring():
        yield


@pytest.mark.anyio
async def test_sessions_round_trip_through_the_keyring_and_end_on_refusal(
    real_keyring: None, client: login.Client
) -> None:
    with mock_provider() as issuer:
        cl = login.Client(identity=_identity(issuer))
        provider = await discover(issuer)
        session = await browser_login(provider, cl)
        try:
            login.save_session(session, make_current=True)
            assert login.current_session(issuer) == session
            stored = login.load_session(issuer, "alice")
            assert stored is not None and stored.refresh_token == session.refresh_token
            # Fresh: no provider call. Stale: refreshed and stored.
            assert await login.refresh_stored(provider, cl, session) is session
            later = session.refreshed_at + login.REFRESH_AFTER + 1
            fresh = await login.refresh_stored(provider, cl, session, now=later)
            assert login.load_session(issuer, "alice") == fresh
            # The provider ends it: the keyring forgets it.
            httpx.post(f"{issuer}/users/alice/revoke-tokens").raise_for_status()
            with pytest.raises(login.SessionEnded):
                await login.refresh_stored(provider, cl, fresh, now=later + 1000)
            assert login.load_session(issuer, "alice") is None
            assert login.current_session(issuer) is None
        finally:
            login.delete_session(issuer, "alice")


@pytest.mark.anyio
async def test_the_gateway_keeper_refreshes_once_for_concurrent_callers(
    real_keyring: None,
) -> None:
    with mock_provider() as issuer:
        cl = login.Client(identity=_identity(issuer))
        provider = await discover(issuer)
        session = await browser_login(provider, cl)
        keeper = login.SessionKeeper(cl, max_age=0)
        try:
            await keeper.put(session)
            assert keeper.keyring_ok
            # Two refresh grants at once: the lock serialises them, both get a session the
            # provider honoured (a rotated refresh token is never sent twice).
            a, b = await asyncio.gather(
                keeper.fresh(provider, "alice"), keeper.fresh(provider, "alice")
            )
            assert a is not None and b is not None and b.refreshed_at >= a.refreshed_at
            assert await keeper.fresh(provider, "nobody") is None
            httpx.post(f"{issuer}/users/alice/revoke-tokens").raise_for_status()
            with pytest.raises(login.SessionEnded):
                await keeper.fresh(provider, "alice")
            assert await keeper.get(issuer, "alice") is None
        finally:
            login.delete_session(issuer, "alice")
