"""Tool pinning: what a tool definition's pin is, and what a listed definition means against
the pins a user (or IT) approved. No silent rug pulls (issue 11, section 3).

Why it exists: the store (`pinstore`) keeps pins per upstream; this module holds what is pure
about them, so the gateway's hot path, the CLI and the tests share one truth:

- :func:`pin_of`: SHA-256 (hex) of the RFC 8785 (JCS) canonical JSON of the whole definition
  except ``_meta``. Key order and whitespace never count; any value does.
- :func:`decide`: the verdict on one listed definition (pass, pin now, or hold and why).
- :func:`changed_fields`, :func:`pretty`, :func:`diff_lines`: what changed, for messages
  and the ``lockgate tools diff`` view; :func:`refusal_message`: the sentence a refused call
  gets (which names are confusable is `confusables`' question).
- the records the store hands out (:class:`Observation`, :class:`Change`, :class:`Pending`,
  :class:`Pin`, :class:`Decided` with its audit event).

The canonical form, measured (``bench/pinning.py``, 2,000 realistic tools, ~1.7 MB, where
parsing and re-serialising the list costs the gateway ~20-35 ms anyway): the pure-Python
``rfc8785`` package takes ~90 ms per list, too slow for every ``tools/list``; ``orjson`` with
``OPT_SORT_KEYS`` takes ~3 ms (~14 ms with the check below) and yields the same bytes as long
as the value holds no float (JCS writes ECMAScript numbers: ``1.0`` is ``1``, ``-0.0`` is ``0``), no
integer beyond ±(2**53 - 1) (JCS refuses them) and no object key outside the BMP (JCS sorts
keys by UTF-16 code units, orjson by code points; the two orders agree within the BMP). So
the hot path checks those three things in one walk (~5 µs a tool) and uses orjson; anything
else goes through ``rfc8785``. ``tests/core/guardrails/test_pinning.py`` proves the two equal
with hypothesis over arbitrary JSON values. What JCS cannot represent at all (NaN, huge
integers, lone surrogates) is pinned over a plain sorted-keys JSON dump behind a prefix byte
(0xff, never the start of UTF-8), so it still pins and never collides with a JCS form.
A repeated list costs even less: pins are cached by the definition's unsorted orjson bytes
(equal bytes, equal value), so an unchanged list costs one serialisation and a dict lookup
per tool (~2 ms for 2,000; `PinStore.observe` on it ~3 ms in all).
"""

from __future__ import annotations

import difflib
import hashlib
import json
import re
import shlex
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Literal

import orjson
import rfc8785

__all__ = [
    "META",
    "Change",
    "Decided",
    "Decision",
    "Held",
    "HoldReason",
    "Kind",
    "Mode",
    "Observation",
    "Pending",
    "Pin",
    "Source",
    "canonical",
    "changed_fields",
    "decide",
    "diff_lines",
    "pin_of",
    "pretty",
    "refusal_message",
    "visible",
]

META: Final = "_meta"
# Distinct tool names the pin store keeps per upstream (pinned, held or seen). An upstream
# that lists fresh names on every `tools/list` would otherwise grow pins.db and the gateway
# without end; names past the bound are hidden and their calls refused, nothing of them kept.
MAX_TOOLS: Final = 10_000
Mode = Literal["tofu", "approve"]
# What an observation reports: pinned now, or held (new in approve mode, changed, spoofing).
Kind = Literal["new", "pending", "changed", "spoofing"]
# Why a listed tool is hidden and its calls refused.
HoldReason = Literal["pending", "changed", "spoofing", "rejected", "profile"]
# How a pin came to be: first sight (tofu), someone approved it, or the profile ships it.
Source = Literal["tofu", "approved", "profile"]

_INT_MAX: Final = 2**53 - 1
_FALLBACK: Final = b"\xff"  # never the first byte of UTF-8, so never equal to a JCS form
_CACHE_MAX: Final = 16_384
_cache: dict[bytes, str] = {}


# ---------------------------------------------------------------------------- the pin


def _body(definition: Mapping[str, Any]) -> dict[str, Any]:
    """The definition without ``_meta``, as a plain dict (the same object when possible)."""
    if type(definition) is dict and META not in definition:
        return definition
    return {k: v for k, v in definition.items() if k != META}


