"""A `tools/call` whose arguments break the tool's listed `inputSchema` never reaches the upstream.

Remembers the input schemas of the tools each route's `tools/list` results showed the
client (an observer on the flow, after the list was filtered), and answers a call whose
arguments do not match with `-32602` naming the argument's path, never its value. The
logic and its bounds are the core's (`lockgate.mcp.arguments`).
"""

from __future__ import annotations

from mitmproxy import http

from lockgate.addons._flow import guarded, pending_route, refuse, state
from lockgate.mcp import jsonrpc
from lockgate.mcp.arguments import ArgumentSchemas


class Arguments:
    def __init__(self) -> None:
        self.schemas = ArgumentSchemas()

    @guarded
    def request(self, flow: http.HTTPFlow) -> None:
        route = pending_route(flow)
        if route is None:
            return
        st = state(flow)
        lists: set[str | int] = set()
        for m in list(st.messages):
            if m.kind != "request":
                continue
            if m.method == "tools/list" and m.id is not None:
                lists.add(m.id)
            elif m.method == "tools/call" and m.params is not None and m.name is not None:
                problem = self.schemas.problem(route.name, m.name, m.params.get("arguments"))
                if problem is not None and refuse(
                    flow, m, 200, jsonrpc.INVALID_PARAMS, problem, outcome="denied"
                ):
                    return
        if lists:
            name = route.name

            def observe(obj: dict[str, object]) -> None:
                if obj.get("id") in lists and "result" in obj:
                    self.schemas.remember(name, obj["result"], st.body_key)

            st.observers.append(observe)
