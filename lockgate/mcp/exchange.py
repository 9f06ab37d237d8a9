"""One MCP exchange as the pipeline sees it: the per-flow state and the response-side processing.

Why it exists: what the pipeline learns about an exchange (route, user, the parsed messages,
the user's view) and how an upstream answer runs through the route's filters are pure logic.
The addons translate mitmproxy flows to these and back; here they are tested without it.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from lockgate.audit.events import Outcome
from lockgate.identity.claims import UserClaims
from lockgate.mcp import jsonrpc
from lockgate.mcp.jsonrpc import Message
from lockgate.mcp.sse import UNANSWERED, SseEvent, StreamBroken, serialize
from lockgate.mcp.uris import UriError, normalise, normalise_template
from lockgate.policy.access import Principal, RouteAccess
from lockgate.policy.routes import Route
from lockgate.policy.view import RESOURCE_METHODS, Policy

# A response-side processor: takes a decoded JSON-RPC object, returns it (maybe changed) or
# None to drop it. Observers only look.
Transform = Callable[[dict[str, Any]], dict[str, Any] | None]
Observer = Callable[[dict[str, Any]], None]

LIST_KEYS = {
    "tools": "tools/list",
    "prompts": "prompts/list",
    "resources": "resources/list",
    "resourceTemplates": "resources/templates/list",
}
LIST_METHODS = frozenset(LIST_KEYS.values())


@dataclass(frozen=True, slots=True)
class FlowAccess:
    """What ClientAuth decided about a flow's user, for the addons after it."""

    who: Principal
    access: RouteAccess
    policy: Policy  # the route's view for this user
    resource_metadata: str | None  # the route's RFC 9728 URL; None with kind "none"


@dataclass(frozen=True, slots=True)
class InjectedToken:
    """What the credentials addon sent upstream for an `auth = "oauth"` route (the 401 replay)."""

    upstream: str
    user: str
    token: str


@dataclass(frozen=True, slots=True)
class SetAside:
    """A batch member the gateway refused while the others went upstream: its error (None
    for a notification, which has no answer) joins the batch's answer, its audit event is
    recorded with the exchange's."""

    message: Message
    error: dict[str, Any] | None
    status: int
    event: dict[str, Any]


@dataclass(slots=True)
class FlowState:
    """What the pipeline learned about one HTTP exchange."""

    route: Route | None = None
    user: str | None = None
    client: str | None = None
    messages: list[Message] = field(default_factory=list)
    methods: dict[str | int, str] = field(default_factory=dict)
    transforms: list[Transform] = field(default_factory=list)
    observers: list[Observer] = field(default_factory=list)
    outcome: Outcome | None = None
    reason: str | None = None
    local: bool = False
    # Set when the upstream ran out of time: what it did not do, for the 504's sentence
    # ("did not answer within 60 seconds; …"), after the upstream's name.
    timed_out: str | None = None
    started: float = field(default_factory=time.monotonic)
    handled_ids: set[str | int] = field(default_factory=set)
    replacement: bytes | None = None
    # auth.* decisions taken on this exchange, recorded by the audit addon (never a secret).
    events: list[dict[str, Any]] = field(default_factory=list)
    # The request's Origin when Guard's rule allows it (set by the cors addon): every
    # response to this exchange, the gateway's own included, carries CORS headers for it.
    cors_origin: str | None = None
    # The response whose CORS headers the cors addon already set (its two hooks, one answer).
    cors_done: object = None
    # A CORS preflight the cors addon answered, with its own headers.
    preflight: bool = False
    # ClientAuth's decision about the user, for Capabilities.
    access: FlowAccess | None = None
    # The upstream token the credentials addon injected, until a 401 replay spends it.
    injected: InjectedToken | None = None
    # The upstream's answer timer (the upstream addon cancels it at the response headers).
    timer: asyncio.TimerHandle | None = None
    # When (time.monotonic) the upstream's answer must have begun.
    deadline: float = 0.0
    # Kind "oidc": the user `lockgate login` signed in (before `/oauth/authorize`), and the
    # user's claims as the provider said them just now (before a refresh_token grant).
    cli_user: UserClaims | None = None
    fresh_claims: UserClaims | None = None
    # What the guardrails found or did on this exchange (audit `findings` items, never a
    # secret), attached by the audit addon to the next event it records for the exchange.
    findings: list[dict[str, Any]] = field(default_factory=list)
    # While a whole JSON body is processed: `jsonrpc.result_key` of it (None for SSE events,
    # batches and other envelopes), so a processor can tell a result it has seen before.
    body_key: bytes | None = None
    # While one body or one SSE event is processed: its JSON text as the upstream sent it
    # (decoded), a superset of every message's strings in it, which the guardrails' quiet
    # pass may read instead of walking them (`quiet.raw_clear`).
    body_text: bytes | str | None = None
    # The request ids an upstream event stream has answered (`answer_key`), so a stream that
    # breaks ends with an error for each request still open, and only those.
    answered: set[tuple[bool, object]] = field(default_factory=set)
    # Why the gateway is closing the upstream's stream (it went idle), for the stream's end.
    broken: StreamBroken | None = None
    # When (time.monotonic) the upstream's event stream last made progress for an open
    # request (`note_progress`): the idle timer reads it, so pings and keep-alives sent
    # forever do not hold a waiting client forever.
    progress_at: float = 0.0
    # The client's body was a batch; the members refused one by one (`SetAside`), whose
    # errors are merged into the upstream's answer to the others, in the client's order.
    batch: bool = False
    set_aside: list[SetAside] = field(default_factory=list)
    order: dict[tuple[bool, object], int] = field(default_factory=dict)
    # Per open request (`answer_key` of its id): how many `notifications/progress` for its
    # token the audit folded into its completion event, and the last progress value.
    progress_seen: dict[tuple[bool, object], tuple[int, object]] = field(default_factory=dict)
    # The audit's short hash of the exchange's session id, once known.
    session_hash: str | None = None
    # The JSON answer's body as the capabilities addon left it, and the id it carried (its
    # `answers.other_id_of` input): the upstream addon's id check reads it instead of
    # decoding the same bytes again.
    answer_id: tuple[bytes, dict[str, object]] | None = None

    def process(self, obj: dict[str, Any]) -> dict[str, Any] | None:
        """Run one upstream message through the transforms, then show it to the observers."""
        out = obj
        for transform in self.transforms:
            result = transform(out)
            if result is None:
                return None
            out = result
        for observer in self.observers:
            observer(out)
        return out


