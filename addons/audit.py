"""One audit event per JSON-RPC message and per gateway decision.

Requests are recorded when their answer is known (so the event carries outcome
and latency): from the upstream's JSON body, from the SSE event that carries
it, or from the gateway's own answer. Listeners (the live view of `lockgate up`)
see every record as it is written. This addon only translates flows: what an event
holds is `lockgate.audit.events`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mitmproxy import ctx, http

from lockgate.addons._flow import guarded, state
from lockgate.audit import events
from lockgate.audit.events import Outcome
from lockgate.audit.log import AuditLog
from lockgate.mcp.exchange import FlowState, answer_key, progress_token
from lockgate.mcp.jsonrpc import Message
from lockgate.mcp.sessions import session_hash
from lockgate.paths import audit_log_path

logger = logging.getLogger("lockgate")

Listener = Callable[[dict[str, Any]], None]
# How often the log looks for events other processes queued (`AuditLog.poll`).
POLL_INTERVAL = 1.0


class Audit:
    def __init__(self) -> None:
        self.log: AuditLog | None = None
        self.path: Path | None = None
        self.closed = False
        self.listeners: list[Listener] = []
        self._timer: asyncio.TimerHandle | None = None

    def configure(self, updated: set[str]) -> None:
        # Only remember the path: options arrive in several rounds while the master is built,
        # and opening the default log early would lock a file another gateway may be using.
        if "lockgate_audit_log" in updated:
            option = ctx.options.lockgate_audit_log
            self.path = Path(option) if option else None
            if self.log is not None:
                self.log.close()
                self.log = None

    def running(self) -> None:
        self._open()  # an unwritable log stops the start, visibly
        self._timer = asyncio.get_running_loop().call_later(POLL_INTERVAL, self._poll)

    def _poll(self) -> None:
        """Chain other processes' queued events (`tools approve`) with no traffic to carry
        them; a failure is logged and the next tick tries again."""
        if self.closed:
            return
        try:
            if self.log is not None:
                self.log.poll()
        except Exception:
            logger.exception("lockgate: draining the audit log's queued events failed")
        self._timer = asyncio.get_running_loop().call_later(POLL_INTERVAL, self._poll)

    def done(self) -> None:
        self.closed = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self.log is not None:
            self.log.close()
            self.log = None

    def _open(self) -> AuditLog:
        if self.closed:
            raise RuntimeError("the audit log is closed: the gateway is shutting down")
        if self.log is None:
            self.log = AuditLog(self.path or audit_log_path())
        return self.log

    def record(self, event: dict[str, Any]) -> None:
        # An unwritable log raises here, and the hook's wrapper refuses the exchange:
        # no traffic flows unrecorded.
        rec = self._open().append({k: v for k, v in event.items() if v is not None})
        for listener in self.listeners:
            try:
                listener(rec)
            except Exception:  # a broken view must not break the audit trail
                logger.exception("lockgate: audit listener failed")

    # --- hooks -------------------------------------------------------------------------

    @guarded
    def request(self, flow: http.HTTPFlow) -> None:
        st = state(flow)
        if st.route is None:
            return
        st.observers.append(lambda obj: self._on_upstream_message(flow, st, obj))
        forwarded = flow.response is None  # no addon before this one answered it
        if forwarded:
            # Nothing goes upstream while its events could not be written (a full disk):
            # the wrapper answers 503 with the log's sentence.
            self._open().check_ready()
        for m in st.messages:
            if m.kind == "request":
                if forwarded and m.method == "tools/call":
                    self.record(events.started(self._base(flow, st), m))
                continue
            # Notifications and the client's answers to server requests have no reply of
            # their own: record them as they pass.
            self.record(
                _with_findings(
                    st, events.client_message(self._base(flow, st), m, st.outcome or "success")
                )
            )

    @guarded
    def response(self, flow: http.HTTPFlow) -> None:
        st = state(flow)
        for auth_event in st.events:
            self.record(self._base(flow, st) | auth_event)
        st.events.clear()
        resp = flow.response
        status = resp.status_code if resp is not None else None
        pending = [m for m in st.messages if m.kind == "request" and m.id not in st.handled_ids]
        if pending:
            for m in pending:
                outcome = st.outcome or events.http_outcome(status)
                self._request_event(flow, st, m, outcome, status, None, None)
        elif not st.messages:
            # GET streams, DELETE, own endpoints, refused bodies: one event for the exchange.
            self.record(
                _with_findings(
                    st,
                    events.exchange(
                        self._base(flow, st),
                        routed=st.route is not None,
                        method=flow.request.method,
                        path=flow.request.path,
                        outcome=st.outcome or events.http_outcome(status, upstream=False),
                        status=status,
                        reason=st.reason,
                        total_ms=events.ms(time.monotonic() - st.started),
                    ),
                )
            )

    @guarded
    def error(self, flow: http.HTTPFlow) -> None:
        st = state(flow)
        for m in st.messages:
            if m.kind == "request" and m.id not in st.handled_ids:
                self._request_event(
                    flow,
                    st,
                    m,
                    st.outcome or "upstream_error",
                    504 if st.timed_out else 502,
                    None,
                    None,
                )

    # --- helpers -----------------------------------------------------------------------

    def _base(self, flow: http.HTTPFlow, st: FlowState) -> dict[str, Any]:
        route = st.route
        return {
            "route": route.name if route else None,
            "upstream": route.upstream.name if route else None,
            "user": st.user,
            "client": st.client,
            "session": self._session(flow, st),
        }

    @staticmethod
    def _session(flow: http.HTTPFlow, st: FlowState) -> str | None:
        """The session's short hash: enough to correlate events; the id itself would let
        anyone who reads the log or `watch` present it. Remembered for the exchange: a
        stream's events would look it up and hash it again each."""
        if st.session_hash is not None:
            return st.session_hash
        sid = flow.request.headers.get("mcp-session-id") or (
            flow.response.headers.get("mcp-session-id") if flow.response else None
        )
        if sid is None:
            return None
        st.session_hash = session_hash(sid)
        return st.session_hash

    def _request_event(
        self,
        flow: http.HTTPFlow,
        st: FlowState,
        m: Message,
        outcome: Outcome,
        status: int | None,
        reply: dict[str, Any] | None,
        upstream_ms: float | None,
    ) -> None:
        if m.id is not None:
            st.handled_ids.add(m.id)
        event = events.request(
            self._base(flow, st),
            m,
            outcome=outcome,
            status=status,
            reason=st.reason,
            total_ms=events.ms(time.monotonic() - st.started),
            upstream_ms=upstream_ms,
            reply=reply,
        )
        folded = st.progress_seen.pop(answer_key(m.id), None)
        if folded is not None:
            event["progress_events"], event["progress"] = folded
        self.record(_with_findings(st, event))

    @staticmethod
    def _fold_progress(st: FlowState, obj: dict[str, Any]) -> bool:
        """Count a `notifications/progress` for an open request of this exchange into that
        request's completion event instead of recording it alone: a long task reports
        progress hundreds of times, and an event each cost the stream ~0.3 ms per event and
        buried its call in `watch`. Progress for no open request is recorded as it comes."""
        if obj.get("method") != "notifications/progress":
            return False
        params = obj.get("params")
        if not isinstance(params, dict):
            return False
        token = params.get("progressToken")
        if not isinstance(token, (str, int)):
            return False
        wanted = answer_key(token)
        for m in st.messages:
            if m.id is None or m.id in st.handled_ids:
                continue
            if progress_token(m) == wanted:
                key = answer_key(m.id)
                count, _ = st.progress_seen.get(key, (0, None))
                st.progress_seen[key] = (count + 1, params.get("progress"))
                return True
        return False

    def _on_upstream_message(self, flow: http.HTTPFlow, st: FlowState, obj: dict[str, Any]) -> None:
        rid = obj.get("id")
        if ("result" in obj or "error" in obj) and isinstance(rid, (str, int)):
            match = next((m for m in st.messages if m.kind == "request" and m.id == rid), None)
            if match is not None and rid not in st.handled_ids:
                resp = flow.response
                upstream_ms = None
                if resp is not None and resp.timestamp_start and flow.request.timestamp_end:
                    upstream_ms = events.ms(resp.timestamp_start - flow.request.timestamp_end)
                self._request_event(
                    flow,
                    st,
                    match,
                    events.reply_outcome(obj),
                    resp.status_code if resp else None,
                    obj,
                    upstream_ms,
                )
                return
        if self._fold_progress(st, obj):
            return
        self.record(_with_findings(st, events.server_message(self._base(flow, st), obj)))


def _with_findings(st: FlowState, event: dict[str, Any]) -> dict[str, Any]:
    """What the guardrails found on the exchange so far goes with the next event recorded."""
    if st.findings:
        event["findings"] = st.findings
        st.findings = []
    return event
