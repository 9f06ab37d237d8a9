"""MCP authorization discovery: from an upstream's 401 to its authorization server's metadata.

In the spec's order (revision 2025-11-25): call the upstream without a token (`probe`); a
401's `WWW-Authenticate: Bearer` challenge may name `resource_metadata` (and `scope`); else
the protected resource metadata (RFC 9728) at the path-inserted well-known URL, then at the
root one; then its first `authorization_servers` entry's metadata: RFC 8414 path-inserted,
then OpenID Connect discovery path-inserted, then path-appended (for an issuer without a
path: RFC 8414, then OIDC). A server that does not list PKCE S256 is refused.

Every URL taken from metadata is a third party's choice: each is fetched through
`lockgate.net.fetch` (checked under the SSRF rules, pinned to the checked addresses), and
each endpoint is checked before anything is sent there.
"""

from __future__ import annotations

import functools
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from lockgate.errors import first_validation_error
from lockgate.mcp import jsonrpc
from lockgate.net.fetch import FetchError, checked, fetch_json
from lockgate.net.tls import trust_store
from lockgate.net.urlcheck import Resolver, UnsafeUrl
from lockgate.profile.model import is_loopback_host
from lockgate.upstream._errors import UpstreamOAuthError, refused, short

CLIENT_NAME = "lockgate"

PRM_WELL_KNOWN = "/.well-known/oauth-protected-resource"
AS_WELL_KNOWN = "/.well-known/oauth-authorization-server"
OIDC_WELL_KNOWN = "/.well-known/openid-configuration"

Fetcher = Callable[[str], Awaitable[object]]


def parse_bearer_challenge(header: str | None) -> dict[str, str]:
    """The auth-params of the `Bearer` challenge in a WWW-Authenticate header (RFC 6750).

    Quoted strings may hold commas and escaped quotes; other schemes in the same header
    are skipped. Keys are lower-cased.
    """
    if not header:
        return {}
    params: dict[str, str] = {}
    i, n = 0, len(header)
    in_bearer = False
    while i < n:
        while i < n and header[i] in " \t,":
            i += 1
        start = i
        while i < n and header[i] not in " \t,=":
            i += 1
        token = header[start:i]
        j = i
        while j < n and header[j] in " \t":
            j += 1
        if j < n and header[j] == "=" and token:
            i = j + 1
            while i < n and header[i] in " \t":
                i += 1
            if i < n and header[i] == '"':
                i += 1
                value = []
                while i < n and header[i] != '"':
                    if header[i] == "\\" and i + 1 < n:
                        i += 1
                    value.append(header[i])
                    i += 1
                i += 1
                text = "".join(value)
            else:
                vstart = i
                while i < n and header[i] not in " \t,":
                    i += 1
                text = header[vstart:i]
            if in_bearer:
                params.setdefault(token.lower(), text)
        elif token:
            in_bearer = token.lower() == "bearer"  # a new challenge starts
        else:
            i = j + 1  # a stray "=": skip it (never loop on it)
    return params


def canonical_resource(url: str) -> str:
    """The upstream's canonical URI for the `resource` parameter: lower-case scheme and
    host, no fragment, no trailing slash after a path (MCP authorization, RFC 8707)."""
    parts = urlsplit(url)
    path = parts.path
    if path.endswith("/") and path != "/":
        path = path.rstrip("/")
    if path == "/":
        path = ""
    return urlunsplit((parts.scheme.lower(), parts.netloc.lower(), path, parts.query, ""))


def protected_resource_candidates(upstream_url: str) -> list[str]:
    """RFC 9728 well-known URLs in the spec's order: path-inserted, then root."""
    parts = urlsplit(upstream_url)
    origin = f"{parts.scheme.lower()}://{parts.netloc.lower()}"
    path = parts.path.rstrip("/")
    out = []
    if path:
        out.append(f"{origin}{PRM_WELL_KNOWN}{path}")
    out.append(f"{origin}{PRM_WELL_KNOWN}")
    return out


