"""Credentials out of the audit log: secret-named keys and credential-shaped strings masked.

Why it exists: tool arguments named `key` or `pat`, and results holding `AKIA…`, `ghp_…` or
`sk-…` keys, were stored in the audit log and shown by `watch` as they were. The audit's
previews (`lockgate.audit.log.preview`) ask this module which keys name a secret and mask
credential shapes in every string they keep. Only the audit path runs it, with regexes
compiled once. The guardrails issue widens this to full redaction.
"""

from __future__ import annotations

import functools
import re

__all__ = ["MASK", "is_secret_key", "mask_text"]

MASK = "[redacted]"

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


def mask_text(text: str) -> str:
    """`text` with every credential-shaped run replaced by the mask."""
    return _SECRET_VALUE.sub(MASK, text)
