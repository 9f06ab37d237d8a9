"""What the gateway's OAuth 2.1 endpoints accept: request models, redirect URI rules, refusals.

Pure logic, no HTTP: the OAuth server addon (`addons/oauth`) parses requests into these models.
Every refusal is a :class:`OAuthError` carrying the RFC 6749 error code and one sentence for the
user. Consent state and its page live in `consent`, the registration rate limit in
`ratelimit`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from lockgate.errors import first_validation_error
from lockgate.profile.model import is_loopback_host

MAX_REDIRECT_URIS = 10
MAX_URI_LENGTH = 2048


class OAuthError(Exception):
    """A refused OAuth request: ``error`` is the RFC 6749/7591 code, ``description`` one
    sentence for whoever reads it."""

    def __init__(self, error: str, description: str, status: int = 400) -> None:
        super().__init__(description)
        self.error = error
        self.description = description
        self.status = status

    def body(self) -> dict[str, str]:
        return {"error": self.error, "error_description": self.description}


# Private-use URI schemes of native MCP clients (RFC 8252 section 7.1): the editors' own
# schemes, which predate the reverse-DNS advice, and any reverse-DNS scheme.
NATIVE_SCHEMES = frozenset({"vscode", "vscode-insiders", "cursor", "claude", "windsurf"})
_SCHEME_RE = re.compile(r"[a-z][a-z0-9+.-]*")
_DNS_LABEL_RE = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")


def is_reverse_dns_scheme(scheme: str) -> bool:
    """``com.example.app``: two or more DNS labels, the first one a top-level domain."""
    labels = scheme.split(".")
    return (
        len(labels) >= 2
        and all(_DNS_LABEL_RE.fullmatch(label) for label in labels)
        and not labels[0].isdigit()
    )


def is_private_use_scheme(scheme: str) -> bool:
    """A native app's own scheme: a known MCP client's, or a reverse-DNS one."""
    return scheme in NATIVE_SCHEMES or is_reverse_dns_scheme(scheme)


def redirect_uri_problem(uri: str) -> str | None:
    """Why a client's redirect URI is refused, or None.

    Accepted: https; http to a loopback host (RFC 8252 section 7.3); a native app's
    private-use scheme (section 7.1: ``vscode:``, ``cursor:``, ``claude:``,
    ``com.example.app:``). Always refused: fragments, user info, whitespace and control
    characters, and every other scheme (``javascript:``, ``data:``, ``file:``...).
    """
    if any(ord(c) <= 0x20 or 0x7F <= ord(c) <= 0x9F for c in uri):
        return f"redirect URI {uri!r} contains whitespace or control characters"
    if "\\" in uri:
        return f"redirect URI {uri!r} contains a backslash"
    try:
        parts = urlsplit(uri)
        host = parts.hostname
        user = parts.username is not None or parts.password is not None
    except ValueError:
        return f"{uri!r} is not a URL"
    if parts.fragment or "#" in uri:
        return f"redirect URI {uri!r} has a fragment"
    scheme = uri.split(":", 1)[0].lower() if ":" in uri else ""
    if not _SCHEME_RE.fullmatch(scheme):
        return f"redirect URI {uri!r} is not an absolute URL"
    if user or "@" in parts.netloc:
        return f"redirect URI {uri!r} carries user info"
    if scheme in ("https", "http"):
        if not host:
            return f"redirect URI {uri!r} has no host"
        if scheme == "https" or is_loopback_host(host):
            return None
        return f"redirect URI {uri!r} must be https, or http to a loopback address"
    if is_private_use_scheme(scheme):
        if not (parts.path or parts.netloc):
            return f"redirect URI {uri!r} has nothing after its scheme"
        return None
    return (
        f"redirect URI {uri!r} must be https, http to a loopback address, or a native "
        "app's own scheme (vscode:, cursor:, claude:, or reverse-DNS like com.example.app:)"
    )


def is_custom_scheme(uri: str) -> bool:
    """True for a private-use scheme redirect: the consent page says which app opens it."""
    return not uri.lower().startswith(("https:", "http:"))


class ClientMetadata(BaseModel):
    """RFC 7591 client metadata, as registrations and client ID metadata documents carry it;
    unknown members are ignored, public clients only."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    redirect_uris: tuple[Annotated[str, Field(max_length=MAX_URI_LENGTH)], ...] = Field(
        min_length=1, max_length=MAX_REDIRECT_URIS
    )
    client_name: str | None = Field(default=None, max_length=200)
    grant_types: tuple[str, ...] = Field(
        default=("authorization_code", "refresh_token"), max_length=2
    )
    response_types: tuple[str, ...] = Field(default=("code",), max_length=1)
    token_endpoint_auth_method: str = Field(default="none", max_length=64)
    scope: str | None = Field(default=None, max_length=1000)

    @field_validator("grant_types")
    @classmethod
    def _grants(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        unknown = [g for g in v if g not in ("authorization_code", "refresh_token")]
        if unknown or "authorization_code" not in v:
            raise ValueError("grant_types may only be authorization_code and refresh_token")
        return v

    @field_validator("response_types")
    @classmethod
    def _responses(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        if tuple(v) != ("code",):
            raise ValueError('response_types must be ["code"]')
        return v


class RegistrationRequest(ClientMetadata):
    """A dynamic client registration (RFC 7591) body."""


def parse_registration(data: object) -> RegistrationRequest:
    """Validate a registration body; OAuthError names the first problem."""
    try:
        request = RegistrationRequest.model_validate(data)
    except ValidationError as e:
        where, msg, _ = first_validation_error(e, "body")
        raise OAuthError("invalid_client_metadata", f"{where}: {msg}.") from e
    for uri in request.redirect_uris:
        problem = redirect_uri_problem(uri)
        if problem is not None:
            raise OAuthError("invalid_redirect_uri", f"The {problem}.")
    return request


class _Form(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class AuthorizeRequest(_Form):
    client_id: str = Field(min_length=1, max_length=512)
    redirect_uri: str = Field(min_length=1, max_length=2048)
    response_type: str = ""
    state: str | None = Field(default=None, max_length=1024)
    code_challenge: str = ""
    code_challenge_method: str = ""
    resource: str = ""
    scope: str = Field(default="", max_length=1000)


class CodeTokenRequest(_Form):
    grant_type: Literal["authorization_code"]
    code: str = Field(min_length=1, max_length=512)
    redirect_uri: str = Field(min_length=1, max_length=2048)
    client_id: str = Field(min_length=1, max_length=512)
    code_verifier: str = Field(min_length=1, max_length=256)
    resource: str = Field(default="", max_length=2048)


class RefreshTokenRequest(_Form):
    grant_type: Literal["refresh_token"]
    refresh_token: str = Field(min_length=1, max_length=512)
    client_id: str = Field(min_length=1, max_length=512)
    resource: str = Field(default="", max_length=2048)
    scope: str = Field(default="", max_length=1000)


class RevokeRequest(_Form):
    token: str = Field(min_length=1, max_length=8192)
    token_type_hint: str | None = None
    client_id: str | None = Field(default=None, max_length=512)


def single_values(form: Mapping[str, list[str]]) -> dict[str, str]:
    """Form or query parameters, each at most once (RFC 6749 section 3.1)."""
    out: dict[str, str] = {}
    for key, values in form.items():
        if len(values) != 1:
            raise OAuthError("invalid_request", f"Parameter {key!r} must appear once.")
        out[key] = values[0]
    return out


def parse_form[M: _Form](model: type[M], form: Mapping[str, str]) -> M:
    try:
        return model.model_validate(dict(form))
    except ValidationError as e:
        where, _, kind = first_validation_error(e, "request")
        if kind == "missing":
            raise OAuthError("invalid_request", f"Parameter {where!r} is missing.") from e
        raise OAuthError("invalid_request", f"Parameter {where!r} is invalid.") from e
