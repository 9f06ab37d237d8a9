"""Which audit events to keep: the one filter of `lockgate watch` and `lockgate audit query`.

Why it exists: the live view and the query command used to match `--route x` differently
(any part of the value, ignoring case, in one; a case-sensitive glob in the other). Both
now ask this filter, so the same options keep the same events:

- a field pattern is a glob (`*` any run, `?` one character, as in the profile's lists)
  matched against the whole value, ignoring case; without a wildcard it is the exact value.
  `!` in front negates it. Several patterns for one field: the event's value must match one
  of the plain ones (if any) and none of the negated ones. Fields AND together.
- an event without the field matches no plain pattern (and every negated one); the name
  falls back to the path (`gateway.request` events have a path, not a name), as the views
  show it.
- `since` is inclusive, `until` exclusive; an event without a readable `ts` fails any bound.
- free `text` (the live view's search words) matches any column: a word is a glob on the
  whole value or, without a wildcard, any part of it; `!` excludes; every word must match.
  The rule ids of the event's guardrail findings are columns too.
- `rule` and `kind` look into the event's guardrail `findings` (a list of items, see
  `lockgate.audit.redact.bound_findings`): the event passes when one of its findings' rule
  ids (kinds) matches a plain pattern, and none matches a negated one. `rule:PIN_*` keeps
  every event with a pin finding, `rule:!EMAIL` every event without an EMAIL finding (one
  without findings too), `kind:redaction` every event that had something redacted.

`parse_query` reads the `/` prompt of `lockgate watch` (`route:lin* rule:HIDDEN* words`);
`EventFilter.query()` writes it back.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from lockgate.audit.events import event_time
from lockgate.policy.view import glob_match

__all__ = [
    "FIELDS",
    "EventFilter",
    "finding_values",
    "matches_any",
    "matches_field",
    "matches_pattern",
    "parse_query",
]

# The fields the `/` prompt can name (or their first letters), in the order `query()` writes
# them, and the filter's attribute for each. `r` stays route's: `rule` has no short form.
FIELDS = ("route", "user", "outcome", "name", "event", "rule", "kind")
_ATTRS = {
    "route": "routes",
    "user": "users",
    "outcome": "outcomes",
    "name": "names",
    "event": "events",
    "rule": "rules",
    "kind": "kinds",
}


def matches_field(patterns: Iterable[str], value: object) -> bool:
    """Whether one field's value passes its patterns (see the module docstring)."""
    return matches_any(patterns, () if value is None else (value,))


def finding_values(event: Mapping[str, Any], key: str) -> list[str]:
    """The `key` ("rule", "kind") of each of the event's findings that has one, as text."""
    found = event.get("findings")
    if isinstance(found, Mapping):
        found = (found,)
    if not isinstance(found, (list, tuple)):
        return []
    return [
        str(v)
        for item in found
        if isinstance(item, Mapping) and (v := item.get(key)) is not None and v != ""
    ]


def matches_any(patterns: Iterable[str], values: Iterable[object]) -> bool:
    """Whether a field with several values (an event's finding rules) passes its patterns:
    one value matches a plain pattern (if any), and no value matches a negated one. No
    values at all pass only when there is no plain pattern, as a missing field does."""
    plain: list[str] = []
    negated: list[str] = []
    for pattern in patterns:
        if pattern.startswith("!"):
            if len(pattern) > 1:
                negated.append(pattern[1:].lower())
        elif pattern:
            plain.append(pattern.lower())
    if not plain and not negated:
        return True
    texts = [str(v).lower() for v in values]
    if plain and not any(glob_match(p, t) for t in texts for p in plain):
        return False
    return not any(glob_match(p, t) for t in texts for p in negated)


def matches_pattern(pattern: str, value: str) -> bool:
    """A search word: case-insensitive, a glob (`*`, `?`) matches the whole value, other text
    any part of it. An empty pattern matches everything; a leading `!` negates the rest."""
    if not pattern:
        return True
    if pattern.startswith("!"):
        return not matches_pattern(pattern[1:], value) if len(pattern) > 1 else True
    p, v = pattern.lower(), value.lower()
    if "*" in p or "?" in p:
        return glob_match(p, v)
    return p in v


def _text_fields(event: Mapping[str, Any]) -> Iterable[str]:
    for key in ("route", "user", "client", "method", "name", "outcome", "event", "path"):
        value = event.get(key)
        if value is not None:
            yield str(value)
    if "findings" in event:
        yield from finding_values(event, "rule")


@dataclass(frozen=True)
class EventFilter:
    """Which events to keep; an empty filter keeps every event."""

    since: datetime | None = None
    until: datetime | None = None
    users: tuple[str, ...] = ()
    routes: tuple[str, ...] = ()
    names: tuple[str, ...] = ()
    outcomes: tuple[str, ...] = ()
    events: tuple[str, ...] = ()
    rules: tuple[str, ...] = ()
    kinds: tuple[str, ...] = ()
    text: str = ""

    def __bool__(self) -> bool:
        return any(
            (self.since, self.until, self.users, self.routes, self.names, self.outcomes)
        ) or bool(self.events or self.rules or self.kinds or self.text)

    def matches(self, event: Mapping[str, Any]) -> bool:
        if self.since is not None or self.until is not None:
            ts = event_time(event)
            if ts is None:
                return False
            if self.since is not None and ts < self.since.timestamp():
                return False
            if self.until is not None and ts >= self.until.timestamp():
                return False
        name = event.get("name")
        if name is None:
            name = event.get("path")
        if not (
            matches_field(self.users, event.get("user"))
            and matches_field(self.routes, event.get("route"))
            and matches_field(self.names, name)
            and matches_field(self.outcomes, event.get("outcome"))
            and matches_field(self.events, event.get("event"))
        ):
            return False
        if self.rules and not matches_any(self.rules, finding_values(event, "rule")):
            return False
        if self.kinds and not matches_any(self.kinds, finding_values(event, "kind")):
            return False
        for word in self.text.split():
            if word.startswith("!"):
                if any(matches_pattern(word[1:], v) for v in _text_fields(event)):
                    return False
            elif not any(matches_pattern(word, v) for v in _text_fields(event)):
                return False
        return True

    def query(self) -> str:
        """The filter as `/` prompt text: `route:lin* rule:HIDDEN* free words` (time
        bounds have no prompt syntax)."""
        parts = [f"{key}:{p}" for key in FIELDS for p in getattr(self, _ATTRS[key]) if p]
        if self.text:
            parts.append(self.text)
        return " ".join(parts)


def parse_query(text: str) -> EventFilter:
    """Parse what the user typed after `/`: `field:pattern` (or `field=pattern`) and words.

    Fields are route, user, outcome, name, event, rule, kind (or their first letters,
    `r` being route); a field given twice matches either pattern; other words search every
    column. Never raises.
    """
    found: dict[str, list[str]] = {}
    words: list[str] = []
    for token in text.split():
        key, sep, value = token.partition(":")
        if not sep:
            key, sep, value = token.partition("=")
        full = next((f for f in FIELDS if key.lower() in (f, f[0])), None) if sep else None
        if full is not None and value:
            found.setdefault(_ATTRS[full], []).append(value)
        elif full is None or value:
            words.append(token)
    return EventFilter(
        users=tuple(found.get("users", ())),
        routes=tuple(found.get("routes", ())),
        names=tuple(found.get("names", ())),
        outcomes=tuple(found.get("outcomes", ())),
        events=tuple(found.get("events", ())),
        rules=tuple(found.get("rules", ())),
        kinds=tuple(found.get("kinds", ())),
        text=" ".join(words),
    )
