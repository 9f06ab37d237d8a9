"""POSTs to the upstream's authorization server: dynamic client registration, tokens.

They go through `lockgate.net.fetch.post`, the gateway's one SSRF-safe client (the URL checked
right before the call, the connection pinned to the checked addresses, the answer capped, no
redirect followed); this module only sends the body and says what went wrong in the
upstream's words.
"""

from __future__ import annotations

import json
import ssl
from urllib.parse import urlencode

from lockgate.net.fetch import FetchError, post
from lockgate.net.urlcheck import Resolver, UnsafeUrl
from lockgate.upstream._errors import UpstreamOAuthError, refused

MAX_RESPONSE_BYTES = 64 * 1024
POST_TIMEOUT = 15.0


async def post_endpoint(
    url: str,
    what: str,
    *,
    form: dict[str, str] | None = None,
    json_body: object = None,
    headers: dict[str, str] | None = None,
    resolve: Resolver | None = None,
    verify: ssl.SSLContext | None = None,
) -> tuple[int, bytes]:
    """POST a form, else a JSON body, to the endpoint `what` (`token_endpoint`, ...) at a
    metadata URL. Returns the status and the body; a redirect is an error."""
    if form is not None:
        content = urlencode(form).encode("ascii")
        content_type = "application/x-www-form-urlencoded"
    else:  # as httpx's json= encodes it
        text = json.dumps(json_body, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
        content = text.encode("utf-8")
        content_type = "application/json"
    send_headers = {"accept": "application/json", "content-type": content_type, **(headers or {})}
    try:
        status, body = await post(
            url,
            content,
            send_headers,
            max_bytes=MAX_RESPONSE_BYTES,
            timeout=POST_TIMEOUT,
            resolve=resolve,
            verify=verify,
        )
    except UnsafeUrl as e:
        raise refused(what, e) from None
    except FetchError as e:
        raise UpstreamOAuthError(
            f"The upstream's {what} failed ({e.message.rstrip('.')})",
            "check that the upstream's authorization server is up, then try again",
        ) from None
    if 300 <= status < 400:
        raise UpstreamOAuthError(
            f"The upstream's {what} answered a redirect, which lockgate does not follow with a "
            "POST",
            "ask the upstream's operator to fix its OAuth metadata",
        )
    return status, body
