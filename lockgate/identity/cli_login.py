"""`lockgate login`: signing the user in from the CLI, through the browser with a loopback
redirect (authorization code + PKCE S256, RFC 8252) or with the device authorization grant
(RFC 8628); and the CLI's own `auth.*` audit events.

Why it exists: the gateway's sign-in goes through its own `/oauth/callback`; the CLI has no
gateway to come back to, so it listens once on 127.0.0.1 or polls the token endpoint. The
token response becomes an :class:`~lockgate.identity.session.IdpSession` through
`lockgate.identity.refresh.session_from_tokens` (ID token validated there). Nothing here
prints, logs or puts into an error a token, code, verifier or device code.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from lockgate.audit import log as audit
from lockgate.identity.provider import OIDCError, Provider
from lockgate.identity.refresh import IdpClient, post_to_provider, session_from_tokens
from lockgate.identity.session import IdpSession
from lockgate.net.oauth_client import authorization_url, error_code, pkce_pair

LOGIN_TIMEOUT = 300.0
CALLBACK_PATH = "/callback"
DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
SLOW_DOWN_STEP = 5  # RFC 8628 section 3.5

Clock = Callable[[], float]


# --- sign-in through the browser (RFC 8252 loopback redirect) ------------------------------


def browser_url(url: str) -> str:
    """A provider URL we hand to a browser: https, or http on loopback; never `javascript:`."""
    parts = urlsplit(url)
    loopback = parts.hostname in ("127.0.0.1", "::1", "localhost")
    if parts.scheme != "https" and not (parts.scheme == "http" and loopback):
        raise OIDCError(
            f"The identity provider gave a sign-in URL lockgate will not open ({parts.scheme}:)",
            "the provider's URLs must use https",
        )
    return url


_PAGE = (
    "<!doctype html><meta charset=utf-8><title>lockgate</title>"
    "<body style='font-family:sans-serif;margin:3em'><p>{}</p></body>"
)


async def _answer(writer: asyncio.StreamWriter, status: str, text: str) -> None:
    body = _PAGE.format(text).encode("utf-8")
    head = (
        f"HTTP/1.1 {status}\r\ncontent-type: text/html; charset=utf-8\r\n"
        f"content-length: {len(body)}\r\ncache-control: no-store\r\n"
        "referrer-policy: no-referrer\r\nx-frame-options: DENY\r\n"
        "content-security-policy: default-src 'none'; style-src 'unsafe-inline'\r\n"
        "connection: close\r\n\r\n"
    )
    with contextlib.suppress(OSError):
        writer.write(head.encode("ascii") + body)
        await writer.drain()
        writer.close()


class LoopbackRedirect:
    """A one-shot HTTP listener on 127.0.0.1 for the provider's redirect: it answers the
    request carrying our state, ignores everything else, and closes."""

    def __init__(self, state: str) -> None:
        self._state = state
        self._result: asyncio.Future[dict[str, str]] | None = None
        self._server: asyncio.Server | None = None
        self.port = 0

    @property
    def redirect_uri(self) -> str:
        return f"http://127.0.0.1:{self.port}{CALLBACK_PATH}"

    async def __aenter__(self) -> LoopbackRedirect:
        self._result = asyncio.get_running_loop().create_future()
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = int(self._server.sockets[0].getsockname()[1])
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 2)

    async def wait(self, timeout: float) -> dict[str, str]:
        assert self._result is not None
        try:
            return await asyncio.wait_for(asyncio.shield(self._result), timeout)
        except TimeoutError:
            raise OIDCError(
                f"The sign-in was not finished within {timeout:g} seconds",
                "run `lockgate login` again and finish it in the browser",
            ) from None

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            line = await asyncio.wait_for(reader.readline(), 10)
            for _ in range(100):  # headers: read and ignore
                header = await asyncio.wait_for(reader.readline(), 10)
                if header in (b"\r\n", b"\n", b""):
                    break
        except (TimeoutError, OSError, ValueError):
            writer.close()
            return
        parts = line.decode("latin-1").split(" ")
        target = parts[1] if len(parts) == 3 else ""
        path, _, query = target.partition("?")
        assert self._result is not None
        if parts[0] != "GET" or path != CALLBACK_PATH or self._result.done():
            await _answer(writer, "404 Not Found", "Nothing here.")
            return
        params = {k: v[0] for k, v in parse_qs(query, keep_blank_values=True).items()}
        got = params.get("state", "")
        if not secrets.compare_digest(got.encode(), self._state.encode()):
            # Not our sign-in (a stale tab, or a forged link): refuse it and keep waiting.
            await _answer(
                writer, "400 Bad Request", "This sign-in is not the one lockgate started."
            )
            return
        if "error" in params or not params.get("code"):
            await _answer(writer, "200 OK", "The sign-in was refused. You can close this tab.")
        else:
            await _answer(writer, "200 OK", "Signed in to lockgate. You can close this tab.")
        self._result.set_result(params)


async def login_browser(
    provider: Provider,
    client: IdpClient,
    *,
    show: Callable[[str], None],
    timeout: float = LOGIN_TIMEOUT,
) -> IdpSession:
    """Authorization code + PKCE S256 + state + nonce, redirected to a loopback listener.

    ``show`` gets the authorization URL (to print it and/or open a browser with it)."""
    metadata = provider.metadata
    state, nonce = secrets.token_urlsafe(32), secrets.token_urlsafe(24)
    verifier, challenge = pkce_pair()
    async with LoopbackRedirect(state) as listener:
        show(
            authorization_url(
                browser_url(metadata.authorization_endpoint),
                client_id=client.client_id,
                redirect_uri=listener.redirect_uri,
                state=state,
                challenge=challenge,
                scope=" ".join(client.identity.scopes),
                nonce=nonce,
            )
        )
        answer = await listener.wait(timeout)
    if "error" in answer or not answer.get("code"):
        error = answer.get("error", "no code")[:60]
        raise OIDCError(
            f"The identity provider refused the sign-in ({error})",
            "check that you may use this client, then run `lockgate login` again",
        )
    status, body = await post_to_provider(
        provider,
        client,
        metadata.token_endpoint,
        "token endpoint",
        {
            "grant_type": "authorization_code",
            "code": answer["code"],
            "redirect_uri": listener.redirect_uri,
            "code_verifier": verifier,
        },
    )
    if status != 200:
        refusal = error_code(body, "unknown_error")
        raise OIDCError(
            f"The identity provider refused the code exchange ({status}: {refusal})",
            "run `lockgate login` again",
        )
    return await session_from_tokens(provider, client, body, nonce=nonce)


# --- the device authorization grant (RFC 8628) ---------------------------------------------


@dataclass(frozen=True)
class DeviceAuthorization:
    device_code: str = field(repr=False)
    user_code: str
    verification_uri: str
    verification_uri_complete: str | None
    expires_in: float
    interval: float


async def start_device(provider: Provider, client: IdpClient) -> DeviceAuthorization:
    url = provider.metadata.device_authorization_endpoint
    if url is None:
        raise OIDCError(
            "The identity provider does not offer the device authorization grant",
            "run `lockgate login` without --device to sign in through the browser",
        )
    status, body = await post_to_provider(
        provider,
        client,
        url,
        "device authorization endpoint",
        {"scope": " ".join(client.identity.scopes)},
    )
    if status != 200:
        refusal = error_code(body, "unknown_error")
        raise OIDCError(
            f"The identity provider refused the device sign-in ({status}: {refusal})",
            "check that the profile's client may use the device grant at the provider",
        )
    device_code, user_code = body.get("device_code"), body.get("user_code")
    uri = body.get("verification_uri") or body.get("verification_url")  # Google says _url
    complete = body.get("verification_uri_complete")
    if not (isinstance(device_code, str) and isinstance(user_code, str) and isinstance(uri, str)):
        raise OIDCError("The identity provider's device authorization answer is incomplete", "")
    expires_in = body.get("expires_in")
    interval = body.get("interval")
    return DeviceAuthorization(
        device_code=device_code,
        user_code=user_code,
        verification_uri=browser_url(uri),
        verification_uri_complete=browser_url(complete) if isinstance(complete, str) else None,
        expires_in=float(expires_in) if isinstance(expires_in, int | float) else 600.0,
        interval=float(interval) if isinstance(interval, int | float) and interval > 0 else 5.0,
    )


async def finish_device(
    provider: Provider,
    client: IdpClient,
    device: DeviceAuthorization,
    *,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    clock: Clock = time.monotonic,
) -> IdpSession:
    """Poll the token endpoint at the provider's pace until the user has approved."""
    deadline = clock() + device.expires_in
    interval = device.interval
    while True:
        await sleep(interval)
        if clock() >= deadline:
            break
        status, body = await post_to_provider(
            provider,
            client,
            provider.metadata.token_endpoint,
            "token endpoint",
            {"grant_type": DEVICE_GRANT, "device_code": device.device_code},
        )
        if status == 200:
            return await session_from_tokens(provider, client, body, nonce=None)
        error = error_code(body, "unknown_error")
        if error == "authorization_pending":
            continue
        if error == "slow_down":
            interval += SLOW_DOWN_STEP
            continue
        if error == "expired_token":
            break
        if error == "access_denied":
            raise OIDCError("The device sign-in was denied at the identity provider", "")
        raise OIDCError(
            f"The identity provider refused the device sign-in ({status}: {error})",
            "run `lockgate login --device` again",
        )
    raise OIDCError(
        "The device code expired before the sign-in was approved",
        "run `lockgate login --device` again and enter the code sooner",
    )


# --- audit events from the CLI -------------------------------------------------------------


def record_event(audit_path: Path, event: dict[str, Any]) -> str:
    """Append one `auth.*` event from the CLI: "written", or "pending" while a running
    gateway holds the log (see :func:`lockgate.audit.log.record`)."""
    return audit.record(audit_path, {**event, "source": "cli"})


__all__ = ["DeviceAuthorization", "LoopbackRedirect"]
