"""Injects each upstream's own credential, read from the OS keyring.

The client never sees it and never sends it. When the keyring holds none, or
cannot be read, the request does not go upstream: the client gets a JSON-RPC
error that says what to run.

`auth = "header"`: a static secret (`lockgate secret set`). `auth = "oauth"`: the flow's
user's tokens for that upstream (`lockgate connect`, or the gateway's `/connect/<upstream>`),
refreshed ahead of expiry, one refresh at a time per user and upstream. When the upstream
still answers 401, the token is refreshed once and the request replayed (its answer is
buffered, then filtered like any other); when the refresh is refused the client gets
-32042 with the connect URL.
"""

from __future__ import annotations

import logging
import ssl
from pathlib import Path

from mitmproxy import http

from lockgate.addons._flow import (
    JSON_HEADERS,
    answer_rpc_error,
    guarded_async,
    pending_route,
    state,
)
from lockgate.errors import KeyringUnavailable, LockgateError, SecretMissing
from lockgate.mcp import jsonrpc
from lockgate.mcp.exchange import InjectedToken, process_message, rewrite_event
from lockgate.mcp.sse import SseRewriter
from lockgate.net.tls import upstream_verify
from lockgate.policy.gateway import GatewayConfig
from lockgate.upstream._errors import UpstreamOAuthError
from lockgate.upstream.connect import connect_url
from lockgate.upstream.credentials import CredentialCache
from lockgate.upstream.oauth import REFRESH_AHEAD
from lockgate.upstream.tokens import UpstreamTokens

logger = logging.getLogger("lockgate")

# A replayed answer is buffered before it is filtered and sent: at most this much.
REPLAY_MAX_BYTES = 16 * 1024 * 1024
# Toward the upstream on a replay: what httpx sets itself, and the refused token.
_REPLAY_DROP = ("host", "content-length", "authorization", "accept-encoding", "connection")


