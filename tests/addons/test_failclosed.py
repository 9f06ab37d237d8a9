"""Fail closed: an exception in any hook of the pipeline denies the exchange, never forwards it.

The whole pipeline (`lockgate.addons.pipeline`) runs in-process on `tflow` flows, hook by
hook in mitmproxy's order: `requestheaders` on every addon, then `request` on every addon;
then, if no addon answered, the upstream's response: `responseheaders`, the body, `response`.
The body step does what mitmproxy 12's HTTP layer does (`state_consume_response_body` sets
`flow.response.data.content` on whatever response the flow holds after `responseheaders`;
a callable `flow.response.stream` sees the chunks instead), so a test sees what a client
would receive.

Two kinds of breakage:
- every guarded hook of every addon, its body made to raise (the `guarded` wrapper kept);
- realistic failures: something a hook calls raises (a policy, the keyring, the audit disk).
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from mitmproxy import http
from mitmproxy.test import taddons, tflow

from lockgate.addons import audit as audit_mod
from lockgate.addons import capabilities as capabilities_mod
from lockgate.addons import client_auth as client_auth_mod
from lockgate.addons import guard as guard_mod
from lockgate.addons import pipeline
from lockgate.addons import router as router_mod
from lockgate.addons import upstream as upstream_mod
from lockgate.addons._flow import guarded, guarded_async, state
from lockgate.addons.config import Config
from lockgate.policy.view import Policy
from lockgate.upstream import secrets
from lockgate.upstream import tokens as upstream_tokens
from tests.addons.conftest import LISTEN, NOTES_URL, gateway_section, mcp_flow, running, toml_table
from tests.support.gateway import profile_text

LIMIT = 2048
PROFILE = profile_text(
    {"notes": NOTES_URL},
    {
        "open": "notes",
        "curated": ["notes", 'tools.deny = ["delete_*"]'],
        "secured": "secured",
        "linked": "linked",
    },
    gateway_section(f"max_body_bytes = {LIMIT}")
    + toml_table("[upstreams.secured]", url="http://127.0.0.1:9002/mcp", auth="header")
    + toml_table("[upstreams.linked]", url="http://127.0.0.1:9003/mcp", auth="oauth"),
)
HOOKS = ("requestheaders", "request", "responseheaders", "response", "error")
REQUEST_SIDE = ("requestheaders", "request")
MARKER = "UPSTREAM-ONLY"  # in every upstream answer; a client must never see it after a failure
TOOLS_LIST = {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}
NOTIFICATION = {"jsonrpc": "2.0", "method": "notifications/initialized"}
UPSTREAM_LIST = {
    "jsonrpc": "2.0",
    "id": 1,
    "result": {
        "tools": [
            {"name": n, "description": MARKER, "inputSchema": {}}
            for n in ("list_notes", "delete_note")
        ]
    },
}


class Boom(Exception):
    """What a broken hook raises here."""


def boom(*args: Any, **kwargs: Any) -> Any:
    raise Boom("injected failure")


@dataclass
class Gateway:
    addons: list[Any]
    tctx: taddons.context

    def hook(self, name: str, f: http.HTTPFlow) -> None:
        """One mitmproxy hook on every addon, children after their parent as mitmproxy calls
        them, inside the event loop (upstream's timer needs it)."""

        async def run() -> None:
            for addon in with_children(self.addons):
                fn = getattr(addon, name, None)
                if fn is not None:
                    result = fn(f)
                    if inspect.isawaitable(result):  # async hooks (connect, credentials)
                        await result

        self.tctx.master.event_loop.run_until_complete(run())

    def send(
        self,
        route: str = "curated",
        body: object = TOOLS_LIST,
        headers: dict[str, str] | None = None,
    ) -> http.HTTPFlow:
        sent = {"content-type": "application/json", "authorization": "Bearer client-token"}
        f = mcp_flow(f"/mcp/{route}", body, headers=sent | (headers or {}), host=LISTEN)
        for hook in REQUEST_SIDE:
            self.hook(hook, f)
        return f

    def finish(
        self,
        f: http.HTTPFlow,
        upstream: object = UPSTREAM_LIST,
        content_type: str = "application/json",
    ) -> tuple[int, bytes]:
        """The response side; returns the status and body the client receives."""
        if f.response is not None:  # answered by the gateway: mitmproxy emulates the rest
            self.hook("responseheaders", f)
            self.hook("response", f)
            return f.response.status_code, f.response.raw_content or b""
        raw = upstream if isinstance(upstream, bytes) else json.dumps(upstream).encode()
        f.response = http.Response.make(200, b"", {"content-type": content_type})
        f.response.data.content = None  # headers only: the body has not been read yet
        self.hook("responseheaders", f)
        if callable(f.response.stream):
            sent = b""
            for chunk in (raw[: len(raw) // 2], raw[len(raw) // 2 :], b""):
                out = f.response.stream(chunk)
                sent += out if isinstance(out, bytes) else b"".join(out)
            self.hook("response", f)
            return f.response.status_code, sent
        f.response.data.content = raw  # mitmproxy: state_consume_response_body
        self.hook("response", f)
        return f.response.status_code, f.response.raw_content or b""


@pytest.fixture
def gw(tmp_path: Path) -> Iterator[Gateway]:
    addons = pipeline(Config())
    with running(
        tmp_path, PROFILE, *addons, lockgate_audit_log=str(tmp_path / "audit.jsonl")
    ) as tctx:
        yield Gateway(addons, tctx)


def denied_locally(f: http.HTTPFlow, where: str | None = None) -> dict[str, Any]:
    """The gateway answered: mitmproxy will not contact the upstream for this flow."""
    assert f.response is not None, "the request would have been forwarded upstream"
    assert f.response.status_code >= 400
    assert f.response.headers["content-type"] == "application/json"
    body = json.loads(f.response.raw_content or b"")
    assert body["jsonrpc"] == "2.0" and isinstance(body["error"]["code"], int)
    if where is not None:
        assert where in body["error"]["message"]
    assert state(f).local
    assert "client-token" not in (f.response.raw_content or b"").decode()
    return body["error"]


def replaced(status: int, body: bytes) -> None:
    """The client got a gateway error, and nothing the upstream said."""
    assert status >= 500, (status, body[:200])
    assert MARKER.encode() not in body, body[:300]
    assert b"delete_note" not in body
    if body:
        assert json.loads(body)["error"]["code"] == -32603


# --- every hook is wrapped -----------------------------------------------------------------

_WRAPPER_CODE = guarded(lambda self, flow: None).__code__


async def _async_hook(self: Any, flow: http.HTTPFlow) -> None:
    return None


_ASYNC_WRAPPER_CODE = guarded_async(_async_hook).__code__
# Neither can send anything on: Upstream.responseheaders only cancels its timer, and
# Upstream.error only remembers the flow for the JSON error page mitmproxy then writes.
UNGUARDED_BY_DESIGN = {("Upstream", "responseheaders"), ("Upstream", "error")}


def with_children(addons: list[Any]) -> Iterator[Any]:
    """Every addon and, depth first, its child addons (mitmproxy's `addons` attribute)."""
    for addon in addons:
        yield addon
        yield from with_children(getattr(addon, "addons", []))


def guarded_hooks() -> list[tuple[str, str]]:
    out = []
    for addon in with_children(pipeline(Config())):
        for hook in HOOKS:
            fn = getattr(type(addon), hook, None)
            if fn is not None and (type(addon).__name__, hook) not in UNGUARDED_BY_DESIGN:
                out.append((type(addon).__name__, hook))
    return out


def test_every_hook_of_the_pipeline_is_guarded() -> None:
    hooks = guarded_hooks()
    assert len(hooks) >= 12
    # The OAuth composite's children are hooks too: each must be guarded like its parent.
    assert {("OIDCCallback", "request"), ("ClientDocuments", "request")} <= set(hooks)
    for addon in with_children(pipeline(Config())):
        for hook in HOOKS:
            fn = getattr(type(addon), hook, None)
            if fn is None or (type(addon).__name__, hook) in UNGUARDED_BY_DESIGN:
                continue
            assert fn.__code__ in (_WRAPPER_CODE, _ASYNC_WRAPPER_CODE), (
                f"{type(addon).__name__}.{hook} is not @guarded"
            )


def break_body(monkeypatch: pytest.MonkeyPatch, gw: Gateway, addon_name: str, hook: str) -> None:
    """Make the hook's own body raise, keeping its `guarded` wrapper."""
    addon = next(a for a in with_children(gw.addons) if type(a).__name__ == addon_name)
    wrapper = getattr(type(addon), hook)
    cell = next(c for c in wrapper.__closure__ if c.cell_contents is wrapper.__wrapped__)

    def broken(self: Any, flow: http.HTTPFlow) -> None:
        raise Boom(f"injected failure in {addon_name}.{hook}")

    broken.__name__ = hook
    monkeypatch.setattr(cell, "cell_contents", broken)


@pytest.mark.parametrize(("addon", "hook"), guarded_hooks())
def test_a_hook_that_raises_fails_closed(
    monkeypatch: pytest.MonkeyPatch, gw: Gateway, addon: str, hook: str
) -> None:
    break_body(monkeypatch, gw, addon, hook)
    if hook == "error":
        f = gw.send()
        assert f.response is None
        f.error = tflow.terr("connection refused")  # type: ignore[attr-defined]
        gw.hook("error", f)  # must not raise; mitmproxy then writes its (JSON) error page
        assert state(f).outcome == "error"
        return
    f = gw.send()
    if hook in REQUEST_SIDE:
        error = denied_locally(f, f"{addon}.{hook}")
        assert error["code"] == -32603
        assert f.response is not None and f.response.status_code == 500
        status, body = gw.finish(f)
        assert status == 500 and b"client-token" not in body
    else:
        assert f.response is None
        replaced(*gw.finish(f))
    assert state(f).outcome == "error"
    assert state(f).reason == f"internal error in {addon}.{hook}"


# --- realistic failures, request side ------------------------------------------------------


@pytest.mark.parametrize(
    ("target", "name", "route", "body", "where"),
    [
        (guard_mod, "host_of", "open", TOOLS_LIST, "Guard.requestheaders"),
        (router_mod, "route_name_of", "open", TOOLS_LIST, "Router.requestheaders"),
        (client_auth_mod, "state", "open", TOOLS_LIST, "ClientAuth.requestheaders"),
        (Policy, "hidden_target", "curated", TOOLS_LIST, "Capabilities.request"),
        (capabilities_mod.jsonrpc, "parse_body", "open", TOOLS_LIST, "Capabilities.request"),
        (secrets, "get_secret", "secured", TOOLS_LIST, "Credentials.request"),
        (upstream_tokens, "load", "linked", TOOLS_LIST, "Credentials.request"),
        (upstream_mod, "pending_route", "open", TOOLS_LIST, "Upstream.request"),
        (audit_mod.Audit, "record", "open", [NOTIFICATION, TOOLS_LIST], "Audit.request"),
    ],
    ids=[
        "guard-host",
        "router",
        "client-auth",
        "policy",
        "parser",
        "keyring",
        "oauth-tokens",
        "timer",
        "audit-disk",
    ],
)
def test_a_failure_on_the_request_side_is_a_json_error(
    monkeypatch: pytest.MonkeyPatch,
    gw: Gateway,
    target: object,
    name: str,
    route: str,
    body: object,
    where: str,
) -> None:
    """What a hook calls raises (the policy, the parser, the keyring, the audit disk)."""
    monkeypatch.setattr(target, name, boom)
    f = gw.send(route, body)
    denied_locally(f, where)
    assert "authorization" not in f.request.headers  # stripped before anything else


def test_a_failing_refusal_still_refuses(monkeypatch: pytest.MonkeyPatch, gw: Gateway) -> None:
    """Even the oversized-body answer failing leaves an answer, not a forwarded body."""
    monkeypatch.setattr(guard_mod.Guard, "_too_large", staticmethod(boom))
    f = mcp_flow("/mcp/open", host=LISTEN)
    del f.request.headers["content-length"]
    gw.hook("requestheaders", f)
    f.request.raw_content = b"x" * (LIMIT + 1)  # chunked: the size is known only now
    gw.hook("request", f)
    denied_locally(f, "Guard.request")


def test_a_missing_upstream_secret_never_forwards(
    gw: Gateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(secrets, "get_secret", lambda name: None)
    f = gw.send("secured")
    assert f.response is not None and state(f).local
    assert json.loads(f.response.raw_content or b"")["error"]["code"] == -32042
    assert "authorization" not in f.request.headers


# --- realistic failures, response side -----------------------------------------------------


def test_a_failing_list_filter_replaces_the_upstream_answer(
    monkeypatch: pytest.MonkeyPatch, gw: Gateway
) -> None:
    monkeypatch.setattr(Policy, "filter_result", boom)
    f = gw.send("curated")
    assert f.response is None
    replaced(*gw.finish(f))
    assert state(f).reason == "internal error in Capabilities.response"


def test_a_failing_audit_write_replaces_the_upstream_answer(
    monkeypatch: pytest.MonkeyPatch, gw: Gateway
) -> None:
    f = gw.send("open")
    monkeypatch.setattr(audit_mod.Audit, "record", boom)
    replaced(*gw.finish(f))


def test_a_closed_audit_log_serves_nothing_unrecorded(gw: Gateway) -> None:
    audit = next(a for a in gw.addons if isinstance(a, audit_mod.Audit))
    audit.done()
    f = gw.send("open", [NOTIFICATION, TOOLS_LIST])
    denied_locally(f, "Audit.request")
    f = gw.send("open")
    replaced(*gw.finish(f))


def sse(*messages: object) -> bytes:
    return b"".join(b"data: " + json.dumps(m).encode() + b"\n\n" for m in messages)


def test_a_failing_filter_in_a_stream_drops_the_event(
    monkeypatch: pytest.MonkeyPatch, gw: Gateway
) -> None:
    f = gw.send("curated")
    monkeypatch.setattr(Policy, "filter_result", boom)
    progress = {
        "jsonrpc": "2.0",
        "method": "notifications/progress",
        "params": {"progressToken": 1, "progress": 1},
    }
    status, body = gw.finish(f, sse(progress, UPSTREAM_LIST), "text/event-stream")
    assert status == 200  # headers went out before the failure
    assert b"notifications/progress" in body  # events the filter does not touch still flow
    assert MARKER.encode() not in body
    assert state(f).outcome == "error"


def test_a_failing_stream_setup_sends_nothing_of_the_stream(
    monkeypatch: pytest.MonkeyPatch, gw: Gateway
) -> None:
    """Capabilities.responseheaders fails: the upstream's SSE body must not follow.

    mitmproxy reads the upstream body into the response the flow holds after
    `responseheaders`: replacing `flow.response` there is not enough.
    """
    monkeypatch.setattr(capabilities_mod, "SseRewriter", boom)
    f = gw.send("curated")
    status, body = gw.finish(f, sse(UPSTREAM_LIST), "text/event-stream")
    replaced(status, body)


def test_a_failure_after_streaming_started_cuts_the_stream(
    monkeypatch: pytest.MonkeyPatch, gw: Gateway
) -> None:
    f = gw.send("curated")
    f.response = http.Response.make(200, b"", {"content-type": "text/event-stream"})
    gw.hook("responseheaders", f)
    assert callable(f.response.stream)
    monkeypatch.setattr(audit_mod, "state", boom)
    gw.hook("response", f)  # e.g. the audit failing while the stream is open
    assert f.response.stream(sse(UPSTREAM_LIST)) == []
    assert f.response.stream(b"") == b""
    assert state(f).outcome == "error"
