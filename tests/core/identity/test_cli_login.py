"""lockgate.identity.cli_login against a real OpenID provider (`oidc-provider-mock`, a process).

Why it exists: `lockgate login` must sign the user in with PKCE, state and nonce through a
loopback redirect that answers only its own sign-in, refuse URLs a browser should not open,
say clearly when the provider refuses, and record its audit events even while a gateway
holds the log. Here the provider's sign-in form is submitted with httpx, as a browser would.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest

from lockgate.audit import log as audit
from lockgate.audit.log import AuditLog
from lockgate.audit.read import read_events
from lockgate.audit.verify import verify
from lockgate.identity import cli_login, refresh
from lockgate.identity.provider import OIDCError, Provider
from tests.core.identity.signin import browser_login, sign_in_at_provider


@pytest.mark.anyio
async def test_browser_login_validates_the_id_token_and_keeps_the_refresh_token(
    issuer: str, client: refresh.IdpClient, provider: Provider
) -> None:
    session = await browser_login(provider, client)
    assert (session.sub, session.email, session.groups) == ("alice", "a@example.com", ("eng",))
    assert session.issuer == issuer and session.client_id == "lockgate-cli"
    assert session.refresh_token and session.alive()
    assert session.refresh_token not in repr(session)


@pytest.mark.anyio
async def test_the_authorization_url_carries_pkce_state_nonce_and_a_loopback_redirect(
    client: refresh.IdpClient, provider: Provider
) -> None:
    urls: asyncio.Queue[str] = asyncio.Queue()
    task = asyncio.create_task(
        cli_login.login_browser(provider, client, show=urls.put_nowait, timeout=30)
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
async def test_a_denied_sign_in_is_a_clear_error(
    client: refresh.IdpClient, provider: Provider
) -> None:
    urls: asyncio.Queue[str] = asyncio.Queue()
    task = asyncio.create_task(cli_login.login_browser(provider, client, show=urls.put_nowait))
    url = await asyncio.wait_for(urls.get(), 30)
    async with httpx.AsyncClient() as browser:
        denied = await browser.post(url, data={"action": "deny"})
        assert denied.status_code == 302
        await browser.get(denied.headers["location"])
    with pytest.raises(OIDCError, match="refused the sign-in \\(access_denied\\)"):
        await asyncio.wait_for(task, 30)


@pytest.mark.anyio
async def test_an_unfinished_sign_in_times_out(
    client: refresh.IdpClient, provider: Provider
) -> None:
    with pytest.raises(OIDCError, match="not finished within"):
        await cli_login.login_browser(provider, client, show=lambda url: None, timeout=0.2)


@pytest.mark.anyio
async def test_the_device_grant_is_refused_clearly_when_the_provider_has_none(
    client: refresh.IdpClient, provider: Provider
) -> None:
    assert provider.metadata.device_authorization_endpoint is None
    with pytest.raises(OIDCError, match="does not offer the device authorization grant"):
        await cli_login.start_device(provider, client)


def test_browser_urls_must_be_https_or_loopback() -> None:
    assert cli_login.browser_url("https://idp.example.com/authorize")
    assert cli_login.browser_url("http://127.0.0.1:5/authorize")
    for bad in ("javascript:alert(1)", "http://idp.example.com/a", "file:///etc/passwd"):
        with pytest.raises(OIDCError, match="will not open"):
            cli_login.browser_url(bad)


# --- audit events from the CLI -------------------------------------------------------------


def test_cli_events_wait_while_a_gateway_holds_the_log_then_land_in_order(
    tmp_path: Path,
) -> None:
    path = tmp_path / "audit.jsonl"
    with AuditLog(path) as gateway:
        gateway.append({"event": "gateway.start"})
        assert cli_login.record_event(path, {"event": "auth.login", "user": "alice"}) == "pending"
        assert cli_login.record_event(path, {"event": "auth.logout", "user": "alice"}) == "pending"
    assert audit.pending_path(path).exists()
    assert cli_login.record_event(path, {"event": "auth.login", "user": "bob"}) == "written"
    events = [(e["event"], e.get("user")) for e in read_events(path)]
    assert events == [
        ("gateway.start", None),
        ("auth.login", "alice"),
        ("auth.logout", "alice"),
        ("auth.login", "bob"),
    ]
    assert verify(path).ok
    assert not audit.pending_path(path).exists()
