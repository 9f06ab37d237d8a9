"""The OAuth client side, shared by `lockgate login`, the gateway's trip through the identity
provider and `lockgate connect`: PKCE pairs and authorization URLs, built with authlib, and
client authentication at a token endpoint (RFC 6749 section 2.3.1).

Only the protocol pieces come from authlib; every network call goes through
:mod:`lockgate.net.fetch` (re-checked and pinned to the checked addresses), which authlib's
HTTP clients cannot do.
"""

from __future__ import annotations

import base64
from collections.abc import Collection
from urllib.parse import quote_plus

from authlib.common.security import generate_token
from authlib.oauth2.rfc6749.parameters import prepare_grant_uri
from authlib.oauth2.rfc7636 import create_s256_code_challenge

# RFC 7636 section 4.1: 43 to 128 characters; authlib's alphabet is letters and digits.
VERIFIER_LENGTH = 64


def s256(verifier: str) -> str:
    """The S256 code challenge of a verifier (RFC 7636 section 4.2)."""
    challenge: str = create_s256_code_challenge(verifier)
    return challenge


def pkce_pair() -> tuple[str, str]:
    """A fresh PKCE verifier and its S256 challenge."""
    verifier: str = generate_token(VERIFIER_LENGTH)
    return verifier, s256(verifier)


def authorization_url(
    endpoint: str,
    *,
    client_id: str,
    redirect_uri: str,
    state: str,
    challenge: str,
    scope: str | None = None,
    **extra: str | None,
) -> str:
    """An authorization code request with PKCE S256 (RFC 6749 4.1.1, RFC 7636 4.3), added to
    whatever query the endpoint already has; `extra` values of None are left out."""
    url: str = prepare_grant_uri(
        endpoint,
        client_id,
        "code",
        redirect_uri=redirect_uri,
        scope=scope or None,
        state=state,
        code_challenge=challenge,
        code_challenge_method="S256",
        **extra,
    )
    return url


def basic_authorization(client_id: str, secret: str) -> str:
    """The value of an HTTP Basic ``Authorization`` header for a client: id and secret
    form-encoded first (RFC 6749 section 2.3.1)."""
    pair = f"{quote_plus(client_id)}:{quote_plus(secret)}"
    return "Basic " + base64.b64encode(pair.encode()).decode("ascii")


def client_authentication(
    form: dict[str, str],
    client_id: str,
    secret: str | None,
    methods_supported: Collection[str],
) -> tuple[dict[str, str], tuple[str, str] | None]:
    """A token request's form and Basic credentials for a client of an identity provider:
    a public client names itself in the form; a confidential one uses ``client_secret_basic``
    when the provider offers it, else ``client_secret_post``. ``form`` is not changed."""
    form = dict(form)
    if secret is None:
        form["client_id"] = client_id
        return form, None
    if "client_secret_basic" in methods_supported:
        return form, (client_id, secret)
    form["client_id"] = client_id
    form["client_secret"] = secret
    return form, None


def error_code[D](body: object, default: D) -> str | D:
    """The OAuth error code of a JSON error answer (RFC 6749 section 5.2), at most 60
    characters; `default` when the answer names none."""
    error = body.get("error") if isinstance(body, dict) else None
    return error[:60] if isinstance(error, str) else default
