"""Guardrails in the live path: redaction both ways, poisoning findings, tool pins, rate limits.

The rules are the core's (`lockgate.guardrails`); this addon applies one route's policy to a
flow. On the way up it refuses what a rate limit, a pin or a hidden definition stops, and
redacts the client's arguments (re-encoding the body only when a value was masked). On the way
down it adds one transform to the flow, so JSON bodies and SSE events alike pass through it,
message by message: list results are scanned and pinned (hidden items dropped), everything else
is redacted and, for results, scanned for injection. What it did goes to the audit as the
message's `findings`; what it refused is answered as a JSON-RPC error naming the rule.
"""

from __future__ import annotations

from typing import Any

from mitmproxy import http

from lockgate.addons._flow import answer_rpc_error, guarded, pending_route, state
from lockgate.guardrails.policy import GuardrailPolicy, resolve
from lockgate.guardrails.redaction import Redactions, Redactor
from lockgate.mcp import jsonrpc
from lockgate.mcp.exchange import FlowState
from lockgate.policy.gateway import GatewayConfig
from lockgate.policy.routes import Route


class _RouteGuard:
    """One route's guardrails, built once per route from its resolved policy."""

    __slots__ = ("down", "up")

    def __init__(self, policy: GuardrailPolicy) -> None:
        self.up = Redactor(policy.detectors, policy.up if policy.redacts_up else {})
        self.down = Redactor(policy.detectors, policy.down if policy.redacts_down else {})


class Guardrails:
    def __init__(self, config: GatewayConfig | None = None) -> None:
        self.config = config
        self._guards: dict[str, tuple[Route, _RouteGuard]] = {}

    def _guard(self, route: Route) -> _RouteGuard:
        held = self._guards.get(route.name)
        if held is not None and held[0] is route:
            return held[1]
        profile = self.config.profile if self.config is not None else None
        guard = _RouteGuard(resolve(profile.guardrails_for(route.name) if profile else None))
        self._guards[route.name] = (route, guard)
        return guard

    @guarded
    def request(self, flow: http.HTTPFlow) -> None:
        route = pending_route(flow)
        if route is None:
            return
        st = state(flow)
        guard = self._guard(route)
        if st.messages and guard.up.active and not _redact_up(flow, st, guard):
            return
        if guard.down.active:
            st.transforms.append(_Down(st, guard))


def _redact_up(flow: http.HTTPFlow, st: FlowState, guard: _RouteGuard) -> bool:
    """The client's data through the route's detectors; False when a type's action refused
    the body (answered)."""
    found = Redactions()
    raws = [guard.up.client_message(m.raw, found) for m in st.messages]
    if not found:
        return True
    st.findings.extend(found.findings("up"))
    if found.blocked is not None:
        answer_rpc_error(
            flow,
            200,
            jsonrpc.GUARDRAIL_BLOCKED,
            f"The gateway refused this request: it contains a {found.blocked} value, which "
            f"route {st.route.name if st.route else ''!r} does not let through "
            f"(guardrails.redact); remove it and retry.",
            outcome="blocked",
            data={"rule": found.blocked},
        )
        return False
    if any(new is not m.raw for new, m in zip(raws, st.messages, strict=True)):
        batch = (flow.request.raw_content or b"").lstrip()[:1] == b"["
        flow.request.content = jsonrpc.encode(raws if batch else raws[0])
        st.messages = jsonrpc.parse_body(flow.request.content or b"")
    return True


class _Down:
    """The transform every upstream message of a guarded flow passes through."""

    __slots__ = ("guard", "st")

    def __init__(self, st: FlowState, guard: _RouteGuard) -> None:
        self.st = st
        self.guard = guard

    def __call__(self, obj: dict[str, Any]) -> dict[str, Any] | None:
        rid = obj.get("id")
        answers = (
            self.st.methods.get(rid)
            if isinstance(rid, (str, int)) and "method" not in obj
            else None
        )
        found = Redactions()
        out = self.guard.down.server_message(obj, answers, found)
        if not found:
            return out
        self.st.findings.extend(found.findings("down"))
        if found.blocked is None:
            return out
        if "method" in obj and "id" not in obj:
            return None  # a notification: dropped
        if "method" in obj:
            return None  # a server request: dropped, the upstream's own timeout answers it
        return jsonrpc.error_response(
            rid if isinstance(rid, (str, int)) else None,
            jsonrpc.GUARDRAIL_BLOCKED,
            f"The gateway withheld the upstream's answer: it contains a {found.blocked} value, "
            "which this route does not let through (guardrails.redact).",
            {"rule": found.blocked},
        )
