"""The pins store: per upstream, each tool's approved pin (and definition, for diffs), and the
definitions held for a decision (new in approve mode, changed, confusable, rejected).

One SQLite file (``pins.db`` in the data dir, owner-only, WAL), migrated on open. The
gateway calls :meth:`PinStore.observe` on every ``tools/list`` and :meth:`PinStore.refusal`
on every ``tools/call``: both answer from memory; SQLite is written only when something
changed, and read again only when another process (``lockgate tools approve``) committed,
which ``PRAGMA data_version`` tells. That pragma costs ~20 us in a busy gateway, so a call
asks it at most every 0.25 s, and always before it refuses. Nothing is lost by that: a call's
verdict is about the definition this gateway listed, and another process can only approve
(seen at once, since a refusal looks again) or reject what is held (refused already). Writes take
``BEGIN IMMEDIATE`` and re-read what another process may have changed first, so two gateways
on one file never pin two definitions of one tool. The verdict itself is
`lockgate.guardrails.pinning.decide`.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any, Final, Self

from lockgate.authserver.migrations import migrate
from lockgate.errors import LockgateError, StoreUnwritable
from lockgate.guardrails.confusables import confusable_with, skeleton
from lockgate.guardrails.pinning import (
    MAX_TOOLS,
    Change,
    Decided,
    Decision,
    Held,
    Kind,
    Mode,
    Observation,
    Pending,
    Pin,
    changed_fields,
    decide,
    pin_of,
    refusal_message,
)
from lockgate.guardrails.pinschema import DB_NAME, MIGRATIONS, default_path
from lockgate.guardrails.pinschema import create_private as _create_private
from lockgate.guardrails.pinschema import key as _key
from lockgate.guardrails.pinschema import stored as _stored
from lockgate.guardrails.pinschema import unkey as _unkey

# The records live in `pinning` (pure); they are re-exported here for the store's callers.
__all__ = [
    "DB_NAME",
    "Change",
    "Decided",
    "NothingPending",
    "Observation",
    "Pending",
    "Pin",
    "PinStore",
    "default_path",
]

Clock = Callable[[], float]
# SQLite's answers to a full disk, a file size limit, a read-only or vanished file.
_UNWRITABLE: Final = frozenset(
    {sqlite3.SQLITE_FULL, sqlite3.SQLITE_IOERR, sqlite3.SQLITE_READONLY, sqlite3.SQLITE_CANTOPEN}
)
_EMPTY: Final[Mapping[str, str]] = MappingProxyType({})
_DUP: Final = "duplicate"  # a seen "pin" no sha256 hex can equal: listed twice, differently
_BAD: Final = "unpinnable"


def _lowered(shipped: Mapping[str, str]) -> Mapping[str, str]:
    """The profile's pins with lower-case hex (IT may write capitals); the same object when
    they already are."""
    if all(v == v.lower() for v in shipped.values()):
        return shipped
    return {k: v.lower() for k, v in shipped.items()}


class NothingPending(LockgateError):
    """Approve or reject named a tool that waits for no decision."""


@dataclass(frozen=True, slots=True)
class _Row:
    """A held row as memory keeps it (definitions stay in SQLite)."""

    held: Held
    old_pin: str | None
    fields: tuple[str, ...]
    similar: str | None
    source: str


# --- the store --------------------------------------------------------------------------


# How stale (seconds) a call's view of other processes' commits may be when it lets a call
# through; a refusal always looks again first.
CALL_FRESHNESS: Final = 0.25


class PinStore:
    """Thread-safe access to ``pins.db``: one connection, one lock, the pins in memory."""

    def __init__(self, db: sqlite3.Connection, *, clock: Clock = time.time) -> None:
        self._db = db
        self._lock = threading.RLock()
        self._clock = clock
        self._version: int | None = None
        self._checked = float("-inf")  # time.monotonic() of the last data_version check
        self._generation = 0
        self._pins: dict[str, dict[str, str]] = {}
        self._held: dict[str, dict[str, _Row]] = {}
        self._seen: dict[str, dict[str, str]] = {}  # upstream -> name -> the pin last listed
        self._observed: dict[str, int] = {}  # upstream -> how many lists were observed
        self._index: dict[str, dict[str, str]] = {}  # upstream -> skeleton -> pinned name
        self._over: set[str] = set()  # upstreams that listed more names than MAX_TOOLS
        # upstream -> [(mode, shipped, name -> (pin, decision))], one per way routes pin it
        # (a few at most); reset when the state reloads or this store writes.
        self._verdicts: dict[str, list[tuple[str, dict[str, str], dict[str, Any]]]] = {}

    @classmethod
    def open(cls, path: Path | str | None = None, *, clock: Clock = time.time) -> Self:
        """Open (creating if needed) and migrate the store; ``path`` defaults to the data dir."""
        target = Path(path) if path is not None else default_path()
        _create_private(target)
        db = sqlite3.connect(target, check_same_thread=False, isolation_level=None, timeout=10.0)
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA busy_timeout=10000")
            # WAL + NORMAL: no fsync per commit; a power cut may lose the last pins, never
            # corrupt the file (a lost pin is pinned or held again on the next list).
            db.execute("PRAGMA synchronous=NORMAL")
            migrate(db, MIGRATIONS, clock=clock)
            store = cls(db, clock=clock)
            with store._lock:
                store._refresh()
        except BaseException:
            db.close()
            raise
        return store

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- memory -------------------------------------------------------------------------

    def _refresh(self, max_age: float = 0.0) -> bool:
        """Reload from SQLite when another connection committed since we last looked (not
        asked again within ``max_age`` seconds); True when it reloaded."""
        now = time.monotonic()
        if now - self._checked < max_age:
            return False
        self._checked = now
        (version,) = self._db.execute("PRAGMA data_version").fetchone()
        if version != self._version:
            self._reload()
            self._version = version
            return True
        return False

    def _reload(self) -> None:
        pins: dict[str, dict[str, str]] = {}
        for upstream, key, pin in self._db.execute("SELECT upstream, name, pin FROM pins"):
            pins.setdefault(upstream, {})[_unkey(key)] = pin
        held: dict[str, dict[str, _Row]] = {}
        rows = self._db.execute(
            "SELECT upstream, name, pin, kind, rejected_at, old_pin, fields, similar, source"
            " FROM held"
        )
        for upstream, key, pin, kind, rejected_at, old_pin, fields, similar, source in rows:
            held.setdefault(upstream, {})[_unkey(key)] = _Row(
                Held(pin, kind, rejected_at is not None),
                old_pin,
                tuple(json.loads(fields)),
                similar,
                source,
            )
        self._pins, self._held = pins, held
        self._generation += 1
        self._index.clear()
        self._verdicts.clear()

    def _similar(self, upstream: str, name: str, shipped: Mapping[str, str]) -> str | None:
        """The pinned (or shipped) name of this upstream that ``name`` is confusable with."""
        index = self._index.get(upstream)
        if index is None:
            index = self._index[upstream] = {}
            for other in self._pins.get(upstream, {}):
                index.update(dict.fromkeys(skeleton(other), other))
        keys = skeleton(name)
        for key in keys:
            found = index.get(key)
            if found is not None and found != name:
                return found
        return confusable_with(name, shipped)  # IT's names count as pinned too

    def _decide(
        self, upstream: str, name: str, pin: str, mode: Mode, shipped: Mapping[str, str]
    ) -> Decision:
        pinned = self._pins.get(upstream, {}).get(name)
        row = self._held.get(upstream, {}).get(name)
        mine = shipped.get(name)
        similar = None
        if mine is None and pinned is None and (row is None or row.held.pin != pin):
            similar = self._similar(upstream, name, shipped)
        held = row.held if row is not None else None
        return decide(pin, pinned=pinned, held=held, mode=mode, shipped=mine, similar=similar)

    def _cache(self, upstream: str, mode: Mode, shipped: Mapping[str, str]) -> dict[str, Any]:
        """The decisions known for this upstream under this mode and these shipped pins."""
        contexts = self._verdicts.setdefault(upstream, [])
        for their_mode, their_shipped, cache in contexts:
            if their_mode == mode and their_shipped == shipped:
                return cache
        fresh: dict[str, Any] = {}
        contexts.append((mode, dict(shipped), fresh))
        del contexts[:-4]  # two routes of one upstream pinning differently: both stay cached
        return fresh

    # --- the hot path -------------------------------------------------------------------

    def observe(
        self,
        upstream: str,
        tools: Sequence[Mapping[str, Any]],
        *,
        mode: Mode = "tofu",
        shipped: Mapping[str, str] = _EMPTY,
    ) -> Observation:
        """Check one ``tools/list`` of ``upstream``: pin what is new (tofu), hold what changed,
        waits for approval or spoofs a pinned name. ``hidden``: the names to drop from this
        list; ``changes``: what happened for the first time (audit those)."""
        shipped = _lowered(shipped)
        with self._lock:
            self._refresh()
            cache = self._cache(upstream, mode, shipped)
            listed: dict[str, str] = {}
            hidden: set[str] = set()
            odd: dict[str, str] = {}
            todo: list[tuple[str, str, Mapping[str, Any]]] = []
            seen = self._seen.setdefault(upstream, {})
            pinned, held = self._pins.get(upstream, {}), self._held.get(upstream, {})
            # What is kept of this upstream is at least the larger of these (bounded by
            # twice MAX_TOOLS at worst, without building their union on every list).
            room = MAX_TOOLS - max(len(seen), len(pinned) + len(held))
            for tool in tools:
                if type(tool) is not dict and not isinstance(tool, Mapping):
                    continue  # not a tool: the list's validator is not ours
                name = tool.get("name")
                if type(name) is not str:
                    continue  # nothing can call it
                if name not in seen and name not in pinned and name not in held:
                    room -= 1
                    if room < 0:
                        hidden.add(name)
                        self._over.add(upstream)
                        continue
                try:
                    pin = pin_of(tool)
                except ValueError:
                    odd[name] = _BAD
                    continue
                first = listed.get(name)
                if first is not None:
                    if first != pin:
                        odd[name] = _DUP  # two definitions under one name: hide both
                    continue
                listed[name] = pin
                hit = cache.get(name)
                if hit is not None and hit[0] == pin:
                    if hit[1].action == "hold":
                        hidden.add(name)
                    continue
                todo.append((name, pin, tool))
            changes: tuple[Change, ...] = ()
            if todo:
                generation = self._generation
                changes = self._settle(upstream, todo, mode, shipped)
                cache = self._cache(upstream, mode, shipped)
                if generation != self._generation:  # another process wrote meanwhile
                    hidden.clear()
                    for name, pin in listed.items():
                        if name not in cache:
                            cache[name] = (pin, self._decide(upstream, name, pin, mode, shipped))
                        if cache[name][1].action == "hold":
                            hidden.add(name)
                else:
                    hidden.update(n for n, _, _ in todo if cache[n][1].action == "hold")
            self._observed[upstream] = self._observed.get(upstream, 0) + 1
            seen.update(listed)
            seen.update(odd)
            hidden.update(odd)
            for name in odd:
                listed.pop(name, None)
            return Observation(frozenset(hidden), changes, listed)

    def _settle(
        self,
        upstream: str,
        todo: Sequence[tuple[str, str, Mapping[str, Any]]],
        mode: Mode,
        shipped: Mapping[str, str],
    ) -> tuple[Change, ...]:
        """Decide the definitions the cache did not know; write what changed, in one
        transaction that first re-reads what another process committed."""
        decided = [(n, p, self._decide(upstream, n, p, mode, shipped)) for n, p, _ in todo]
        if not any(self._writes(upstream, n, p, d, shipped) for n, p, d in decided):
            cache = self._cache(upstream, mode, shipped)
            for name, pin, decision in decided:
                cache[name] = (pin, decision)
            return ()
        changes: list[Change] = []
        with self._tx():
            cache = self._cache(upstream, mode, shipped)
            # what other contexts decided may rest on what is written now
            self._verdicts[upstream] = [c for c in self._verdicts[upstream] if c[2] is cache]
            for name, pin, tool in todo:
                decision = self._decide(upstream, name, pin, mode, shipped)
                change = self._apply(upstream, name, pin, tool, decision, shipped)
                if change is not None:
                    changes.append(change)
                cache[name] = (pin, Decision(decision.action, decision.reason))
        return tuple(changes)

    def _writes(
        self, upstream: str, name: str, pin: str, decision: Decision, shipped: Mapping[str, str]
    ) -> bool:
        if decision.action == "pin" or decision.fresh:
            return True
        row = self._held.get(upstream, {}).get(name)
        if decision.action == "pass":
            if name in shipped and self._pins.get(upstream, {}).get(name) != pin:
                return True  # adopt the shipped pin, for later diffs
            return row is not None and (row.held.pin == pin or not row.held.rejected)
        return False

    def _apply(
        self,
        upstream: str,
        name: str,
        pin: str,
        tool: Mapping[str, Any],
        decision: Decision,
        shipped: Mapping[str, str],
    ) -> Change | None:
        """Write one decision (inside the transaction) and mirror it in memory."""
        db, key, now = self._db, _key(name), self._clock()
        pins = self._pins.setdefault(upstream, {})
        held = self._held.setdefault(upstream, {})
        row = held.get(name)
        if decision.action == "hold":
            if not decision.fresh:
                return None
            old_pin = shipped.get(name) or pins.get(name)
            same = old_pin is not None and old_pin == pins.get(name)
            old = self._definition(upstream, name) if same else None
            fields = changed_fields(old, tool)
            similar = (
                self._similar(upstream, name, shipped) if decision.reason == "spoofing" else None
            )
            kind: Kind = "changed" if decision.reason == "profile" else decision.reason  # type: ignore[assignment]
            source = "profile" if decision.reason == "profile" else "store"
            db.execute(
                "INSERT OR REPLACE INTO held (upstream, name, pin, definition, kind, old_pin,"
                " fields, similar, source, seen_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    upstream,
                    key,
                    pin,
                    _stored(tool),
                    kind,
                    old_pin,
                    json.dumps(fields),
                    similar,
                    source,
                    now,
                ),
            )
            held[name] = _Row(Held(pin, kind), old_pin, fields, similar, source)
            return Change(name, kind, pin, old_pin, fields, similar)
        change = None
        if decision.action == "pin" or (name in shipped and pins.get(name) != pin):
            source = "profile" if name in shipped else "tofu"
            db.execute(
                "INSERT OR REPLACE INTO pins (upstream, name, pin, definition, source,"
                " approved_by, at) VALUES (?, ?, ?, ?, ?, NULL, ?)",
                (upstream, key, pin, _stored(tool), source, now),
            )
            change = Change(name, "new", pin, pins.get(name))
            pins[name] = pin
            index = self._index.get(upstream)
            if index is not None:
                index.update(dict.fromkeys(skeleton(name), name))
        if row is not None and (row.held.pin == pin or not row.held.rejected):
            db.execute("DELETE FROM held WHERE upstream = ? AND name = ?", (upstream, key))
            del held[name]
        return change

    def _definition(self, upstream: str, name: str) -> dict[str, Any] | None:
        found = self._db.execute(
            "SELECT definition FROM pins WHERE upstream = ? AND name = ?", (upstream, _key(name))
        ).fetchone()
        return json.loads(found[0]) if found else None

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        """One write transaction (under the lock), after re-reading what others committed;
        on any exception rolled back and memory reloaded from the file."""
        try:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._refresh()
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                self._reload()
                raise
            try:
                self._db.execute("COMMIT")
            except sqlite3.Error:
                if self._db.in_transaction:  # a COMMIT that failed may leave it open
                    self._db.execute("ROLLBACK")
                self._reload()
                raise
        except sqlite3.OperationalError as e:
            if e.sqlite_errorcode & 0xFF not in _UNWRITABLE:  # the primary code
                raise
            where = self._db.execute("PRAGMA database_list").fetchone()[2]
            raise StoreUnwritable(
                f"The gateway cannot write its pins store {where} ({e}), so it serves nothing.",
                "free disk space or make that directory writable, then retry the request",
            ) from e

    def refusal(
        self,
        upstream: str,
        name: str,
        *,
        mode: Mode = "tofu",
        shipped: Mapping[str, str] = _EMPTY,
    ) -> str | None:
        """None when a call of ``name`` may go to the upstream; else the one sentence that
        refuses it (changed, waiting for approval, confusable, rejected, never listed)."""
        shipped = _lowered(shipped)
        with self._lock:
            self._refresh(CALL_FRESHNESS)
            out = self._refusal(upstream, name, mode, shipped)
            if out is not None and self._refresh():
                out = self._refusal(upstream, name, mode, shipped)  # approved meanwhile?
            return out

    def _refusal(
        self, upstream: str, name: str, mode: Mode, shipped: Mapping[str, str]
    ) -> str | None:
        pin = self._seen.get(upstream, {}).get(name)
        if pin is None:
            known = name in self._pins.get(upstream, {}) or name in self._held.get(upstream, {})
            if upstream in self._over and not known:
                return refusal_message(upstream, name, "too_many")
            return refusal_message(upstream, name, "unlisted")
        if pin == _DUP:
            return refusal_message(upstream, name, "duplicate")
        if pin == _BAD:
            return refusal_message(upstream, name, "unpinnable")
        hit = self._cache(upstream, mode, shipped).get(name)  # the last list's verdict
        decision = hit[1] if hit is not None and hit[0] == pin else None
        if decision is None:
            decision = self._decide(upstream, name, pin, mode, shipped)
        if decision.action != "hold" or decision.reason is None:
            return None
        row = self._held.get(upstream, {}).get(name)
        fields = row.fields if row is not None and row.held.pin == pin else ()
        similar = row.similar if row is not None else None
        return refusal_message(upstream, name, decision.reason, fields=fields, similar=similar)

    def state(self, upstream: str) -> tuple[int, int]:
        """What a list's verdicts depend on besides the list (another process's commits, and
        the lists of ``upstream`` observed since): equal tokens, and an identical list, mean
        `observe` would decide the same and change nothing."""
        with self._lock:
            self._refresh()
            return self._generation, self._observed.get(upstream, 0)

    def known(self, upstream: str, name: str) -> bool:
        """Whether this gateway has seen ``name`` listed by ``upstream`` (since it opened)."""
        with self._lock:
            return name in self._seen.get(upstream, {})

    # --- the CLI ------------------------------------------------------------------------

    def pending(self, upstream: str | None = None) -> list[Pending]:
        """What waits for a decision (and what was rejected), by upstream and name."""
        sql = (
            "SELECT h.upstream, h.name, h.pin, h.definition, h.kind, h.old_pin, h.fields,"
            " h.similar, h.rejected_by, h.source, h.seen_at, p.pin, p.definition"
            " FROM held h LEFT JOIN pins p ON p.upstream = h.upstream AND p.name = h.name"
        )
        params: tuple[str, ...] = ()
        if upstream is not None:
            sql += " WHERE h.upstream = ?"
            params = (upstream,)
        with self._lock:
            rows = self._db.execute(sql + " ORDER BY h.upstream, h.name", params).fetchall()
        found = []
        for up, key, pin, body, kind, old_pin, fields, similar, by, source, seen, pp, pd in rows:
            rejected = by is not None
            found.append(
                Pending(
                    upstream=up,
                    name=_unkey(key),
                    kind=kind,
                    pin=pin,
                    old_pin=old_pin,
                    fields=tuple(json.loads(fields)),
                    similar=similar,
                    rejected=rejected,
                    source=source,
                    seen_at=seen,
                    decided_by=by,
                    definition=json.loads(body),
                    old_definition=json.loads(pd) if pd is not None and pp == old_pin else None,
                )
            )
        return found

    def _chosen(self, upstream: str, name: str | None, pin: str | None) -> list[Pending]:
        rows = [p for p in self.pending(upstream) if name is None or p.name == name]
        if name is not None and not rows:
            raise NothingPending(
                f"Tool {name!r} of upstream {upstream!r} waits for no decision",
                f"`lockgate tools pending {upstream}` lists what does",
            )
        if pin is not None and not all(p.pin.startswith(pin.lower()) for p in rows):
            raise NothingPending(
                f"The pending definition of {name or 'a tool'!r} is not the one with pin {pin}"
                " (it changed again)",
                f"review it again with `lockgate tools diff {upstream}`",
            )
        return rows

    def approve(
        self, upstream: str, name: str | None, by: str, *, pin: str | None = None
    ) -> list[Decided]:
        """Approve the held definition of ``name`` (None: every one of ``upstream``) as its
        pin; with ``pin``, only if the held definition still has that pin (or prefix).
        A definition held against a pin the profile ships cannot be approved here."""
        done: list[Decided] = []
        with self._lock, self._tx():
            rows = self._chosen(upstream, name, pin)
            if name is not None and rows[0].source == "profile":
                raise LockgateError(
                    f"Tool {name!r} of upstream {upstream!r} is pinned by your profile",
                    f"ask your IT team to update [guardrails.pinning.pins.{upstream}]",
                )
            now = self._clock()
            for p in rows:
                if p.source == "profile":
                    continue
                key = _key(p.name)
                self._db.execute(
                    "INSERT OR REPLACE INTO pins (upstream, name, pin, definition, source,"
                    " approved_by, at) VALUES (?, ?, ?, ?, 'approved', ?, ?)",
                    (upstream, key, p.pin, _stored(p.definition), by, now),
                )
                self._db.execute(
                    "DELETE FROM held WHERE upstream = ? AND name = ?", (upstream, key)
                )
                done.append(Decided("approved", upstream, p.name, p.kind, p.pin, p.old_pin, by))
            self._reload()
        return done

    def reject(
        self, upstream: str, name: str | None, by: str, *, pin: str | None = None
    ) -> list[Decided]:
        """Reject the held definition of ``name`` (None: every one not yet rejected): it stays
        hidden and its calls refused until approved; a different one is held anew."""
        done: list[Decided] = []
        with self._lock, self._tx():
            rows = self._chosen(upstream, name, pin)
            if name is not None and rows[0].rejected:
                raise NothingPending(
                    f"Tool {name!r} of upstream {upstream!r} was already rejected",
                    f"approve it with `lockgate tools approve {upstream} {name}` to unblock it",
                )
            now = self._clock()
            for p in rows:
                if p.rejected:
                    continue
                self._db.execute(
                    "UPDATE held SET rejected_by = ?, rejected_at = ? WHERE upstream = ?"
                    " AND name = ?",
                    (by, now, upstream, _key(p.name)),
                )
                done.append(Decided("rejected", upstream, p.name, p.kind, p.pin, p.old_pin, by))
            self._reload()
        return done

    def pins(self, upstream: str | None = None) -> list[Pin]:
        """Every pin (of one upstream), by upstream and name."""
        sql = "SELECT upstream, name, pin, source, approved_by, at FROM pins"
        params: tuple[str, ...] = ()
        if upstream is not None:
            sql += " WHERE upstream = ?"
            params = (upstream,)
        with self._lock:
            rows = self._db.execute(sql + " ORDER BY upstream, name", params).fetchall()
        return [Pin(up, _unkey(key), pin, src, by, at) for up, key, pin, src, by, at in rows]

    def definition(self, upstream: str, name: str) -> dict[str, Any] | None:
        """The approved definition of a pinned tool (``_meta`` aside), or None."""
        with self._lock:
            return self._definition(upstream, name)
