"""What every addon shares: the per-flow state, JSON answers, and the fail-closed wrapper.

The one addon-support module: addons import it and the core, never each other. The state
itself (`FlowState`) is the core's, `lockgate.mcp.exchange`.

mitmproxy forwards a request unchanged when a hook raises. Every hook of the
pipeline is wrapped by `guarded`, which turns an exception into a JSON error
response (request side) or replaces the upstream's response (response side):
an addon bug can deny a request, never let it through.
"""

from __future__ import annotations

import contextvars
import functools
import logging
import os
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from mitmproxy import ctx, http

from lockgate.audit import events as audit_events
from lockgate.audit.events import Outcome
from lockgate.errors import StoreUnwritable
from lockgate.mcp import jsonrpc
from lockgate.mcp.exchange import (
    FlowAccess,
    FlowState,
    SetAside,
    answer_key,
    merge_answers,
    scope_refusal,
)
from lockgate.policy.routes import Route

logger = logging.getLogger("lockgate")

STATE_KEY = "lockgate"
JSON_HEADERS = {"content-type": "application/json", "cache-control": "no-store"}

# What a browser page may read from a response (CORS), and what it may send (preflight).
CORS_EXPOSE_HEADERS = "mcp-session-id, www-authenticate, mcp-protocol-version"


# The flow whose exchange just failed, set by the upstream addon's `error` hook for the JSON
# error page `addons/wire.py` builds right after it, in the same task.
failed_flow: contextvars.ContextVar[http.HTTPFlow | None] = contextvars.ContextVar(
    "lockgate_failed_flow", default=None
)


def state(flow: http.HTTPFlow) -> FlowState:
    st = flow.metadata.get(STATE_KEY)
    if st is None:
        st = FlowState()
        flow.metadata[STATE_KEY] = st
    return st


def close_upstream(flow: http.HTTPFlow, why: str) -> None:
    """Drop the flow's upstream connection (or stop its connecting): mitmproxy then fails
    the exchange as if the upstream had gone, and the hooks of that failure answer it."""
    proxyserver = ctx.master.addons.get("proxyserver")
    handler = proxyserver.connections.get(flow.client_conn.id) if proxyserver else None
    if handler is None:
        return
    io = handler.transports.get(flow.server_conn)
    if io is None:
        # Still connecting: the flow gets its connection only once it is open. One client
        # connection carries one HTTP/1 exchange at a time, so the one being opened to the
        # flow's upstream is this flow's.
        address = (flow.request.host, flow.request.port)
        io = next(
            (
                io
                for conn, io in handler.transports.items()
                if conn.address == address and io.writer is None and io.handler is not None
            ),
            None,
        )
    if io is None:
        return
    if io.writer is not None:
        io.writer.close()
    elif io.handler is not None:
        io.handler.cancel(why)


def pending_route(flow: http.HTTPFlow) -> Route | None:
    """The route of a flow still headed upstream; None once the gateway has answered it."""
    if flow.response is not None:
        return None
    route = state(flow).route
    if route is None:
        raise RuntimeError("a flow got past the router without a route")
    return route


def answer(
    flow: http.HTTPFlow,
    status: int,
    body: object,
    *,
    outcome: Outcome,
    reason: str | None = None,
    headers: dict[str, str] | None = None,
) -> None:
    """Answer the client from the gateway; the upstream is never contacted for this flow."""
    st = state(flow)
    st.local = True
    st.outcome = outcome
    st.reason = reason
    flow.response = http.Response.make(
        status, jsonrpc.encode(body), {**JSON_HEADERS, **(headers or {})}
    )


def answer_rpc_error(
    flow: http.HTTPFlow,
    status: int,
    code: int,
    message: str,
    *,
    outcome: Outcome,
    data: object = None,
    headers: dict[str, str] | None = None,
) -> None:
    """A JSON-RPC error for every request in the body (or one with id null), beside the
    errors of the batch members refused before (`refuse`)."""
    st = state(flow)
    ids = [m.id for m in st.messages if m.kind == "request"]
    errors = [jsonrpc.error_response(i, code, message, data) for i in ids] or [
        jsonrpc.error_response(None, code, message, data)
    ]
    body: object = errors if len(errors) > 1 else errors[0]
    if st.set_aside:
        body = merge_answers(st, errors)
    answer(flow, status, body, outcome=outcome, reason=message, headers=headers)


