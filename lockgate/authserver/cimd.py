"""Client ID metadata documents (MCP 2025-11-25; draft-ietf-oauth-client-id-metadata-document).

An MCP client may skip registration and use an https URL as its ``client_id``: the URL
serves a JSON document describing the client (name, redirect URIs). The gateway fetches it
under the SSRF rules of :mod:`lockgate.net.urlcheck` (public https only, every address checked,
the connection pinned; no redirects followed, as the draft requires), validates it
(its ``client_id`` is the URL, no client secret, redirect URIs by the same rules as dynamic
registration), and caches it, bounded in entries and in time, honouring the server's cache
headers within limits.

Pure parsing and validation here, plus one fetch function; the `oauth_cimd` addon decides
when to resolve and records the client in the store as kind "cimd". Every refusal is an
:class:`~lockgate.authserver.requests.OAuthError` (``invalid_client``), one sentence for the user.
"""

from __future__ import annotations

import email.utils
import functools
import os
import re
import ssl
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from pydantic import Field, ValidationError

from lockgate.authserver.requests import ClientMetadata, OAuthError, redirect_uri_problem
from lockgate.errors import first_validation_error
from lockgate.net.fetch import FetchError, fetch_json
from lockgate.net.urlcheck import Resolver, UnsafeUrl, check_url
from lockgate.util import threads

if TYPE_CHECKING:
    import httpx

# The draft suggests 5 KB: a client description is small, and the gateway reads it often.
MAX_DOCUMENT_BYTES = 5 * 1024
MAX_CLIENT_ID_LENGTH = 512
FETCH_TIMEOUT = 5.0
# Cache bounds: the server's Cache-Control / Expires are honoured between these.
DEFAULT_TTL = 300.0
MIN_TTL = 30.0
MAX_TTL = 24 * 3600.0
CACHE_ENTRIES = 256
# Tests serve documents from 127.0.0.1 (with their own CA); a real gateway never fetches
# a client's document from this machine.
ALLOW_LOOPBACK_ENV = "LOCKGATE_CIMD_ALLOW_LOOPBACK"

_SECRET_METHODS = frozenset(
    {"client_secret_basic", "client_secret_post", "client_secret_jwt", "private_key_jwt"}
)
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_MAX_AGE = re.compile(r"(?:^|,)\s*max-age\s*=\s*\"?(\d{1,10})\"?\s*(?:,|$)", re.IGNORECASE)

Clock = Callable[[], float]


def _refused(description: str) -> OAuthError:
    return OAuthError("invalid_client", description, 400)


def looks_like_cimd(client_id: str) -> bool:
    """A client_id that is meant as a metadata document URL (http ones get refused)."""
    return client_id[:8].lower().startswith(("https://", "http://"))


def client_id_url_problem(client_id: str) -> str | None:
    """Why ``client_id`` is not an acceptable metadata document URL, or None.

    The draft's rules: https, a path other than ``/``, no dot segments, no fragment, no
    user info. Addresses are checked later, when it is fetched.
    """
    if len(client_id) > MAX_CLIENT_ID_LENGTH:
        return f"it is longer than {MAX_CLIENT_ID_LENGTH} characters"
    if any(ord(c) <= 0x20 or 0x7F <= ord(c) <= 0x9F for c in client_id) or "\\" in client_id:
        return "it contains whitespace, control characters or a backslash"
    try:
        parts = urlsplit(client_id)
        user = parts.username is not None or parts.password is not None
        host = parts.hostname
    except ValueError:
        return "it is not a URL"
    if parts.scheme.lower() != "https":
        return "it must be an https URL"
    if "#" in client_id:
        return "it has a fragment"
    if user or "@" in parts.netloc:
        return "it carries user info"
    if not host:
        return "it has no host"
    if parts.path in ("", "/"):
        return "it has no path (the document's URL needs one)"
    if any(seg in (".", "..") for seg in parts.path.split("/")):
        return "its path has . or .. segments"
    return None


class ClientDocument(ClientMetadata):
    """What the gateway keeps of a client's metadata document (RFC 7591 names)."""

    client_id: str = Field(min_length=1, max_length=MAX_CLIENT_ID_LENGTH)
    client_uri: str | None = Field(default=None, max_length=2048)

    @property
    def host(self) -> str:
        return urlsplit(self.client_id).hostname or ""

    def metadata(self) -> dict[str, str]:
        """What the store keeps beside the registration columns."""
        out = {"host": self.host}
        if self.client_uri:
            out["client_uri"] = self.client_uri
        if self.scope:
            out["scope"] = self.scope
        return out


def parse_document(data: object, url: str) -> ClientDocument:
    """Validate a fetched document for the client_id ``url``; OAuthError names the problem."""
    where = f"The client metadata document at {url}"
    if not isinstance(data, dict):
        raise _refused(f"{where} is not a JSON object.")
    if data.get("client_id") != url:
        raise _refused(
            f"{where} names another client_id ({str(data.get('client_id'))[:100]!r}); "
            "a document must name its own URL."
        )
    for secret in ("client_secret", "client_secret_expires_at"):
        if secret in data:
            raise _refused(f"{where} carries {secret}; a public client has no secret.")
    method = data.get("token_endpoint_auth_method", "none")
    if isinstance(method, str) and method in _SECRET_METHODS:
        raise _refused(
            f"{where} asks for token_endpoint_auth_method {method!r}; the gateway only "
            'serves public clients ("none").'
        )
    try:
        document = ClientDocument.model_validate(data)
    except ValidationError as e:
        field, msg, _ = first_validation_error(e, "document")
        raise _refused(f"{where} is not valid: {field}: {msg}.") from e
    if document.token_endpoint_auth_method != "none":
        raise _refused(
            f'{where} asks for token_endpoint_auth_method {method!r}; only "none" is served.'
        )
    for uri in document.redirect_uris:
        problem = redirect_uri_problem(uri)
        if problem is not None:
            raise _refused(f"{where} lists a bad {problem}.")
    return document


