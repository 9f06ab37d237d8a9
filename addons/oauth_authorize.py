"""`/oauth/authorize`, the trip through the identity provider (`/oauth/callback`) and the
consent page (`/oauth/consent`): who the user is, and whether they let this client in."""

from __future__ import annotations

import hmac
import re
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from joserfc.jwk import KeySet
from mitmproxy import http

from lockgate.addons._flow import state
from lockgate.addons.oauth_common import NO_STORE, Redirect, form_params, page, query_params
from lockgate.authserver.consent import (
    ConsentRefused,
    consent_cookie,
    consent_cookie_name,
    consent_page,
)
from lockgate.authserver.requests import AuthorizeRequest, OAuthError, parse_form
from lockgate.identity.browser import (
    LOGIN_COOKIE,
    LOGIN_TTL,
    TooManyLogins,
    cookie_value,
    login_cookie,
    session_cookie,
)
from lockgate.identity.claims import UserClaims
from lockgate.identity.provider import OIDCError, exchange_code, fetch_keys, validate_id_token
from lockgate.identity.refresh import ProviderUnavailable, SessionEnded, session_for
from lockgate.net.oauth_client import authorization_url
from lockgate.profile.model import is_loopback_host

if TYPE_CHECKING:
    from lockgate.addons.oauth_server import OAuthServer

_CHALLENGE_RE = re.compile(r"[A-Za-z0-9_-]{43}")
CLI_USER = "lockgate.cli_user"  # flow.metadata: the user `lockgate login` signed in
CLI_COOKIE = "lockgate_cli"  # carries the secret `lockgate login` left in the user's keyring