def refuse(
    flow: http.HTTPFlow,
    m: jsonrpc.Message,
    status: int,
    code: int,
    message: str,
    *,
    outcome: Outcome,
    data: object = None,
) -> bool:
    """Refuse one message of the body. A single message: the exchange is answered (as
    `answer_rpc_error`). A batch member: it is set aside with its error and taken out of
    the body, and the others go on, as they would alone; once every member is refused the
    gateway answers the batch itself. True when the exchange is answered (stop)."""
    st = state(flow)
    if not st.batch:
        answer_rpc_error(flow, status, code, message, outcome=outcome, data=data)
        return True
    error = jsonrpc.error_response(m.id, code, message, data) if m.kind == "request" else None
    event = (
        audit_events.request(
            {},
            m,
            outcome=outcome,
            status=status,
            reason=message,
            total_ms=audit_events.ms(time.monotonic() - st.started),
            upstream_ms=None,
            reply=error,
        )
        if error is not None
        else audit_events.client_message({}, m, outcome)
    )
    st.set_aside.append(SetAside(m, error, status, event))
    st.messages = [x for x in st.messages if x is not m]
    if st.messages:
        st.events.append(event)
        flow.request.content = jsonrpc.encode([x.raw for x in st.messages])
        return False
    # Nothing left to send: the batch's answer is the members' errors, audited per request.
    refused = st.set_aside
    st.set_aside = []
    kept = {id(a.event) for a in refused}
    st.events = [e for e in st.events if id(e) not in kept]
    st.messages = [a.message for a in refused]
    errors = [a.error for a in refused if a.error is not None]
    if not errors:
        answer_rpc_error(flow, status, code, message, outcome=outcome, data=data)
        return True
    statuses = {a.status for a in refused}
    errors.sort(key=lambda e: st.order.get(answer_key(e["id"]), 0))
    status = statuses.pop() if len(statuses) == 1 else 200
    answer(flow, status, errors, outcome=outcome, reason=message)
    return True


def refuse_scope(flow: http.HTTPFlow, fa: FlowAccess, needed: tuple[str, ...], what: str) -> None:
    """403 `insufficient_scope` (`lockgate.mcp.exchange.scope_refusal`), audited."""
    refusal = scope_refusal(fa, needed, what)
    state(flow).events.append(refusal.event)
    answer_rpc_error(
        flow,
        403,
        jsonrpc.INVALID_REQUEST,
        refusal.message,
        outcome="denied",
        data=refusal.data,
        headers=refusal.headers,
    )


def drop_headers(headers: http.Headers, names: Iterable[str]) -> None:
    """Remove every header named in `names` that is there.

    One pass over the fields finds which are there: `pop` on an absent name scans every
    field (each name lowered) to find nothing, and the pipeline drops ~15 names per call.
    Names match as mitmproxy matches them: the encoded bytes, ASCII-lowered (a str `lower()`
    would fold a Kelvin sign into "k" where mitmproxy does not, and `del` would then raise).
    """
    present = {k.lower() for k, _ in headers.fields}
    for name in names:
        raw = name.encode("utf-8", "surrogateescape").lower()
        if raw in present:
            present.discard(raw)
            del headers[name]


def add_cors_headers(resp: http.Response, origin: str | None) -> None:
    """Let the page at `origin` read `resp`; the upstream's own CORS headers never pass.

    With no allowed origin nothing is added, and the upstream's headers are still dropped:
    only the gateway decides which pages may read its answers.
    """
    for name in {n.lower() for n in resp.headers if n.lower().startswith("access-control-")}:
        del resp.headers[name]
    if origin is None:
        return
    resp.headers["access-control-allow-origin"] = origin
    resp.headers["access-control-expose-headers"] = CORS_EXPOSE_HEADERS
    vary = [item.strip() for value in resp.headers.get_all("vary") for item in value.split(",")]
    vary = [item for item in vary if item]
    if not any(v.lower() == "origin" or v == "*" for v in vary):
        resp.headers["vary"] = ", ".join([*vary, "Origin"])