def _has_rules(route: Route) -> bool:
    access = route.config.access
    return bool(
        access.scopes
        or access.tools
        or access.prompts
        or access.resources
        or access.resource_templates
    )


def view_of(st: FlowState, route: Route) -> Policy:
    """The user's view of the route (ClientAuth's), else the route's own.

    A route with item rules or scopes and no decision from ClientAuth fails closed."""
    if st.access is not None:
        return st.access.policy
    if _has_rules(route):
        raise RuntimeError(f"route {route.name!r} has access rules but no access decision")
    return route.policy


def list_method_of(state_methods: dict[str | int, str], obj: dict[str, Any]) -> str | None:
    """Which list a response answers: by the request id seen in this flow, else by its shape."""
    result = obj.get("result")
    if not isinstance(result, dict):
        return None
    rid = obj.get("id")
    if isinstance(rid, (str, int)) and rid in state_methods:
        method = state_methods[rid]
        return method if method in LIST_METHODS else None
    # Responses on a GET stream (resumed with Last-Event-ID) have no request in this flow.
    for key, method in LIST_KEYS.items():
        if isinstance(result.get(key), list):
            return method
    return None


class _ListFilter:
    """The user's view of the route applied to list results; anything else passes untouched."""

    __slots__ = ("st", "view")

    def __init__(self, st: FlowState, view: Policy) -> None:
        self.st = st
        self.view = view

    def __call__(self, obj: dict[str, Any]) -> dict[str, Any] | None:
        method = list_method_of(self.st.methods, obj)
        if method is None:
            return obj
        return {**obj, "result": self.view.filter_result(method, obj["result"])}


def list_filter(st: FlowState, view: Policy) -> Transform:
    """The transform that shows list results through `view`."""
    return _ListFilter(st, view)


def process_message(st: FlowState, obj: Any) -> Any:
    """One decoded body (a message or a batch) through the flow's processors."""
    if isinstance(obj, dict):
        return st.process(obj)
    if isinstance(obj, list):
        out = [st.process(o) if isinstance(o, dict) else o for o in obj]
        kept = [o for o in out if o is not None]
        if len(kept) == len(obj) and all(a is b for a, b in zip(kept, obj, strict=True)):
            return obj
        return kept
    return obj


def answer_key(rid: object) -> tuple[bool, object]:
    """An id as JSON-RPC matches it: 1 and true (equal in Python) stay apart."""
    return (isinstance(rid, bool), rid) if isinstance(rid, (str, int)) else (False, repr(rid))


def progress_token(m: Message) -> tuple[bool, object] | None:
    """The `answer_key` of a request's `_meta.progressToken`, if it asked for progress."""
    if m.kind != "request" or m.params is None:
        return None
    meta = m.params.get("_meta")
    token = meta.get("progressToken") if isinstance(meta, dict) else None
    return answer_key(token) if isinstance(token, (str, int)) else None