def _jcs_safe(value: Any) -> bool:
    """Whether orjson's sorted output of ``value`` is byte-equal to RFC 8785's: no float, no
    integer beyond ±(2**53 - 1), no key outside the BMP, nothing but JSON's own types.
    Strings and booleans, most of a definition, are skipped without a call."""
    kind = type(value)
    if kind is dict:
        for key, item in value.items():
            if type(key) is not str or (not key.isascii() and max(key) > "\uffff"):
                return False
            if type(item) is str or type(item) is bool:
                continue
            if not _jcs_safe(item):
                return False
        return True
    if kind is list:
        for item in value:
            if type(item) is str or type(item) is bool:
                continue
            if not _jcs_safe(item):
                return False
        return True
    if kind is str or kind is bool or value is None:
        return True
    if kind is int:
        return bool(-_INT_MAX <= value <= _INT_MAX)
    return False  # floats, tuples, subclasses: the slow, exact path


def canonical(definition: Mapping[str, Any]) -> bytes:
    """RFC 8785 canonical JSON of the definition without ``_meta`` (the bytes a pin hashes).

    What JCS cannot represent (NaN, integers beyond 2**53, lone surrogates, non-string keys)
    comes back as 0xff + a sorted-keys JSON dump; ValueError when nested too deeply."""
    body = _body(definition)
    try:
        return rfc8785.dumps(body)
    except (rfc8785.CanonicalizationError, UnicodeError, TypeError):
        pass
    except RecursionError:
        raise ValueError("the definition is nested too deeply to pin") from None
    try:
        text = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    except (TypeError, ValueError, RecursionError) as e:
        raise ValueError(f"the definition cannot be pinned ({type(e).__name__})") from None
    return _FALLBACK + text.encode("utf-8", "surrogatepass")


def pin_of(definition: Mapping[str, Any]) -> str:
    """The pin of a tool definition: SHA-256 hex of :func:`canonical` (see the module doc for
    the fast path). ValueError only for a definition nested too deeply to serialise."""
    body = _body(definition)
    try:
        raw = orjson.dumps(body)
    except orjson.JSONEncodeError:  # > 64-bit ints, surrogates, nesting > 255: exact path
        return hashlib.sha256(canonical(body)).hexdigest()
    hit = _cache.get(raw)
    if hit is not None:
        return hit
    if _jcs_safe(body):
        pin = hashlib.sha256(orjson.dumps(body, option=orjson.OPT_SORT_KEYS)).hexdigest()
    else:
        pin = hashlib.sha256(canonical(body)).hexdigest()
    if len(_cache) >= _CACHE_MAX:
        _cache.clear()
    _cache[raw] = pin
    return pin


# ---------------------------------------------------------------------------- what changed

# The order fields are named in (the ones a reviewer cares about first); others sorted.
_FIELD_ORDER: Final = ("name", "title", "description", "inputSchema", "outputSchema")
_MISSING: Final = object()


def _same(a: Any, b: Any) -> bool:
    if a is _MISSING or b is _MISSING:
        return a is b
    try:
        return canonical({"v": a}) == canonical({"v": b})
    except ValueError:
        return bool(a == b)


def changed_fields(old: Mapping[str, Any] | None, new: Mapping[str, Any]) -> tuple[str, ...]:
    """The top-level fields (``_meta`` aside) whose values differ, added or removed;
    () when the old definition is unknown."""
    if old is None:
        return ()
    keys = (set(old) | set(new)) - {META}
    changed = {k for k in keys if not _same(old.get(k, _MISSING), new.get(k, _MISSING))}
    first = [k for k in _FIELD_ORDER if k in changed]
    return (*first, *sorted(changed - set(first)))


def visible(text: str) -> str:
    """Escape what a terminal would not show (controls, format and bidi characters, private
    use, line separators) as ``\\uXXXX``, so a reviewer sees hidden characters."""
    out = []
    for ch in text:
        cat = unicodedata.category(ch)
        if (cat[0] == "C" and ch != "\n") or cat in ("Zl", "Zp"):  # json escapes \n in strings
            code = ord(ch)
            out.append(f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}")
        else:
            out.append(ch)
    return "".join(out)


def pretty(definition: Mapping[str, Any] | None) -> str:
    """The definition (``_meta`` aside) as indented JSON with sorted keys, every invisible
    character escaped; "" for None."""
    if definition is None:
        return ""
    text = json.dumps(_body(definition), sort_keys=True, indent=2, ensure_ascii=False)
    return visible(text)