def authorization_server_candidates(issuer: str) -> list[str]:
    """Authorization server metadata URLs in the MCP spec's order."""
    parts = urlsplit(issuer)
    origin = f"{parts.scheme.lower()}://{parts.netloc.lower()}"
    path = parts.path.rstrip("/")
    if not path:
        return [f"{origin}{AS_WELL_KNOWN}", f"{origin}{OIDC_WELL_KNOWN}"]
    return [
        f"{origin}{AS_WELL_KNOWN}{path}",
        f"{origin}{OIDC_WELL_KNOWN}{path}",
        f"{origin}{path}{OIDC_WELL_KNOWN}",
    ]


class Document(BaseModel):
    """A JSON document from the upstream's side: unknown members ignored, frozen."""

    model_config = ConfigDict(extra="ignore", frozen=True)


class ResourceMetadata(Document):
    """RFC 9728 protected resource metadata: what the gateway relies on."""

    resource: str | None = None
    authorization_servers: tuple[str, ...] = Field(min_length=1)
    scopes_supported: tuple[str, ...] | None = None


class ServerMetadata(Document):
    """RFC 8414 / OIDC discovery: what the gateway relies on."""

    issuer: str
    authorization_endpoint: str
    token_endpoint: str
    registration_endpoint: str | None = None
    code_challenge_methods_supported: tuple[str, ...] | None = None
    token_endpoint_auth_methods_supported: tuple[str, ...] | None = None
    client_id_metadata_document_supported: bool = False
    authorization_response_iss_parameter_supported: bool = False
    scopes_supported: tuple[str, ...] | None = None


@dataclass(frozen=True)
class Discovery:
    """Everything learned about one upstream before sending a browser anywhere."""

    upstream_url: str
    resource: str
    resource_metadata_url: str
    issuer: str
    metadata: ServerMetadata
    scopes: tuple[str, ...]


def loopback_allowed(upstream_url: str) -> bool:
    """Loopback metadata URLs only for an upstream that itself runs on this machine.

    A remote upstream's 401 could otherwise point discovery at the user's own services.
    """
    host = (urlsplit(upstream_url).hostname or "").lower()
    return is_loopback_host(host)


async def probe(
    upstream_url: str, *, verify: ssl.SSLContext | None = None, timeout: float = 10
) -> str:
    """Call the upstream without a token; the WWW-Authenticate header of its 401.

    The upstream URL comes from the profile (trusted), so this is the one request not
    made under the SSRF rules.
    """
    import httpx  # here, not at import: a gateway that never probes keeps its RSS

    init = jsonrpc.initialize_request(CLIENT_NAME, id=0)
    try:
        async with httpx.AsyncClient(
            trust_env=False,
            timeout=timeout,
            follow_redirects=False,
            verify=verify if verify is not None else trust_store(),
        ) as client:
            response = await client.post(
                upstream_url,
                json=init,
                headers={"accept": "application/json, text/event-stream"},
            )
            await response.aclose()
    except httpx.HTTPError as e:
        raise UpstreamOAuthError(
            f"The upstream {short(upstream_url)} could not be reached ({type(e).__name__})",
            "check the upstream's url in the profile and that it is up",
        ) from None
    if response.status_code != 401:
        raise UpstreamOAuthError(
            f"The upstream {short(upstream_url)} answered {response.status_code} without a "
            "token, not 401, so it does not ask for OAuth",
            'use auth = "none" or auth = "header" for this upstream',
        )
    return str(response.headers.get("www-authenticate", ""))


