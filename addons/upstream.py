"""Upstream failures as JSON-RPC errors that name the upstream.

An answer the client could not read as JSON-RPC (a 5xx, a 429, a redirect, an HTML page,
another request's id) is replaced, at its headers where it can be, by an error for each of
the client's request ids. A slow upstream is cut after its timeout (per upstream, else the
gateway's), and the answer becomes a 504. Failed exchanges are answered by the JSON error
page `addons/wire.py` installs; the `error` hook tells it which flow failed.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections.abc import Callable

from mitmproxy import http

from lockgate.addons._flow import (
    close_upstream,
    failed_flow,
    guarded,
    pending_route,
    replace_upstream_answer,
    state,
)
from lockgate.mcp import jsonrpc
from lockgate.mcp.exchange import merge_answers, open_request_ids
from lockgate.mcp.sse import SseRewriter, StreamBroken
from lockgate.policy.gateway import GatewayConfig
from lockgate.upstream import answers

logger = logging.getLogger("lockgate")

# An upstream's answer says nothing about the gateway's own cookies or sign-in: these would
# reach the client with internal URLs or set state under the gateway's origin.
UPSTREAM_ONLY_HEADERS = ("set-cookie", "set-cookie2", "www-authenticate", "proxy-authenticate")


def _timer(
    callback: Callable[[Upstream, http.HTTPFlow], None],
) -> Callable[[Upstream, http.HTTPFlow], None]:
    """Fail closed for a timer (not a hook, so `guarded` does not cover it): a timer that
    fails cuts its exchange rather than leave it unbounded in time."""

    @functools.wraps(callback)
    def wrapper(self: Upstream, flow: http.HTTPFlow) -> None:
        try:
            callback(self, flow)
        except Exception:  # the fail-closed boundary of a timer, by design
            logger.exception("lockgate: an upstream timer failed; its exchange is cut")
            with contextlib.suppress(Exception):
                close_upstream(flow, "upstream timer failed")

    return wrapper


def _secs(seconds: float) -> str:
    return "1 second" if seconds == 1 else f"{seconds:g} seconds"


def _errors_for_requests(flow: http.HTTPFlow, text: str, data: dict[str, object]) -> bytes:
    """One JSON-RPC error for each request of the exchange (one with a null id if none),
    and the errors of the batch members the gateway refused itself."""
    st = state(flow)
    ids = [m.id for m in st.messages if m.kind == "request"] or [None]
    errors = [jsonrpc.error_response(i, jsonrpc.INTERNAL_ERROR, text, data) for i in ids]
    if st.set_aside:
        return jsonrpc.encode(merge_answers(st, errors))
    return jsonrpc.encode(errors if len(errors) > 1 else errors[0])


class Upstream:
    def __init__(self, config: GatewayConfig) -> None:
        self.config = config

    @guarded
    def request(self, flow: http.HTTPFlow) -> None:
        route = pending_route(flow)
        if route is None:
            return
        st, limits = state(flow), route.limits
        st.deadline = time.monotonic() + limits.first_byte
        first = min(limits.connect, limits.first_byte)
        st.timer = asyncio.get_running_loop().call_later(first, self._tick, flow)

    @guarded
    def responseheaders(self, flow: http.HTTPFlow) -> None:
        self._cancel(flow)
        st = state(flow)
        resp = flow.response
        if st.local or st.route is None or resp is None:
            return
        for name in UPSTREAM_ONLY_HEADERS:
            resp.headers.pop(name, None)
        if 300 <= resp.status_code < 400:
            self._refuse_redirect(flow, resp.status_code)
            return
        has_body = resp.status_code not in (202, 204) and resp.headers.get("content-length") != "0"
        failed = answers.failure(
            flow.request.method,
            resp.status_code,
            resp.reason,
            resp.headers.get("content-type", ""),
            resp.headers.get("retry-after"),
            has_body,
        )
        if failed is not None:
            self._refuse_failure(flow, failed)
        elif not resp.stream and has_body:
            # A whole answer read before it goes on: bounded as a whole too, so an upstream
            # that trickles its body cannot hold the client past the answer timeout.
            left = st.started + st.route.limits.answer - time.monotonic()
            st.timer = asyncio.get_running_loop().call_later(
                max(left, 0.001), self._answer_late, flow
            )
        elif isinstance(resp.stream, SseRewriter):
            limits = st.route.limits
            st.progress_at = now = time.monotonic()
            first = min(limits.idle, st.started + limits.answer - now)
            st.timer = asyncio.get_running_loop().call_later(
                max(first, 0.001), self._watch_stream, flow
            )

    @guarded
    def response(self, flow: http.HTTPFlow) -> None:
        self._cancel(flow)
        st = state(flow)
        if st.local or st.route is None or flow.response is None:
            return
        for name in UPSTREAM_ONLY_HEADERS:
            flow.response.headers.pop(name, None)
        self._check_answer_id(flow)

    @staticmethod
    def _check_answer_id(flow: http.HTTPFlow) -> None:
        """A whole JSON answer to one request must carry that request's id: one for another
        id (a look-alike such as "1" for 1 included) answers nothing the client asked, so
        the client gets an error for its id instead of waiting for an answer that never
        comes, or matching the wrong one."""
        st, resp = state(flow), flow.response
        assert st.route is not None and resp is not None
        requests = [m for m in st.messages if m.kind == "request"]
        if len(requests) != 1 or resp.status_code != 200 or callable(resp.stream):
            return
        if not resp.headers.get("content-type", "").lower().startswith("application/json"):
            return
        rid = requests[0].id
        raw = resp.content or b""
        seen = st.answer_id
        if seen is not None and seen[0] is raw:
            got = answers.other_id_of(seen[1], rid)
        else:
            got = answers.other_id(raw, rid)
        if got is answers.SAME:
            return
        up = st.route.upstream
        shown = repr(got) if len(repr(got)) <= 40 else repr(got)[:40] + "…"
        text = (
            f"Upstream {up.name!r} ({up.host}:{up.port}) answered with id {shown} to the "
            f"request with id {rid!r}; the answer was dropped: check the upstream."
        )
        data = {"upstream": up.name, "status": resp.status_code}
        resp.status_code = 502
        resp.content = jsonrpc.encode(
            jsonrpc.error_response(rid, jsonrpc.INTERNAL_ERROR, text, data)
        )
        st.outcome = "upstream_error"
        st.reason = "upstream answered another id"

    @staticmethod
    def _refuse_failure(flow: http.HTTPFlow, failed: answers.Failure) -> None:
        """An answer the client could not read as JSON-RPC: a JSON-RPC error for each of its
        requests instead, naming the upstream (its body is swallowed, never relayed)."""
        st = state(flow)
        assert st.route is not None and flow.response is not None
        up = st.route.upstream
        upstream_status = flow.response.status_code
        text = f"Upstream {up.name!r} ({up.host}:{up.port}) {failed.what}; {failed.fix}."
        data: dict[str, object] = {"upstream": up.name, "status": upstream_status}
        if failed.retry_after is not None:
            data["retryAfter"] = failed.retry_after
        replace_upstream_answer(flow, _errors_for_requests(flow, text, data), failed.status)
        if failed.retry_after is not None:
            flow.response.headers["retry-after"] = failed.retry_after
        st.outcome = "upstream_error"
        st.reason = f"upstream answered {upstream_status}"

    @staticmethod
    def _refuse_redirect(flow: http.HTTPFlow, status: int) -> None:
        """A redirect would send the client, and its request, somewhere no rule applies."""
        st = state(flow)
        assert st.route is not None
        up = st.route.upstream
        text = (
            f"Upstream {up.name!r} ({up.host}:{up.port}) answered with a redirect ({status}); "
            "the gateway does not follow or pass on redirects: fix the upstream's url in the "
            "profile."
        )
        data = {"upstream": up.name, "status": status}
        replace_upstream_answer(flow, _errors_for_requests(flow, text, data))
        st.outcome = "upstream_error"
        st.reason = f"upstream redirect {status}"

    def error(self, flow: http.HTTPFlow) -> None:
        self._cancel(flow)
        st = state(flow)
        if st.outcome is None:
            st.outcome = "upstream_error"
            st.reason = flow.error.msg if flow.error else "upstream failed"
        failed_flow.set(flow)

    @staticmethod
    def _cancel(flow: http.HTTPFlow) -> None:
        st = state(flow)
        handle, st.timer = st.timer, None
        if handle is not None:
            handle.cancel()

    @_timer
    def _tick(self, flow: http.HTTPFlow) -> None:
        """The connect deadline, then the first-byte one: one timer per exchange."""
        st = state(flow)
        st.timer = None
        if flow.response is not None or not flow.live or st.route is None:
            return
        limits = st.route.limits
        left = st.deadline - time.monotonic()
        if flow.server_conn.timestamp_tcp_setup is None and left > 0:
            self._give_up(
                flow,
                f"could not be connected to within {_secs(min(limits.connect, limits.first_byte))}"
                "; check that it "
                "is running and reachable, or raise its connect_timeout in the profile",
            )
        elif left > 0:
            st.timer = asyncio.get_running_loop().call_later(left, self._tick, flow)
        else:
            self._give_up(
                flow,
                f"did not answer within {_secs(limits.first_byte)}; try again, or raise "
                "its timeout in the profile",
            )

    @_timer
    def _answer_late(self, flow: http.HTTPFlow) -> None:
        """A whole (not streamed) answer still arriving at the answer timeout: cut, and the
        client gets a 504 with an error for each of its requests."""
        st = state(flow)
        st.timer = None
        resp = flow.response
        if not flow.live or st.route is None or resp is None or resp.timestamp_end is not None:
            return
        whole = st.route.limits.answer
        self._give_up(
            flow,
            f"did not finish its answer within {_secs(whole)} (it kept sending it); try "
            "again, or raise its answer_timeout in the profile",
        )

    @staticmethod
    def _give_up(flow: http.HTTPFlow, what: str) -> None:
        st = state(flow)
        st.timed_out = what
        st.outcome = "upstream_error"
        st.reason = "upstream timed out"
        close_upstream(flow, "upstream timed out")

    @_timer
    def _watch_stream(self, flow: http.HTTPFlow) -> None:
        """While a request waits on the upstream's event stream, a stream that moves it no
        further is bounded: past the idle timeout with no progress for an open request (no
        answer, no progress notification for its token, no request for the client; pings
        and keep-alives do not count) the stream is closed, and its open requests get errors;
        so it is past the answer timeout, counted from the request, whatever came."""
        st = state(flow)
        st.timer = None
        stream = flow.response.stream if flow.response is not None else None
        if not flow.live or st.route is None or not isinstance(stream, SseRewriter):
            return
        if stream.ended or not open_request_ids(st):
            return
        idle, whole = st.route.limits.idle, st.route.limits.answer
        now = time.monotonic()
        left = min(st.progress_at + idle, st.started + whole) - now
        if left > 0:
            st.timer = asyncio.get_running_loop().call_later(left, self._watch_stream, flow)
            return
        if now >= st.started + whole:
            st.broken = StreamBroken(
                f"did not answer within {_secs(whole)} on its event stream (however much "
                "progress it reported)",
                "try again, or raise its answer_timeout in the profile",
            )
            close_upstream(flow, "upstream answer too slow")
            return
        if stream.last_data + idle <= now:
            what = f"sent nothing on its event stream for {_secs(idle)} while a request waited"
        else:
            what = (
                f"sent nothing for the waiting request for {_secs(idle)} (its event stream "
                "carried only pings, keep-alives or unrelated messages)"
            )
        st.broken = StreamBroken(what, "try again, or raise its idle_timeout in the profile")
        close_upstream(flow, "upstream stream idle")
