"""Issue 9, item 7: approvals, grants and tokens are bound to the route's identity.

Why it exists: approvals were keyed by route name and tokens by route URL, so after a switch
to a profile whose route `notes` points at another upstream, a client signed in under the
old profile was let in without consent, with the new upstream's credential injected. Each
route now has an identity (a hash of its upstream's name and URL) that grants, approvals and
access tokens carry; a different one is a 401 `invalid_token`, an `invalid_grant` on
refresh, and the consent page again.

Real parts: the gateway as a process, restarted on the same port and data directory with a
second profile; its signing key in the real OS keyring (so the first run's tokens still
verify after the restart: only the route identity refuses them); two real upstreams.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from lockgate import keyring as secrets
from lockgate.authserver.keys import KEYRING_USERNAME
from tests.support import keyring_env
from tests.support.gateway import profile_text, running_gateway
from tests.support.oauth import (
    authorize_url,
    exchange,
    get_code,
    mcp_post,
    pkce,
    refresh,
    register,
)
from tests.support.oidc_mock import free_port
from tests.support.recorder import recording_upstream
from tests.support.upstreams import sdk_upstream


@pytest.fixture
def signing_key_in_keyring() -> Iterator[None]:
    """The real keyring holds the gateway's signing key across the restart; an entry this
    test created is removed afterwards, one that was there is left alone."""
    for _ in keyring_env.real_keyring():
        existed = secrets.get_entry(KEYRING_USERNAME) is not None
        try:
            yield
        finally:
            if not existed:
                with contextlib.suppress(Exception):
                    secrets.delete_chunked(KEYRING_USERNAME)


def test_a_token_for_a_route_that_now_points_elsewhere_is_refused(
    tmp_path: Path, signing_key_in_keyring: None
) -> None:
    listen = f"127.0.0.1:{free_port()}"
    with sdk_upstream() as notes, recording_upstream() as other:
        first = profile_text({"notes": notes}, {"notes": "notes"}, kind="dev")
        with running_gateway(first, tmp_path, listen=listen) as gw:
            base, url = gw.base_url, gw.route_url("notes")
            client_id = register(base)
            verifier, challenge = pkce()
            code = get_code(base, client_id, url, challenge)
            r = exchange(base, client_id, code, verifier, url)
            assert r.status_code == 200, r.text
            tokens = r.json()
            assert mcp_post(url, tokens["access_token"]).status_code == 200
            # Approved once: the same client skips the consent page under this profile.
            again = httpx.get(authorize_url(base, client_id, url, pkce()[1]))
            assert again.status_code == 302 and "code=" in again.headers["location"]

        second = profile_text({"notes": other.url}, {"notes": "notes"}, kind="dev")
        with running_gateway(second, tmp_path, listen=listen) as gw:
            assert gw.base_url == base
            refused = mcp_post(url, tokens["access_token"])
            assert refused.status_code == 401, refused.text
            assert 'error="invalid_token"' in refused.headers["www-authenticate"]
            assert not other.seen()  # nothing reached the new upstream
            r = refresh(base, client_id, tokens["refresh_token"])
            assert r.status_code == 400 and r.json()["error"] == "invalid_grant", r.text
            # The old approval does not carry over: the consent page is shown again.
            page = httpx.get(authorize_url(base, client_id, url, pkce()[1]))
            assert page.status_code == 200 and "/oauth/consent" in page.text
            events = gw.wait_for_events(
                lambda evs: any(e.get("reason") == "wrong_route" for e in evs)
            )
            assert any(
                e["event"] == "auth.token_refused" and e.get("reason") == "wrong_route"
                for e in events
            )
