"""`lockgate connect` / `lockgate disconnect`: an `auth = "oauth"` upstream's tokens.

The redirect URI registered at the upstream is always the gateway's own
`<base>/connect/<upstream>/callback`. When the gateway runs, the command opens its
`/connect/<upstream>` page and waits until the keyring holds new tokens; otherwise it serves
those two URLs itself on the profile's listen address for the duration of the flow (the
logic is the gateway's: `lockgate.upstream.connect.ConnectService`). Only the gateway's own
URL is given to the browser (`webbrowser`, no shell); the upstream's authorization URL is
reached by the gateway's redirect, after its SSRF checks.
"""

from __future__ import annotations

import asyncio
import time
import webbrowser
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from lockgate.cli._options import ProfileOption

if TYPE_CHECKING:  # httpx, uvicorn and the OAuth modules load when a command runs, not for --help
    from lockgate.cli.views import Console
    from lockgate.errors import LockgateError
    from lockgate.identity.claims import UserClaims
    from lockgate.profile.model import Profile

UPSTREAM = typer.Argument(..., help="The upstream's name, as in the profile's upstreams.NAME.")
POLL_SECONDS = 0.5


def _oauth_profile(profile_path: Path | None, upstream: str) -> Profile:
    from lockgate.errors import LockgateError
    from lockgate.profile.model import active_profile_path, load_profile

    profile = load_profile(active_profile_path(profile_path))
    section = profile.upstreams.get(upstream)
    if section is None:
        known = ", ".join(sorted(profile.upstreams)) or "none"
        raise LockgateError(
            f"The profile has no upstream {upstream!r} (known: {known})",
            "use the name of an [upstreams.NAME] table",
        )
    if section.auth != "oauth":
        raise LockgateError(
            f'Upstream {upstream!r} does not use auth = "oauth", so there is nothing to connect',
            f"for a static secret use `lockgate secret set {upstream}`",
        )
    return profile


def _local_base(profile: Profile) -> str:
    from lockgate.profile.model import split_listen

    host, port = split_listen(profile.gateway.listen)
    host = "127.0.0.1" if host in ("0.0.0.0", "::") else host
    host = f"[{host}]" if ":" in host else host
    return f"http://{host}:{port}"


def gateway_running(profile: Profile) -> bool:
    """Whether a gateway answers /healthz on the profile's listen address."""
    import httpx

    try:
        r = httpx.get(f"{_local_base(profile)}/healthz", timeout=2, trust_env=False)
    except httpx.HTTPError:
        return False
    try:
        return r.status_code == 200 and r.json().get("status") == "ok"
    except ValueError:
        return False


def signed_in_user(profile: Profile) -> UserClaims | None:
    """The user `lockgate login` signed in (a keyring read), or None when unknown."""
    from lockgate.errors import LockgateError
    from lockgate.identity.session import cli_user

    try:
        return cli_user(profile.identity)
    except LockgateError:  # no keyring or a damaged sign-in: the browser's user decides
        return None


def _obtained(upstream: str, user: str) -> float | None:
    from lockgate.errors import SecretMissing
    from lockgate.upstream import tokens as upstream_tokens

    try:
        tokens = upstream_tokens.load(upstream, user)
    except SecretMissing:
        return None
    return None if tokens is None else tokens.obtained_at


def connect(
    upstream: str = UPSTREAM,
    profile: ProfileOption = None,
    no_browser: bool = typer.Option(
        False, "--no-browser", help="Print the URL to open instead of opening a browser."
    ),
    timeout: float = typer.Option(600, "--timeout", help="Seconds to wait for the sign-in."),
) -> None:
    """Connect UPSTREAM (auth = "oauth") for you: sign in at its authorization server once;
    its tokens go to the OS keyring, never to a client config.

    Uses the running gateway when there is one, else serves the callback itself.

    Example: lockgate connect linear --profile ~/lockgate/profile.toml
    """
    from lockgate.cli.views import console
    from lockgate.errors import GatewayError, LockgateError
    from lockgate.identity.claims import local_user
    from lockgate.upstream.connect import connect_url

    prof = _oauth_profile(profile, upstream)
    out = console(stderr=True)
    url = connect_url(prof.base_url(), upstream)
    if prof.identity.kind == "oidc":
        if not gateway_running(prof):
            raise GatewayError(
                'With [identity] kind = "oidc" the gateway connects upstreams for its '
                "signed-in user, and it is not running",
                "start it with `lockgate up`, then run this again",
            )
        signed_in = signed_in_user(prof)
        if signed_in is None:  # the gateway knows its browser's user; the CLI does not
            _show(url, no_browser)
            out.print("Finish in the browser; the gateway stores the tokens for your sign-in.")
            return
        user = signed_in.sub
        out.print(f"Waiting for tokens for {signed_in.email or user} (`lockgate login`).")
    else:
        user = local_user()
    before = _obtained(upstream, user)
    if gateway_running(prof):
        out.print(f"Connecting [bold]{upstream}[/] through the running gateway.")
        _show(url, no_browser)
        with out.status(f"Waiting for the sign-in at {upstream}'s authorization server..."):
            deadline = time.monotonic() + timeout
            while _obtained(upstream, user) in (None, before):
                if time.monotonic() > deadline:
                    raise LockgateError(
                        f"No tokens for {upstream!r} arrived within {timeout:g} seconds",
                        f"run `lockgate connect {upstream}` again and finish the sign-in",
                    )
                time.sleep(POLL_SECONDS)
    else:
        out.print(f"Connecting [bold]{upstream}[/] (no gateway running: serving the callback).")
        error = asyncio.run(_serve_flow(prof, upstream, user, url, no_browser, timeout, out))
        if error is not None:
            raise error
    out.print(f"[green]Connected[/] {upstream} for {user}; its tokens are in the OS keyring.")


