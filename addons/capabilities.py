"""Each route is a curated view of its upstream, and each user's view of it may be narrower.

Parses the client's JSON-RPC messages, refuses calls to hidden tools, prompts
and resources before anything reaches the upstream, and filters list results
in JSON bodies and, event by event, in SSE streams. The view used is the user's
(the route's, minus what the route's `access` rules keep from this user, built by
ClientAuth): an item the route hides is `-32601`; an item a rule keeps from the user is
HTTP 403 naming the group or role it needs; a call lacking a rule's scope is HTTP 403
`insufficient_scope`.
"""

from __future__ import annotations

import contextlib
import gc
import logging
from collections.abc import Iterator

from mitmproxy import http

from lockgate.addons._flow import (
    answer,
    answer_rpc_error,
    close_upstream,
    guarded,
    pending_route,
    refuse,
    refuse_scope,
    state,
)
from lockgate.errors import StoreUnwritable
from lockgate.mcp import jsonrpc, shape
from lockgate.mcp.exchange import (
    FlowState,
    NoNormalForm,
    list_filter,
    merge_answers,
    normal_form,
    note_order,
    process_message,
    refused_event,
    rewrite_event,
    set_aside_events,
    stream_errors,
    view_of,
)
from lockgate.mcp.sse import UNANSWERED, SseEvent, SseRewriter, StreamBroken
from lockgate.policy.access import denial_message, missing_scopes

logger = logging.getLogger("lockgate")

UNPARSED_PASSTHROUGH_BYTES = 256 * 1024
_ID_KEYS = ("id", "method", "result", "error")

KIND_OF = {
    "tools/call": "Tool",
    "prompts/get": "Prompt",
    "completion/complete": "Completion target",
}


