"""The guardrail stage of one route: its policy applied to MCP messages, both ways.

Why it exists: the addon deals in flows; what to refuse, rewrite, hide and record is decided
here, on decoded JSON-RPC messages, so it is tested without mitmproxy. On the way up:
rate limits, calls to tools that a finding or a pin keeps hidden, and the client's data
through the redactor. On the way down: list results scanned for poisoning and pinned (hidden
items dropped), results scanned for injection (warned, sanitized or withheld), everything
redacted. What was found or done is returned as audit `findings` items, which never hold the
value found nor any part of it.

A definition hidden on one route is remembered by name for that route (bounded), so that a
call to it is refused before the upstream; a call to a tool this gateway has never seen listed
is judged after the addon has fetched the upstream's list itself (`learn_tools`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import orjson

from lockgate.guardrails import quiet
from lockgate.guardrails.confusables import spoofed_names
from lockgate.guardrails.findings import (
    RULES,
    DefinitionScanner,
    Finding,
    sanitize,
    scan_result,
)
from lockgate.guardrails.limits import RateLimiter, is_limited
from lockgate.guardrails.pinning import Observation
from lockgate.guardrails.pinstore import PinStore
from lockgate.guardrails.policy import GuardrailPolicy
from lockgate.guardrails.redaction import Redactions, Redactor
from lockgate.mcp import jsonrpc
from lockgate.mcp.jsonrpc import Message

# List methods: the key of the items in the result, the kind of item, and the field naming it.
_LISTS: Mapping[str, tuple[str, str, str]] = {
    "tools/list": ("tools", "tool", "name"),
    "prompts/list": ("prompts", "prompt", "name"),
    "resources/list": ("resources", "resource", "uri"),
    "resources/templates/list": ("resourceTemplates", "resourceTemplate", "uriTemplate"),
}
# Calls that target one definition: the kind and the params field naming it.
_TARGETS: Mapping[str, tuple[str, str]] = {
    "tools/call": ("tool", "name"),
    "prompts/get": ("prompt", "name"),
    "resources/read": ("resource", "uri"),
}
# Results scanned for injection: they carry what the model will read.
_SCANNED_RESULTS = frozenset({"tools/call", "prompts/get", "resources/read"})
_RANK = {"off": 0, "warn": 1, "hide": 2}
MAX_HIDDEN = 10_000
# The gateway lists an upstream's tools itself (for a call to a tool it never saw listed) at
# most this often per route: calls to made-up names do not turn into a list each.
LEARN_INTERVAL = 2.0
MAX_MEMO_BYTES = 8 << 20  # the largest list remembered (per route and list method)


@dataclass(frozen=True, slots=True)
class Refusal:
    """A request the stage refuses: the JSON-RPC error and HTTP status to answer with."""

    status: int
    code: int
    message: str
    data: dict[str, Any]
    headers: dict[str, str] | None = None


@dataclass(slots=True)
class Sink:
    """Where the stage puts what it found on one exchange: audit `findings` items for the
    exchange's event, and standalone events (pin changes)."""

    findings: list[dict[str, Any]] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)


@dataclass(slots=True)
class Outcome:
    """What the stage did to the messages of one exchange's request."""

    refusal: Refusal | None = None
    raws: list[dict[str, Any]] | None = None  # the rewritten messages, when one changed
    findings: list[dict[str, Any]] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class _ListMemo:
    js: bytes  # the result's bytes after its id, or the list serialized: compared, not hashed
    token: tuple[int, int] | None  # the pins store's state after it
    kept: tuple[int, ...]  # the positions of the items kept
    findings: tuple[dict[str, Any], ...]
    names: dict[str, None]  # the tool names it listed
    hides: tuple[tuple[tuple[str, str], str], ...]  # what it hid, and by which rule


def _serialized(items: list[Any]) -> bytes | None:
    try:
        return orjson.dumps(items)
    except TypeError:
        return None  # not JSON orjson can write (out-of-range ints): not memoized


def _target(kind: str, name: str) -> str:
    return f"{kind}:{name}"


