"""The gateway as OAuth client of an upstream MCP server (`auth = "oauth"` upstreams).

MCP authorization (spec revision 2025-11-25), in the spec's order:

1. call the upstream without a token; a 401's `WWW-Authenticate: Bearer` challenge may name
   `resource_metadata` (and `scope`);
2. else the protected resource metadata (RFC 9728) at the path-inserted well-known URL, then
   at the root one;
3. its first `authorization_servers` entry's metadata: RFC 8414 path-inserted, then OpenID
   Connect discovery path-inserted, then path-appended (for an issuer without a path: RFC
   8414, then OIDC);
4. a client: the profile's pre-registered one, else a client ID metadata document (when the
   server says `client_id_metadata_document_supported` and the gateway has an https public
   URL), else dynamic client registration (RFC 7591);
5. authorization code with PKCE S256 (a server that does not list S256 is refused), the
   `resource` indicator (RFC 8707) = the upstream's canonical URL, and a single-use state.

Every URL taken from metadata is a third party's choice: each passes
`lockgate.net.urlcheck.check_url` before it is fetched, posted to, or shown to a browser, and
each request goes to the addresses that were checked (no second DNS lookup). Nothing here
logs or puts in an error message a token, code, verifier or secret; error messages never
quote a response body.
"""

from __future__ import annotations

import base64
import functools
import json
import secrets
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import anyio
import anyio.to_thread
import httpx
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from lockgate.errors import LockgateError
from lockgate.net.oauth_client import authorization_url as authorization_url_for
from lockgate.net.oauth_client import pkce_pair
from lockgate.net.urlcheck import CheckedUrl, FetchError, Resolver, UnsafeUrl, check_url, fetch_json
from lockgate.profile.model import is_loopback_host
from lockgate.upstream.tokens import UpstreamTokens

CONNECT_TTL = 600.0  # a browser has ten minutes to come back from the upstream's sign-in
REFRESH_AHEAD = 60.0  # refresh this long before the access token expires
MAX_RESPONSE_BYTES = 64 * 1024
CLIENT_NAME = "lockgate"

PRM_WELL_KNOWN = "/.well-known/oauth-protected-resource"
AS_WELL_KNOWN = "/.well-known/oauth-authorization-server"
OIDC_WELL_KNOWN = "/.well-known/openid-configuration"

Fetcher = Callable[[str], Awaitable[object]]
Clock = Callable[[], float]


class UpstreamOAuthError(LockgateError):
    """Connecting to an upstream failed; the message names the step, never a secret."""


class RefreshRefused(UpstreamOAuthError):
    """The upstream's authorization server refused the refresh token: connect again.

    `error` is the server's OAuth error code (`invalid_grant`: the refresh token is dead).
    """

    def __init__(self, message: str, fix: str | None = None, error: str = "") -> None:
        super().__init__(message, fix)
        self.error = error


# --- small parsers ------------------------------------------------------------------------


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


# --- metadata models ----------------------------------------------------------------------


