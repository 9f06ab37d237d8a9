"""`lockgate login` / `whoami` / `logout` and the gateway's use of provider sessions, end to end.

Why it exists: the provider's refresh token must live in the OS keyring, and a user's gateway
session must end the moment the provider refuses to refresh. Everything here is real: the
`lockgate` CLI and gateway as processes, `oidc-provider-mock` as the provider (its sign-in
form submitted with httpx; `POST /users/<sub>/revoke-tokens` makes it refuse refreshes), the
MCP SDK client with its OAuth provider, and the Secret Service keyring (.ci/run provides
one; without it these tests skip locally and fail in CI). The gateway runs with
LOCKGATE_IDP_RECHECK=0 so that it asks the provider before every refresh grant.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from lockgate.audit.read import read_events
from lockgate.audit.verify import verify
from lockgate.identity import session as login
from lockgate.identity.refresh import RECHECK_ENV
from tests.support.cli_stack import Stack, cli, cli_login, cli_stack
from tests.support.demo_mcp import DEMO_TOOLS
from tests.support.oauth import CALLBACK, ENV, redirect_params
from tests.support.oauth_client import MemoryStorage, signed_in_client
from tests.support.oidc_mock import OidcMock


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    env = {**ENV, RECHECK_ENV: "0"}
    with cli_stack(tmp_path_factory.mktemp("login-cli"), env) as stack:
        yield stack


def whoami(stack: Stack) -> tuple[int, dict[str, Any]]:
    import json

    r = cli(stack, "whoami", "--json")
    return r.returncode, json.loads(r.stdout)


def refresh_grant(stack: Stack, storage: MemoryStorage) -> httpx.Response:
    assert storage.tokens is not None and storage.tokens.refresh_token
    assert storage.client_info is not None
    return httpx.post(
        f"{stack.base}/oauth/token",
        data={
            "grant_type": "refresh_token",
            "refresh_token": storage.tokens.refresh_token,
            "client_id": storage.client_info.client_id,
        },
    )


async def consent_or_provider(
    browser: httpx.AsyncClient, stack: Stack, url: str, sub: str, visited: list[str]
) -> dict[str, str]:
    """A browser on the gateway's authorization URL: through the provider when sent there
    (signing in as `sub`), then the consent page, approved."""
    r = await OidcMock(stack.issuer).browse(browser, stack.base, url, sub, visited)
    return redirect_params(r)


async def sdk_lists_tools(
    stack: Stack,
    sub: str,
    client_name: str,
    storage: MemoryStorage,
    visited: list[str],
    cookies: dict[str, str] | None = None,
) -> None:
    """The SDK client signs in to route notes in a fresh browser (as `sub` if sent to the
    provider; holding `cookies`) and lists the notes tools."""
    async with httpx.AsyncClient(cookies=cookies) as browser:

        async def sign_in(url: str) -> dict[str, str]:
            return await consent_or_provider(browser, stack, url, sub, visited)

        async with signed_in_client(
            stack.gw.route_url("notes"),
            sign_in,
            client_name=client_name,
            callback_uri=CALLBACK,
            storage=storage,
        ) as client:
            tools = await client.list_tools()
            assert {t.name for t in tools.tools} == DEMO_TOOLS


def events(stack: Stack, name: str) -> list[dict[str, Any]]:
    return [e for e in read_events(stack.gw.audit_path) if e.get("event") == name]


@pytest.mark.anyio
async def test_a_browser_sign_in_keeps_the_provider_session_and_its_refusal_ends_the_grant(
    stack: Stack,
) -> None:
    """(a) /oauth/callback keeps bob's provider refresh token in the keyring; (c) the refresh
    grant asks the provider first, and once the provider refuses, the grant is refused."""
    storage = MemoryStorage()
    visited: list[str] = []
    await sdk_lists_tools(stack, "bob", "SDK client (bob)", storage, visited)
    assert any(v.startswith(stack.issuer) for v in visited)

    kept = login.load_session(stack.issuer, "bob")
    assert kept is not None and kept.refresh_token and kept.groups == ("ops",)

    first = refresh_grant(stack, storage)  # the provider honours bob: rotated as usual
    assert first.status_code == 200, first.text
    storage.tokens.refresh_token = first.json()["refresh_token"]  # type: ignore[union-attr]
    again = login.load_session(stack.issuer, "bob")
    assert again is not None and again.refreshed_at > kept.refreshed_at

    httpx.post(f"{stack.issuer}/users/bob/revoke-tokens").raise_for_status()
    refused = refresh_grant(stack, storage)
    assert refused.status_code == 400, refused.text
    assert refused.json()["error"] == "invalid_grant"
    assert "identity provider ended" in refused.json()["error_description"]
    assert login.load_session(stack.issuer, "bob") is None
    # The grant is revoked: the same token is not good for a second try either.
    assert refresh_grant(stack, storage).json()["error"] == "invalid_grant"

    logged_out = stack.gw.wait_for_events(
        lambda evs: any(e.get("event") == "auth.logout" for e in evs)
    )
    [logout] = [e for e in logged_out if e["event"] == "auth.logout"]
    assert logout["user"] == "bob" and logout["reason"] == "provider_refused"
    text = stack.gw.audit_path.read_text()
    assert kept.refresh_token not in text
    assert verify(stack.gw.audit_path).ok


@pytest.mark.anyio
async def test_login_whoami_and_the_gateway_signs_in_the_cli_user(stack: Stack) -> None:
    """`lockgate login` once; the gateway's consent page then needs no trip to the provider;
    when the provider refuses, whoami says so and the gateway's refresh grant is refused."""
    printed = cli_login(stack, "alice")
    assert "Signed in as alice (a@example.com)" in " ".join(printed.split())
    session = login.current_session(stack.issuer)
    assert session is not None and session.sub == "alice" and session.refresh_token
    assert session.refresh_token not in printed

    # The gateway holds the audit log: the CLI's event is queued beside it and chained by
    # the gateway within about a second (marked as queued), without a token.
    logins = stack.gw.matching_events(
        lambda e: e.get("event") == "auth.login" and e.get("via") == "pending"
    )
    assert logins and logins[-1]["user"] == "alice"
    assert session.refresh_token not in stack.gw.audit_path.read_text()

    code, info = whoami(stack)
    assert code == 0 and info["alive"] is True
    assert (info["sub"], info["email"], info["groups"]) == ("alice", "a@example.com", ["eng"])

    storage = MemoryStorage()
    visited: list[str] = []  # a fresh browser: no gateway session, only the login's secret
    secret = login.cli_secret(stack.issuer)
    assert secret is not None and secret not in printed
    await sdk_lists_tools(
        stack, "nobody", "SDK client (alice)", storage, visited, {"lockgate_cli": secret}
    )
    assert not any(v.startswith(stack.issuer) for v in visited), visited
    consents = events(stack, "auth.consent")
    assert consents and consents[-1]["user"] == "alice"

    httpx.post(f"{stack.issuer}/users/alice/revoke-tokens").raise_for_status()
    code, info = whoami(stack)
    assert code == 1 and info.get("signed_in") is False
    refused = refresh_grant(stack, storage)
    assert refused.status_code == 400 and refused.json()["error"] == "invalid_grant"
    # And with no live CLI session, /oauth/authorize sends the browser to the provider again.
    async with httpx.AsyncClient() as browser:
        again: list[str] = []
        params = await consent_or_provider(
            browser, stack, _authorize_url(stack, storage), "alice", again
        )
    assert "code" in params and any(v.startswith(stack.issuer) for v in again)


