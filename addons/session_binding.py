"""Each MCP session belongs to the user, client and route that opened it.

Runs right after client_auth, which has attached the signed-in user and the token's client
to the flow. A session is learned from the upstream's answer to a request that carried no
`Mcp-Session-Id` (the `initialize` that opened it); from then on every request carrying that
id (POST, GET stream, DELETE) must come from the same user, client and route, or it gets 404,
the MCP answer for an unknown session (clients start a new one), and a `session.refused`
audit event naming the session by its short hash. A session the gateway never saw opened is
refused the same way: only what it saw opened can it vouch for. A DELETE the upstream
accepted, or an upstream 404 for the session, ends the binding.

The table itself is `lockgate.mcp.sessions.SessionTable` (pure, bounded, thread-safe).
"""

from __future__ import annotations

from mitmproxy import http

from lockgate.addons._flow import answer_rpc_error, guarded, state
from lockgate.mcp import jsonrpc
from lockgate.mcp.sessions import Owner, SessionTable

SESSION_HEADER = "mcp-session-id"
UNKNOWN_SESSION = (
    "Unknown session: this Mcp-Session-Id was not opened by you on this route, or it has "
    "ended; start a new session with initialize."
)


class SessionBinding:
    def __init__(self, table: SessionTable | None = None) -> None:
        self.table = table or SessionTable()

    @staticmethod
    def _owner(flow: http.HTTPFlow) -> Owner:
        st = state(flow)
        assert st.route is not None
        return Owner(st.user, st.client, st.route.name)

    @guarded
    def requestheaders(self, flow: http.HTTPFlow) -> None:
        st = state(flow)
        if flow.response is not None or st.route is None:
            return  # answered already, or the gateway's own endpoints
        presented = flow.request.headers.get_all(SESSION_HEADER)
        if not presented:
            return
        if len(presented) > 1:
            # Which one the upstream would read is its business: the gateway checks one.
            self._refuse(flow, "several_ids")
            return
        reason = self.table.check(presented[0], self._owner(flow))
        if reason is not None:
            self._refuse(flow, reason)

    @guarded
    def responseheaders(self, flow: http.HTTPFlow) -> None:
        st = state(flow)
        resp = flow.response
        if resp is None or st.local or st.route is None:
            return
        sent = flow.request.headers.get(SESSION_HEADER)
        if sent is None:
            self._learn(flow, resp)
            return
        ended = resp.status_code == 404 or (
            flow.request.method == "DELETE" and 200 <= resp.status_code < 300
        )
        if ended:
            self.table.forget(sent)

    @guarded
    def response(self, flow: http.HTTPFlow) -> None:
        """An answer another addon put in place after the headers (the credentials addon's
        refresh-and-replay of an `initialize`) carries a session id too: bind it before the
        buffered answer reaches the client."""
        st = state(flow)
        resp = flow.response
        if resp is None or st.local or st.route is None:
            return
        if flow.request.headers.get(SESSION_HEADER) is None:
            self._learn(flow, resp)

    def _learn(self, flow: http.HTTPFlow, resp: http.Response) -> None:
        opened = resp.headers.get(SESSION_HEADER)
        if opened and not self.table.bind(opened, self._owner(flow)):
            # An upstream handing one session to two owners: pass neither this answer on.
            raise RuntimeError("the upstream issued a session id another owner holds")

    @staticmethod
    def _refuse(flow: http.HTTPFlow, reason: str) -> None:
        st = state(flow)
        assert st.route is not None
        st.events.append(
            {
                "event": "session.refused",
                "route": st.route.name,
                "outcome": "denied",
                "reason": reason,
            }
        )
        answer_rpc_error(flow, 404, jsonrpc.INVALID_REQUEST, UNKNOWN_SESSION, outcome="denied")
