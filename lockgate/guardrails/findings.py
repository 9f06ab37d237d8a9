"""Findings: poisoning in tool, prompt and resource definitions, and injection in results.

Why it exists: a definition's name, description and schema go straight into the model's
context, and so does every result. This module reads them the way an attacker writes them and
names what it finds with a rule id from one vocabulary (`RULES`); `policy.py` decides per rule
and severity what the gateway does (warn, hide, sanitize, withhold), the addon applies it.

How: every string of the item is folded once (lower case; for non-ASCII text also NFKC,
homoglyphs to ASCII and invisible characters dropped, so "ignore" with a Cyrillic i or a
zero-width space inside reads as "ignore") and the strings are matched together by the anchored
rule families of `rules.py`, after one word-level gate over the item's JSON (`gates.py`);
`text.py` holds the character forensics, `exfil.py` the URL and parameter-name rules.
Hand-written because no offline library covers MCP poisoning.
`DefinitionScanner` caches results by a hash of the definition (orjson with sorted keys +
blake2b), so a repeated `tools/list` costs hashing.

Severities (the default policy HIDES high-severity definitions, so high only where an honest
definition practically never matches):
- high: HIDDEN_INSTRUCTIONS (`<IMPORTANT>` tags, "ignore previous instructions", "do not tell the
  user", HTML comments addressed to the model, forged chat turns; quoted examples such as a
  detector's docs are exempt), EXFILTRATION_PARAMETER (a REQUIRED parameter named for the
  model's own context: system_prompt, conversation_history, context_dump...), INVISIBLE_UNICODE
  (tag characters outside flag emoji, bidi overrides, zero-width runs: never in honest text),
  ENCODED_PAYLOAD (base64/hex that decodes to instructions).
- medium: SENSITIVE_FILE_ACCESS (a read/send verb before ~/.ssh keys, cloud credentials,
  mcp.json, .env...; scanners and deploy tools legitimately name these paths), CROSS_TOOL_SHADOWING
  (telling other tools how to behave: pattern-based, so it warns), SCHEMA_POISONING (instructions
  inside schema text), ANSI_ESCAPE (conceals text from people, not from the model),
  TOOL_NAME_SPOOFING (case/separator variants can be honest aliases), RESULT_INJECTION (results
  are governed by their own action, not by severity).
- low: EXCESSIVE_LENGTH (a string over 10,000 characters, a definition over 40,000, padding runs).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Final, Literal

import orjson

from lockgate.guardrails import exfil, gates, rules, text
from lockgate.guardrails.confusables import lookalike_name, spoofed_names
from lockgate.guardrails.superset import compile_union, union_body, yes_no
from lockgate.guardrails.text import sanitize

__all__ = [
    "RULES",
    "DefinitionScanner",
    "Finding",
    "Severity",
    "sanitize",
    "scan_definition",
    "scan_result",
]

Severity = Literal["low", "medium", "high"]

HIDDEN_INSTRUCTIONS: Final = "HIDDEN_INSTRUCTIONS"
SENSITIVE_FILE_ACCESS: Final = "SENSITIVE_FILE_ACCESS"
EXFILTRATION_PARAMETER: Final = "EXFILTRATION_PARAMETER"
INVISIBLE_UNICODE: Final = "INVISIBLE_UNICODE"
CROSS_TOOL_SHADOWING: Final = "CROSS_TOOL_SHADOWING"
SCHEMA_POISONING: Final = "SCHEMA_POISONING"
EXCESSIVE_LENGTH: Final = "EXCESSIVE_LENGTH"
ANSI_ESCAPE: Final = "ANSI_ESCAPE"
ENCODED_PAYLOAD: Final = "ENCODED_PAYLOAD"
TOOL_NAME_SPOOFING: Final = "TOOL_NAME_SPOOFING"
RESULT_INJECTION: Final = "RESULT_INJECTION"

RULES: Final[Mapping[str, Severity]] = MappingProxyType(
    {
        HIDDEN_INSTRUCTIONS: "high",
        SENSITIVE_FILE_ACCESS: "medium",
        EXFILTRATION_PARAMETER: "high",
        INVISIBLE_UNICODE: "high",
        CROSS_TOOL_SHADOWING: "medium",
        SCHEMA_POISONING: "medium",
        EXCESSIVE_LENGTH: "low",
        ANSI_ESCAPE: "medium",
        ENCODED_PAYLOAD: "high",
        TOOL_NAME_SPOOFING: "medium",
        RESULT_INJECTION: "medium",
    }
)

MAX_STRING: Final = 10_000
MAX_DEFINITION: Final = 40_000
MAX_NAME: Final = 128


@dataclass(frozen=True, slots=True)
class Finding:
    """One rule that matched at `path` inside the item (never the matched text itself)."""

    rule: str
    severity: Severity
    path: str


def _f(rule: str, path: str) -> Finding:
    return Finding(rule, RULES[rule], path)


# --- walking: collect the strings, then match them together --------------------------------

# Which rules a group's match raises, per zone of the string it is in.
_ZONE_RULES: Final[Mapping[str, Mapping[str, tuple[str, ...]]]] = {
    "text": {
        "hidden": (HIDDEN_INSTRUCTIONS,),
        "sensitive": (SENSITIVE_FILE_ACCESS,),
        "shadow": (CROSS_TOOL_SHADOWING,),
    },
    "schema": {
        "hidden": (HIDDEN_INSTRUCTIONS, SCHEMA_POISONING),
        "sensitive": (SENSITIVE_FILE_ACCESS, SCHEMA_POISONING),
        "shadow": (CROSS_TOOL_SHADOWING, SCHEMA_POISONING),
        "exfil": (SCHEMA_POISONING,),
        "address": (SCHEMA_POISONING,),
    },
    "result": {
        "hidden": (HIDDEN_INSTRUCTIONS,),
        "address": (RESULT_INJECTION,),
        "turns": (RESULT_INJECTION,),
    },
    "other": {},
}
_TEXT_GROUPS: Final = frozenset({"hidden", "sensitive", "shadow", "exfil", "address", "turns"})
_PADDING: Final = re.compile(r"\n(?:[ \t]*\n){24,}|[ \t\u00a0]{300,}")

Item = tuple[str, str, str]  # (path, string, zone)


def _match(
    items: list[Item],
    active: frozenset[str],
    own: str,
    out: list[Finding],
    words: frozenset[bytes] | None = None,
) -> None:
    """All findings of the collected strings; `active` are the groups the gate let through."""
    definition = not items or items[0][2] != "result"
    for path, s, zone in items:
        if "chars" in active and text.suspicious(s):
            if text.invisible_reasons(s):
                out.append(_f(INVISIBLE_UNICODE, path))
            if text.has_ansi(s, strict=definition):
                out.append(_f(ANSI_ESCAPE, path))
            if zone != "other" and not s.isascii() and _smuggled(s):
                out.append(_f(HIDDEN_INSTRUCTIONS, path))
        if "length" in active and (
            len(s) > MAX_STRING or (len(s) > 48 and _PADDING.search(s) is not None)
        ):
            out.append(_f(EXCESSIVE_LENGTH, path))
        if zone == "result" and "link" in active and exfil.exfil_link(s):
            out.append(_f(RESULT_INJECTION, path))
        if "encoded" in active and len(s) >= 24 and _encoded(s):
            out.append(_f(ENCODED_PAYLOAD, path))
    groups = active & _TEXT_GROUPS
    if not groups:
        return
    texts = [(path, text.fold(s), zone) for path, s, zone in items if zone != "other"]
    starts: list[int] = []
    ends: list[int] = []
    pos = 0
    for _, t, _ in texts:
        starts.append(pos)
        pos += len(t)
        ends.append(pos)
        pos += 1
    doc = "\x00".join(t for _, t, _ in texts)
    for group, i in rules.hits(doc, starts, ends, groups, own, words):
        path, _, zone = texts[i]
        for rule in _ZONE_RULES[zone].get(group, ()):
            out.append(_f(rule, path))


def _encoded(s: str) -> bool:
    return any(rules.instructions(text.fold(d)) for d in text.decoded_payloads(s))


def _smuggled(s: str) -> bool:
    """Instructions spelled in invisible Unicode tag characters."""
    hidden = text.tag_text(s)
    return bool(hidden) and rules.instructions(hidden.lower())


_SCHEMA_KEYS: Final = ("inputSchema", "outputSchema")
_TEXT_KEYS: Final = ("title", "description")
_SCHEMA_MAPS: Final = ("properties", "patternProperties", "$defs", "definitions")


def _schema(
    node: Any, path: str, items: list[Item], out: list[Finding], active: frozenset[str]
) -> None:
    if isinstance(node, str):
        items.append((path, node, "schema"))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            _schema(v, f"{path}.{i}", items, out, active)
    elif isinstance(node, dict):
        props = node.get("properties")
        required = node.get("required")
        if "params" in active and isinstance(props, dict) and isinstance(required, list):
            for name in required:
                if isinstance(name, str) and name in props and exfil.exfil_name(name):
                    out.append(_f(EXFILTRATION_PARAMETER, f"{path}.properties.{name}"))
        for k, v in node.items():
            sub = f"{path}.{k}"
            if k in _SCHEMA_MAPS and isinstance(v, dict):
                for name, child in v.items():
                    if isinstance(name, str):
                        items.append((f"{sub}.{name}", name.replace("_", " "), "schema"))
                    _schema(child, f"{sub}.{name}", items, out, active)
            else:
                _schema(v, sub, items, out, active)


def _other(node: Any, path: str, items: list[Item]) -> None:
    """Fields the model may see but that hold no prose (uri, mimeType, icons...)."""
    if isinstance(node, str):
        items.append((path, node, "other"))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            _other(v, f"{path}.{i}", items)
    elif isinstance(node, dict):
        for k, v in node.items():
            _other(v, f"{path}.{k}", items)


def scan_definition(kind: str, definition: Mapping[str, Any]) -> tuple[Finding, ...]:
    """Findings in one tool, prompt, resource or resourceTemplate definition (`kind` is one of
    those names). Spoofing against other names needs the list: see `DefinitionScanner.scan_list`."""
    return _scan_definition(kind, definition, _dumps(definition))


_EVERYTHING: Final = _TEXT_GROUPS | {"link", "chars", "encoded", "length", "params"}


def _scan_definition(
    kind: str, definition: Mapping[str, Any], js: bytes, *, gated: bool = True
) -> tuple[Finding, ...]:
    """gated=False runs every rule on every string (the reference the gate must agree with)."""
    out: list[Finding] = []
    raw_name = definition.get("name")
    name = raw_name if isinstance(raw_name, str) else ""
    if len(name) > MAX_NAME:
        out.append(_f(EXCESSIVE_LENGTH, "name"))
    if not name.isascii() and lookalike_name(name):
        out.append(_f(TOOL_NAME_SPOOFING, "name"))
    if len(js) > MAX_DEFINITION:
        out.append(_f(EXCESSIVE_LENGTH, ""))
    gate = gates.gates(js, definition=True, max_string=MAX_STRING)
    text_rules = True
    if gated:
        text_rules = gate.any_family()  # as for results: no word gate on ASCII text
        active = gate.groups | _TEXT_GROUPS if text_rules else gate.groups
    else:
        active = _EVERYTHING
    if not active:
        return tuple(out)
    items: list[Item] = [("name", name, "other")] if name else []
    for key, value in definition.items():
        if key in ("name", "_meta"):
            continue
        if key in _TEXT_KEYS and isinstance(value, str):
            items.append((key, value, "text"))
        elif key in _SCHEMA_KEYS:
            _schema(value, key, items, out, active)
        elif key == "arguments" and kind == "prompt" and isinstance(value, list):
            for i, arg in enumerate(value):
                required = isinstance(arg, Mapping) and arg.get("required") is True
                if required and exfil.exfil_name(str(arg.get("name", ""))):
                    out.append(_f(EXFILTRATION_PARAMETER, f"arguments.{i}.name"))
                _schema(arg, f"arguments.{i}", items, out, active)
        elif key == "annotations" and isinstance(value, Mapping):
            for k, v in value.items():
                if isinstance(v, str):
                    items.append((f"annotations.{k}", v, "text"))
        else:
            _other(value, key, items)
    words = gate.words if gated and text_rules and not gate.ascii else None
    _match(items, active, text.fold(name).replace("-", "_"), out, words)
    return tuple(dict.fromkeys(out))


_BINARY_KEYS: Final = frozenset({"blob"})


def _result(node: Any, path: str, items: list[Item]) -> None:
    if isinstance(node, str):
        items.append((path, node, "result"))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            _result(v, f"{path}.{i}" if path else str(i), items)
    elif isinstance(node, dict):
        binary = node.get("type") in ("image", "audio")
        for k, v in node.items():
            if k == "_meta" or k in _BINARY_KEYS or (binary and k == "data"):
                continue
            _result(v, f"{path}.{k}" if path else str(k), items)


def scan_result(result: Any) -> tuple[Finding, ...]:
    """Findings in a JSON-RPC result (tool result content and structuredContent, resource
    contents, prompt messages, or any other shape: every string in it is read)."""
    return _scan_result(result)


def _scan_result(result: Any, *, gated: bool = True) -> tuple[Finding, ...]:
    items: list[Item] = []
    _result(result, "", items)
    if gated:
        # The gate reads each distinct string once, without the keys (a result's keys are
        # not scanned): a tool's text often comes twice, as `content` and `structuredContent`.
        unique = list(dict.fromkeys(s for _, s, _ in items))
        if _nothing_to_find(unique):
            return ()
        gate = gates.gates(_dumps(unique), definition=False, max_string=MAX_STRING)
        text_rules = gate.any_family()
        active = gate.groups | _TEXT_GROUPS if text_rules else gate.groups
        # On ASCII text the families run without the word gate: it assumes words between
        # boundaries, and some families also match glued ones ("instructionsassistant-").
        words = gate.words if text_rules and not gate.ascii else None
    else:
        active = _EVERYTHING - {"length", "params"}
        words = None
    if not active:
        return ()
    out: list[Finding] = []
    _match(items, active, "", out, words)
    return tuple(dict.fromkeys(out))


# What a result's ASCII strings must hold for any check of `_match` to find something: a text
# family (on the folded string, which for ASCII is the lower-cased one), ESC (ANSI), a link
# (`](`, `<img`), a base64/hex run of 24 or a `\x` escape (ENCODED_PAYLOAD), in one RE2 pass
# over the distinct strings; the document gate (`gates`) is then not built at all.
RESULT_ANY_BODY: Final = "|".join(
    (
        union_body(f.rx for f in rules.FAMILIES),
        r"\x1b",
        r"\]\(",
        "<img",
        r"[A-Za-z0-9+/_\-]{24}",
        r"\\x",
    )
)
_RESULT_ANY: Final = yes_no(compile_union(RESULT_ANY_BODY, ignore_case=True))


def _nothing_to_find(strings: list[str]) -> bool:
    """True when no rule can match any of these (all ASCII); False means "look"."""
    if not all(s.isascii() for s in strings):
        return False
    return not _RESULT_ANY("\x00".join(strings).encode("ascii"))


# --- cached scanning --------------------------------------------------------------------------


def _dumps(definition: Any) -> bytes:
    try:
        return orjson.dumps(definition, option=orjson.OPT_SORT_KEYS)
    except TypeError:  # non-str keys or out-of-range ints: still a stable key
        return repr(definition).encode("utf-8", "surrogatepass")


class DefinitionScanner:
    """`scan_definition` with an LRU cache keyed by (kind, blake2b of the definition's JSON
    with sorted keys), bounded to `maxsize` entries. Not thread-safe (one per event loop)."""

    def __init__(self, maxsize: int = 10_000) -> None:
        self.maxsize = maxsize
        self._cache: dict[tuple[str, bytes], tuple[Finding, ...]] = {}

    @staticmethod
    def key(definition: Mapping[str, Any]) -> bytes:
        return hashlib.blake2b(_dumps(definition), digest_size=16).digest()

    def scan(
        self, kind: str, definition: Mapping[str, Any], *, key: bytes | None = None
    ) -> tuple[Finding, ...]:
        """Findings for one definition; `key` may be a hash the caller already has (the pin)."""
        js = b""
        if key is None:
            js = _dumps(definition)
            key = hashlib.blake2b(js, digest_size=16).digest()
        k = (kind, key)
        cache = self._cache
        hit = cache.pop(k, None)
        if hit is None:
            hit = _scan_definition(kind, definition, js or _dumps(definition))
            if len(cache) >= self.maxsize:
                del cache[next(iter(cache))]
        cache[k] = hit
        return hit

    def scan_list(
        self, kind: str, definitions: Iterable[Mapping[str, Any]]
    ) -> list[tuple[Finding, ...]]:
        """Findings per definition of one list, plus TOOL_NAME_SPOOFING ("name") for names
        confusable with another name in the same list."""
        items = list(definitions)
        found = [self.scan(kind, d) for d in items]
        names = [d.get("name") for d in items]
        spoofed = spoofed_names(n for n in names if isinstance(n, str))
        if spoofed:
            spoof = _f(TOOL_NAME_SPOOFING, "name")
            for i, n in enumerate(names):
                if n in spoofed and spoof not in found[i]:
                    found[i] = (*found[i], spoof)
        return found

    def __len__(self) -> int:
        return len(self._cache)