def _authorize_url(stack: Stack, storage: MemoryStorage) -> str:
    from urllib.parse import urlencode

    from tests.support.oauth import pkce

    assert storage.client_info is not None
    return f"{stack.base}/oauth/authorize?" + urlencode(
        {
            "response_type": "code",
            "client_id": storage.client_info.client_id,
            "redirect_uri": CALLBACK,
            "code_challenge": pkce()[1],
            "code_challenge_method": "S256",
            "resource": stack.gw.route_url("notes"),
            "state": "s",
        }
    )


def test_logout_forgets_the_session(stack: Stack) -> None:
    cli_login(stack, "alice")
    assert login.current_session(stack.issuer) is not None
    out = cli(stack, "logout")
    assert out.returncode == 0, out.stderr
    said = " ".join(out.stdout.split())  # rich wraps at the terminal's width
    assert "Signed out alice" in said
    assert "the provider was not told" in said  # the mock has no revocation_endpoint
    assert login.current_session(stack.issuer) is None
    assert login.load_session(stack.issuer, "alice") is None
    code, info = whoami(stack)
    assert code == 1 and info["signed_in"] is False
    again = cli(stack, "logout")
    assert again.returncode == 0 and "Not signed in" in again.stdout
    logouts = stack.gw.matching_events(
        lambda e: e.get("event") == "auth.logout" and e.get("via") == "pending"
    )
    assert logouts and logouts[-1]["user"] == "alice"


def test_whoami_for_a_dev_profile_names_the_local_user(tmp_path: Path) -> None:
    profile = tmp_path / "dev.toml"
    profile.write_text(
        '[identity]\nkind = "dev"\n[upstreams.a]\nurl = "http://127.0.0.1:9/mcp"\n'
        '[routes.a]\nupstream = "a"\n',
        encoding="utf-8",
    )
    r = subprocess.run(
        [sys.executable, "-m", "lockgate.cli", "whoami", "--json", "-p", str(profile)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 0, r.stderr
    assert '"kind": "dev"' in r.stdout and '"alive": true' in r.stdout
    r = subprocess.run(
        [sys.executable, "-m", "lockgate.cli", "login", "-p", str(profile)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 0 and "local user" in r.stdout


def test_device_login_is_refused_in_one_sentence_without_a_device_endpoint(stack: Stack) -> None:
    r = cli(stack, "login", "--device", "--no-browser")
    assert r.returncode == 1
    assert r.stderr.strip() == (
        "lockgate: The identity provider does not offer the device authorization grant: "
        "run `lockgate login` without --device to sign in through the browser"
    )
    assert login.current_session(stack.issuer) is None
