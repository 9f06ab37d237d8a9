"""Secrets out of the audit log: bounded previews, secret-named keys and credential shapes masked.

Why it exists: tool arguments named `key` or `pat`, and results holding `AKIA…`, `ghp_…` or
`sk-…` keys, were stored in the audit log and shown by `watch` as they were. Everything the
log keeps of caller data (`args`, `result`, values under secret-like keys) passes through
here on append: `preview` bounds it, `is_secret_key` names the keys whose values are never
kept, `mask_text` masks credential shapes in every string kept; regexes compiled once, and
one mask string, `REDACTED`.
`mask_text` also runs the guardrails' detectors (`lockgate.guardrails.detectors`), masking
every type they know: the log records a route's findings, never the values.

Guardrail `findings` are not previews (a preview cuts lists and objects short, which would
leave a finding without its rule or action): `bound_findings` keeps each item whole, with
the contract's keys only, bounded strings and credential shapes masked in its names.
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Mapping
from typing import Any, Final

import re2

from lockgate.guardrails import quiet
from lockgate.guardrails.detectors import redact
from lockgate.guardrails.superset import yes_no

__all__ = [
    "FINDING_KEYS",
    "MAX_FINDINGS",
    "REDACTED",
    "TRUNCATED",
    "bound_findings",
    "is_secret_key",
    "mask_text",
    "preview",
]

_MAX_DEPTH = 8

REDACTED = "[redacted]"

# Matched against the key lowercased with "_", "-", "." and spaces removed.
_SECRET_KEY = re.compile(
    r"token|secret|passw(?:or)?d|passphrase|authorization|cookie|codeverifier|apikey"
    r"|privatekey|accesskey|credential|jwt|bearer"
)
# Whole words of a key (split at separators and camelCase) that name a secret on their own.
_SECRET_WORDS = frozenset({"key", "pat", "pwd", "pass", "auth", "apikey", "otp", "pin"})
_WORDS = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|[0-9]+")
# Counts and limits that merely mention tokens (sampling's maxTokens) are not credentials.
_COUNT_KEYS = frozenset({"maxtokens", "tokencount", "tokens", "inputtokens", "outputtokens"})

# Credential shapes, whatever their key.
_SECRET_VALUE = re.compile(
    r"(?i:\bbearer\s+)[A-Za-z0-9._~+/=-]{16,}"  # an Authorization header's value
    r"|\beyJ[A-Za-z0-9_-]{4,}\.eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*"  # a JWT
    r"|\b(?:AKIA|ASIA)[0-9A-Z]{16}\b"  # AWS access key ids
    r"|\bgh[pousr]_[A-Za-z0-9]{20,}"  # GitHub tokens
    r"|\bgithub_pat_[A-Za-z0-9_]{20,}"  # GitHub fine-grained tokens
    r"|\bsk-(?:[A-Za-z0-9]+-)*[A-Za-z0-9_-]{16,}"  # OpenAI / Anthropic style keys
    r"|\bxox[abposr]-[A-Za-z0-9-]{10,}"  # Slack tokens
    r"|-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----(?:.*?-----END [A-Z0-9 ]*PRIVATE KEY-----|.*)",
    re.DOTALL,
)


@functools.lru_cache(maxsize=4096)
def is_secret_key(key: str) -> bool:
    """True for keys named like a credential: `token`, `api_key`, `Authorization`, `pat`,
    `x-api-key`, `githubPat`, ... (case-insensitive, any separators)."""
    folded = re.sub(r"[_\-. ]", "", key.lower())
    if folded in _COUNT_KEYS:
        return False
    if _SECRET_KEY.search(folded) is not None:
        return True
    return any(w.lower() in _SECRET_WORDS for w in _WORDS.findall(key))


# What every `_SECRET_VALUE` match holds, as one RE2 pattern: `re` scans the alternation above
# at ~190 µs per KB (its `\b` and `(?i:...)` branches defeat its literal prefix search), RE2
# this at ~5, and most previewed text holds none of it (tests/core/audit/test_redact.py).
_SECRET_HINT: Final = yes_no(
    re2.compile(
        rb"(?i:bearer)|eyJ|AKIA|ASIA|gh[pousr]_|github_pat_|sk-|xox[abposr]-|PRIVATE KEY-----"
    )
)


def mask_text(text: str) -> str:
    """`text` with every credential-shaped run replaced by the mask, and every entity the
    guardrails' detectors find (secrets, cards, contact data...) by its placeholder: the
    audit log keeps what was found, never the value, whatever the route's action was.

    ASCII text in which the detectors' anchors (`quiet.UP`, which holds every literal of
    `_SECRET_HINT` but "bearer") match nowhere has nothing to mask: one RE2 pass, where the
    full path asks two (the hint and the detectors' set), ~20 us less per string cold."""
    if text.isascii() and "bearer" not in text.lower() and not quiet.UP(text.encode("ascii")):
        return text
    return _masked_in_full(text)


def _masked_in_full(text: str) -> str:
    if _SECRET_HINT(text.encode("utf-8", "surrogatepass")):
        text = _SECRET_VALUE.sub(REDACTED, text)
    return redact(text)


# ---------------------------------------------------------------------------- previews


def preview(value: object, limit: int = 512) -> object:
    """A bounded, JSON-able, secret-free preview of `value` for the audit log.

    Strings are cut at `limit` characters, a container keeps at most `max(16, limit // 8)`
    items, and all stop once about `4 * limit` characters of content have been kept;
    nesting stops at depth 8. Values under secret-like keys and
    token-shaped strings (bearer credentials, JWTs) become "[redacted]". Never raises.
    """
    return _preview(value, limit, [4 * limit], 0)


def _room(budget: list[int], i: int, limit: int) -> bool:
    """Whether a container may keep its item `i`: total budget left, and a per-container cap."""
    return budget[0] > 0 and i < max(16, limit // 8)


def _preview(value: object, limit: int, budget: list[int], depth: int) -> object:
    budget[0] -= 1
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int):
        return value if value.bit_length() <= 64 else f"<int of {value.bit_length()} bits>"
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, str):
        return _preview_str(value, limit, budget)
    if isinstance(value, (bytes, bytearray, memoryview)):
        return f"<{len(value)} bytes>"
    if isinstance(value, Mapping):
        if depth >= _MAX_DEPTH:
            return f"{{object of {len(value)} keys}}"
        out: dict[str, object] = {}
        for i, (k, v) in enumerate(value.items()):
            if not _room(budget, i, limit):
                out["…"] = f"+{len(value) - i} more keys"
                break
            key = k if isinstance(k, str) else str(k)
            key = _preview_str(key, limit, budget) if len(key) > limit else key
            budget[0] -= len(key)
            out[key] = REDACTED if is_secret_key(key) else _preview(v, limit, budget, depth + 1)
        return out
    if isinstance(value, (list, tuple, set, frozenset)):
        if depth >= _MAX_DEPTH:
            return f"[list of {len(value)} items]"
        items: list[object] = []
        for i, v in enumerate(value):
            if not _room(budget, i, limit):
                items.append(f"… +{len(value) - i} more items")
                break
            items.append(_preview(v, limit, budget, depth + 1))
        return items
    return f"<{type(value).__name__}>"


