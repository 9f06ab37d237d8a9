"""The gateway's signing key: an Ed25519 key made once and kept in the OS keyring, never on disk.

Its own module because the key outlives every token: `tokens` signs and verifies with it,
the JWK set publishes it, and `lockgate doctor` checks the keyring entry, none of which
need the token logic. The JWS algorithm is ``Ed25519``: EdDSA on Ed25519 under its fully
specified name (RFC 9864), which joserfc prefers over the deprecated ``EdDSA``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
import re
from dataclasses import dataclass, field
from typing import Protocol

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from joserfc.jwk import OKPKey

from lockgate import keyring as keyring_secrets
from lockgate.errors import LockgateError

ALGORITHM = "Ed25519"
KEYRING_USERNAME = "gateway:signing-key"

_B64URL_RE = re.compile(r"[A-Za-z0-9_-]*")


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(segment: str) -> bytes:
    if not _B64URL_RE.fullmatch(segment):
        raise ValueError("not base64url")
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


def jwk_thumbprint(public_jwk: dict[str, str]) -> str:
    """RFC 7638 thumbprint of an OKP key: SHA-256 over its required members, base64url."""
    required = {name: public_jwk[name] for name in ("crv", "kty", "x")}
    canonical = json.dumps(required, separators=(",", ":"), sort_keys=True)
    return b64url(hashlib.sha256(canonical.encode("utf-8")).digest())


@dataclass(frozen=True)
class SigningKey:
    """The gateway's Ed25519 key; ``kid`` is its public key's RFC 7638 thumbprint."""

    private_key: Ed25519PrivateKey = field(repr=False)
    kid: str = field(init=False)
    _jwk: OKPKey = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        raw = self.private_key.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )
        kid = jwk_thumbprint({"kty": "OKP", "crv": "Ed25519", "x": b64url(raw)})
        object.__setattr__(self, "kid", kid)
        object.__setattr__(self, "_jwk", OKPKey.import_key(self.private_key, {"kid": kid}))

    @classmethod
    def generate(cls) -> SigningKey:
        return cls(Ed25519PrivateKey.generate())

    @classmethod
    def from_text(cls, text: str) -> SigningKey:
        """Parse the keyring form (``ed25519:`` and the raw private key in base64url)."""
        prefix, _, encoded = text.partition(":")
        if prefix != "ed25519":
            raise ValueError("not an ed25519 signing key")
        try:
            raw = b64url_decode(encoded)
        except (ValueError, binascii.Error) as e:
            raise ValueError("signing key is not base64url") from e
        if len(raw) != 32:
            raise ValueError("an Ed25519 private key is 32 bytes")
        return cls(Ed25519PrivateKey.from_private_bytes(raw))

    def to_text(self) -> str:
        """The keyring form: short enough for every backend, no chunking needed."""
        raw = self.private_key.private_bytes(
            serialization.Encoding.Raw,
            serialization.PrivateFormat.Raw,
            serialization.NoEncryption(),
        )
        return f"ed25519:{b64url(raw)}"

    def public_jwk(self) -> dict[str, str]:
        """The public JWK, as published in the JWK set."""
        public = {str(k): str(v) for k, v in self._jwk.as_dict(private=False).items()}
        return {**public, "kid": self.kid, "alg": ALGORITHM, "use": "sig"}

    @property
    def jwk(self) -> OKPKey:
        return self._jwk


class KeySource(Protocol):
    """Where the signing key lives; the OS keyring in the gateway, a dict in tests."""

    def load(self) -> str | None: ...

    def store(self, value: str) -> None: ...


@dataclass
class KeyringKeySource:
    """The signing key's entry in the OS keyring (service ``lockgate``), with the same
    fail-closed error translation as upstream secrets."""

    username: str = KEYRING_USERNAME

    def load(self) -> str | None:
        return keyring_secrets.get_entry(self.username)

    def store(self, value: str) -> None:
        keyring_secrets.set_entry(self.username, value)


@dataclass
class MemoryKeySource:
    """A key source that forgets on exit: tests, and throwaway gateways."""

    value: str | None = field(default=None, repr=False)

    def load(self) -> str | None:
        return self.value

    def store(self, value: str) -> None:
        self.value = value


SIGNING_KEY_SOURCE_ENV = "LOCKGATE_SIGNING_KEY_SOURCE"
_MEMORY_SOURCE = MemoryKeySource()


def default_key_source(profile_setting: str = "keyring") -> KeySource:
    """The OS keyring; memory when the profile says ``[identity] signing_key = "memory"``
    (kind "dev" only) or ``LOCKGATE_SIGNING_KEY_SOURCE=memory`` (tests): the key lives in
    this process's memory, so tokens die with the gateway. Nothing else, never a file."""
    if profile_setting == "memory":
        return _MEMORY_SOURCE
    choice = os.environ.get(SIGNING_KEY_SOURCE_ENV, "keyring").strip().lower()
    if choice in ("", "keyring"):
        return KeyringKeySource()
    if choice == "memory":
        return _MEMORY_SOURCE
    raise LockgateError(
        f"{SIGNING_KEY_SOURCE_ENV}={choice!r} is not a signing key source",
        'unset it (the OS keyring is used) or set it to "memory" in tests',
    )


def load_or_create_signing_key(source: KeySource | None = None) -> SigningKey:
    """The gateway's signing key: loaded, or generated and stored on first use.

    After storing a new key it is read back, so two gateways starting at once settle on the
    one the keyring kept. An unreadable entry is an error, never silently replaced.
    """
    source = source if source is not None else KeyringKeySource()
    stored = source.load()
    if stored is None:
        source.store(SigningKey.generate().to_text())
        stored = source.load()
        if stored is None:
            raise LockgateError(
                "The OS keyring did not keep the gateway's signing key",
                "check that your keyring is unlocked and writable, then try again",
            )
    try:
        return SigningKey.from_text(stored)
    except ValueError as e:
        raise LockgateError(
            "The gateway's signing key in the OS keyring is unreadable",
            f"delete the keyring entry service 'lockgate', user '{KEYRING_USERNAME}'; "
            "lockgate makes a new one and MCP clients sign in again",
        ) from e
