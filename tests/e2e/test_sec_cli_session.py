"""Issue 9, item 4 (the CLI-session shortcut): after `lockgate login`, the gateway signs a
browser-less sign-in in as that user only when it presents the secret login left in the OS
user's keyring (cookie ``lockgate_cli``).

Why it exists: the shortcut applied to every request reaching loopback, so another OS user
on the machine got a token as the signed-in user, with their groups, without any cookie.
Real `lockgate` CLI and gateway processes, `oidc-provider-mock`, the real Secret Service
(skips locally without one, fails in CI).
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from lockgate.identity import session as login
from tests.support.cli_stack import Stack, cli, cli_login, cli_stack
from tests.support.oauth import ENV, authorize_url, pkce, redirect_params, register
from tests.support.oauth_client import approve


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with cli_stack(tmp_path_factory.mktemp("sec-cli-session"), ENV) as stack:
        yield stack


def test_the_cli_shortcut_needs_the_secret_only_the_signed_in_user_can_read(
    stack: Stack,
) -> None:
    cli_login(stack, "alice")
    url = authorize_url(stack.base, register(stack.base), stack.gw.route_url("notes"), pkce()[1])
    # Another OS user's process: no secret, so it is sent to the provider, not signed in
    # as alice (it would have to know alice's password there).
    for cookies in ({}, {"lockgate_cli": "a-guess"}):
        r = httpx.get(url, cookies=cookies)
        assert r.status_code == 302, (cookies, r.text[:200])
        assert r.headers["location"].startswith(stack.issuer)
    denied = stack.gw.wait_for_events(
        lambda evs: any(e.get("reason") == "cli_secret_mismatch" for e in evs)
    )
    assert any(e.get("reason") == "cli_secret_mismatch" for e in denied)
    # alice's own process reads the secret from her keyring and presents it.
    secret = login.cli_secret(stack.issuer)
    assert secret is not None and secret not in stack.gw.audit_path.read_text()
    with httpx.Client(cookies={"lockgate_cli": secret}) as browser:
        page = browser.get(url)
        assert page.status_code == 200 and "<strong>alice</strong>" in page.text
        assert "code" in redirect_params(approve(browser, stack.base, page.text))
    # Logging out forgets the secret: it is no good any more.
    assert cli(stack, "logout").returncode == 0
    assert login.cli_secret(stack.issuer) is None
    after = httpx.get(url, cookies={"lockgate_cli": secret})
    assert after.status_code == 302 and after.headers["location"].startswith(stack.issuer)
