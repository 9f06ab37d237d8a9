"""The addon harness: addons in mitmproxy's test context on a profile, flows through their hooks.

Why it exists: every test here builds addons with `mitmproxy.test.taddons`, loads a profile
into the Config, builds `tflow` flows and runs them through the hooks in mitmproxy's order.
One definition of each lives here (the test modules import it), so a test file holds only
what it tests.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Self

from mitmproxy import http
from mitmproxy.test import taddons, tflow

from lockgate.addons.client_auth import ClientAuth
from lockgate.addons.config import Config
from lockgate.addons.oauth import OAuthServer
from lockgate.addons.router import Router
from lockgate.authserver.keys import SigningKey
from lockgate.authserver.tokens import issue_access_token
from lockgate.identity.claims import UserClaims

LISTEN = "127.0.0.1:8787"
BASE = f"http://{LISTEN}"
NOTES_URL = "http://127.0.0.1:9001/mcp"  # the upstream most profiles here route to


def gateway_section(*lines: str) -> str:
    """A profile's `[gateway]` table, listening on LISTEN, with `lines` added."""
    return "\n".join(["[gateway]", f'listen = "{LISTEN}"', *lines, ""])


def toml_table(header: str, /, **keys: object) -> str:
    """One TOML table (`[upstreams.x]`, `[[routes.x.access.tools]]`) with `keys`, for
    profile_text's `extra`; values are written as JSON, whose strings, numbers and arrays
    of them TOML reads alike."""
    return "\n".join([header, *(f"{k} = {json.dumps(v)}" for k, v in keys.items()), ""])


@contextmanager
def running(
    tmp_path: Path, profile: str, cfg: Config, *addons: object, **options: object
) -> Iterator[Any]:
    """`cfg` and `addons` in mitmproxy's test context, `cfg` loaded with `profile` (TOML text)
    and any other `options`; yields the context. At the end every addon with a `done` hook
    is done (the audit log closed), as mitmproxy does on shutdown."""
    path = tmp_path / "profile.toml"
    path.write_text(profile, encoding="utf-8")
    with taddons.context(cfg, *addons) as tctx:
        tctx.configure(cfg, lockgate_profile=str(path), **options)
        yield tctx
        for addon in addons:
            done = getattr(addon, "done", None)
            if done is not None:
                done()


def mcp_flow(
    path: str = "/mcp",
    body: object = None,
    method: str = "POST",
    headers: Mapping[str, str] | None = None,
    *,
    host: str | None = None,
) -> http.HTTPFlow:
    """A client's request: `body` as is (bytes) or as JSON (None: tflow's placeholder),
    `headers` set last."""
    f = tflow.tflow()
    f.request.method = method
    f.request.path = path
    if host is not None:
        f.request.host_header = host
    if body is not None:
        f.request.content = body if isinstance(body, bytes) else json.dumps(body).encode()
    for k, v in (headers or {}).items():
        f.request.headers[k] = v
    return f


class Chain:
    """Addons on one flow, hook by hook in mitmproxy's order."""

    def __init__(self, addons: Sequence[object]) -> None:
        self.addons = list(addons)

    def hook(self, name: str, f: http.HTTPFlow) -> None:
        for addon in self.addons:
            fn = getattr(addon, name, None)
            if fn is not None:
                fn(f)

    def request_side(self, f: http.HTTPFlow) -> http.HTTPFlow:
        """requestheaders on all, then request on all."""
        self.hook("requestheaders", f)
        self.hook("request", f)
        return f

    def request(self, f: http.HTTPFlow) -> http.HTTPFlow:
        """The request side; a local answer then goes through the response side too."""
        self.request_side(f)
        if f.response is not None:  # a local answer: mitmproxy emulates the response side
            self.hook("responseheaders", f)
            self.hook("response", f)
        return f

    def answer(
        self, f: http.HTTPFlow, response: http.Response, body: bytes | None = None
    ) -> http.HTTPFlow:
        """The upstream's answer: `response`, then `body` once responseheaders ran (to the
        stream when an addon streams it), then response."""
        assert f.response is None, "the gateway answered instead of forwarding"
        f.response = response
        self.hook("responseheaders", f)
        if body is not None:
            if callable(f.response.stream):
                f.response.stream(body)
                f.response.stream(b"")
            else:
                f.response.content = body
        self.hook("response", f)
        return f


class OAuthStack(Chain):
    """Router, ClientAuth and the OAuth server on one Config (plus `extra` addons after them),
    with the gateway's signing key at hand: tokens the gateway accepts, or refuses."""

    def __init__(self, *extra: object) -> None:
        self.cfg = Config()
        self.oauth = OAuthServer(self.cfg)
        self.router = Router(self.cfg)
        self.auth = ClientAuth(self.cfg, self.oauth.auth)
        self.key = SigningKey.generate()
        self.oauth.auth._key = self.key
        self.extra = extra
        super().__init__([self.router, self.auth, self.oauth, *extra])

    def started(self, tmp_path: Path, profile: str) -> Iterator[Self]:
        """For a fixture: in mitmproxy's test context on `profile`, its public URL BASE."""
        with running(tmp_path, profile, self.cfg, self.router, self.oauth, self.auth, *self.extra):
            self.cfg.base_url = BASE
            yield self

    def token(self, route: str = "notes", **claims: Any) -> str:
        """An access token for `route` from client lg-test for dev-user; `claims` override."""
        args: dict[str, Any] = {
            "issuer": BASE,
            "audience": f"{BASE}/mcp/{route}",
            "user": UserClaims(sub="dev-user"),
            "client_id": "lg-test",
            "route_id": self.cfg.routes[route].identity,
        } | claims
        return issue_access_token(self.key, **args)


def events_of(data: bytes) -> list[Any]:
    """The JSON of each SSE event's data lines in a body, as a client reads them."""
    text = data.decode().replace("\r\n", "\n").replace("\r", "\n")
    out = []
    for block in text.split("\n\n"):
        lines = [ln[5:].lstrip() for ln in block.split("\n") if ln.startswith("data:")]
        if lines:
            out.append(json.loads("\n".join(lines)))
    return out