def diff_lines(
    old: Mapping[str, Any] | None, new: Mapping[str, Any], *, context: int = 3
) -> list[str]:
    """A unified diff of the two definitions' :func:`pretty` forms (lines without endings);
    with no old definition, every line of the new one as added."""
    before = pretty(old).splitlines() if old is not None else []
    after = pretty(new).splitlines()
    return list(
        difflib.unified_diff(
            before,
            after,
            "approved" if old is not None else "(none)",
            "listed",
            lineterm="",
            n=context,
        )
    )


# ---------------------------------------------------------------------------- the verdict


@dataclass(frozen=True, slots=True)
class Held:
    """A definition waiting for a decision (or rejected), as the store keeps it."""

    pin: str
    kind: Kind
    rejected: bool = False


@dataclass(frozen=True, slots=True)
class Decision:
    """What to do with one listed definition: ``pass`` (as pinned), ``pin`` (new, pin it now
    and pass), or ``hold`` (hide it and refuse its calls, for ``reason``)."""

    action: Literal["pass", "pin", "hold"]
    reason: HoldReason | None = None
    fresh: bool = False  # a hold the store has not recorded yet (a new pending event)


PASS: Final = Decision("pass")
PIN: Final = Decision("pin")


def decide(
    pin: str,
    *,
    pinned: str | None,
    held: Held | None,
    mode: Mode,
    shipped: str | None = None,
    similar: str | None = None,
) -> Decision:
    """The verdict on a listed definition with pin ``pin``, given the approved pin, what the
    store holds for the name, the mode, the profile's shipped pin (which wins over the
    store) and the pinned name it is confusable with, if any."""
    if shipped is not None:
        if pin == shipped:
            return PASS
        fresh = held is None or held.pin != pin
        return Decision("hold", "profile", fresh)
    if pinned is not None and pin == pinned:
        return PASS
    if held is not None and held.pin == pin:
        return Decision("hold", "rejected" if held.rejected else _reason(held.kind))
    if pinned is not None:
        return Decision("hold", "changed", True)
    if similar is not None:
        return Decision("hold", "spoofing", True)
    if mode == "approve":
        return Decision("hold", "pending", True)
    return PIN


def _reason(kind: Kind) -> HoldReason:
    return "pending" if kind == "new" else kind


def _quoted(name: str) -> str:
    shown = name if len(name) <= 80 else name[:77] + "..."
    return repr(shown)  # repr escapes controls, bidi and other invisible characters


_SAFE_WORD: Final = re.compile(r"[A-Za-z0-9_.:/@+=-]+")


def _shell_word(name: str) -> str:
    """The name as one shell word a user can paste (quoted unless plainly safe)."""
    return name if _SAFE_WORD.fullmatch(name) else shlex.quote(name)


def refusal_message(
    upstream: str,
    name: str,
    reason: HoldReason | Literal["unlisted", "duplicate", "unpinnable", "too_many"],
    *,
    fields: Iterable[str] = (),
    similar: str | None = None,
) -> str:
    """The one sentence a refused call gets: what is wrong and which command fixes it."""
    tool = f"Tool {_quoted(name)} of upstream {upstream!r}"
    shell = f"{upstream} {_shell_word(name)}"
    approve = f"`lockgate tools approve {shell}`"
    review = f"review it with `lockgate tools diff {shell}`"
    if not name.isprintable() or len(name) > 80:  # not a word one can type: list it instead
        approve = f"`lockgate tools approve {upstream} --all` after `lockgate tools pending`"
        review = f"review it with `lockgate tools diff {upstream}`"
    what = ", ".join(fields)
    if reason == "changed":
        changed = f" ({what})" if what else ""
        return (
            f"{tool} changed since it was approved{changed} and is blocked: {review}, "
            f"then approve it with {approve}."
        )
    if reason == "pending":
        return f"{tool} is new and waits for approval: {review}, then run {approve}."
    if reason == "spoofing":
        like = f" the pinned tool {_quoted(similar)}" if similar else " a pinned tool"
        return (
            f"{tool} has a name confusable with{like} and is blocked: {review}, "
            f"and approve it with {approve} only if it is genuine."
        )
    if reason == "rejected":
        return f"{tool} was rejected and stays blocked until someone approves it with {approve}."
    if reason == "profile":
        differs = f" ({what})" if what else ""
        return (
            f"{tool} differs from the pin your profile ships for it{differs} and is blocked: "
            f"ask your IT team to update [guardrails.pinning.pins.{upstream}]."
        )
    if reason == "unpinnable":
        return f"{tool} has a definition too deeply nested to pin, so it is blocked."
    if reason == "duplicate":
        return f"{tool} is listed with more than one definition, so it is blocked."
    if reason == "too_many":
        return (
            f"{tool} is past the {MAX_TOOLS} tools the gateway keeps pins for per upstream, "
            "so it is blocked: ask the upstream's owner why it lists so many names."
        )
    return (
        f"{tool} was never listed by the upstream, so its definition cannot be checked: "
        "list the tools first."
    )


