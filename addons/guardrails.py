"""Guardrails in the live path: redaction both ways, poisoning findings, tool pins, rate limits.

The rules are the core's (`lockgate.guardrails`, the route's `Stage`); this addon applies them
to flows. On the way up it answers what a rate limit, a pin, a hidden definition or a blocked
type refuses (the upstream never sees it), and sends the client's data redacted (the body is
re-encoded only when a value was masked). A call to a tool the gateway has never seen listed
is checked against a list the gateway fetches itself, on the caller's session and with the
caller's upstream credential. On the way down it adds one transform to the flow, so JSON
bodies and SSE events alike pass through the stage message by message. What it found or did
goes with the exchange's audit event as `findings`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from mitmproxy import http

from lockgate.addons._flow import answer_rpc_error, guarded_async, pending_route, refuse, state
from lockgate.guardrails.findings import DefinitionScanner
from lockgate.guardrails.pinstore import PinStore
from lockgate.guardrails.policy import resolve
from lockgate.guardrails.stage import LEARN_INTERVAL, Outcome, Sink, Stage
from lockgate.mcp import jsonrpc
from lockgate.mcp.exchange import FlowState
from lockgate.mcp.jsonrpc import Message
from lockgate.net.tls import upstream_verify
from lockgate.policy.gateway import GatewayConfig
from lockgate.policy.routes import Route
from lockgate.upstream.listing import ListingFailed, fetch_tools

logger = logging.getLogger("lockgate")

# The credential header a flow's upstream request would carry (the credentials addon's).
HeadersFor = Callable[[http.HTTPFlow], Awaitable[dict[str, str] | None]]


class Guardrails:
    def __init__(self, config: GatewayConfig, headers_for: HeadersFor | None = None) -> None:
        self.config = config
        self.headers_for = headers_for
        self.scanner = DefinitionScanner()
        self._pins: PinStore | None = None
        self._stages: dict[str, tuple[Route, Stage]] = {}
        self._learning: dict[str, asyncio.Lock] = {}  # route -> its own list fetch

    def configure(self, updated: set[str]) -> None:
        self._stages.clear()

    def done(self) -> None:
        if self._pins is not None:
            self._pins.close()
            self._pins = None

    def _stage(self, route: Route) -> Stage:
        held = self._stages.get(route.name)
        if held is not None and held[0] is route:
            return held[1]
        profile = self.config.profile
        section = profile.guardrails_for(route.name) if profile else None
        policy = resolve(section)
        pins = None
        if policy.enabled and policy.pin_mode != "off":
            if self._pins is None:
                self._pins = PinStore.open()
            pins = self._pins
        stage = Stage(route.name, route.upstream.name, policy, self.scanner, pins)
        self._stages[route.name] = (route, stage)
        return stage

    @guarded_async
    async def request(self, flow: http.HTTPFlow) -> None:
        route = pending_route(flow)
        if route is None:
            return
        stage = self._stage(route)
        if not stage.policy.enabled:
            return
        st = state(flow)
        if st.batch and len(st.messages) > 1:
            if await self._members(flow, st, stage):
                return
        elif st.messages:
            # The bytes the messages were parsed from, and go up as: `quiet` may read them whole.
            out = await self._judge(flow, st, stage, st.messages, flow.request.raw_content)
            if out is not None and self._apply(flow, st, out):
                return
        # First, before the route's list filter: pins and scans see the upstream's own
        # definitions, not the route's description overrides.
        st.transforms.insert(0, _Down(st, stage))

    async def _judge(
        self,
        flow: http.HTTPFlow,
        st: FlowState,
        stage: Stage,
        messages: list[Message],
        text: bytes | None = None,
    ) -> Outcome | None:
        out = stage.limit(messages, st.user, time.monotonic())
        if out is None and stage.unlisted_tool(messages) is not None:
            out = await self._learn(flow, st, stage)
        return out or stage.check_calls(messages) or stage.redact_up(messages, text)

    async def _members(self, flow: http.HTTPFlow, st: FlowState, stage: Stage) -> bool:
        """A batch, member by member, as each would be alone: a refused member gets its own
        error in the batch's answer and the others go on (`_flow.refuse`); a masked value is
        masked in its member. A rate limit's refusal (429 with Retry-After, which one member
        of a 200 batch answer cannot carry) answers the whole exchange. True when answered."""
        raws: dict[int, dict[str, Any]] = {}
        for m in list(st.messages):
            out = await self._judge(flow, st, stage, [m])
            if out is None:
                continue
            st.findings.extend(out.findings)
            r = out.refusal
            if r is not None and r.headers:
                answer_rpc_error(
                    flow, r.status, r.code, r.message, outcome="blocked", data=r.data,
                    headers=r.headers,
                )  # fmt: skip
                return True
            if r is not None:
                if refuse(flow, m, r.status, r.code, r.message, outcome="blocked", data=r.data):
                    return True
            elif out.raws is not None:
                raws[id(m)] = out.raws[0]
        if raws:
            flow.request.content = jsonrpc.encode([raws.get(id(m), m.raw) for m in st.messages])
            st.messages = jsonrpc.parse_body(flow.request.content or b"")
        return False

    def _apply(self, flow: http.HTTPFlow, st: FlowState, out: Outcome) -> bool:
        """Record what the stage did; True when it refused the request (answered)."""
        st.findings.extend(out.findings)
        if out.refusal is not None:
            r = out.refusal
            answer_rpc_error(
                flow, r.status, r.code, r.message, outcome="blocked", data=r.data, headers=r.headers
            )
            return True
        if out.raws is not None:
            batch = (flow.request.raw_content or b"").lstrip()[:1] == b"["
            flow.request.content = jsonrpc.encode(out.raws if batch else out.raws[0])
            st.messages = jsonrpc.parse_body(flow.request.content or b"")
        return False

    async def _learn(self, flow: http.HTTPFlow, st: FlowState, stage: Stage) -> Outcome | None:
        """Fetch the upstream's tool list for a call to a tool never seen listed; a refusal
        when it cannot be had (the call is not let through unchecked). One fetch at a time
        per route, and at most one per LEARN_INTERVAL (a still unlisted tool is refused)."""
        lock = self._learning.setdefault(stage.route, asyncio.Lock())
        async with lock:
            if stage.unlisted_tool(st.messages) is None:
                return None  # a fetch for another call learned it meanwhile
            if not stage.may_learn(time.monotonic()):
                return stage.unlisted_refusal(
                    f"it listed them under {LEARN_INTERVAL:g} s ago, without this tool"
                )
            return await self._fetch(flow, st, stage)

    async def _fetch(self, flow: http.HTTPFlow, st: FlowState, stage: Stage) -> Outcome | None:
        auth = await self.headers_for(flow) if self.headers_for is not None else {}
        if auth is None:
            return None  # no credential: the credentials addon answers the call
        route = st.route
        profile = self.config.profile
        if route is None or profile is None:
            raise RuntimeError("a guarded flow has no route or profile")
        try:
            tools = await fetch_tools(
                route.upstream.url,
                flow.request.headers,
                auth,
                verify=upstream_verify(profile.gateway.upstream_ca, Path(profile.source)),
                timeout=route.limits.first_byte,
                envelope=_envelope(st),
            )
        except (ListingFailed, ValueError) as e:
            logger.warning("lockgate: could not list the tools of %s: %s", route.upstream.name, e)
            return stage.unlisted_refusal(str(e))
        sink = Sink(st.findings, st.events)
        stage.learn_tools(tools, sink)
        return None


def _envelope(st: FlowState) -> dict[str, Any]:
    """The protocol keys of the calling request's `_meta` (2026-07-28 sends them in each)."""
    for m in st.messages:
        meta = (m.params or {}).get("_meta") if m.method == "tools/call" else None
        if isinstance(meta, dict):
            return {k: v for k, v in meta.items() if k.startswith("io.modelcontextprotocol/")}
    return {}


class _Down:
    """The transform every upstream message of a guarded flow passes through."""

    __slots__ = ("st", "stage")

    def __init__(self, st: FlowState, stage: Stage) -> None:
        self.st = st
        self.stage = stage

    def __call__(self, obj: dict[str, Any]) -> dict[str, Any] | None:
        rid = obj.get("id")
        reply = isinstance(rid, (str, int)) and "method" not in obj
        answers = self.st.methods.get(rid) if reply else None  # type: ignore[arg-type]
        sink = Sink(self.st.findings, self.st.events)
        return self.stage.down(obj, answers, sink, key=self.st.body_key, text=self.st.body_text)