def _progress_tokens(st: FlowState) -> set[tuple[bool, object]]:
    """The `_meta.progressToken`s of the exchange's requests still open."""
    tokens: set[tuple[bool, object]] = set()
    for m in st.messages:
        if answer_key(m.id) not in st.answered and (token := progress_token(m)) is not None:
            tokens.add(token)
    return tokens


def is_progress(st: FlowState, m: object) -> bool:
    """Whether an upstream message moves an open request of this exchange forward: its answer,
    a `notifications/progress` for its progressToken, or a request the client must answer
    (sampling, elicitation, roots; not `ping`). Pings, keep-alive comments, log messages and
    other notifications are not progress: a stream of only those is idle for its request."""
    if not isinstance(m, dict):
        return False
    method = m.get("method")
    if method is None:
        if "result" not in m and "error" not in m:
            return False
        return answer_key(m.get("id")) in {answer_key(i) for i in open_request_ids(st)}
    if method == "notifications/progress":
        params = m.get("params")
        token = params.get("progressToken") if isinstance(params, dict) else None
        return isinstance(token, (str, int)) and answer_key(token) in _progress_tokens(st)
    return "id" in m and method != "ping"


def note_progress(st: FlowState, obj: Any, now: float) -> None:
    """Move `st.progress_at` to `now` when a decoded event (a message or a batch) is progress."""
    if any(is_progress(st, m) for m in (obj if isinstance(obj, list) else (obj,))):
        st.progress_at = now


def _note_answers(st: FlowState, obj: Any) -> None:
    note_progress(st, obj, time.monotonic())
    for m in obj if isinstance(obj, list) else (obj,):
        if isinstance(m, dict) and "method" not in m and ("result" in m or "error" in m):
            st.answered.add(answer_key(m.get("id")))


def open_request_ids(st: FlowState) -> list[str | int]:
    """The exchange's requests its stream has not answered yet, in the order sent."""
    return [
        m.id
        for m in st.messages
        if m.kind == "request"
        and isinstance(m.id, (str, int))
        and answer_key(m.id) not in st.answered
    ]


def stream_errors(st: FlowState, why: StreamBroken) -> bytes:
    """The events that end a broken stream (or one that ended with requests unanswered) for
    its client: a JSON-RPC error naming the upstream for each request still open (none on a
    GET stream, which answers nothing)."""
    ids = open_request_ids(st)
    if why is not UNANSWERED or ids:  # a stream that ended answering all is a success
        st.outcome, st.reason = "upstream_error", f"upstream {why.what}"
    if st.route is None or not ids:
        return b""
    up = st.route.upstream
    text = f"Upstream {up.name!r} ({up.host}:{up.port}) {why.what}; {why.fix}."
    data = {"upstream": up.name}
    st.answered.update(answer_key(i) for i in ids)
    return b"".join(
        serialize(
            SseEvent(
                event="message",
                data=jsonrpc.encode(
                    jsonrpc.error_response(i, jsonrpc.INTERNAL_ERROR, text, data)
                ).decode("utf-8"),
            )
        )
        for i in ids
    )


def rewrite_event(st: FlowState, ev: SseEvent) -> SseEvent | None:
    if not ev.data:
        return ev
    try:
        obj = jsonrpc.loads(ev.data)
    except ValueError:
        # MCP events carry JSON-RPC messages: one that is not JSON (a sign-in page, a proxy's
        # banner) means the stream is not MCP any more, on any route.
        raise StreamBroken(
            "sent an event that is not JSON", "the stream was ended: check the upstream"
        ) from None
    _note_answers(st, obj)
    st.body_text = ev.data
    try:
        out = process_message(st, obj)
    finally:
        st.body_text = None
    if out is obj and not jsonrpc.has_duplicate_keys(ev.data, obj):
        return ev
    if out is None or out == []:
        return None
    return dataclasses.replace(ev, data=jsonrpc.encode(out).decode("utf-8"))


def refused_event(ev: SseEvent, message: str) -> SseEvent | None:
    """What goes out instead of an upstream event the gateway could not record (a full
    disk): a JSON-RPC error for the reply's id, so the client is told why rather than left
    without an answer; None (dropped) for an event that answers nothing."""
    try:
        obj = jsonrpc.loads(ev.data or "")
    except ValueError:
        return None
    rid = obj.get("id") if isinstance(obj, dict) else None
    if not isinstance(rid, (str, int)) or not ("result" in obj or "error" in obj):
        return None
    error = jsonrpc.error_response(rid, jsonrpc.INTERNAL_ERROR, message)
    return dataclasses.replace(ev, data=jsonrpc.encode(error).decode("utf-8"))