def _show(url: str, no_browser: bool) -> None:
    if no_browser:
        typer.echo(f"Open this URL in your browser: {url}")
        return
    typer.echo(f"Opening {url}")
    if not webbrowser.open(url):  # a list of arguments, never a shell
        typer.echo(f"No browser could be opened; open this URL yourself: {url}")


async def _serve_flow(
    profile: Profile,
    upstream: str,
    user: str,
    url: str,
    no_browser: bool,
    timeout: float,
    out: Console,
) -> LockgateError | None:
    """Serve /connect/<upstream> and its callback until the flow ends; its error, if any."""
    import uvicorn
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route

    from lockgate.errors import GatewayError, LockgateError
    from lockgate.profile.model import split_listen
    from lockgate.upstream.connect import ConnectService

    done: asyncio.Future[LockgateError | None] = asyncio.get_running_loop().create_future()

    def finished(name: str, who: str, error: LockgateError | None) -> None:
        if name == upstream and not done.done():
            done.set_result(error)

    service = ConnectService(
        lambda: profile, profile.base_url, lambda upstream, cookie, params: user
    )
    service.listeners.append(finished)
    log: list[dict[str, object]] = []

    async def endpoint(request: Request) -> Response:
        reply = await service.handle(
            request.method, request.url.path, request.url.query, request.headers.get("cookie")
        )
        log.extend(reply.events)
        response = Response(reply.body, status_code=reply.status, headers=reply.headers)
        for cookie in reply.cookies:
            response.headers.append("set-cookie", cookie)
        return response

    app = Starlette(routes=[Route("/connect/{rest:path}", endpoint, methods=["GET"])])
    host, port = split_listen(profile.gateway.listen)
    server = uvicorn.Server(
        uvicorn.Config(app, host=host, port=port, log_level="warning", access_log=False)
    )
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            raise GatewayError(
                f"Could not listen on {profile.gateway.listen} for the connect callback",
                "stop what uses that port, or start the gateway and connect through it",
            )
        await asyncio.sleep(0.02)
    try:
        _show(url, no_browser)
        try:
            return await asyncio.wait_for(done, timeout)
        except TimeoutError:
            return LockgateError(
                f"The sign-in for {upstream!r} did not finish within {timeout:g} seconds",
                f"run `lockgate connect {upstream}` again",
            )
    finally:
        await asyncio.sleep(0.2)  # let the browser receive the final page
        server.should_exit = True
        await task
        _record(log)


def _record(events: list[dict[str, object]]) -> None:
    """The flow's auth.* events into the audit log, as the gateway would have written them."""
    from lockgate.audit.log import AuditLog
    from lockgate.errors import LockgateError
    from lockgate.paths import audit_log_path

    if not events:
        return
    try:
        with AuditLog(audit_log_path()) as log:
            for event in events:
                log.append(event)
    except LockgateError as e:  # the tokens are stored; say so, and why the log is not
        typer.echo(f"lockgate: the audit log was not written ({e.message})", err=True)


def disconnect(
    upstream: str = UPSTREAM,
    profile: ProfileOption = None,
    user: str | None = typer.Option(
        None, "--user", help="Whose tokens (default: you; kind oidc: the user's sub)."
    ),
) -> None:
    """Forget UPSTREAM's tokens from the OS keyring; the next call asks to connect again.

    Example: lockgate disconnect linear
    """
    from lockgate.cli.views import console
    from lockgate.errors import LockgateError
    from lockgate.identity.session import cli_user
    from lockgate.upstream import tokens as upstream_tokens

    prof = _oauth_profile(profile, upstream)
    signed_in = cli_user(prof.identity) if user is None else None  # keyring errors say why
    who = user or (signed_in.sub if signed_in is not None else None)
    if who is None:
        raise LockgateError(
            "Nobody is signed in, so whose tokens to forget is not known",
            f"run `lockgate login`, or name the user: `lockgate disconnect {upstream} --user SUB`",
        )
    out = console()
    if upstream_tokens.delete(upstream, who):
        out.print(f"Disconnected {upstream} for {who}: its tokens are gone from the keyring.")
    else:
        out.print(f"{upstream} was not connected for {who}; nothing to forget.")
