"""Outbound HTTP to URLs learned from metadata: the one SSRF-safe client.

Each request goes to a URL that passed `lockgate.net.urlcheck.check_url` right before it,
and only to the addresses that were checked (the Host header and the TLS name stay the
URL's, so no second DNS lookup can rebind it). Redirects are never followed by httpx: a GET
checks each hop itself, a POST does not follow one. Bodies are capped, and errors never
quote a response body. Identity (OIDC discovery, keys, tokens), upstream OAuth (discovery,
registration, tokens) and client ID metadata documents all call through here, so a fix to
the pinning lands once. TLS is verified against `lockgate.net.tls.trust_store`.
"""

from __future__ import annotations

import functools
import json
import ssl
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING
from urllib.parse import urldefrag, urlencode, urljoin

from lockgate.errors import LockgateError
from lockgate.net.oauth_client import basic_authorization
from lockgate.net.tls import trust_store
from lockgate.net.urlcheck import DEFAULT_PORTS, CheckedUrl, Resolver, check_url
from lockgate.util import threads

if TYPE_CHECKING:
    import httpx

# httpx and anyio are imported by the functions that call out, not here: a gateway that never
# fetches metadata (kind "none" or "dev", no upstream OAuth) keeps the ~6 MB of RSS they and
# what they pull cost (measured compiling from source, as bench/README.md explains).
_REDIRECTS = frozenset({301, 302, 303, 307, 308})


class FetchError(LockgateError):
    """A metadata document that could not be fetched or was not acceptable JSON."""


async def checked(
    url: str, *, allow_loopback_http: bool = True, resolve: Resolver | None = None
) -> CheckedUrl:
    """`check_url` off the event loop (it resolves DNS); raises UnsafeUrl."""
    check = functools.partial(
        check_url, url, allow_loopback_http=allow_loopback_http, resolve=resolve
    )
    return await threads.run_sync(check, abandon_on_cancel=True)


def _own_client(timeout: float, verify: ssl.SSLContext | None) -> httpx.AsyncClient:
    import httpx

    return httpx.AsyncClient(
        trust_env=False, timeout=timeout, verify=verify if verify is not None else trust_store()
    )


async def fetch_json(
    url: str,
    *,
    client: httpx.AsyncClient | None = None,
    max_bytes: int = 256 * 1024,
    max_redirects: int = 3,
    timeout: float = 10,
    allow_loopback_http: bool = True,
    resolve: Resolver | None = None,
    verify: ssl.SSLContext | None = None,
) -> object:
    """GET a metadata document, checking every hop before it is contacted.

    httpx never follows redirects itself: each Location is run through `check_url` first,
    and each connection goes to the checked addresses only. `timeout` bounds the whole
    fetch, redirects and slow bodies included. Errors never quote the response body.
    """
    import anyio

    try:
        with anyio.fail_after(timeout):
            if client is not None:
                return await _fetch(
                    client, url, max_bytes, max_redirects, allow_loopback_http, resolve
                )
            async with _own_client(timeout, verify) as own:
                return await _fetch(
                    own, url, max_bytes, max_redirects, allow_loopback_http, resolve
                )
    except TimeoutError:
        raise FetchError(
            f"Fetching {_short(url)} took longer than {timeout:g} seconds.",
            "Check that the upstream's metadata server is reachable.",
        ) from None


async def _fetch(
    client: httpx.AsyncClient,
    url: str,
    max_bytes: int,
    max_redirects: int,
    allow_loopback: bool,
    resolve: Resolver | None,
) -> object:
    current = url
    for hop in range(max_redirects + 1):
        hop_url = await checked(current, allow_loopback_http=allow_loopback, resolve=resolve)
        status, location, body = await _get_pinned(client, hop_url, max_bytes)
        if status in _REDIRECTS:
            if location is None:
                raise FetchError(
                    f"{_short(hop_url.url)} answered a redirect without a Location.",
                    "Check the upstream's metadata URL.",
                )
            if hop == max_redirects:
                break
            current = urldefrag(urljoin(hop_url.url, location)).url  # fragments stay client-side
            continue
        try:
            return json.loads(body)
        except (ValueError, RecursionError):
            raise FetchError(
                f"{_short(hop_url.url)} did not return valid JSON.",
                "Check the upstream's metadata URL.",
            ) from None
    raise FetchError(
        f"{_short(url)} redirected more than {max_redirects} times.",
        "Check the upstream's metadata URL; it may redirect in a loop.",
    )


async def _get_pinned(
    client: httpx.AsyncClient, checked: CheckedUrl, max_bytes: int
) -> tuple[int, str | None, bytes]:
    """GET a metadata document from the checked addresses."""

    async def read(response: httpx.Response) -> tuple[int, str | None, bytes]:
        body = await _read_capped(checked, response, max_bytes)
        return response.status_code, response.headers.get("location"), body

    return await _pinned(client, checked, "GET", {"Accept": "application/json"}, None, read)