# ---------------------------------------------------------------------------- records


@dataclass(frozen=True, slots=True)
class Change:
    """One thing an observation did for the first time: pinned a tool (``new``) or held it
    (``pending`` in approve mode, ``changed``, ``spoofing``)."""

    name: str
    kind: Kind
    pin: str
    old_pin: str | None = None
    fields: tuple[str, ...] = ()
    similar: str | None = None  # spoofing: the pinned name it is confusable with

    @property
    def rule(self) -> str:
        """The audit rule id: PIN_NEW, PIN_PENDING, PIN_CHANGED or PIN_SPOOFING."""
        return f"PIN_{self.kind.upper()}"

    def finding(self) -> dict[str, Any]:
        """The item for a message event's ``findings`` list (contract: kind "pin")."""
        return {
            "kind": "pin",
            "rule": self.rule,
            "target": f"tool:{self.name}",
            "action": "log" if self.kind == "new" else "hide",
        }

    def event(self, upstream: str) -> dict[str, Any]:
        """The standalone audit event: ``pin.new`` (pinned, or held in approve mode) or
        ``pin.changed`` (changed, confusable). The pins go as ``old_sha256``/``new_sha256``:
        the audit log masks top-level keys named like secrets, and ``pin`` is one."""
        held = self.kind != "new"
        return {
            "event": "pin.new" if self.kind in ("new", "pending") else "pin.changed",
            "upstream": upstream,
            "name": self.name,
            "rule": self.rule,
            "old_sha256": self.old_pin,
            "new_sha256": self.pin,
            "fields": list(self.fields) or None,
            "similar": self.similar,
            "outcome": "blocked" if held else "success",
        }


@dataclass(frozen=True, slots=True)
class Observation:
    """What to do with one ``tools/list``: the names to drop, the new events, every pin."""

    hidden: frozenset[str]
    changes: tuple[Change, ...] = ()
    pins: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Pin:
    upstream: str
    name: str
    pin: str
    source: Source  # tofu: first sight; approved: someone approved it; profile: IT shipped it
    by: str | None
    at: float


@dataclass(frozen=True, slots=True)
class Pending:
    """A definition held for a decision, with what it would replace."""

    upstream: str
    name: str
    kind: Kind
    pin: str
    old_pin: str | None
    fields: tuple[str, ...]
    similar: str | None
    rejected: bool
    source: Literal["store", "profile"]  # profile: differs from a shipped pin (IT decides)
    seen_at: float
    decided_by: str | None
    definition: dict[str, Any]
    old_definition: dict[str, Any] | None

    @property
    def reason(self) -> HoldReason:
        if self.source == "profile":
            return "profile"
        if self.rejected:
            return "rejected"
        return "pending" if self.kind == "new" else self.kind


@dataclass(frozen=True, slots=True)
class Decided:
    """One approval or rejection, as the audit log records it."""

    verb: Literal["approved", "rejected"]
    upstream: str
    name: str
    kind: Kind
    new_pin: str
    old_pin: str | None
    by: str

    def event(self) -> dict[str, Any]:
        """The audit event. The pins go as ``old_sha256``/``new_sha256``: the audit log
        masks top-level keys named like secrets, and ``pin`` is one (``old_pin`` would be
        written as "[redacted]")."""
        return {
            "event": f"pin.{self.verb}",
            "upstream": self.upstream,
            "name": self.name,
            "kind": self.kind,
            "old_sha256": self.old_pin,
            "new_sha256": self.new_pin,
            "user": self.by,
            "outcome": "success",
        }