class Credentials:
    def __init__(self, config: GatewayConfig) -> None:
        self.config = config
        self.cache = CredentialCache()

    def configure(self, updated: set[str]) -> None:
        self.cache.clear()

    def connected(self, upstream: str, user: str, error: LockgateError | None) -> None:
        """The connect flow stored new tokens (or failed): read them afresh next time."""
        self.cache.forget(upstream, user)

    @guarded_async
    async def request(self, flow: http.HTTPFlow) -> None:
        route = pending_route(flow)
        if route is None:
            return
        target = route.upstream
        auth = target.config.auth
        if auth == "none":
            return
        if auth == "oauth":
            await self._oauth(flow, target.name)
            return
        try:
            secret = self.cache.secret(target.name)
        except KeyringUnavailable as e:
            answer_rpc_error(flow, 503, jsonrpc.INTERNAL_ERROR, str(e), outcome="error")
            return
        except SecretMissing as e:
            self._not_connected(flow, target.name, str(e))
            return
        if secret is None:
            self._not_connected(
                flow,
                target.name,
                f"No credential is stored for upstream {target.name!r}; run "
                f"`lockgate secret set {target.name}`.",
            )
            return
        flow.request.headers[target.config.header] = target.config.value.replace("{secret}", secret)

    async def headers_for(self, flow: http.HTTPFlow) -> dict[str, str] | None:
        """The credential header this flow's upstream request would carry, for a request the
        gateway makes itself on the flow's behalf (the guardrails' own `tools/list`); None
        when none is held (the flow itself is then refused here)."""
        route = state(flow).route
        if route is None:
            return None
        target = route.upstream
        auth = target.config.auth
        if auth == "none":
            return {}
        try:
            if auth == "oauth":
                user = state(flow).user
                tokens = await self.cache.load(target.name, user) if user is not None else None
                if tokens is None or tokens.expires_within(0):
                    return None
                return {"authorization": f"Bearer {tokens.access_token}"}
            secret = self.cache.secret(target.name)
        except (KeyringUnavailable, SecretMissing):
            return None
        if secret is None:
            return None
        return {target.config.header: target.config.value.replace("{secret}", secret)}

    # --- auth = "oauth" ---------------------------------------------------------------------

    async def _oauth(self, flow: http.HTTPFlow, upstream: str) -> None:
        user = state(flow).user
        if user is None:
            raise RuntimeError("an oauth upstream's request has no signed-in user")
        try:
            tokens = await self.cache.load(upstream, user)
            if tokens is not None and tokens.expires_within(REFRESH_AHEAD):
                tokens = await self.cache.refresh(
                    upstream, user, tokens.access_token, state(flow).events
                )
        except KeyringUnavailable as e:
            answer_rpc_error(flow, 503, jsonrpc.INTERNAL_ERROR, str(e), outcome="error")
            return
        except SecretMissing as e:
            self._oauth_not_connected(flow, upstream, str(e))
            return
        except UpstreamOAuthError as e:
            answer_rpc_error(
                flow,
                502,
                jsonrpc.INTERNAL_ERROR,
                f"Upstream {upstream!r}: {e.message.rstrip('.')}; try again.",
                outcome="upstream_error",
                data={"upstream": upstream},
            )
            return
        if tokens is None:
            self._oauth_not_connected(
                flow,
                upstream,
                f"Upstream {upstream!r} is not connected for user {user!r}; open "
                f"{connect_url(self.config.base_url, upstream)} or run "
                f"`lockgate connect {upstream}`.",
            )
            return
        flow.request.headers["authorization"] = f"Bearer {tokens.access_token}"
        state(flow).injected = InjectedToken(upstream, user, tokens.access_token)

    def _oauth_not_connected(self, flow: http.HTTPFlow, upstream: str, message: str) -> None:
        url = connect_url(self.config.base_url, upstream)
        data = {"upstream": upstream, "connect_url": url, "command": f"lockgate connect {upstream}"}
        answer_rpc_error(
            flow, 200, jsonrpc.CONNECT_REQUIRED, message, outcome="connect_required", data=data
        )

    # --- the upstream refused the token: refresh once, replay once --------------------------

    @guarded_async
    async def responseheaders(self, flow: http.HTTPFlow) -> None:
        st = state(flow)
        sent = st.injected
        resp = flow.response
        if sent is None or resp is None or st.local or resp.status_code != 401:
            return
        st.injected = None  # once
        try:
            tokens = await self.cache.refresh(sent.upstream, sent.user, sent.token, st.events)
        except (KeyringUnavailable, SecretMissing, UpstreamOAuthError):
            tokens = None
        if tokens is None:
            message = (
                f"Upstream {sent.upstream!r} refused the stored token and it could not be "
                f"refreshed; open {connect_url(self.config.base_url, sent.upstream)} or run "
                f"`lockgate connect {sent.upstream}`."
            )
            url = connect_url(self.config.base_url, sent.upstream)
            data = {
                "upstream": sent.upstream,
                "connect_url": url,
                "command": f"lockgate connect {sent.upstream}",
            }
            ids = [m.id for m in st.messages if m.kind == "request"]
            errors = [
                jsonrpc.error_response(i, jsonrpc.CONNECT_REQUIRED, message, data) for i in ids
            ] or [jsonrpc.error_response(None, jsonrpc.CONNECT_REQUIRED, message, data)]
            body = jsonrpc.encode(errors if len(errors) > 1 else errors[0])
            self._replace(flow, 200, body, dict(JSON_HEADERS))
            st.outcome = "connect_required"
            st.reason = message
            return
        if flow.request.method.upper() == "GET":
            # A GET is an event stream that may never end: not buffered. The client opens
            # it again, and then the new token is used.
            message = (
                f"Upstream {sent.upstream!r} refused the stored token; it was refreshed, "
                "open the stream again."
            )
            body = jsonrpc.encode(jsonrpc.error_response(None, jsonrpc.INTERNAL_ERROR, message))
            self._replace(flow, 503, body, {**JSON_HEADERS, "retry-after": "0"})
            st.outcome = "upstream_error"
            st.reason = message
            return
        status, headers, body = await self._replay(flow, tokens)
        self._replace(flow, status, self._filtered(flow, headers, body), headers)

    async def _replay(
        self, flow: http.HTTPFlow, tokens: UpstreamTokens
    ) -> tuple[int, dict[str, str], bytes]:
        req = flow.request
        headers = {k: v for k, v in req.headers.items() if k.lower() not in _REPLAY_DROP}
        headers["authorization"] = f"Bearer {tokens.access_token}"
        headers["accept-encoding"] = "identity"
        profile = self.config.profile
        verify: ssl.SSLContext | bool = True
        timeout = 60.0
        if profile is not None:
            # What the proxy path trusts: the profile's CA alone when set, next to the profile.
            verify = upstream_verify(profile.gateway.upstream_ca, Path(profile.source))
            route = state(flow).route
            timeout = route.limits.first_byte if route else profile.gateway.upstream_timeout
        import httpx  # here, not at import: only a replay after a refused token needs it

        async with (
            httpx.AsyncClient(
                trust_env=False, verify=verify, timeout=timeout, follow_redirects=False
            ) as client,
            client.stream(
                req.method, req.url, headers=headers, content=req.raw_content or b""
            ) as response,
        ):
            body = bytearray()
            async for chunk in response.aiter_raw():
                body += chunk
                if len(body) > REPLAY_MAX_BYTES:
                    raise ValueError("the replayed answer is larger than the replay limit")
            out = {
                k: v
                for k, v in response.headers.items()
                if k.lower() not in ("content-length", "transfer-encoding", "connection")
            }
            return response.status_code, out, bytes(body)

    @staticmethod
    def _filtered(flow: http.HTTPFlow, headers: dict[str, str], body: bytes) -> bytes:
        """The replayed answer through the route's filters, as Capabilities would do it."""
        st = state(flow)
        ctype = next((v for k, v in headers.items() if k.lower() == "content-type"), "").lower()
        if ctype.startswith("text/event-stream"):
            rewriter = SseRewriter(lambda ev: rewrite_event(st, ev))
            parts = [rewriter(body) if body else [], rewriter(b"")]
            return b"".join(p if isinstance(p, bytes) else b"".join(p) for p in parts)
        if ctype.startswith("application/json") and body:
            obj = jsonrpc.loads(body)  # unreadable: raises, and the hook fails closed
            out = process_message(st, obj)
            return jsonrpc.encode(out) if out is not None else b""
        return body

    @staticmethod
    def _replace(flow: http.HTTPFlow, status: int, body: bytes, headers: dict[str, str]) -> None:
        """Send `body` instead of the upstream's 401, whose own body is swallowed as it
        arrives (as `fail_closed` does on this side of the exchange)."""
        replacement = http.Response.make(status, body, headers)

        def swallow(chunk: bytes) -> bytes | list[bytes]:
            return body if chunk == b"" else []

        replacement.stream = swallow
        flow.response = replacement
        st = state(flow)
        st.replacement = body

    def _not_connected(self, flow: http.HTTPFlow, upstream: str, message: str) -> None:
        data = {"upstream": upstream, "command": f"lockgate secret set {upstream}"}
        answer_rpc_error(
            flow, 200, jsonrpc.CONNECT_REQUIRED, message, outcome="connect_required", data=data
        )
