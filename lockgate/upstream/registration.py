"""The gateway's client at an upstream's authorization server, and its metadata document.

`register` picks, in the MCP spec's order: the profile's pre-registered client, else a client
ID metadata document (when the server supports them and the gateway has an https public
URL; the document is served at `METADATA_DOCUMENT_PATH`), else dynamic client registration
(RFC 7591) through `lockgate.upstream._endpoint`.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass, field
from typing import Any

from pydantic import Field, ValidationError

from lockgate.net.urlcheck import Resolver
from lockgate.upstream._endpoint import post_endpoint
from lockgate.upstream._errors import UpstreamOAuthError, oauth_error
from lockgate.upstream.discovery import CLIENT_NAME, Discovery, Document, ServerMetadata


@dataclass(frozen=True)
class UpstreamClient:
    """The gateway's client at the upstream's authorization server."""

    client_id: str
    client_secret: str | None = field(default=None, repr=False)
    auth_method: str = "none"


class _Registration(Document):
    client_id: str = Field(min_length=1)
    client_secret: str | None = None
    token_endpoint_auth_method: str | None = None


def client_metadata_document(base_url: str, redirect_uris: list[str]) -> dict[str, Any]:
    """The gateway's client ID metadata document; its URL is its client_id."""
    return {
        "client_id": metadata_document_url(base_url),
        "client_name": CLIENT_NAME,
        "client_uri": base_url,
        "redirect_uris": redirect_uris,
        "grant_types": ["authorization_code", "refresh_token"],
        "response_types": ["code"],
        "token_endpoint_auth_method": "none",
    }


METADATA_DOCUMENT_PATH = "/connect/_client-metadata.json"


def metadata_document_url(base_url: str) -> str:
    """Where the gateway serves its client ID metadata document (under /connect/)."""
    return f"{base_url.rstrip('/')}{METADATA_DOCUMENT_PATH}"


def _auth_method(metadata: ServerMetadata, has_secret: bool) -> str:
    if not has_secret:
        return "none"
    offered = metadata.token_endpoint_auth_methods_supported or ("client_secret_basic",)
    return "client_secret_basic" if "client_secret_basic" in offered else "client_secret_post"


async def register(
    discovery: Discovery,
    *,
    redirect_uri: str,
    preregistered: UpstreamClient | None = None,
    base_url: str | None = None,
    resolve: Resolver | None = None,
    verify: ssl.SSLContext | None = None,
) -> UpstreamClient:
    """A client at the upstream's authorization server, in the spec's order of preference."""
    metadata = discovery.metadata
    if preregistered is not None:
        method = _auth_method(metadata, preregistered.client_secret is not None)
        return UpstreamClient(preregistered.client_id, preregistered.client_secret, method)
    if (
        metadata.client_id_metadata_document_supported
        and base_url is not None
        and base_url.startswith("https://")
    ):
        return UpstreamClient(metadata_document_url(base_url))
    if metadata.registration_endpoint is None:
        raise UpstreamOAuthError(
            "The upstream's authorization server offers neither client ID metadata documents "
            "(for a gateway with an https public_url) nor dynamic client registration",
            "register a client there and set client_id (and client_secret) in the upstream's "
            "profile table",
        )
    body = {
        "client_name": CLIENT_NAME,
        "redirect_uris": [redirect_uri],
        "grant_types": ["authorization_code", "refresh_token"],
        "response_types": ["code"],
        "token_endpoint_auth_method": "none",
    }
    if discovery.scopes:
        body["scope"] = " ".join(discovery.scopes)
    status, raw = await post_endpoint(
        metadata.registration_endpoint,
        "registration_endpoint",
        json_body=body,
        resolve=resolve,
        verify=verify,
    )
    if status not in (200, 201):
        raise UpstreamOAuthError(
            f"The upstream's authorization server refused to register lockgate "
            f"({status}{oauth_error(raw)})",
            "register a client there and set client_id in the upstream's profile table",
        )
    try:
        reg = _Registration.model_validate_json(raw)
    except ValidationError:
        raise UpstreamOAuthError(
            "The upstream's registration answer is not a usable client registration", None
        ) from None
    method = reg.token_endpoint_auth_method or (
        "client_secret_basic" if reg.client_secret else "none"
    )
    return UpstreamClient(reg.client_id, reg.client_secret, method)