class _Doc(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class ResourceMetadata(_Doc):
    """RFC 9728 protected resource metadata: what the gateway relies on."""

    resource: str | None = None
    authorization_servers: tuple[str, ...] = Field(min_length=1)
    scopes_supported: tuple[str, ...] | None = None


class ServerMetadata(_Doc):
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


class _TokenResponse(_Doc):
    access_token: str = Field(min_length=1)
    token_type: str
    expires_in: float | None = None
    refresh_token: str | None = None
    scope: str | None = None


class _Registration(_Doc):
    client_id: str = Field(min_length=1)
    client_secret: str | None = None
    token_endpoint_auth_method: str | None = None


@dataclass(frozen=True)
class Discovery:
    """Everything learned about one upstream before sending a browser anywhere."""

    upstream_url: str
    resource: str
    resource_metadata_url: str
    issuer: str
    metadata: ServerMetadata
    scopes: tuple[str, ...]


@dataclass(frozen=True)
class Client:
    """The gateway's client at the upstream's authorization server."""

    client_id: str
    client_secret: str | None = field(default=None, repr=False)
    auth_method: str = "none"


def _first_error(e: ValidationError) -> str:
    first = e.errors()[0]
    where = ".".join(str(p) for p in first.get("loc", ())) or "document"
    return f"{where}: {first.get('msg', 'invalid')}"


def loopback_allowed(upstream_url: str) -> bool:
    """Loopback metadata URLs only for an upstream that itself runs on this machine.

    A remote upstream's 401 could otherwise point discovery at the user's own services.
    """
    host = (urlsplit(upstream_url).hostname or "").lower()
    return is_loopback_host(host)


async def _checked(
    url: str, resolve: Resolver | None, *, allow_loopback: bool = True
) -> CheckedUrl:
    """check_url off the event loop (it resolves DNS)."""
    check = functools.partial(check_url, url, resolve=resolve, allow_loopback_http=allow_loopback)
    return await anyio.to_thread.run_sync(check, abandon_on_cancel=True)


def _refused(what: str, e: UnsafeUrl) -> UpstreamOAuthError:
    return UpstreamOAuthError(
        f"The upstream's {what} {_short(e.url)!r} was refused ({e.reason})",
        "lockgate only follows public https URLs (or loopback http) from metadata; "
        "ask the upstream's operator to fix its OAuth metadata",
    )


# --- discovery ----------------------------------------------------------------------------


async def probe(upstream_url: str, *, verify: str | bool = True, timeout: float = 10) -> str:
    """Call the upstream without a token; the WWW-Authenticate header of its 401.

    The upstream URL comes from the profile (trusted), so this is the one request not
    made under the SSRF rules.
    """
    init = {
        "jsonrpc": "2.0",
        "id": 0,
        "method": "initialize",
        "params": {
            "protocolVersion": "2025-11-25",
            "capabilities": {},
            "clientInfo": {"name": CLIENT_NAME, "version": "0"},
        },
    }
    try:
        async with httpx.AsyncClient(
            trust_env=False, timeout=timeout, follow_redirects=False, verify=verify
        ) as client:
            response = await client.post(
                upstream_url,
                json=init,
                headers={"accept": "application/json, text/event-stream"},
            )
            await response.aclose()
    except httpx.HTTPError as e:
        raise UpstreamOAuthError(
            f"The upstream {_short(upstream_url)} could not be reached ({type(e).__name__})",
            "check the upstream's url in the profile and that it is up",
        ) from None
    if response.status_code != 401:
        raise UpstreamOAuthError(
            f"The upstream {_short(upstream_url)} answered {response.status_code} without a "
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
) -> Discovery:
    """Protected resource metadata, then authorization server metadata, in the spec's order.

    `challenge` is the WWW-Authenticate header of the upstream's 401 (see `probe`).
    """
    loopback = loopback_allowed(upstream_url)
    get: Fetcher = fetch or functools.partial(
        fetch_json, resolve=resolve, allow_loopback_http=loopback
    )
    params = parse_bearer_challenge(challenge)
    resource = canonical_resource(upstream_url)

    candidates = (
        [params["resource_metadata"]]
        if params.get("resource_metadata")
        else protected_resource_candidates(upstream_url)
    )
    prm, prm_url = await _first_document(get, candidates, "protected resource metadata")
    try:
        resource_md = ResourceMetadata.model_validate(prm)
    except ValidationError as e:
        raise UpstreamOAuthError(
            f"The upstream's protected resource metadata is not usable ({_first_error(e)})",
            "ask the upstream's operator to fix its OAuth metadata",
        ) from None
    if resource_md.resource is not None and not _covers(resource_md.resource, resource):
        raise UpstreamOAuthError(
            f"The upstream's protected resource metadata is for {_short(resource_md.resource)}, "
            f"not for {_short(resource)}",
            "check the upstream's url in the profile",
        )

    issuer = resource_md.authorization_servers[0]
    as_doc, _ = await _first_document(
        get, authorization_server_candidates(issuer), "authorization server metadata"
    )
    try:
        metadata = ServerMetadata.model_validate(as_doc)
    except ValidationError as e:
        raise UpstreamOAuthError(
            f"The upstream's authorization server metadata is not usable ({_first_error(e)})",
            "ask the upstream's operator to fix its OAuth metadata",
        ) from None
    if metadata.issuer.rstrip("/") != issuer.rstrip("/"):
        raise UpstreamOAuthError(
            f"The authorization server calls itself {_short(metadata.issuer)}, not "
            f"{_short(issuer)}",
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
            await _checked(url, resolve, allow_loopback=loopback)
        except UnsafeUrl as e:
            raise _refused(name, e) from None

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
            raise _refused(what, e) from None
        except FetchError as e:
            failures.append(e.message)
            continue
        if isinstance(doc, dict):
            return doc, url
        failures.append(f"{_short(url)} is not a JSON object")
    raise UpstreamOAuthError(
        f"The upstream's {what} could not be found ({'; '.join(failures)[:400]})",
        "check that the upstream supports MCP authorization",
    )


# --- registration -------------------------------------------------------------------------


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
    preregistered: Client | None = None,
    base_url: str | None = None,
    resolve: Resolver | None = None,
) -> Client:
    """A client at the upstream's authorization server, in the spec's order of preference."""
    metadata = discovery.metadata
    if preregistered is not None:
        method = _auth_method(metadata, preregistered.client_secret is not None)
        return Client(preregistered.client_id, preregistered.client_secret, method)
    if (
        metadata.client_id_metadata_document_supported
        and base_url is not None
        and base_url.startswith("https://")
    ):
        return Client(metadata_document_url(base_url))
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
    status, raw = await _post(
        metadata.registration_endpoint, "registration_endpoint", json_body=body, resolve=resolve
    )
    if status not in (200, 201):
        raise UpstreamOAuthError(
            f"The upstream's authorization server refused to register lockgate "
            f"({status}{_oauth_error(raw)})",
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
    return Client(reg.client_id, reg.client_secret, method)


# --- authorization ------------------------------------------------------------------------


@dataclass(frozen=True)
class PendingConnect:
    """A connect flow waiting for the browser to come back from the upstream's sign-in."""

    upstream: str
    user: str
    discovery: Discovery
    client: Client
    redirect_uri: str
    verifier: str = field(repr=False)
    browser: str = field(repr=False)
    return_to: str | None
    expires_at: float


class PendingConnects:
    """Keyed by the `state` sent to the authorization server: single use, short-lived, and
    bound to the browser that started the flow (a cookie it must send back)."""

    def __init__(self, *, ttl: float = CONNECT_TTL, clock: Clock = time.time) -> None:
        self._ttl = ttl
        self._clock = clock
        self._pending: dict[str, PendingConnect] = {}
        self._lock = threading.Lock()

    def add(
        self,
        *,
        upstream: str,
        user: str,
        discovery: Discovery,
        client: Client,
        redirect_uri: str,
        return_to: str | None = None,
    ) -> tuple[str, str, PendingConnect]:
        """Keep a flow; returns its state, its PKCE challenge, and the record."""
        now = self._clock()
        verifier, challenge = pkce_pair()
        pending = PendingConnect(
            upstream=upstream,
            user=user,
            discovery=discovery,
            client=client,
            redirect_uri=redirect_uri,
            verifier=verifier,
            browser=secrets.token_urlsafe(24),
            return_to=return_to,
            expires_at=now + self._ttl,
        )
        state = secrets.token_urlsafe(32)
        with self._lock:
            for key in [k for k, p in self._pending.items() if p.expires_at <= now]:
                del self._pending[key]
            self._pending[state] = pending
        return state, challenge, pending

    def take(self, state: str, browser: str | None) -> PendingConnect | None:
        """The flow, consumed; None if unknown, expired, or from another browser."""
        with self._lock:
            pending = self._pending.pop(state, None)
        if pending is None or self._clock() >= pending.expires_at:
            return None
        if not browser or not secrets.compare_digest(
            pending.browser.encode(), browser.encode("utf-8", "replace")
        ):
            return None
        return pending

    def waiting(self, upstream: str, user: str) -> bool:
        now = self._clock()
        with self._lock:
            return any(
                p.upstream == upstream and p.user == user and p.expires_at > now
                for p in self._pending.values()
            )


async def authorization_url(
    pending: PendingConnect, state: str, challenge: str, *, resolve: Resolver | None = None
) -> str:
    """The URL the browser is sent to, built on an endpoint that passed the SSRF check
    (a `javascript:` or private-address endpoint is refused here, before any browser)."""
    endpoint = pending.discovery.metadata.authorization_endpoint
    loopback = loopback_allowed(pending.discovery.upstream_url)
    try:
        await _checked(endpoint, resolve, allow_loopback=loopback)
    except UnsafeUrl as e:
        raise _refused("authorization_endpoint", e) from None
    return authorization_url_for(
        endpoint,
        client_id=pending.client.client_id,
        redirect_uri=pending.redirect_uri,
        state=state,
        challenge=challenge,
        scope=" ".join(pending.discovery.scopes),
        resource=pending.discovery.resource,
    )


def check_callback_issuer(pending: PendingConnect, iss: str | None) -> None:
    """RFC 9207: the `iss` of the authorization response, when there is or must be one."""
    metadata = pending.discovery.metadata
    if iss is None:
        if metadata.authorization_response_iss_parameter_supported:
            raise UpstreamOAuthError(
                "The upstream's authorization response carries no iss although its server "
                "promises one",
                "connect again",
            )
        return
    if iss.rstrip("/") != metadata.issuer.rstrip("/"):
        raise UpstreamOAuthError(
            "The authorization response came from another authorization server (iss differs)",
            "connect again",
        )


# --- tokens -------------------------------------------------------------------------------


async def exchange_code(
    pending: PendingConnect, code: str, *, resolve: Resolver | None = None
) -> UpstreamTokens:
    """Redeem the authorization code (PKCE verifier, resource) for the upstream's tokens."""
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": pending.redirect_uri,
        "code_verifier": pending.verifier,
        "resource": pending.discovery.resource,
    }
    metadata = pending.discovery.metadata
    status, raw = await _token_request(
        metadata.token_endpoint, form, pending.client, resolve=resolve
    )
    if status != 200:
        raise UpstreamOAuthError(
            f"The upstream's authorization server refused the code exchange "
            f"({status}{_oauth_error(raw)})",
            f"connect again with `lockgate connect {pending.upstream}`",
        )
    return _tokens(
        raw,
        token_endpoint=metadata.token_endpoint,
        client=pending.client,
        issuer=metadata.issuer,
        resource=pending.discovery.resource,
        scopes=pending.discovery.scopes,
        previous_refresh=None,
    )


async def refresh(
    tokens: UpstreamTokens, *, upstream: str, resolve: Resolver | None = None
) -> UpstreamTokens:
    """A new access token from the refresh token; RefreshRefused when the server says no."""
    if not tokens.refresh_token:
        raise RefreshRefused(
            f"There is no refresh token for upstream '{upstream}'",
            f"connect again with `lockgate connect {upstream}`",
        )
    form = {
        "grant_type": "refresh_token",
        "refresh_token": tokens.refresh_token,
        "resource": tokens.resource,
    }
    if tokens.scopes:
        form["scope"] = " ".join(tokens.scopes)
    client = Client(tokens.client_id, tokens.client_secret, tokens.token_endpoint_auth_method)
    status, raw = await _token_request(tokens.token_endpoint, form, client, resolve=resolve)
    if status in (400, 401):
        code = _oauth_error(raw)
        raise RefreshRefused(
            f"The upstream's authorization server refused to refresh the token ({status}{code})",
            f"connect again with `lockgate connect {upstream}`",
            error=code.removeprefix(": "),
        )
    if status != 200:
        raise UpstreamOAuthError(
            f"The upstream's authorization server could not refresh the token ({status})",
            "try again later",
        )
    return _tokens(
        raw,
        token_endpoint=tokens.token_endpoint,
        client=client,
        issuer=tokens.issuer,
        resource=tokens.resource,
        scopes=tokens.scopes,
        previous_refresh=tokens.refresh_token,
    )


def _tokens(
    raw: bytes,
    *,
    token_endpoint: str,
    client: Client,
    issuer: str,
    resource: str,
    scopes: tuple[str, ...],
    previous_refresh: str | None,
) -> UpstreamTokens:
    try:
        body = _TokenResponse.model_validate_json(raw)
    except ValidationError:
        raise UpstreamOAuthError(
            "The upstream's token response is not usable (no access_token or token_type)",
            "connect again",
        ) from None
    if body.token_type.lower() != "bearer":
        raise UpstreamOAuthError(
            "The upstream issued a token that is not a bearer token", "connect again"
        )
    now = time.time()
    return UpstreamTokens(
        access_token=body.access_token,
        refresh_token=body.refresh_token or previous_refresh,
        expires_at=now + body.expires_in if body.expires_in is not None else None,
        token_endpoint=token_endpoint,
        client_id=client.client_id,
        client_secret=client.client_secret,
        token_endpoint_auth_method=client.auth_method,
        issuer=issuer,
        resource=resource,
        scopes=tuple(body.scope.split()) if body.scope else scopes,
        obtained_at=now,
    )


async def _token_request(
    endpoint: str, form: dict[str, str], client: Client, *, resolve: Resolver | None
) -> tuple[int, bytes]:
    headers: dict[str, str] = {}
    if client.auth_method == "client_secret_basic" and client.client_secret is not None:
        pair = f"{_form_quote(client.client_id)}:{_form_quote(client.client_secret)}"
        headers["authorization"] = "Basic " + base64.b64encode(pair.encode()).decode("ascii")
    else:
        form = {**form, "client_id": client.client_id}
        if client.auth_method == "client_secret_post" and client.client_secret is not None:
            form["client_secret"] = client.client_secret
    return await _post(endpoint, "token_endpoint", form=form, headers=headers, resolve=resolve)


def _form_quote(text: str) -> str:
    from urllib.parse import quote_plus

    return quote_plus(text)


def _oauth_error(raw: bytes) -> str:
    """`: <error code>` from an OAuth error body, at most 60 characters; never the rest."""
    try:
        body = json.loads(raw)
    except (ValueError, RecursionError):
        return ""
    if isinstance(body, dict) and isinstance(body.get("error"), str):
        code = "".join(c for c in body["error"][:60] if c.isalnum() or c in "_-.")
        return f": {code}"
    return ""


async def _post(
    url: str,
    what: str,
    *,
    form: dict[str, str] | None = None,
    json_body: object = None,
    headers: dict[str, str] | None = None,
    resolve: Resolver | None = None,
    timeout: float = 15,
) -> tuple[int, bytes]:
    """POST to a metadata URL: checked first, pinned to the checked addresses, no redirects
    followed, the answer capped. Returns the status and the body."""
    try:
        checked = await _checked(url, resolve)
    except UnsafeUrl as e:
        raise _refused(what, e) from None
    default_port = 443 if checked.scheme == "https" else 80
    shown = f"[{checked.host}]" if ":" in checked.host else checked.host
    host_header = shown if checked.port == default_port else f"{shown}:{checked.port}"
    path_query = checked.url.split("/", 3)[3]
    extensions = {"sni_hostname": checked.host} if checked.scheme == "https" else {}
    send_headers = {
        "host": host_header,
        "accept": "application/json",
        "accept-encoding": "identity",
        "connection": "close",
        **(headers or {}),
    }
    last: Exception | None = None
    try:
        with anyio.fail_after(timeout):
            async with httpx.AsyncClient(trust_env=False, timeout=timeout) as client:
                for address in checked.addresses:
                    ip = f"[{address}]" if ":" in address else address
                    target = f"{checked.scheme}://{ip}:{checked.port}/{path_query}"
                    try:
                        async with client.stream(
                            "POST",
                            target,
                            data=form,
                            json=json_body,
                            headers=send_headers,
                            extensions=extensions,
                            follow_redirects=False,
                        ) as response:
                            body = bytearray()
                            async for chunk in response.aiter_raw():
                                body += chunk
                                if len(body) > MAX_RESPONSE_BYTES:
                                    raise UpstreamOAuthError(
                                        f"The upstream's {what} answered more than "
                                        f"{MAX_RESPONSE_BYTES} bytes",
                                        None,
                                    )
                            if 300 <= response.status_code < 400:
                                raise UpstreamOAuthError(
                                    f"The upstream's {what} answered a redirect, which lockgate "
                                    "does not follow with a POST",
                                    "ask the upstream's operator to fix its OAuth metadata",
                                )
                            return response.status_code, bytes(body)
                    except httpx.ConnectError as e:
                        last = e
                        continue
    except TimeoutError:
        raise UpstreamOAuthError(
            f"The upstream's {what} did not answer within {timeout:g} seconds", "try again"
        ) from None
    except httpx.HTTPError as e:
        raise UpstreamOAuthError(
            f"The upstream's {what} could not be reached ({type(e).__name__})", "try again"
        ) from None
    raise UpstreamOAuthError(
        f"The upstream's {what} could not be reached"
        + (f" ({type(last).__name__})" if last else ""),
        "check that the upstream's authorization server is up",
    )


def _short(url: str) -> str:
    base = url.split("?", 1)[0]
    return base if len(base) <= 200 else base[:200] + "..."