async def discover(
    upstream_url: str,
    challenge: str | None,
    *,
    configured_scopes: tuple[str, ...] | None = None,
    fetch: Fetcher | None = None,
    resolve: Resolver | None = None,
    verify: ssl.SSLContext | None = None,
) -> Discovery:
    """Protected resource metadata, then authorization server metadata, in the spec's order.

    `challenge` is the WWW-Authenticate header of the upstream's 401 (see `probe`).
    """
    loopback = loopback_allowed(upstream_url)
    get: Fetcher = fetch or functools.partial(
        fetch_json, resolve=resolve, allow_loopback_http=loopback, verify=verify
    )
    params = parse_bearer_challenge(challenge)
    resource = canonical_resource(upstream_url)

    candidates = (
        [params["resource_metadata"]]
        if params.get("resource_metadata")
        else protected_resource_candidates(upstream_url)
    )
    prm, prm_url = await _first_document(get, candidates, "protected resource metadata")
    resource_md = _parse(ResourceMetadata, prm, "protected resource metadata")
    if resource_md.resource is not None and not _covers(resource_md.resource, resource):
        raise UpstreamOAuthError(
            f"The upstream's protected resource metadata is for {short(resource_md.resource)}, "
            f"not for {short(resource)}",
            "check the upstream's url in the profile",
        )

    issuer = resource_md.authorization_servers[0]
    as_doc, _ = await _first_document(
        get, authorization_server_candidates(issuer), "authorization server metadata"
    )
    metadata = _parse(ServerMetadata, as_doc, "authorization server metadata")
    if metadata.issuer.rstrip("/") != issuer.rstrip("/"):
        raise UpstreamOAuthError(
            f"The authorization server calls itself {short(metadata.issuer)}, not {short(issuer)}",
            "ask the upstream's operator to fix its OAuth metadata (RFC 8414 section 3.3)",
        )
    methods = metadata.code_challenge_methods_supported
    if not methods or "S256" not in methods:
        raise UpstreamOAuthError(
            "The upstream's authorization server does not list PKCE S256 in "
            "code_challenge_methods_supported, so lockgate will not use it",
            "ask the upstream's operator to support PKCE with S256",
        )
    for name in ("authorization_endpoint", "token_endpoint", "registration_endpoint"):
        url = getattr(metadata, name)
        if url is None:
            continue
        try:
            await checked(url, allow_loopback_http=loopback, resolve=resolve)
        except UnsafeUrl as e:
            raise refused(name, e) from None

    if configured_scopes is not None:
        scopes = configured_scopes
    elif params.get("scope"):
        scopes = tuple(params["scope"].split())
    else:
        scopes = resource_md.scopes_supported or ()
    return Discovery(
        upstream_url=upstream_url,
        resource=resource,
        resource_metadata_url=prm_url,
        issuer=metadata.issuer,
        metadata=metadata,
        scopes=scopes,
    )


def _parse[M: BaseModel](model: type[M], document: object, what: str) -> M:
    """The upstream's metadata document `what` as `model`; the refusal names the first
    problem's place, never a value."""
    try:
        return model.model_validate(document)
    except ValidationError as e:
        where, message, _ = first_validation_error(e, "document")
        raise UpstreamOAuthError(
            f"The upstream's {what} is not usable ({where}: {message})",
            "ask the upstream's operator to fix its OAuth metadata",
        ) from None


def _covers(declared: str, resource: str) -> bool:
    """RFC 9728 section 3.3, leniently: the declared resource is ours or a parent of it."""
    declared = canonical_resource(declared)
    return resource == declared or resource.startswith(declared.rstrip("/") + "/")


async def _first_document(get: Fetcher, urls: list[str], what: str) -> tuple[object, str]:
    """The first of `urls` that answers a JSON object; an unsafe URL stops the search."""
    failures: list[str] = []
    for url in urls:
        try:
            doc = await get(url)
        except UnsafeUrl as e:
            raise refused(what, e) from None
        except FetchError as e:
            failures.append(e.message)
            continue
        if isinstance(doc, dict):
            return doc, url
        failures.append(f"{short(url)} is not a JSON object")
    raise UpstreamOAuthError(
        f"The upstream's {what} could not be found ({'; '.join(failures)[:400]})",
        "check that the upstream supports MCP authorization",
    )
