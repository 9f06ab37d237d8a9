"""What the OAuth composite's children share: their narrow context, headers, pages, redirects,
forms and refusals.

No hooks here; the parent (`OAuthServer`, in `__init__`) owns the dispatch, the core
`AuthServer` owns the state. Each child gets an `OAuthContext`, never the parent: the
package has no import circle.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

from mitmproxy import http

from lockgate.addons._flow import answer, state
from lockgate.authserver import consent as consent_pages
from lockgate.authserver.consent import message_page
from lockgate.authserver.endpoints import AuthServer
from lockgate.authserver.requests import OAuthError, single_values
from lockgate.policy.gateway import GatewayConfig

NO_STORE = {"cache-control": "no-store", "pragma": "no-cache"}
# The pages of `lockgate.authserver.consent`, referrer same-origin, not no-referrer: with
# no-referrer Chromium posts the consent form with `Origin: null`, which Guard refuses. The
# redirect to the client carries no referrer.
PAGE_HEADERS = {**consent_pages.PAGE_HEADERS, "referrer-policy": "same-origin"}
# Browser-based MCP clients read metadata and call register/token/revoke cross-origin.
CORS = {"access-control-allow-origin": "*"}
PREFLIGHT = {
    **CORS,
    "access-control-allow-methods": "GET, POST, OPTIONS",
    "access-control-allow-headers": "content-type, mcp-protocol-version",
    "access-control-max-age": "600",
}


def page(flow: http.HTTPFlow, status: int, text: str) -> None:
    """Answer with one of our HTML pages (consent, message)."""
    st = state(flow)
    st.local = True
    st.outcome = "success" if status < 400 else "denied"
    flow.response = http.Response.make(status, text.encode("utf-8"), PAGE_HEADERS)


def query_params(flow: http.HTTPFlow) -> dict[str, str]:
    query = flow.request.path.split("?", 1)[1] if "?" in flow.request.path else ""
    return single_values(parse_qs(query, keep_blank_values=True))


def form_params(flow: http.HTTPFlow) -> dict[str, str]:
    try:
        text = (flow.request.get_content(strict=False) or b"").decode("utf-8")
    except UnicodeDecodeError as e:
        raise OAuthError("invalid_request", "The request body is not UTF-8.") from e
    return single_values(parse_qs(text, keep_blank_values=True))


def refuse(flow: http.HTTPFlow, path: str, e: OAuthError) -> None:
    """An OAuthError as a page (browser endpoints) or a JSON error (the others)."""
    if path in ("/oauth/authorize", "/oauth/consent"):
        page(flow, e.status, message_page("lockgate: sign-in refused", e.description))
    else:
        answer(
            flow,
            e.status,
            e.body(),
            outcome="denied",
            reason=e.description,
            headers={**NO_STORE, **CORS},
        )
    state(flow).outcome = "denied"
    state(flow).reason = e.description


@dataclass(frozen=True, slots=True)
class OAuthContext:
    """What an endpoint child may use: the core server, the config, the parent's dispatch
    (for a child that resolves a request before it is answered) and the consent page's
    Connect links."""

    auth: AuthServer
    config: GatewayConfig
    answer_request: Callable[[http.HTTPFlow], None]
    connect_link: Callable[[str, str, str | None], str] | None = None

    def event(self, flow: http.HTTPFlow, event: str, **fields: Any) -> None:
        self.auth.event(state(flow).events, event, **fields)


class Redirect:
    """The authorization response, sent to the client's registered redirect URI."""

    def __init__(self, uri: str, client_state: str | None, issuer: str) -> None:
        self.uri = uri
        self.state = client_state
        self.issuer = issuer

    def send(self, flow: http.HTTPFlow, params: dict[str, str]) -> None:
        if self.state is not None:
            params["state"] = self.state
        params["iss"] = self.issuer  # RFC 9207
        sep = "&" if urlsplit(self.uri).query else "?"
        st = state(flow)
        st.local = True
        st.outcome = st.outcome or ("denied" if "error" in params else "success")
        flow.response = http.Response.make(
            302, b"", {"location": f"{self.uri}{sep}{urlencode(params)}", **NO_STORE}
        )

    def error(self, flow: http.HTTPFlow, error: str, description: str) -> None:
        state(flow).outcome = "denied"
        state(flow).reason = description
        self.send(flow, {"error": error, "error_description": description})