def _uri_of(m: Message) -> tuple[dict[str, Any], str] | None:
    """The object holding the URI a message targets (params, or a completion's ref)."""
    params = m.params
    if params is None:
        return None
    if m.method in RESOURCE_METHODS:
        holder: object = params
    elif m.method == "completion/complete":
        holder = params.get("ref")
        if not isinstance(holder, dict) or holder.get("type") != "ref/resource":
            return None
    else:
        return None
    uri = holder.get("uri") if isinstance(holder, dict) else None
    return (holder, uri) if isinstance(holder, dict) and isinstance(uri, str) else None


class NoNormalForm(ValueError):
    """A targeted resource URI that has no normal form (the request is refused)."""

    def __init__(self, uri: str, cause: UriError) -> None:
        super().__init__(str(cause))
        self.uri = uri
        self.cause = cause


def normal_form(messages: list[Message]) -> list[Message] | None:
    """On a route with resource rules: the messages with every URI in normal form, so the
    upstream reads the URI the rules matched; None when none changed. NoNormalForm when one
    has none."""
    changed = False
    out: list[Message] = []
    for m in messages:
        found = _uri_of(m)
        if found is None:
            out.append(m)
            continue
        holder, uri = found
        try:
            normal = normalise(uri) if m.method in RESOURCE_METHODS else normalise_template(uri)
        except UriError as e:
            raise NoNormalForm(uri, e) from e
        if normal == uri:
            out.append(m)
            continue
        changed = True
        params = dict(m.params or {})
        if holder is m.params:
            params["uri"] = normal
        else:
            params["ref"] = {**holder, "uri": normal}
        out.append(dataclasses.replace(m, params=params, raw={**m.raw, "params": params}))
    return out if changed else None


@dataclass(frozen=True, slots=True)
class ScopeRefusal:
    """A 403 `insufficient_scope` answer, as the addons send it (a JSON-RPC error)."""

    event: dict[str, Any]
    message: str
    data: object
    headers: dict[str, str] | None


def scope_refusal(fa: FlowAccess, needed: tuple[str, ...], what: str) -> ScopeRefusal:
    """403 `insufficient_scope` (RFC 6750 section 3.1, MCP step-up): the challenge names every
    scope the request needs, so the client can re-authorize for them and retry."""
    scope = " ".join(needed)
    event = {
        "event": "auth.token_refused",
        "route": fa.access.route,
        "outcome": "denied",
        "reason": "insufficient_scope",
        "scope": scope,
    }
    if fa.resource_metadata is None:
        return ScopeRefusal(
            event,
            f"{what} needs scope {scope!r}, which only a gateway access token carries; "
            'set [identity] kind = "dev" or "oidc" in the profile.',
            None,
            None,
        )
    return ScopeRefusal(
        event,
        f"{what} needs scope {scope!r}; let your MCP client authorize again with that scope.",
        {"scope": scope},
        {
            "www-authenticate": (
                f'Bearer error="insufficient_scope", scope="{scope}", '
                f'resource_metadata="{fa.resource_metadata}", '
                # Only profile-validated scope tokens go into the header, never a name
                # the client chose (it could carry quotes or line breaks).
                f'error_description="This request needs scope {scope}"'
            )
        },
    )


def note_order(st: FlowState, batch: bool) -> None:
    """Remember whether the body is a batch, and where each request stands in it."""
    st.batch = batch
    st.order = {answer_key(m.id): i for i, m in enumerate(st.messages) if m.kind == "request"}


def set_aside_errors(st: FlowState) -> list[dict[str, Any]]:
    return [a.error for a in st.set_aside if a.error is not None]


def merge_answers(st: FlowState, obj: object) -> list[Any]:
    """The batch's answer: the upstream's answers (`obj`: a message, a list, or None for a
    202) and the set-aside members' errors, in the order the client sent the requests.
    Every member is answered under its own id, so a client matching answers by id finds each."""
    got = obj if isinstance(obj, list) else [] if obj is None else [obj]
    if len(got) == 1 and isinstance(got[0], dict) and got[0].get("id") is None:
        # The upstream refused what it got as a whole (one error, id null): in a list that
        # answers the members by id, each request it got gets that error under its own id.
        ids = [m.id for m in st.messages if m.kind == "request"]
        if ids and "error" in got[0]:
            got = [{**got[0], "id": i} for i in ids]
    merged = [*got, *set_aside_errors(st)]
    last = len(st.order)

    def position(m: object) -> int:
        return st.order.get(answer_key(m.get("id")), last) if isinstance(m, dict) else last

    return sorted(merged, key=position)


def set_aside_events(st: FlowState) -> bytes:
    """The set-aside members' errors as events, sent first on the upstream's event stream."""
    return b"".join(
        serialize(SseEvent(event="message", data=jsonrpc.encode(e).decode("utf-8")))
        for e in set_aside_errors(st)
    )
