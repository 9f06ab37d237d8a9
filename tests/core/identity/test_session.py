"""lockgate.identity.session: the user's provider session in the OS keyring.

Why it exists: the keyring entries of two users (or of a user and the `current` marker)
must never collide, a stored session must round-trip, and a refusal by the provider must
make the keyring forget it. Keyring tests use the real Secret Service (skipped locally
without one, run by .ci/run), against a real provider (`oidc-provider-mock`, a process).
"""

from __future__ import annotations

import httpx
import pytest

from lockgate.identity import refresh
from lockgate.identity import session as login
from lockgate.identity.provider import discover
from tests.core.identity.signin import browser_login, identity_at
from tests.support.oidc_mock import mock_provider


def test_entries_cannot_collide() -> None:
    issuer = "https://idp.example.com/"
    assert login.session_entry(issuer, "a#1") != login.session_entry(issuer, "a") + "#1"
    assert login.session_entry(issuer, "current") != login.current_entry(issuer)
    assert "#" not in login.session_entry(issuer, "a#1")


@pytest.mark.anyio
async def test_sessions_round_trip_through_the_keyring_and_end_on_refusal(
    real_keyring: None, client: refresh.IdpClient
) -> None:
    with mock_provider() as issuer:
        cl = refresh.IdpClient(identity=identity_at(issuer))
        provider = await discover(issuer)
        session = await browser_login(provider, cl)
        try:
            login.save_session(session, make_current=True)
            assert login.current_session(issuer) == session
            stored = login.load_session(issuer, "alice")
            assert stored is not None and stored.refresh_token == session.refresh_token
            # Fresh: no provider call. Stale: refreshed and stored.
            assert await refresh.refresh_stored(provider, cl, session) is session
            later = session.refreshed_at + login.REFRESH_AFTER + 1
            fresh = await refresh.refresh_stored(provider, cl, session, now=later)
            assert login.load_session(issuer, "alice") == fresh
            # The provider ends it: the keyring forgets it.
            httpx.post(f"{issuer}/users/alice/revoke-tokens").raise_for_status()
            with pytest.raises(refresh.SessionEnded):
                await refresh.refresh_stored(provider, cl, fresh, now=later + 1000)
            assert login.load_session(issuer, "alice") is None
            assert login.current_session(issuer) is None
        finally:
            login.delete_session(issuer, "alice")
