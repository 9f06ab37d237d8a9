"""`/oauth/authorize`, the trip through the identity provider (`/oauth/callback`) and the
consent page (`/oauth/consent`): who the user is, and whether they let this client in."""

from __future__ import annotations

import hmac
from typing import Any
from urllib.parse import urlsplit

from mitmproxy import http

from lockgate.addons._flow import state
from lockgate.addons.oauth._http import (
    NO_STORE,
    OAuthContext,
    Redirect,
    form_params,
    page,
    query_params,
)
from lockgate.authserver.consent import (
    ConsentRefused,
    UpstreamRow,
    consent_cookie,
    consent_cookie_name,
    consent_page,
)
from lockgate.authserver.endpoints import RedirectRefusal
from lockgate.authserver.requests import OAuthError
from lockgate.identity.browser import (
    LOGIN_COOKIE,
    LOGIN_TTL,
    TooManyLogins,
    cookie_value,
    login_cookie,
    session_cookie,
)
from lockgate.identity.claims import UserClaims
from lockgate.identity.refresh import ProviderUnavailable, SessionEnded
from lockgate.net.oauth_client import authorization_url
from lockgate.profile.model import is_loopback_host
from lockgate.upstream.state import user_state

CLI_COOKIE = "lockgate_cli"  # carries the secret `lockgate login` left in the user's keyring