class Capabilities:
    @guarded
    def request(self, flow: http.HTTPFlow) -> None:
        route = pending_route(flow)
        if route is None:
            return
        st = state(flow)
        view = view_of(state(flow), route)
        req = flow.request
        if req.method != "POST":
            if req.method not in ("GET", "DELETE", "OPTIONS", "HEAD"):
                answer_rpc_error(
                    flow,
                    405,
                    jsonrpc.INVALID_REQUEST,
                    f"MCP endpoints take POST, GET and DELETE, not {req.method}.",
                    outcome="denied",
                    headers={"allow": "GET, POST, DELETE"},
                )
            elif req.raw_content:
                # Only POST carries JSON-RPC; a body elsewhere would pass unchecked.
                answer_rpc_error(
                    flow,
                    400,
                    jsonrpc.INVALID_REQUEST,
                    f"A {req.method} request to an MCP endpoint must not have a body.",
                    outcome="denied",
                )
            elif not view.is_passthrough:
                # A GET stream carries list results too (replayed with Last-Event-ID).
                st.transforms.append(list_filter(st, view))
            return
        try:
            messages = jsonrpc.parse_body(req.raw_content or b"")
        except ValueError as e:
            code = (
                jsonrpc.PARSE_ERROR
                if isinstance(e, jsonrpc.InvalidJson)
                else jsonrpc.INVALID_REQUEST
            )
            message = f"The request body is not a valid JSON-RPC message: {e}"
            rid = (
                None if code == jsonrpc.PARSE_ERROR else jsonrpc.readable_id(req.raw_content or b"")
            )
            body = jsonrpc.error_response(rid, code, message)
            answer(flow, 400, body, outcome="denied", reason=message)
            return
        st.messages = messages
        batch = (req.raw_content or b"").lstrip()[:1] == b"["
        note_order(st, batch)
        refusal = shape.check_batch(
            messages, batch=batch, revision=req.headers.get("mcp-protocol-version")
        )
        if refusal is not None:
            answer_rpc_error(flow, 400, refusal.code, refusal.message, outcome="denied")
            return
        for m in messages:
            if m.kind == "request" and m.id is not None and m.method is not None:
                if m.id in st.methods:
                    # Answers are matched to requests by id: a reused id could have a
                    # list answer filtered as another list.
                    answer_rpc_error(
                        flow,
                        400,
                        jsonrpc.INVALID_REQUEST,
                        f"The request id {m.id!r} is used twice in one body.",
                        outcome="denied",
                    )
                    return
                st.methods[m.id] = m.method
        if self._headers_disagree(flow, messages):
            return
        # Each member on its own: a refused one is answered alone, the others go on.
        for m in list(st.messages):
            refusal = shape.check_message(m)
            if refusal is not None:
                status = 200 if refusal.code == jsonrpc.INVALID_PARAMS else 400
                if refuse(flow, m, status, refusal.code, refusal.message, outcome="denied"):
                    return
        policy = route.policy
        fa = state(flow).access
        if (
            policy.restricts_resources
            or view.restricts_resources
            or (fa is not None and fa.access.restricts_resources)
        ) and not _normal_uris(flow, st):
            return
        for m in list(st.messages):
            if m.method is None or m.kind not in ("request", "notification"):
                continue
            hidden = policy.hidden_target(m.method, m.params)
            if hidden is not None:
                kind = KIND_OF.get(m.method, "Resource")
                if refuse(
                    flow,
                    m,
                    200,
                    jsonrpc.METHOD_NOT_FOUND,
                    f"{kind} {hidden!r} is not available on route {route.name!r}.",
                    outcome="denied",
                ):
                    return
                continue
            if fa is None:
                continue
            kept = view.hidden_target(m.method, m.params) if view is not policy else None
            if kept is not None:
                rule = fa.access.refusing_rule(fa.who, m.method, m.params)
                if rule is None:  # hidden, and no rule to name: refuse all the same
                    message = f"{kept!r} is not available to you on route {route.name!r}."
                    data: object = None
                else:
                    message = denial_message(rule, kept, route.name, fa.who)
                    data = {"required": rule.required()}
                if refuse(
                    flow, m, 403, jsonrpc.INVALID_REQUEST, message, outcome="denied", data=data
                ):
                    return
                continue
            # The route's own scopes were checked by ClientAuth; these add a rule's.
            needed = fa.access.required_scopes(m.method, m.params)
            if needed is not fa.access.scopes and missing_scopes(needed, fa.who):
                name = m.name if m.name is not None else m.method
                refuse_scope(flow, fa, needed, f"{KIND_OF.get(m.method, 'Resource')} {name!r}")
                return
        if not view.is_passthrough:
            st.transforms.append(list_filter(st, view))

    @staticmethod
    def _headers_disagree(flow: http.HTTPFlow, messages: list[jsonrpc.Message]) -> bool:
        """2026-07-28: `Mcp-Method` and `Mcp-Name` must say what the body says."""
        headers = flow.request.headers
        for header, value_of in (
            ("mcp-method", lambda m: m.method),
            ("mcp-name", lambda m: m.name),
        ):
            sent = headers.get(header)
            if sent is None:
                continue
            if len(messages) != 1 or value_of(messages[0]) != sent:
                answer_rpc_error(
                    flow,
                    400,
                    jsonrpc.INVALID_REQUEST,
                    f"The {header} header ({sent!r}) does not match the request body.",
                    outcome="denied",
                )
                return True
        return False

    @guarded
    def responseheaders(self, flow: http.HTTPFlow) -> None:
        st = state(flow)
        if st.local or st.route is None or flow.response is None:
            return
        ctype = flow.response.headers.get("content-type", "").lower()
        if ctype.startswith("text/event-stream"):
            # A charset other than UTF-8 is refused next, by the upstream addon, which names
            # the upstream (`answers.failure`): its answer replaces this one, rewriter and all.
            if flow.response.headers.get("content-encoding", "identity").lower() != "identity":
                # The rewriter reads events; it cannot read a compressed stream. Fail closed.
                raise ValueError("the upstream compressed its event stream")
            headers = flow.response.headers
            if "content-length" in headers:
                # Rewritten events change the body's length: send it chunked instead.
                del headers["content-length"]
                headers["transfer-encoding"] = "chunked"
            flow.response.stream = SseRewriter(
                lambda ev: _rewrite_or_refuse(st, ev),
                on_error=lambda e: _stream_failed(flow, e),
                max_event=st.route.limits.max_answer_bytes,
                on_end=lambda why: _stream_broke(flow, why),
                prelude=set_aside_events(st),
            )

    @guarded
    def response(self, flow: http.HTTPFlow) -> None:
        st = state(flow)
        resp = flow.response
        if st.local or st.route is None or resp is None or callable(resp.stream):
            return
        if st.set_aside and resp.status_code == 202:
            # Only notifications went upstream: the batch's answer is the refused ones' errors.
            resp.status_code = 200
            resp.headers["content-type"] = "application/json"
            resp.content = jsonrpc.encode(merge_answers(st, None))
            return
        if not resp.headers.get("content-type", "").lower().startswith("application/json"):
            return
        raw_body = resp.raw_content or b""
        if (
            len(raw_body) > UNPARSED_PASSTHROUGH_BYTES
            and not st.set_aside
            and _passes_unparsed(st, resp, raw_body)
        ):
            # Nothing to filter or guard: decoding a large list only to count it for the audit
            # costs more than the proxying (the audit records such answers by their status).
            return
        raw = resp.content  # decoded; an undecodable body raises, and fails closed
        if not raw:
            return
        with _no_cyclic_gc():
            try:
                obj = jsonrpc.loads(raw)
            except ValueError:
                if st.transforms:
                    raise  # unreadable on a filtered route: fail closed (502), not unfiltered
                return
            st.body_key = jsonrpc.result_key(raw) if isinstance(obj, dict) else None
            st.body_text = raw
            try:
                out = process_message(st, obj)
            finally:
                st.body_key = st.body_text = None
            if st.set_aside:
                out = merge_answers(st, out)
            if out is not obj or jsonrpc.has_duplicate_keys(raw, obj):
                resp.content = jsonrpc.encode(out) if out is not None else b""
            if isinstance(out, dict):
                # What upstream.py's id check reads of the body as it now is: not the body
                # decoded a second time, nor the tree kept alive.
                shape = {k: (out[k] if k == "id" else None) for k in _ID_KEYS if k in out}
                st.answer_id = (resp.raw_content or b"", shape)
            # Freed while the collector is off: alive when it comes back, the decoded tree
            # (40,000 objects for 2,000 tools) was one more full pass of its youngest generation.
            del obj, out


