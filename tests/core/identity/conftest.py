"""Fixtures of the identity tests: a real OpenID provider (`oidc-provider-mock`, a process)
and the profile's client at it; the real Secret Service for the keyring tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from lockgate.identity import refresh
from lockgate.identity.provider import Provider, discover
from lockgate.profile.model import IdentitySection
from tests.support import keyring_env
from tests.support.oidc_mock import mock_provider


@pytest.fixture(scope="module")
def issuer() -> Iterator[str]:
    with mock_provider() as url:
        yield url


@pytest.fixture
async def provider(issuer: str) -> Provider:
    """The mock provider, discovered (for anyio tests)."""
    return await discover(issuer)


@pytest.fixture
def client(issuer: str) -> refresh.IdpClient:
    identity = IdentitySection(
        kind="oidc", issuer=issuer, client_id="lockgate-cli", scopes=("openid", "email")
    )
    return refresh.IdpClient(identity=identity)


@pytest.fixture
def real_keyring() -> Iterator[None]:
    for _ in keyring_env.real_keyring():
        yield