class Stage:
    """One route's guardrails; shared by every exchange on the route."""

    def __init__(
        self,
        route: str,
        upstream: str,
        policy: GuardrailPolicy,
        scanner: DefinitionScanner,
        pins: PinStore | None,
    ) -> None:
        self.route = route
        self.upstream = upstream
        self.policy = policy
        self.scanner = scanner
        self.pins = pins if policy.enabled and policy.pin_mode != "off" else None
        self.up = Redactor(policy.detectors, policy.up)
        self.down_redactor = Redactor(policy.detectors, policy.down)
        self.up_active = policy.enabled and policy.redacts_up
        # One pass clears a benign message (`quiet`); it knows only the built-in detectors.
        self.quiet = not policy.detectors.custom
        self.limiter = (
            RateLimiter(policy.limits)
            if policy.enabled and policy.limits is not None and not policy.limits.empty
            else None
        )
        # (kind, name) -> the rule that hid it on this route.
        self.hidden: dict[tuple[str, str], str] = {}
        # Tool names this route has seen listed (and so scanned): the pins store knows what
        # any route listed, but a hide is this route's own, so a call is judged here only
        # after this route saw the list. Bounded like `hidden`.
        self.seen: dict[str, None] = {}
        # The last list of each method, as the upstream sent it, and what was made of it.
        self._memos: dict[str, _ListMemo] = {}
        self._learned_at = float("-inf")  # time.monotonic() of the last list it fetched

    @property
    def shipped(self) -> Mapping[str, str]:
        return self.policy.pins.get(self.upstream, {})

    # --- the way up ---------------------------------------------------------------------

    def limit(self, messages: Sequence[Message], user: str | None, now: float) -> Outcome | None:
        """A rate limit's refusal of the body, or None."""
        if self.limiter is None:
            return None
        for m in messages:
            if m.kind not in ("request", "notification") or not is_limited(m.method):
                continue
            tool = m.name if m.method == "tools/call" else None
            hit = self.limiter.check(self.route, user, tool, now)
            if hit is not None:
                retry = hit.retry_after_header
                message = (
                    f"Rate limit of route {self.route!r} reached ({hit.limit} per "
                    f"{hit.scope.replace('_', ' and ')}); retry in {retry} s."
                )
                refusal = Refusal(
                    429,
                    jsonrpc.RATE_LIMITED,
                    message,
                    {"rule": "RATE_LIMIT", "scope": hit.scope, "retry_after": int(retry)},
                    {"retry-after": retry},
                )
                item = {"kind": "limit", "rule": "RATE_LIMIT", "scope": hit.scope}
                return Outcome(refusal, None, [{**item, "action": "block"}])
        return None

    def unlisted_tool(self, messages: Sequence[Message]) -> str | None:
        """A tool called in `messages` that this route has not seen listed since it started
        (pins on): the addon fetches the upstream's list before the call is judged."""
        if self.pins is None:
            return None
        for m in messages:
            if m.method != "tools/call" or not m.name:
                continue
            # `seen` is a subset of what the pins store saw listed (both learn from `_list`),
            # so the store need not be asked (its lock and lookups cost on every call).
            if m.name not in self.seen:
                return m.name
        return None

    def may_learn(self, now: float) -> bool:
        """Whether the addon may fetch the upstream's list now (and, if so, that it did):
        within LEARN_INTERVAL of the last fetch, a still unlisted tool is refused as such."""
        if now - self._learned_at < LEARN_INTERVAL:
            return False
        self._learned_at = now
        return True

    def unlisted_refusal(self, why: str) -> Outcome:
        """A call to a tool never seen listed, when the upstream's list could not be had."""
        message = (
            f"The gateway could not check this tool call against the tools of upstream "
            f"{self.upstream!r} ({why}); list the tools and retry."
        )
        return _blocked(message, "PIN_UNCHECKED", "tool", "?", item_kind="pin")

    def check_calls(self, messages: Sequence[Message]) -> Outcome | None:
        """A refusal for a call to a definition a finding or a pin keeps hidden, or None."""
        for m in messages:
            target = _TARGETS.get(m.method or "")
            if target is None or m.kind not in ("request", "notification") or m.params is None:
                continue
            kind, key = target
            name = m.params.get(key)
            if not isinstance(name, str):
                continue
            rule = self.hidden.get((kind, name))
            if rule is not None:
                message = (
                    f"The gateway hides {kind} {name!r} on route {self.route!r}: its definition "
                    f"has a {rule} finding; see `lockgate audit query --rule {rule}`."
                )
                return _blocked(message, rule, kind, name)
            if kind == "tool" and self.pins is not None:
                refusal = self.pins.refusal(
                    self.upstream, name, mode=self._mode(), shipped=self.shipped
                )
                if refusal is not None:
                    return _blocked(refusal, "PIN_HELD", kind, name, item_kind="pin")
        return None

    def redact_up(self, messages: Sequence[Message], text: bytes | None = None) -> Outcome | None:
        """The client's data through the detectors: None when nothing was found. `text`: the
        body `messages` were parsed from and go up as, when known (`quiet` may read it)."""
        if not self.up_active:
            return None
        if self.quiet and (
            quiet.raw_clear(text, quiet.UP) or quiet.clear([m.raw for m in messages], quiet.UP)
        ):
            return None
        found = Redactions()
        raws = [self.up.client_message(m.raw, found) for m in messages]
        if not found:
            return None
        out = Outcome(findings=found.findings("up"))
        if found.blocked is not None:
            out.refusal = Refusal(
                200,
                jsonrpc.GUARDRAIL_BLOCKED,
                f"The gateway refused this request: it contains a {found.blocked} value, which "
                f"route {self.route!r} does not let through (guardrails.redact); remove it and "
                "retry.",
                {"rule": found.blocked},
            )
        elif any(new is not m.raw for new, m in zip(raws, messages, strict=True)):
            out.raws = raws
        return out

    # --- the way down -------------------------------------------------------------------

    def down(
        self,
        obj: dict[str, Any],
        answers: str | None,
        sink: Sink,
        key: bytes | None = None,
        text: bytes | str | None = None,
    ) -> dict[str, Any] | None:
        """One upstream message: changed, the same object, or None (dropped). `key`: the
        message's `jsonrpc.result_key`, when known (equal keys, equal results). `text`: the
        JSON text the message came in (its body or event, with any other message in it),
        which `quiet` may read instead of the message's strings."""
        if not self.policy.enabled:
            return obj
        result = obj.get("result")
        listing = answers if answers in _LISTS else _list_shape(result) if answers is None else None
        if listing is not None and isinstance(result, dict):
            new = self._list(listing, result, sink, key)
            return obj if new is result else {**obj, "result": new}
        if (
            self.quiet
            and (answers is None or answers in _SCANNED_RESULTS)
            and isinstance(result, dict)
            and "method" not in obj
            and "error" not in obj
            and (quiet.raw_clear(text, quiet.DOWN) or quiet.clear([result], quiet.DOWN))
        ):
            return obj  # nothing to redact, nothing to find: the full path would agree
        if (
            self.quiet
            and "method" in obj
            and isinstance(obj["method"], str)
            and (quiet.raw_clear(text, quiet.UP) or quiet.clear([obj.get("params")], quiet.UP))
        ):
            # A notification or request from the upstream (progress, logs, sampling): only
            # its params are redacted and none is scanned for findings, so the anchors alone
            # decide. A stream's progress events took the redactor's walk each.
            return obj
        findings = sink.findings
        found = Redactions()
        out = self.down_redactor.server_message(obj, answers, found)
        if found:
            findings.extend(found.findings("down"))
            if found.blocked is not None:
                return _withheld(obj, f"it contains a {found.blocked} value", found.blocked)
        if not isinstance(out.get("result"), dict) or "method" in out:
            return out
        if answers in _SCANNED_RESULTS:
            return self._scan_result(out, answers, findings)
        if answers is None:
            # A result whose id matches no request of this exchange (a look-alike id such as
            # "1" for 1, which clients still match, or a result replayed on a GET stream):
            # scanned as a call's result rather than let through unscanned.
            return self._scan_result(out, "tools/call", findings)
        return out

    def _scan_result(
        self, obj: dict[str, Any], answers: str, findings: list[dict[str, Any]]
    ) -> dict[str, Any] | None:
        found = scan_result(obj["result"])
        if not found:
            return obj
        action = self.policy.results
        for f in found:
            findings.append(
                {
                    "kind": "finding",
                    "rule": f.rule,
                    "severity": f.severity,
                    "target": f"result:{answers}",
                    "path": f.path,
                    "action": action,
                }
            )
        if action == "withhold":
            rules = sorted({f.rule for f in found})
            return _withheld(obj, f"it has {', '.join(rules)} findings", rules[0])
        if action == "sanitize":
            clean = sanitize(obj["result"])
            return obj if clean is obj["result"] else {**obj, "result": clean}
        return obj

    def _list(
        self, method: str, result: dict[str, Any], sink: Sink, raw: bytes | None = None
    ) -> dict[str, Any]:
        key, kind, name_key = _LISTS[method]
        listed = result.get(key)
        if not isinstance(listed, list):
            return result
        pins = self.pins if kind == "tool" else None
        # The result's own bytes when the body gave them (they start with "{"), else the list
        # serialized (it starts with "["): the two kinds never compare equal.
        js = raw if raw is not None else _serialized(listed)
        token = pins.state(self.upstream) if pins is not None and js is not None else None
        memo = self._memos.get(method)
        if memo is not None and js is not None and memo.js == js and memo.token == token:
            return self._replay(memo, kind, key, result, listed, sink)
        items = listed
        if kind == "tool":  # a nameless tool can be neither pinned nor called: dropped
            items = [t for t in items if isinstance(t, dict) and isinstance(t.get("name"), str)]
        keys: Mapping[str, str] = {}
        hidden: frozenset[str] = frozenset()
        changed = False
        found: list[dict[str, Any]] = []
        if pins is not None:
            # Pinned first: the pins' hashes are the scanner's cache keys too (neither counts
            # `_meta`), so an unchanged list is hashed once.
            obs = pins.observe(self.upstream, items, mode=self._mode(), shipped=self.shipped)
            found.extend(_pin_findings(obs))
            sink.events.extend(c.event(self.upstream) for c in obs.changes if c.kind != "new")
            keys, hidden, changed = obs.pins, obs.hidden, bool(obs.changes)
        kept = self._scan_definitions(kind, name_key, items, keys, found)
        sink.findings.extend(found)
        names: dict[str, None] = {}
        if kind == "tool":
            names = {t["name"]: None for t in items}
            if len(self.seen) + len(names) > MAX_HIDDEN:
                self.seen.clear()
            self.seen.update(names)
        if hidden:
            kept = [t for t in kept if t.get("name") not in hidden]
        if js is not None and len(js) <= MAX_MEMO_BYTES:
            after = pins.state(self.upstream) if pins is not None else None
            if not changed and (token is None or after == (token[0], token[1] + 1)):
                # Nothing was pinned or held, and no other process wrote meanwhile: the same
                # list in the same state is answered the same, without its per-item work.
                position = {id(item): i for i, item in enumerate(listed)}
                self._memos[method] = _ListMemo(
                    js,
                    after,
                    tuple(position[id(t)] for t in kept),
                    tuple(found),
                    names,
                    self._hides_of(kind, name_key, items),
                )
            else:
                self._memos.pop(method, None)
        if len(kept) == len(listed):
            return result
        return {**result, key: kept}

    def _hides_of(
        self, kind: str, name_key: str, items: list[Any]
    ) -> tuple[tuple[tuple[str, str], str], ...]:
        out: list[tuple[tuple[str, str], str]] = []
        for item in items:
            name = item.get(name_key) if isinstance(item, dict) else None
            if isinstance(name, str) and (rule := self.hidden.get((kind, name))) is not None:
                out.append(((kind, name), rule))
        return tuple(out)

    def _replay(
        self,
        memo: _ListMemo,
        kind: str,
        key: str,
        result: dict[str, Any],
        listed: list[Any],
        sink: Sink,
    ) -> dict[str, Any]:
        """What `_list` did for the identical list last time: its findings, hides and seen
        names again, and the same items kept."""
        sink.findings.extend(memo.findings)
        for k, rule in memo.hides:
            if k not in self.hidden and len(self.hidden) >= MAX_HIDDEN:
                self.hidden.pop(next(iter(self.hidden)))
            self.hidden[k] = rule
        if kind == "tool":
            if len(self.seen) + len(memo.names) > MAX_HIDDEN:
                self.seen.clear()
            self.seen.update(memo.names)
        if len(memo.kept) == len(listed):
            return result
        return {**result, key: [listed[i] for i in memo.kept]}

    def learn_tools(self, tools: Sequence[dict[str, Any]], sink: Sink) -> None:
        """The upstream's own list, fetched by the gateway for a call to an unlisted tool:
        pinned and scanned as if the client had listed it."""
        self._list("tools/list", {"tools": list(tools)}, sink)

    def _scan_definitions(
        self,
        kind: str,
        name_key: str,
        items: list[Any],
        keys: Mapping[str, str],
        findings: list[dict[str, Any]],
    ) -> list[Any]:
        defs = [i for i in items if isinstance(i, dict)]
        names = [d.get(name_key) for d in defs]
        spoofed = spoofed_names(n for n in names if isinstance(n, str)) if kind == "tool" else {}
        scanned = iter(
            [
                self._scan(kind, d, keys.get(n) if isinstance(n, str) else None, n in spoofed)
                for d, n in zip(defs, names, strict=True)
            ]
        )
        kept: list[Any] = []
        for item in items:
            if not isinstance(item, dict):
                kept.append(item)
                continue
            name = item.get(name_key)
            label = name if isinstance(name, str) else "?"
            worst, rule = "off", ""
            for f in next(scanned):
                action = self.policy.definition_action(f.rule, f.severity)
                if action == "off":
                    continue
                findings.append(
                    {
                        "kind": "finding",
                        "rule": f.rule,
                        "severity": f.severity,
                        "target": _target(kind, label),
                        "path": f.path,
                        "action": action,
                    }
                )
                if _RANK[action] > _RANK[worst]:
                    worst, rule = action, f.rule
            if worst == "hide" and isinstance(name, str):
                if len(self.hidden) >= MAX_HIDDEN:
                    self.hidden.pop(next(iter(self.hidden)))
                self.hidden[(kind, name)] = rule
                continue
            if isinstance(name, str) and self.hidden:
                self.hidden.pop((kind, name), None)
            kept.append(item)
        return kept

    def _scan(
        self, kind: str, d: dict[str, Any], pin: str | None, spoofed: bool
    ) -> tuple[Finding, ...]:
        found = self.scanner.scan(kind, d, key=bytes.fromhex(pin) if pin else None)
        if spoofed:
            found = (*found, Finding("TOOL_NAME_SPOOFING", RULES["TOOL_NAME_SPOOFING"], "name"))
        return found

    def _mode(self) -> Literal["tofu", "approve"]:
        return "approve" if self.policy.pin_mode == "approve" else "tofu"


