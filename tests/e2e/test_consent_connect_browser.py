"""The consent page's Connect link in a real browser (issue 3: "Connect works").

Why it exists: the Connect link is a chain of browser navigations across three origins —
the gateway's consent page, the upstream's own authorization server, the gateway's
/connect callback — held together by a browser-bound cookie and a `return` URL. Chromium
(headless, over DevTools) clicks it on a `kind = "dev"` gateway whose route's upstream is
OAuth-protected (the `mcp` SDK's server auth, which approves at once), comes back to the
same authorization request, sees the upstream connected, and clicks Allow.

The upstream's tokens go to the real OS keyring: skipped without one, failed in CI.
"""

from __future__ import annotations

import contextlib
import shutil
import uuid
from contextlib import ExitStack
from pathlib import Path
from urllib.parse import urlencode

import httpx
import pytest

from lockgate.identity.claims import local_user
from lockgate.upstream import tokens as upstream_tokens
from tests.support import keyring_env, require
from tests.support.browser import chromium, serve_pages
from tests.support.gateway import running_gateway
from tests.support.oauth import ENV, pkce
from tests.support.protected_upstream import protected_upstream

pytestmark = pytest.mark.keyring


def test_connect_from_the_consent_page_in_chromium(tmp_path: Path) -> None:
    require(
        shutil.which("chromium") is not None,
        "Debian chromium missing: apt-get install chromium (.ci/run does)",
    )
    keyring_env.require_keyring()
    name = f"lockgate-test-{uuid.uuid4().hex[:8]}-browser"
    tmp = tmp_path
    with ExitStack() as es:
        up = es.enter_context(protected_upstream("browser"))
        profile = "\n".join(
            [
                "[identity]",
                'kind = "dev"',
                f'[upstreams."{name}"]',
                f'url = "{up.url}"',
                'auth = "oauth"',
                "[routes.notes]",
                f'upstream = "{name}"',
                "",
            ]
        )
        gw = es.enter_context(running_gateway(profile, tmp / "gw", env=ENV))
        es.callback(_forget, name)
        callback = es.enter_context(serve_pages())
        browser = es.enter_context(chromium(tmp / "browser"))
        redirect_uri = callback.url("/callback")
        r = httpx.post(
            f"{gw.base_url}/oauth/register",
            json={"client_name": "Connect in Chromium", "redirect_uris": [redirect_uri]},
        )
        assert r.status_code == 201, r.text
        params = {
            "response_type": "code",
            "client_id": r.json()["client_id"],
            "redirect_uri": redirect_uri,
            "state": "st-connect",
            "code_challenge": pkce()[1],
            "code_challenge_method": "S256",
            "resource": gw.route_url("notes"),
        }
        authorize = f"{gw.base_url}/oauth/authorize?{urlencode(params)}"

        tab = browser.new_tab()
        tab.navigate(authorize)
        text = tab.evaluate("document.body.innerText")
        assert f"{name}: needs connect" in text, text
        tab.click("a[href*='/connect/']")
        # Upstream authorization server, the gateway's /connect callback, then back here.
        tab.wait_until(
            "location.pathname === '/oauth/authorize'"
            " && document.body !== null"
            f" && document.body.innerText.includes({name!r} + ': connected')"
        )
        assert up.provider.authorizations, "the browser never reached the upstream's server"
        assert tab.evaluate("document.querySelectorAll(\"a[href*='/connect/']\").length") == 0
        assert upstream_tokens.stored(name, local_user())

        tab.click("button[value=approve]")
        hit = callback.wait_for("/callback")
        assert hit.query["state"] == "st-connect" and hit.query["code"]
        events = gw.wait_for_events(
            lambda evs: any(e.get("event") == "auth.upstream_connected" for e in evs)
        )
        assert any(e.get("event") == "auth.upstream_connected" for e in events)


def _forget(name: str) -> None:
    with contextlib.suppress(Exception):  # cleanup: never mask the test's own outcome
        upstream_tokens.delete(name, local_user())