def cache_ttl(
    headers: Mapping[str, str],
    *,
    now: float | None = None,
    default: float = DEFAULT_TTL,
    minimum: float = MIN_TTL,
    maximum: float = MAX_TTL,
) -> float:
    """How long to keep a document, from its response headers (RFC 9111), within limits.

    ``no-store`` and ``no-cache`` mean 0 (fetched again on every use); ``max-age`` wins
    over ``Expires``; without either, ``default``. Anything else is clamped to
    [``minimum``, ``maximum``], so a server can neither make the gateway fetch on every
    request by accident nor pin a stale document for months.
    """
    lowered = {k.lower(): v for k, v in headers.items()}
    control = lowered.get("cache-control", "")
    directives = {d.strip().split("=", 1)[0].lower() for d in control.split(",")}
    if directives & {"no-store", "no-cache"}:
        return 0.0
    match = _MAX_AGE.search(control)
    if match:
        seconds = float(match.group(1))
    elif "expires" in lowered:
        try:
            expires = email.utils.parsedate_to_datetime(lowered["expires"]).timestamp()
        except (TypeError, ValueError, IndexError, OverflowError):
            return minimum  # an invalid Expires means "already expired" (RFC 9111 5.3)
        seconds = expires - (time.time() if now is None else now)
    else:
        seconds = default
    return min(max(seconds, minimum), maximum)


@dataclass(frozen=True)
class _Entry:
    document: ClientDocument
    expires_at: float


class DocumentCache:
    """Fetched documents by URL, at most ``size`` of them, each until its TTL runs out."""

    def __init__(self, size: int = CACHE_ENTRIES, *, clock: Clock = time.monotonic) -> None:
        self._size = size
        self._clock = clock
        self._entries: OrderedDict[str, _Entry] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, url: str) -> ClientDocument | None:
        with self._lock:
            entry = self._entries.get(url)
            if entry is None:
                return None
            if self._clock() >= entry.expires_at:
                del self._entries[url]
                return None
            self._entries.move_to_end(url)
            return entry.document

    def put(self, url: str, document: ClientDocument, ttl: float) -> None:
        with self._lock:
            self._entries.pop(url, None)
            if ttl <= 0:
                return
            self._entries[url] = _Entry(document, self._clock() + ttl)
            while len(self._entries) > self._size:
                self._entries.popitem(last=False)


def allow_loopback_from_env() -> bool:
    """Tests only: fetch documents from 127.0.0.1 (never on by default)."""
    return os.environ.get(ALLOW_LOOPBACK_ENV, "").strip() == "1"


async def fetch_document(
    url: str,
    *,
    verify: ssl.SSLContext | bool = True,
    allow_loopback: bool = False,
    timeout: float = FETCH_TIMEOUT,
    resolve: Resolver | None = None,
) -> tuple[ClientDocument, float]:
    """Fetch and validate the document at ``url``; returns it and how long it may be cached.

    Redirects are never followed (the draft forbids it); a redirect's target is still
    checked, so the error can say when it pointed into a private network.
    """
    problem = client_id_url_problem(url)
    if problem is not None:
        raise _refused(f"The client_id {url[:200]!r} is not a metadata document URL: {problem}.")
    import httpx  # here, not at import: only a metadata-document client_id needs it

    seen: list[httpx.Response] = []

    async def remember(response: httpx.Response) -> None:
        seen.append(response)

    try:
        async with httpx.AsyncClient(
            trust_env=False, timeout=timeout, verify=verify, event_hooks={"response": [remember]}
        ) as client:
            data = await fetch_json(
                url,
                client=client,
                max_bytes=MAX_DOCUMENT_BYTES,
                max_redirects=0,
                timeout=timeout,
                allow_loopback_http=allow_loopback,
                resolve=resolve,
            )
    except UnsafeUrl as e:
        raise _refused(
            f"The gateway will not fetch the client's metadata document at {url[:200]}: "
            f"{e.public_reason}."
        ) from None
    except FetchError as e:
        last = seen[-1] if seen else None
        if last is not None and last.status_code in _REDIRECTS:
            message = await _redirect_message(url, last, allow_loopback, resolve)
            raise _refused(message) from None
        raise _refused(
            f"The client's metadata document could not be fetched: {e.message.rstrip('.')}."
        ) from None
    document = parse_document(data, url)
    headers = dict(seen[-1].headers) if seen else {}
    return document, cache_ttl(headers)


async def _redirect_message(
    url: str, response: httpx.Response, allow_loopback: bool, resolve: Resolver | None
) -> str:
    base = f"The client's metadata document at {url[:200]} redirects elsewhere"
    import httpx

    location = response.headers.get("location")
    if location:
        target = httpx.URL(url).join(location)
        check = functools.partial(
            check_url, str(target), allow_loopback_http=allow_loopback, resolve=resolve
        )
        try:
            await threads.run_sync(check, abandon_on_cancel=True)
        except UnsafeUrl as e:
            return (
                f"{base}, into a refused address ({e.public_reason}); redirects are not followed."
            )
    return f"{base}; redirects are not followed, the document must be served at its own URL."