class Authorization:
    def __init__(self, server: OAuthServer) -> None:
        self.server = server

    def authorize(self, flow: http.HTTPFlow) -> None:
        params = query_params(flow)
        request = parse_form(AuthorizeRequest, params)
        client = self.server.store().get_client(request.client_id)
        if client is None:
            raise OAuthError(
                "invalid_client",
                f"Client {request.client_id!r} is not registered with this gateway; "
                "let your MCP client register again.",
            )
        if request.redirect_uri not in client.redirect_uris:
            raise OAuthError(
                "invalid_request",
                "The redirect_uri is not one this client registered, so the gateway will not "
                "send anything there.",
            )
        # From here on, errors go back to the client's registered redirect URI.
        redirect = Redirect(request.redirect_uri, request.state, self.server.issuer)
        if request.response_type != "code":
            return redirect.error(flow, "unsupported_response_type", "response_type must be code")
        if request.code_challenge_method != "S256" or not _CHALLENGE_RE.fullmatch(
            request.code_challenge
        ):
            return redirect.error(flow, "invalid_request", "PKCE with S256 is required")
        if not request.resource:
            return redirect.error(flow, "invalid_target", "the resource parameter is required")
        route = self.server.route_of_resource(request.resource)
        if route is None:
            return redirect.error(flow, "invalid_target", "resource is not a route of this gateway")
        declared = self.server.route_scopes(route)
        unknown = [s for s in (request.scope or "").split() if s not in declared]
        if declared and unknown:
            # A route that declares scopes grants only those (a route without any: as asked).
            return redirect.error(
                flow,
                "invalid_scope",
                f"scope {unknown[0]!r} is not offered on route {route!r}; "
                f"it offers {' '.join(declared)}",
            )
        fields: dict[str, Any] = {
            "client_id": client.client_id,
            "client_name": client.client_name or client.client_id,
            "redirect_uri": request.redirect_uri,
            "state": request.state,
            "code_challenge": request.code_challenge,
            "resource": request.resource,
            "route": route,
            "scope": request.scope,
        }
        profile = self.server.config.profile
        assert profile is not None
        if profile.identity.kind == "oidc":
            user = self.server.sessions.get(cookie_value(flow.request.headers.get("cookie")))
            user = user or flow.metadata.get(CLI_USER)  # set by `cli_session`, just before
            if user is None:
                return self._to_provider(flow, fields)
        else:
            user = self.server.user
        self._continue(flow, fields, user)

    def _continue(self, flow: http.HTTPFlow, fields: dict[str, Any], user: UserClaims) -> None:
        """The signed-in user's next step: a remembered approval, else the consent page."""
        redirect = Redirect(fields["redirect_uri"], fields["state"], self.server.issuer)
        client_id, route = fields["client_id"], fields["route"]
        identity = self.server.config.routes[route].identity
        if self.server.store().is_approved(user.sub, client_id, route, identity):
            code = self.server.codes.issue(
                client_id=client_id,
                redirect_uri=fields["redirect_uri"],
                code_challenge=fields["code_challenge"],
                user=user,
                resource=fields["resource"],
                scope=fields["scope"],
            )
            self.server.event(
                flow,
                "auth.consent",
                client=client_id,
                route=route,
                user=user.sub,
                outcome="success",
                remembered=True,
            )
            return redirect.send(flow, {"code": code})
        request_id, pending, browser = self.server.pending.add(**fields, user=user)
        # After connecting, the browser comes back to this authorization request (from the
        # provider's callback there is none to repeat: the link opens a tab of its own).
        on_authorize = flow.request.path.startswith("/oauth/authorize?")
        back = f"{self.server.issuer}{flow.request.path}" if on_authorize else None
        row = self.server.upstream_row(route, user.sub, return_to=back)
        page(flow, 200, consent_page(request_id, pending, "/oauth/consent", row))
        assert flow.response is not None
        # Ties the form to this browser: a process that learns the form's fields still
        # lacks the cookie (HttpOnly, SameSite=Strict, sent to /oauth/consent only).
        flow.response.headers.add(
            "set-cookie",
            consent_cookie(request_id, browser, self.server.pending.ttl, secure=self.server.secure),
        )

    # --- kind "oidc": the browser goes through the identity provider ---------------------

    def _to_provider(self, flow: http.HTTPFlow, fields: dict[str, Any]) -> None:
        profile = self.server.config.profile
        assert profile is not None
        identity = profile.identity
        metadata = self.server.provider().metadata
        try:
            login_state, login = self.server.logins.add(fields)
        except TooManyLogins as e:
            raise OAuthError("temporarily_unavailable", e.message, e.status) from None
        location = authorization_url(
            metadata.authorization_endpoint,
            client_id=identity.client_id or "",
            redirect_uri=f"{self.server.issuer}/oauth/callback",
            state=login_state,
            challenge=login.challenge,
            scope=" ".join(identity.scopes),
            nonce=login.nonce,
        )
        st = state(flow)
        st.local = True
        st.outcome = "success"
        flow.response = http.Response.make(
            302,
            b"",
            {
                "location": location,
                "set-cookie": login_cookie(login.browser, LOGIN_TTL, secure=self.server.secure),
                **NO_STORE,
            },
        )

    async def callback(self, flow: http.HTTPFlow) -> None:
        """`/oauth/callback`: the provider's answer; on success, the consent step."""
        if flow.request.method.upper() != "GET":
            raise OAuthError("invalid_request", "Use GET here.", 405)
        params = query_params(flow)
        browser = cookie_value(flow.request.headers.get("cookie"), LOGIN_COOKIE)
        login = self.server.logins.take(params["state"], browser) if params.get("state") else None
        if login is None:
            self.server.event(flow, "auth.login", outcome="denied", reason="unknown_state")
            raise OAuthError(
                "access_denied",
                "This sign-in is unknown, already finished or expired; "
                "start it again from your MCP client.",
                400,
            )
        fields = login.request
        redirect = Redirect(fields["redirect_uri"], fields["state"], self.server.issuer)
        if "error" in params or not params.get("code"):
            self.server.event(flow, "auth.login", outcome="denied", reason="provider_refused")
            return redirect.error(flow, "access_denied", "the identity provider refused sign-in")
        profile = self.server.config.profile
        assert profile is not None
        identity = profile.identity
        provider = self.server.provider()
        try:
            body = await exchange_code(
                provider.metadata,
                code=params["code"],
                redirect_uri=f"{self.server.issuer}/oauth/callback",
                verifier=login.verifier,
                client_id=identity.client_id or "",
                client_secret=self.server.oidc_secret,
            )

            def check(keys: KeySet) -> UserClaims:
                return validate_id_token(
                    body["id_token"],
                    keys,
                    issuer=provider.metadata.issuer,
                    client_id=identity.client_id or "",
                    nonce=login.nonce,
                    groups_claim=identity.groups_claim,
                    roles_claim=identity.roles_claim,
                )

            try:
                user = check(provider.keys)
            except OIDCError:
                # The provider may have rotated its keys: fetch them once, then decide.
                provider.keys = await fetch_keys(provider.metadata)
                user = check(provider.keys)
        except OIDCError as e:
            self.server.event(flow, "auth.login", outcome="denied", reason=e.message)
            raise OAuthError("access_denied", f"{e.message}; sign in again.", 403) from None
        self.server.event(flow, "auth.login", user=user.sub, outcome="success")
        # The provider's refresh token outlives the browser session: the gateway asks the
        # provider again before it refreshes this user's grants (oauth_tokens).
        await self.server.keeper().put(
            session_for(provider.metadata.issuer, identity.client_id or "", user, body)
        )
        sid = self.server.sessions.create(user)
        self._continue(flow, fields, user)
        assert flow.response is not None
        consent_cookies = flow.response.headers.get_all("set-cookie")
        flow.response.headers.set_all(
            "set-cookie",
            [
                *consent_cookies,
                session_cookie(sid, self.server.sessions.ttl, secure=self.server.secure),
                session_cookie(
                    sid, self.server.sessions.ttl, secure=self.server.secure, path="/connect"
                ),
                login_cookie("", 0, secure=self.server.secure),  # spent: the browser drops it
            ],
        )

    async def cli_session(self, flow: http.HTTPFlow) -> None:
        """Before `/oauth/authorize` without a gateway session, on a loopback-only gateway,
        from a local process that presents the secret login left in the user's keyring
        (cookie ``lockgate_cli``; other OS users cannot read it): the user `lockgate login`
        signed in, when the provider still honours their session
        (asked again when the last answer is a few minutes old). The consent page follows."""
        if not is_loopback_host(urlsplit(self.server.config.base_url).hostname or ""):
            return
        cookies = flow.request.headers.get("cookie")
        if self.server.sessions.get(cookie_value(cookies)):
            return
        presented = cookie_value(cookies, CLI_COOKIE)
        if presented is None:
            return  # any local process can reach loopback: no secret, no shortcut
        provider = self.server.provider()
        keeper = self.server.keeper()
        sub = await keeper.current(provider.metadata.issuer)
        if sub is None:
            return
        secret = await keeper.cli_secret(provider.metadata.issuer)
        if secret is None or not hmac.compare_digest(
            secret.encode(), presented.encode("utf-8", "replace")
        ):
            self.server.event(
                flow, "auth.login", user=sub, outcome="denied", reason="cli_secret_mismatch"
            )
            return  # off to the provider, as if nobody had signed in
        try:
            session = await keeper.fresh(provider, sub)
        except SessionEnded:
            self.server.event(
                flow, "auth.logout", user=sub, outcome="success", reason="provider_refused"
            )
            return  # off to the provider, as if nobody had signed in
        except ProviderUnavailable:
            return
        if session is not None:
            flow.metadata[CLI_USER] = session.user()
            self.server.event(flow, "auth.login", user=sub, outcome="success", method="cli")

    def consent(self, flow: http.HTTPFlow) -> None:
        req = flow.request
        own = {self.server.issuer.lower(), f"http://{(req.host_header or '').lower()}"}
        origin = (req.headers.get("origin") or "").rstrip("/").lower()
        fetch_site = req.headers.get("sec-fetch-site")
        if origin not in own or (fetch_site is not None and fetch_site != "same-origin"):
            self.server.event(flow, "auth.consent", outcome="denied", reason="foreign_origin")
            raise OAuthError(
                "access_denied",
                "The consent form was not sent from this gateway's own page, so it was refused.",
                403,
            )
        try:
            fields = form_params(flow)
        except OAuthError as e:
            raise OAuthError("invalid_request", "The consent form is not UTF-8.", 403) from e
        request_id = fields.get("request", "")
        browser = cookie_value(req.headers.get("cookie"), consent_cookie_name(request_id))
        try:
            pending = self.server.pending.take(request_id, fields.get("csrf", ""), browser)
        except ConsentRefused as e:
            who = e.pending
            extra = (
                {"client": who.client_id, "route": who.route, "user": who.user.sub} if who else {}
            )
            self.server.event(flow, "auth.consent", outcome="denied", reason=e.reason, **extra)
            raise
        redirect = Redirect(pending.redirect_uri, pending.state, self.server.issuer)
        if fields.get("decision") != "approve":
            self.server.event(
                flow,
                "auth.consent",
                client=pending.client_id,
                route=pending.route,
                user=pending.user.sub,
                outcome="denied",
            )
            redirect.error(flow, "access_denied", "the user denied access")
            return self._drop_consent_cookie(flow, request_id)
        route = self.server.config.routes.get(pending.route)
        if route is None:
            raise OAuthError("invalid_target", "The route no longer exists on this gateway.", 403)
        self.server.store().approve_client(
            pending.user.sub, pending.client_id, pending.route, route.identity
        )
        code = self.server.codes.issue(
            client_id=pending.client_id,
            redirect_uri=pending.redirect_uri,
            code_challenge=pending.code_challenge,
            user=pending.user,
            resource=pending.resource,
            scope=pending.scope,
        )
        self.server.event(
            flow,
            "auth.consent",
            client=pending.client_id,
            route=pending.route,
            user=pending.user.sub,
            outcome="success",
        )
        redirect.send(flow, {"code": code})
        self._drop_consent_cookie(flow, request_id)

    def _drop_consent_cookie(self, flow: http.HTTPFlow, request_id: str) -> None:
        """The form is answered: its cookie is of no further use to the browser."""
        assert flow.response is not None
        flow.response.headers.add(
            "set-cookie", consent_cookie(request_id, "", 0, secure=self.server.secure)
        )