def _list_shape(result: object) -> str | None:
    """A list result replayed on a GET stream, where no request says what it answers."""
    if not isinstance(result, dict):
        return None
    for method, (key, _, _) in _LISTS.items():
        if isinstance(result.get(key), list):
            return method
    return None


def _blocked(
    message: str, rule: str, kind: str, name: str, *, item_kind: str = "finding"
) -> Outcome:
    item = {"kind": item_kind, "rule": rule, "target": _target(kind, name), "action": "block"}
    return Outcome(Refusal(200, jsonrpc.GUARDRAIL_BLOCKED, message, {"rule": rule}), None, [item])


def _withheld(obj: dict[str, Any], why: str, rule: str) -> dict[str, Any] | None:
    """An upstream answer replaced by an error naming the rule; other messages dropped."""
    if "method" in obj:
        return None  # a notification or a server request: dropped
    rid = obj.get("id")
    return jsonrpc.error_response(
        rid if isinstance(rid, (str, int)) else None,
        jsonrpc.GUARDRAIL_BLOCKED,
        f"The gateway withheld the upstream's answer: {why}, which this route does not let "
        "through (guardrails).",
        {"rule": rule},
    )


def _pin_findings(obs: Observation) -> list[dict[str, Any]]:
    """Pin changes as audit items: one count for what was pinned now, one item per held tool."""
    out: list[dict[str, Any]] = []
    new = [c for c in obs.changes if c.kind == "new"]
    if new:
        out.append({"kind": "pin", "rule": "PIN_NEW", "count": len(new), "action": "log"})
    out.extend(c.finding() for c in obs.changes if c.kind != "new")
    return out
