"""lockgate.identity.refresh against a real OpenID provider (`oidc-provider-mock`, a process).

Why it exists: the gateway must end a user's session the moment the provider refuses to
refresh, keep it (and fail closed) while the provider cannot be asked, and never send a
rotated refresh token twice: `SessionKeeper` refreshes once for concurrent callers. The
provider is made to refuse with its `POST /users/<sub>/revoke-tokens`. Keyring tests use
the real Secret Service (skipped locally without one, run by .ci/run).
"""

from __future__ import annotations

import asyncio

import httpx
import pytest
from joserfc.jwk import KeySet, RSAKey

from lockgate.identity import refresh
from lockgate.identity import session as login
from lockgate.identity.provider import Provider, discover
from tests.core.identity.signin import browser_login, identity_at
from tests.support.oidc_mock import mock_provider


@pytest.mark.anyio
async def test_refresh_and_a_refusal_without_storage(
    issuer: str, client: refresh.IdpClient, provider: Provider
) -> None:
    """refresh_session itself stores nothing: a refresh rotates, a refusal says SessionEnded."""
    session = await browser_login(provider, client)
    later = session.refreshed_at + 1
    fresh = await refresh.refresh_session(provider, client, session, now=later)
    assert fresh.sub == "alice" and fresh.refreshed_at == later and fresh.refresh_token
    httpx.post(f"{issuer}/users/alice/revoke-tokens").raise_for_status()
    with pytest.raises(refresh.SessionEnded, match="ended the session of alice"):
        await refresh.refresh_session(provider, client, fresh)


@pytest.mark.anyio
async def test_an_unreachable_provider_fails_closed_and_keeps_the_session(
    client: refresh.IdpClient,
) -> None:
    with mock_provider() as gone:
        provider = await discover(gone)
        session = await browser_login(provider, refresh.IdpClient(identity=identity_at(gone)))
    # The provider process is gone now.
    with pytest.raises(refresh.ProviderUnavailable, match="could not be reached"):
        await refresh.refresh_session(
            provider, refresh.IdpClient(identity=identity_at(gone)), session
        )


@pytest.mark.anyio
async def test_the_gateway_keeper_refreshes_once_for_concurrent_callers(
    real_keyring: None,
) -> None:
    with mock_provider() as issuer:
        cl = refresh.IdpClient(identity=identity_at(issuer))
        provider = await discover(issuer)
        session = await browser_login(provider, cl)
        keeper = refresh.SessionKeeper(cl, max_age=0)
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
            with pytest.raises(refresh.SessionEnded):
                await keeper.fresh(provider, "alice")
            assert await keeper.get(issuer, "alice") is None
        finally:
            login.delete_session(issuer, "alice")


@pytest.mark.anyio
async def test_a_provider_that_rotated_its_keys_since_discovery_still_signs_the_user_in(
    client: refresh.IdpClient, provider: Provider
) -> None:
    """The keys lockgate holds are the provider's old ones (as if it rotated after
    discovery): the ID token names a key they lack, so they are fetched once again."""
    old = KeySet([RSAKey.generate_key(2048, parameters={"kid": "retired"})])
    provider.keys = old
    session = await browser_login(provider, client)
    assert session.sub == "alice"
    assert provider.keys is not old and provider.keys.keys
    assert all(key.kid != "retired" for key in provider.keys)
    # And its refreshed ID token, checked the same way.
    provider.keys = old
    fresh = await refresh.refresh_session(provider, client, session, now=session.refreshed_at + 1)
    assert fresh.sub == "alice" and provider.keys is not old