class Authorization:
    def __init__(self, ctx: OAuthContext) -> None:
        self.ctx = ctx
        self.auth = ctx.auth

    def authorize(self, flow: http.HTTPFlow) -> None:
        try:
            fields = self.auth.authorization_request(query_params(flow))
        except RedirectRefusal as e:
            redirect = Redirect(e.fields["redirect_uri"], e.fields["state"], self.auth.issuer)
            return redirect.error(flow, e.error, e.description)
        profile = self.ctx.config.profile
        assert profile is not None
        if profile.identity.kind == "oidc":
            user = self.auth.sessions.get(cookie_value(flow.request.headers.get("cookie")))
            user = user or state(flow).cli_user  # set by `cli_session`, just before
            if user is None:
                return self._to_provider(flow, fields)
        else:
            user = self.auth.user
        self._continue(flow, fields, user)

    def _continue(self, flow: http.HTTPFlow, fields: dict[str, Any], user: UserClaims) -> None:
        """The signed-in user's next step: a remembered approval, else the consent page."""
        redirect = Redirect(fields["redirect_uri"], fields["state"], self.auth.issuer)
        code = self.auth.remembered(fields, user, state(flow).events)
        if code is not None:
            return redirect.send(flow, {"code": code})
        route = fields["route"]
        request_id, pending, browser = self.auth.pending.add(**fields, user=user)
        # After connecting, the browser comes back to this authorization request (from the
        # provider's callback there is none to repeat: the link opens a tab of its own).
        on_authorize = flow.request.path.startswith("/oauth/authorize?")
        back = f"{self.auth.issuer}{flow.request.path}" if on_authorize else None
        row = self.upstream_row(route, user.sub, return_to=back)
        page(flow, 200, consent_page(request_id, pending, "/oauth/consent", row))
        assert flow.response is not None
        # Ties the form to this browser: a process that learns the form's fields still
        # lacks the cookie (HttpOnly, SameSite=Strict, sent to /oauth/consent only).
        flow.response.headers.add(
            "set-cookie",
            consent_cookie(request_id, browser, self.auth.pending.ttl, secure=self.auth.secure),
        )

    # --- kind "oidc": the browser goes through the identity provider ---------------------

    def _to_provider(self, flow: http.HTTPFlow, fields: dict[str, Any]) -> None:
        profile = self.ctx.config.profile
        assert profile is not None
        identity = profile.identity
        metadata = self.auth.provider().metadata
        try:
            login_state, login = self.auth.logins.add(fields)
        except TooManyLogins as e:
            raise OAuthError("temporarily_unavailable", e.message, e.status) from None
        location = authorization_url(
            metadata.authorization_endpoint,
            client_id=identity.client_id or "",
            redirect_uri=f"{self.auth.issuer}/oauth/callback",
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
                "set-cookie": login_cookie(login.browser, LOGIN_TTL, secure=self.auth.secure),
                **NO_STORE,
            },
        )

    async def callback(self, flow: http.HTTPFlow) -> None:
        """`/oauth/callback`: the provider's answer; on success, the consent step."""
        if flow.request.method.upper() != "GET":
            raise OAuthError("invalid_request", "Use GET here.", 405)
        params = query_params(flow)
        browser = cookie_value(flow.request.headers.get("cookie"), LOGIN_COOKIE)
        login = self.auth.logins.take(params["state"], browser) if params.get("state") else None
        if login is None:
            self.ctx.event(flow, "auth.login", outcome="denied", reason="unknown_state")
            raise OAuthError(
                "access_denied",
                "This sign-in is unknown, already finished or expired; "
                "start it again from your MCP client.",
                400,
            )
        fields = login.request
        redirect = Redirect(fields["redirect_uri"], fields["state"], self.auth.issuer)
        if "error" in params or not params.get("code"):
            self.ctx.event(flow, "auth.login", outcome="denied", reason="provider_refused")
            return redirect.error(flow, "access_denied", "the identity provider refused sign-in")
        user, sid = await self.auth.sign_in(login, params["code"], state(flow).events)
        self._continue(flow, fields, user)
        assert flow.response is not None
        consent_cookies = flow.response.headers.get_all("set-cookie")
        flow.response.headers.set_all(
            "set-cookie",
            [
                *consent_cookies,
                session_cookie(sid, self.auth.sessions.ttl, secure=self.auth.secure),
                session_cookie(
                    sid, self.auth.sessions.ttl, secure=self.auth.secure, path="/connect"
                ),
                login_cookie("", 0, secure=self.auth.secure),  # spent: the browser drops it
            ],
        )

    async def cli_session(self, flow: http.HTTPFlow) -> None:
        """Before `/oauth/authorize` without a gateway session, on a loopback-only gateway,
        from a local process that presents the secret login left in the user's keyring
        (cookie ``lockgate_cli``; other OS users cannot read it): the user `lockgate login`
        signed in, when the provider still honours their session
        (asked again when the last answer is a few minutes old). The consent page follows."""
        if not is_loopback_host(urlsplit(self.ctx.config.base_url).hostname or ""):
            return
        cookies = flow.request.headers.get("cookie")
        if self.auth.sessions.get(cookie_value(cookies)):
            return
        presented = cookie_value(cookies, CLI_COOKIE)
        if presented is None:
            return  # any local process can reach loopback: no secret, no shortcut
        provider = self.auth.provider()
        keeper = self.auth.keeper()
        sub = await keeper.current(provider.metadata.issuer)
        if sub is None:
            return
        secret = await keeper.cli_secret(provider.metadata.issuer)
        if secret is None or not hmac.compare_digest(
            secret.encode(), presented.encode("utf-8", "replace")
        ):
            self.ctx.event(
                flow, "auth.login", user=sub, outcome="denied", reason="cli_secret_mismatch"
            )
            return  # off to the provider, as if nobody had signed in
        try:
            session = await keeper.fresh(provider, sub)
        except SessionEnded:
            self.ctx.event(
                flow, "auth.logout", user=sub, outcome="success", reason="provider_refused"
            )
            return  # off to the provider, as if nobody had signed in
        except ProviderUnavailable:
            return
        if session is not None:
            state(flow).cli_user = session.user()
            self.ctx.event(flow, "auth.login", user=sub, outcome="success", method="cli")

    def consent(self, flow: http.HTTPFlow) -> None:
        req = flow.request
        own = {self.auth.issuer.lower(), f"http://{(req.host_header or '').lower()}"}
        origin = (req.headers.get("origin") or "").rstrip("/").lower()
        fetch_site = req.headers.get("sec-fetch-site")
        if origin not in own or (fetch_site is not None and fetch_site != "same-origin"):
            self.ctx.event(flow, "auth.consent", outcome="denied", reason="foreign_origin")
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
            pending = self.auth.pending.take(request_id, fields.get("csrf", ""), browser)
        except ConsentRefused as e:
            extra = e.pending.audit_fields() if e.pending else {}
            self.ctx.event(flow, "auth.consent", outcome="denied", reason=e.reason, **extra)
            raise
        redirect = Redirect(pending.redirect_uri, pending.state, self.auth.issuer)
        if fields.get("decision") != "approve":
            self.ctx.event(flow, "auth.consent", **pending.audit_fields(), outcome="denied")
            redirect.error(flow, "access_denied", "the user denied access")
            return self._drop_consent_cookie(flow, request_id)
        code = self.auth.approve(pending, state(flow).events)
        redirect.send(flow, {"code": code})
        self._drop_consent_cookie(flow, request_id)

    def upstream_row(self, route: str, user: str, *, return_to: str | None) -> UpstreamRow | None:
        """What the consent page says about the route's upstream: its `CredentialState` for
        this user (`lockgate.upstream.state`, the words `lockgate servers` uses), with a
        Connect button when it needs connecting. A keyring read (a few ms, on an interactive
        page); a keyring that cannot be read is shown, not raised."""
        profile = self.ctx.config.profile
        section = profile.routes.get(route) if profile is not None else None
        if profile is None or section is None:
            return None
        name = section.upstream
        held = user_state(profile, name, user)
        if held.kind == "needs_connect" and self.ctx.connect_link is not None:
            link = self.ctx.connect_link(name, user, return_to)
            return UpstreamRow(name, held.text, link, new_tab=return_to is None)
        if held.kind == "secret_missing" and held.fix:
            return UpstreamRow(name, f"{held.text} (run {held.fix})")
        return UpstreamRow(name, held.text)

    def _drop_consent_cookie(self, flow: http.HTTPFlow, request_id: str) -> None:
        """The form is answered: its cookie is of no further use to the browser."""
        assert flow.response is not None
        flow.response.headers.add(
            "set-cookie", consent_cookie(request_id, "", 0, secure=self.auth.secure)
        )