@functools.lru_cache(maxsize=256)
def _masked(text: str) -> str:
    """`mask_text`, remembered: a call's arguments are previewed in its started and its
    completed event, and the detectors are the costly part of a preview."""
    return mask_text(text)


def _preview_str(value: str, limit: int, budget: list[int]) -> str:
    # Masked before the cut, with room past it, so a secret across the cut goes whole.
    head = _masked(value[: limit + 1024])
    if len(value) > limit:
        head = f"{head[:limit]}…(+{len(value) - limit} chars)"
    budget[0] -= min(len(head), limit)
    return head


# ---------------------------------------------------------------------------- findings

# The keys a guardrail finding may carry (docs: notes/g11_contract.md, "Audit"), each with the
# length its value is cut at. Anything else is dropped: a stray `match` or `value` key would
# put the very secret a redaction removed into the log.
FINDING_KEYS: dict[str, int] = {
    "kind": 32,
    "rule": 64,
    "severity": 16,
    "target": 160,
    "path": 200,
    "count": 0,  # a non-negative integer, not text
    "action": 16,
    "direction": 16,
    "scope": 32,
}
_NAMES = frozenset({"target", "path"})  # upstream- or client-chosen: cut in the middle, masked
_NAME_SCAN = 16384
_NAME_CACHED = 256  # names up to this long are cached masked (4096 of them: about 1 MB)
MAX_FINDINGS = 256
TRUNCATED = "truncated"  # the kind of the one item that stands for the findings left out


def bound_findings(value: object) -> list[dict[str, object]]:
    """`findings` as the log keeps them: a list of whole items, never a cut-off one.

    Each item keeps only `FINDING_KEYS` with scalar values: strings cut at their key's length
    (a `path` or `target` keeps its head and its leaf: `inputSchema.prop…q.description`), and
    credential shapes in them masked; `count` only as a non-negative integer. Items that are
    not objects, or keep no key, are dropped. Past `MAX_FINDINGS` items, one item
    `{"kind": "truncated", "count": N}` says how many more there were. A single object is
    read as a list of one. Never raises.
    """
    if isinstance(value, Mapping):
        value = [value]
    if not isinstance(value, (list, tuple)):
        return []
    out: list[dict[str, object]] = []
    left = 0
    for item in value:
        if not isinstance(item, Mapping):
            continue
        if len(out) >= MAX_FINDINGS:
            left += 1
            continue
        kept = _finding(item)
        if kept:
            out.append(kept)
    if left:
        out.append({"kind": TRUNCATED, "count": left})
    return out


@functools.lru_cache(maxsize=4096)
def _mask_name(text: str) -> str:
    """`mask_text` of a finding's path or target, remembered: the same tool names and
    argument paths come back on every list and call, and the detectors cost ~20 µs each."""
    return mask_text(text)


def _finding(item: Mapping[object, object]) -> dict[str, object]:
    kept: dict[str, object] = {}
    for key, limit in FINDING_KEYS.items():
        value = item.get(key)
        if key == "count":
            if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
                kept[key] = min(value, 2**63 - 1)
        elif isinstance(value, str) and value:
            text = _scrub(value)
            if key in _NAMES:
                if len(text) > _NAME_SCAN:  # too long to mask whole: say only how long
                    kept[key] = f"<{key} of {len(text)} chars>"
                    continue
                # Whole, before any cut: no credential is half kept.
                text = _mask_name(text) if len(text) <= _NAME_CACHED else mask_text(text)
                if len(text) > limit:
                    half = (limit - 1) // 2
                    text = f"{text[:half]}…{text[-(limit - 1 - half) :]}"
            elif len(text) > limit:
                text = f"{text[: limit - 1]}…"
            kept[key] = text
    return kept


def _scrub(value: Any) -> Any:
    """Replace lone surrogates (not encodable as UTF-8) so a record can always be written."""
    if isinstance(value, str):
        return value.encode("utf-8", "replace").decode("utf-8")
    if isinstance(value, dict):
        return {_scrub(k): _scrub(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_scrub(v) for v in value]
    return value
