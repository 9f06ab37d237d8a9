"""lockgate.authserver.keys: the gateway's signing key, its JWKS, and where it is kept."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import keyring
import pytest

from lockgate.authserver.keys import (
    KeyringKeySource,
    MemoryKeySource,
    SigningKey,
    jwk_thumbprint,
    load_or_create_signing_key,
)
from lockgate.errors import KeyringUnavailable, LockgateError
from tests.core.authserver.issuing import AUDIENCE, ISSUER, KEY, NOW, b64url, mint
from tests.support import keyring_env

ROOT = Path(__file__).resolve().parents[3]
# RFC 8037 appendix A.1/A.3: an Ed25519 key and its RFC 7638 thumbprint.
RFC8037_D = "nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A"
RFC8037_X = "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"
RFC8037_THUMBPRINT = "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"


# --- the signing key --------------------------------------------------------------------


def test_kid_is_the_rfc7638_thumbprint() -> None:
    assert jwk_thumbprint({"kty": "OKP", "crv": "Ed25519", "x": RFC8037_X}) == RFC8037_THUMBPRINT
    key = SigningKey.from_text(f"ed25519:{RFC8037_D}")
    assert key.kid == RFC8037_THUMBPRINT
    assert key.public_jwk()["x"] == RFC8037_X


def test_public_jwk_is_public_only() -> None:
    other = SigningKey.generate()
    keys = [KEY.public_jwk(), other.public_jwk()]
    assert [k["kid"] for k in keys] == [KEY.kid, other.kid]
    for k in keys:
        assert k["kty"] == "OKP" and k["crv"] == "Ed25519" and k["alg"] == "Ed25519"
        assert k["use"] == "sig"
        assert "d" not in k
    assert KEY.to_text().split(":")[1] not in json.dumps(keys)


def test_key_text_round_trip_and_repr_hides_it() -> None:
    text = KEY.to_text()
    assert SigningKey.from_text(text).kid == KEY.kid
    assert text.split(":")[1] not in repr(KEY)
    for bad in ["", "ed25519:", "rsa:abc", "ed25519:!!!", f"ed25519:{b64url(b'x' * 31)}"]:
        with pytest.raises(ValueError):
            SigningKey.from_text(bad)


def test_signing_key_is_created_once() -> None:
    source = MemoryKeySource()
    first = load_or_create_signing_key(source)
    assert source.value is not None and source.value.startswith("ed25519:")
    assert load_or_create_signing_key(source).kid == first.kid


def test_unreadable_stored_key_is_an_error_not_a_new_key() -> None:
    source = MemoryKeySource("ed25519:c2VjcmV0LWJ1dC1ub3QtYS1rZXk")
    with pytest.raises(LockgateError) as info:
        load_or_create_signing_key(source)
    assert "c2VjcmV0" not in str(info.value)
    assert "gateway:signing-key" in str(info.value)
    assert source.value == "ed25519:c2VjcmV0LWJ1dC1ub3QtYS1rZXk"


def test_no_keyring_fails_closed(no_keyring: None) -> None:
    with pytest.raises(KeyringUnavailable):
        load_or_create_signing_key()


@pytest.fixture
def keyring_user() -> Iterator[str]:
    for new_name in keyring_env.real_keyring():
        user = f"gateway:signing-key:{new_name()}"
        try:
            yield user
        finally:
            if keyring.get_password("lockgate", user) is not None:
                keyring.delete_password("lockgate", user)


@pytest.mark.keyring
def test_signing_key_persists_in_the_real_keyring(keyring_user: str) -> None:
    first = load_or_create_signing_key(KeyringKeySource(keyring_user))
    assert keyring.get_password("lockgate", keyring_user) == first.to_text()
    assert load_or_create_signing_key(KeyringKeySource(keyring_user)).kid == first.kid
    # Another process (a gateway restart) loads the same key and verifies our tokens.
    token = mint(first)
    script = textwrap.dedent(
        f"""
        from lockgate.authserver.keys import KeyringKeySource, load_or_create_signing_key
        from lockgate.authserver.tokens import verify_access_token
        key = load_or_create_signing_key(KeyringKeySource({keyring_user!r}))
        claims = verify_access_token(
            {token!r}, keys=key, audience={AUDIENCE!r}, issuer={ISSUER!r}, now={NOW + 1}
        )
        print(key.kid, claims.sub)
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert out.stdout.split() == [first.kid, "alice"]