async def _pinned[T](
    client: httpx.AsyncClient,
    checked: CheckedUrl,
    method: str,
    headers: dict[str, str],
    content: bytes | None,
    read: Callable[[httpx.Response], Awaitable[T]],
) -> T:
    """Connect to the checked addresses in turn, keeping the real Host and TLS name."""
    import httpx

    default_port = DEFAULT_PORTS[checked.scheme]
    shown_host = f"[{checked.host}]" if ":" in checked.host else checked.host
    host_header = shown_host if checked.port == default_port else f"{shown_host}:{checked.port}"
    path_query = checked.url.split("/", 3)[3]  # check_url always emits scheme://host/...
    extensions = {"sni_hostname": checked.host} if checked.scheme == "https" else {}
    headers = {
        "Host": host_header,
        "Accept-Encoding": "identity",
        "Connection": "close",  # a pooled connection to this IP may carry another TLS name
        **headers,
    }
    last_error: Exception | None = None
    for address in checked.addresses:
        ip = f"[{address}]" if ":" in address else address
        target = f"{checked.scheme}://{ip}:{checked.port}/{path_query}"
        try:
            async with client.stream(
                method,
                target,
                headers=headers,
                content=content,
                extensions=extensions,
                follow_redirects=False,
            ) as response:
                return await read(response)
        except httpx.ConnectError as exc:  # nothing was sent to that address: try the next
            last_error = exc
            continue
        except httpx.HTTPError as exc:
            raise FetchError(
                f"Calling {_short(checked.url)} failed ({type(exc).__name__}).",
                "Check that the server is reachable.",
            ) from None
    raise FetchError(
        f"Could not connect to {_short(checked.url)}"
        + (f" ({type(last_error).__name__})." if last_error else "."),
        "Check that the server is reachable.",
    )


async def post(
    url: str,
    content: bytes,
    headers: dict[str, str],
    *,
    client: httpx.AsyncClient | None = None,
    max_bytes: int = 256 * 1024,
    timeout: float = 10,
    allow_loopback_http: bool = True,
    resolve: Resolver | None = None,
    verify: ssl.SSLContext | None = None,
) -> tuple[int, bytes]:
    """POST `content` to a URL learned from metadata; the status and the (capped) body.

    The URL is checked again right before the call, since a name may resolve elsewhere by
    now, and the connection goes to the checked addresses only. Redirects are not followed
    (a token or registration endpoint has no reason to redirect): a 3xx is returned as it
    is. `timeout` bounds the whole call; errors never quote the body.
    """

    async def read(response: httpx.Response) -> tuple[int, bytes]:
        body = bytearray()
        async for chunk in response.aiter_raw():
            body += chunk
            if len(body) > max_bytes:
                raise FetchError(
                    f"{_short(url)} returned more than {max_bytes} bytes.",
                    "Check the server's token endpoint.",
                )
        return response.status_code, bytes(body)

    async def call(http_client: httpx.AsyncClient) -> tuple[int, bytes]:
        target = await checked(url, allow_loopback_http=allow_loopback_http, resolve=resolve)
        return await _pinned(http_client, target, "POST", headers, content, read)

    import anyio

    try:
        with anyio.fail_after(timeout):
            if client is not None:
                return await call(client)
            async with _own_client(timeout, verify) as own:
                return await call(own)
    except TimeoutError:
        raise FetchError(
            f"Calling {_short(url)} took longer than {timeout:g} seconds.",
            "Check that the server is reachable.",
        ) from None


async def post_form(
    url: str,
    form: dict[str, str],
    *,
    basic_auth: tuple[str, str] | None = None,
    client: httpx.AsyncClient | None = None,
    max_bytes: int = 256 * 1024,
    timeout: float = 10,
    allow_loopback_http: bool = True,
    resolve: Resolver | None = None,
    verify: ssl.SSLContext | None = None,
) -> tuple[int, object | None]:
    """POST a form (a token or revocation request) to a URL learned from metadata, as
    `post` does. Returns the status and the JSON body, or None when the body is not JSON.
    """
    content = urlencode(form).encode("ascii")
    headers = {
        "Accept": "application/json",
        "Content-Type": "application/x-www-form-urlencoded",
    }
    if basic_auth is not None:
        headers["Authorization"] = basic_authorization(*basic_auth)
    status, body = await post(
        url,
        content,
        headers,
        client=client,
        max_bytes=max_bytes,
        timeout=timeout,
        allow_loopback_http=allow_loopback_http,
        resolve=resolve,
        verify=verify,
    )
    try:
        return status, json.loads(body)
    except (ValueError, RecursionError):
        return status, None


async def _read_capped(checked: CheckedUrl, response: httpx.Response, max_bytes: int) -> bytes:
    if response.status_code in _REDIRECTS:
        return b""
    too_big = FetchError(
        f"{_short(checked.url)} returned more than {max_bytes} bytes.",
        "Metadata documents are small; check the upstream's metadata URL.",
    )
    _check_headers(checked, response)
    declared = response.headers.get("content-length")
    if declared is not None and declared.strip().isdigit() and int(declared) > max_bytes:
        raise too_big
    body = bytearray()
    async for chunk in response.aiter_raw():
        body += chunk
        if len(body) > max_bytes:
            raise too_big
    return bytes(body)


def _check_headers(checked: CheckedUrl, response: httpx.Response) -> None:
    if response.status_code != 200:
        raise FetchError(
            f"{_short(checked.url)} answered HTTP {response.status_code}.",
            "Check the upstream's metadata URL.",
        )
    encoding = response.headers.get("content-encoding", "identity").strip().lower()
    if encoding not in ("", "identity"):
        raise FetchError(
            f"{_short(checked.url)} sent a compressed body that was not asked for.",
            "Check the upstream's metadata server.",
        )
    media = response.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if not (
        media == "application/json"
        or (media.startswith("application/") and media.endswith("+json"))
    ):
        raise FetchError(
            f"{_short(checked.url)} did not answer with JSON (content type {media or 'none'!r}).",
            "Check the upstream's metadata URL.",
        )


def _short(url: str) -> str:
    """The URL without its query, for messages: metadata URLs may carry tokens there."""
    base = url.split("?", 1)[0]
    return base if len(base) <= 200 else base[:200] + "..."