def debug() -> bool:
    return bool(os.environ.get("LOCKGATE_DEBUG"))


def _refuse_after(self: Any, hook: Callable[..., Any], flow: http.HTTPFlow, e: Exception) -> None:
    where = f"{type(self).__name__}.{hook.__name__}"
    if isinstance(e, StoreUnwritable):  # its sentence names a path and an errno, no secret
        logger.error("lockgate: %s; the exchange was refused", e, exc_info=debug())
    else:
        logger.error(
            "lockgate: %s failed (%s); the exchange was refused",
            where,
            type(e).__name__,
            exc_info=debug(),
        )
    fail_closed(flow, where, hook.__name__, e)


def guarded(hook: Callable[[Any, http.HTTPFlow], None]) -> Callable[[Any, http.HTTPFlow], None]:
    """Fail closed: an exception in a hook denies the exchange instead of forwarding it."""

    @functools.wraps(hook)
    def wrapper(self: Any, flow: http.HTTPFlow) -> None:
        try:
            if hook.__name__ == "response":
                _keep_replacement(flow)
            hook(self, flow)
        except Exception as e:  # the fail-closed boundary: every exception, by design
            _refuse_after(self, hook, flow, e)

    return wrapper


def guarded_async(
    hook: Callable[[Any, http.HTTPFlow], Awaitable[None]],
) -> Callable[[Any, http.HTTPFlow], Awaitable[None]]:
    """`guarded` for async hooks: an exception denies the exchange instead of forwarding it."""

    @functools.wraps(hook)
    async def wrapper(self: Any, flow: http.HTTPFlow) -> None:
        try:
            await hook(self, flow)
        except Exception as e:  # the fail-closed boundary: every exception, by design
            _refuse_after(self, hook, flow, e)

    return wrapper


def _keep_replacement(flow: http.HTTPFlow) -> None:
    st = flow.metadata.get(STATE_KEY)
    if (
        st is not None
        and st.replacement is not None
        and flow.response is not None
        and flow.response.raw_content != st.replacement
    ):
        flow.response.content = st.replacement


def replace_upstream_answer(flow: http.HTTPFlow, body: bytes, status: int = 502) -> None:
    """At `responseheaders` (headers not sent yet, body not read): answer 502 with `body`
    instead, swallowing the upstream's body as it arrives; ours goes out at its end
    (mitmproxy writes a bodiless answer's body into the response, so `guarded` puts ours
    back before the response hooks)."""
    st = state(flow)
    replacement = http.Response.make(status, body, JSON_HEADERS)
    add_cors_headers(replacement, st.cors_origin)
    replacement.stream = lambda chunk: body if chunk == b"" else []
    flow.response = replacement
    st.replacement = body
    st.local = True


def fail_closed(
    flow: http.HTTPFlow, where: str, phase: str, error: Exception | None = None
) -> None:
    """Refuse the exchange: 500 on the request side, 502 instead of the upstream's answer;
    503 with the store's own sentence when the audit log or pins store could not be written
    (nothing is served unrecorded; the client learns it is the gateway's disk, not its
    request)."""
    message = f"The gateway refused this message because {where} failed; see the gateway log."
    status = 500
    if isinstance(error, StoreUnwritable):
        message, status = str(error), 503
    body = jsonrpc.encode(jsonrpc.error_response(None, jsonrpc.INTERNAL_ERROR, message))
    st = state(flow)
    if flow.response is None:
        answer_rpc_error(flow, status, jsonrpc.INTERNAL_ERROR, message, outcome="error")
    elif phase == "responseheaders":
        replace_upstream_answer(flow, body, 503 if status == 503 else 502)
    elif callable(flow.response.stream):
        # Streaming is under way: cut it rather than pass anything more on.
        flow.response.stream = _drop_all
    else:
        # Response hook, body read but not sent: nothing the upstream said reaches the client.
        flow.response = http.Response.make(503 if status == 503 else 502, body, JSON_HEADERS)
        add_cors_headers(flow.response, st.cors_origin)
        st.local = True
    st.outcome = "error"
    st.reason = f"internal error in {where}"


def _drop_all(chunk: bytes) -> bytes | list[bytes]:
    return b"" if chunk == b"" else []