def _passes_unparsed(st: FlowState, resp: http.Response, raw: bytes) -> bool:
    """Whether a large JSON answer needs no reading: no transform, or only ones that act on
    errors alone (the scrubber) and a plain body that names none (an escaped key, or a
    compressed body, could hide one)."""
    if not st.transforms:
        return True
    if not all(getattr(t, "errors_only", False) for t in st.transforms):
        return False
    plain = resp.headers.get("content-encoding", "identity").lower() in ("identity", "")
    return plain and b"rror" not in raw and b"\\u" not in raw


def _normal_uris(flow: http.HTTPFlow, st: FlowState) -> bool:
    """On a route with resource rules: every URI in normal form, the body rewritten to it, so
    the upstream reads the URI the rules matched; False (and answered) when one has none."""
    for m in list(st.messages):
        try:
            normal_form([m])
        except NoNormalForm as e:
            uri = e.uri
            shown = repr(uri if len(uri) <= 120 else uri[:120] + "…")
            if refuse(
                flow,
                m,
                200,
                jsonrpc.INVALID_PARAMS,
                f"The resource URI {shown} has no normal form ({e.cause}); send it with valid "
                "percent-escapes and no encoded '/', backslash or control character.",
                outcome="denied",
            ):
                return False
    out = normal_form(st.messages)
    if out is not None:
        req = flow.request
        batch = st.batch
        raws = [m.raw for m in out]
        req.content = jsonrpc.encode(raws if batch else raws[0])
        if "mcp-name" in req.headers and len(out) == 1 and out[0].name is not None:
            req.headers["mcp-name"] = out[0].name
        st.messages = out
    return True


@contextlib.contextmanager
def _no_cyclic_gc() -> Iterator[None]:
    """Decoded JSON holds no cycles: reference counting frees it, and the cyclic collector's
    passes over thousands of fresh objects (a 2,000-tool list) only cost time."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _rewrite_or_refuse(st: FlowState, ev: SseEvent) -> SseEvent | None:
    """An event whose audit record (or pin) could not be written is not forwarded; a reply
    becomes a JSON-RPC error with the store's sentence, as a JSON answer becomes a 503."""
    try:
        return rewrite_event(st, ev)
    except StoreUnwritable as e:
        logger.error("lockgate: %s; an event of the upstream's stream was refused", e)
        st.outcome, st.reason = "error", e.message
        return refused_event(ev, str(e))


def _stream_broke(flow: http.HTTPFlow, why: StreamBroken) -> bytes:
    """The upstream's stream can go on no longer: its open requests get errors, and the
    upstream is let go (the wire ends the client's stream cleanly once it is gone)."""
    if why is not UNANSWERED:  # UNANSWERED: the upstream ended it itself, nothing to close
        logger.error("lockgate: an upstream event stream was ended: it %s", why.what)
        close_upstream(flow, why.what)
    return stream_errors(state(flow), why)


def _stream_failed(flow: http.HTTPFlow, exc: BaseException) -> None:
    st = state(flow)
    st.outcome = "error"
    st.reason = "an event of the upstream's stream could not be processed and was dropped"
    logger.error("lockgate: dropped an SSE event (%s)", type(exc).__name__)
