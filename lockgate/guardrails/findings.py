"""Findings: poisoning in tool, prompt and resource definitions, and injection in results.

Why it exists: a definition's name, description and schema go straight into the model's
context, and so does every result. This module reads them the way an attacker writes them and
names what it finds with a rule id from one vocabulary (`RULES`); `policy.py` decides per rule
and severity what the gateway does (warn, hide, sanitize, withhold), the addon applies it.

How: regexes compiled once at import, run on each string folded once (lower case; for non-ASCII
text also NFKC, homoglyphs to ASCII and invisible characters dropped, so "ignore" with a
Cyrillic i or a zero-width space inside reads as "ignore"), each family behind a substring gate
so most honest text costs a few `in` tests. Hand-written because no offline library covers MCP
poisoning; the character forensics live in `text.py`. `DefinitionScanner` caches results by a
hash of the definition (orjson with sorted keys + blake2b), so a repeated `tools/list` costs
hashing.

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
from functools import lru_cache
from types import MappingProxyType
from typing import Any, Final, Literal
from urllib.parse import parse_qsl, urlsplit

import orjson

from lockgate.guardrails import text
from lockgate.guardrails.text import sanitize

__all__ = [
    "RULES",
    "DefinitionScanner",
    "Finding",
    "Severity",
    "confusable_with",
    "sanitize",
    "scan_definition",
    "scan_result",
    "skeleton",
    "spoofed_names",
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


# --- patterns (on folded, lower-case text) ----------------------------------------------------

_R = re.compile
_TOOLREF = r"`?[a-z][a-z0-9]*(?:_[a-z0-9]+)+`?"  # a snake_case tool name
_NEG = r"(?:do\s+not|don'?t|never|must\s+not|should\s+not|shouldn'?t|without|no\s+need\s+to)"

# Each family: (gates, regex). A regex runs only if one of its gates is a substring.
_HIDDEN: Final = (
    (
        ("<",),
        _R(
            r"<\s*/?\s*(?:important|instructions?|system|secret|hidden|admin|critical|assistant_only"
            r"|tool_result|function_results?|system-reminder)\s*>|<\|(?:im_start|im_end|system"
            r"|endoftext|begin_of_text|start_header_id|eot_id)\|>|<</?sys>>"
        ),
    ),
    (("[inst]",), _R(r"\[/?inst\]")),
    (
        ("ignor", "disregard", "forget"),
        _R(
            r"\b(?:ignore|ignoring|disregard|disregarding|forget)\W+(?:(?:all|any|the|of|every|your"
            r"|everything|each)\W+){0,3}(?:previous|prior|above|earlier|preceding|former|original"
            r"|initial|system|safety|developer)\W+(?:\w+\W+){0,2}?(?:instructions?|prompts?"
            r"|directions?|guidelines|directives|commands|rules|messages|context)\b"
            r"|\b(?:ignore|disregard|forget)\W+(?:all\W+)?(?:of\W+)?(?:the\W+)?(?:above|everything"
            r"\W+(?:above|before|you\W+(?:were|have\W+been)\W+told))\b"
            r"|\b(?:ignore|disregard|forget)\W+your\W+(?:\w+\W+)?(?:instructions|guidelines"
            r"|system\W+prompt|programming|rules|training)\b"
        ),
    ),
    (
        ("not", "n't", "never", "without"),
        _R(
            _NEG + r"\s+(?:ever\s+)?(?:tell|telling|inform|informing|notify|notifying|alert"
            r"|alerting|warn|warning)\s+(?:the\s+)?users?\b(?!['\u2019]s)(?!\s+(?:more|again|twice))"
            r"|" + _NEG + r"\s+(?:ever\s+)?(?:let|letting)\s+(?:the\s+)?users?\s+(?:know|see"
            r"|notice|find\s+out|be\s+aware)"
            r"|" + _NEG + r"\s+(?:ever\s+)?(?:mention|mentioning|reveal|revealing|disclose"
            r"|disclosing|show|showing|explain|explaining|report|reporting)\s+(?:this|it|that"
            r"|these|any\s+of\s+(?:this|these)|the\s+(?:above|following|instructions?|notes?"
            r"|steps?|side\s+effects?|requirements?))\b(?:[^.\n]{0,30}?\bto\s+(?:the\s+)?users?\b"
            r"|(?<=instructions)|(?<=instruction)|(?<=note)|(?<=notes)|(?<=steps)|(?<=effect)"
            r"|(?<=effects))"
            r"|\busers?\s+(?:must|should|need)\s+(?:not|never)\s+(?:know|see|notice|find\s+out"
            r"|be\s+(?:told|informed|aware|notified))"
        ),
    ),
    (
        ("keep", "hide", "hidden", "secret", "silent", "covert", "quiet", "behind"),
        _R(
            r"\b(?:keep|hide)\s+(?:this|it|that|these)(?:\s+\w+){0,3}?\s+(?:secret\s+|hidden\s+)?"
            r"from\s+(?:the\s+)?users?\b|\bbehind\s+the\s+users?['\u2019]?s?\s+back\b"
            r"|\b(?:silently|secretly|covertly|quietly)\s+(?:also\s+)?(?:send|forward|copy|upload"
            r"|include|add|read|exfiltrate|bcc|cc|post|transmit|attach|leak)\b"
        ),
    ),
    (
        ("instruction", "override", "you are now", "from now on", "jailbreak", "developer mode"),
        _R(
            r"\b(?:new|updated|real|actual|true|hidden|secret|override|additional|important)\s+"
            r"(?:system\s+)?instructions?\s*(?::|follow)|\bsystem\s+(?:override|prompt\s+override"
            r"|instruction)s?\s*:|\byou\s+are\s+now\s+(?:in\s+)?(?:developer|dan|jailbroken"
            r"|jailbreak|unrestricted|admin|god|an?\s+unfiltered)\b|\bfrom\s+now\s+on,?\s+you"
            r"\s+(?:must|will|are|should|shall)\b|\b(?:enable|enter)\s+(?:developer|jailbreak)\s+mode"
        ),
    ),
)
_EXFIL_STRONG = (
    r"your\s+(?:full\s+|entire\s+|complete\s+|whole\s+)?(?:system\s+prompt|instructions|initial"
    r"\s+prompt|context(?:\s+window)?|memory|previous\s+messages|conversation(?:\s+history)?"
    r"|chat\s+history|prompt)|everything\s+(?:above|before\s+this|so\s+far|in\s+(?:the|your)"
    r"\s+context)|the\s+conversation\s+so\s+far|all\s+(?:prior|previous|earlier)\s+messages"
    r"|(?:the\s+)?system\s+prompt\s+verbatim|verbatim\s+(?:copy\s+of\s+)?(?:the\s+|your\s+)?"
    r"(?:system\s+prompt|conversation|instructions)"
)
_EXFIL_WEAK = (
    r"(?:the\s+)?(?:full|entire|complete|whole)\s+(?:conversation|chat|history|context"
    r"|transcript|system\s+prompt|message\s+history)|(?:the\s+)?system\s+prompt"
    r"|previous\s+(?:messages|turns|instructions)|(?:conversation|chat)\s+history"
)
_EXFIL_VERB = (
    r"\b(?:fill|populate|set|put|pass|include|provide|insert|paste|copy|send|add|attach|dump"
    r"|enter|repeat|output|print|append|forward|list|supply|give)\b[^.\n]{0,40}?\b"
)
_EXFIL_HIDDEN: Final = (
    ("your", "everything", "so far", "verbatim", "previous", "prior", "earlier"),
    _R(_EXFIL_VERB + "(?:" + _EXFIL_STRONG + ")"),
)
_EXFIL_SCHEMA: Final = (
    ("prompt", "conversation", "chat", "history", "context", "messages", "transcript", "memory"),
    _R(_EXFIL_VERB + "(?:" + _EXFIL_STRONG + "|" + _EXFIL_WEAK + ")"),
)

# Sensitive files: strong targets need a read verb before them, weak ones a transfer verb.
_SENSITIVE_GATES: Final = (
    ".ssh", "id_rsa", "id_ed25519", "id_ecdsa", ".aws", "gcloud", ".azure", ".kube", ".docker",
    "netrc", "npmrc", "pypirc", "credentials", "mcp.json", "claude_desktop", ".cursor", "/etc/",
    ".env", "_history", "keychain", ".gnupg", "wallet", "secrets.", "cookies", "login data",
    "private key", "private_key", ".pem",
)  # fmt: skip
_SENSITIVE_STRONG: Final = _R(
    r"(?:~|\$home|%userprofile%|/home/\w+|/users/\w+|/root)?/?\.ssh\b(?!/(?:known_hosts|config"
    r"|authorized_keys)\b)|\bid_(?:rsa|ed25519|ecdsa|dsa)\b|\.aws/(?:credentials|config)"
    r"|\.config/gcloud|application_default_credentials\.json|\.azure/|\.kube/config"
    r"|\.docker/config\.json|\.netrc\b|\.npmrc\b|\.pypirc\b|\.git-credentials\b|\bmcp\.json\b"
    r"|claude_desktop_config\.json|\.cursor/|/etc/(?:shadow|passwd|sudoers)\b|\.gnupg\b"
    r"|login\.keychain|wallet\.dat|\bprivate[\s_]keys?\b|\bcookies(?:\.sqlite)?\b|login\s+data"
)
_SENSITIVE_WEAK: Final = _R(
    r"(?<![\w.])\.env(?:\.[a-z]+)?\b|\.(?:bash|zsh)_history\b|\bsecrets\.(?:ya?ml|json|toml)\b"
    r"|\bcredentials\.json\b|[\w-]+\.pem\b"
)
_READ_VERB: Final = _R(
    r"\b(?:read|reads|reading|cat|open|opens|opening|dump|print|output|copy|send|upload|include"
    r"|attach|paste|pass|provide|exfiltrate|forward|post|share|leak|grab|collect|extract)\b"
    r"|\bcontents?\s+of\b|\btext\s+of\b"
)
_TRANSFER_VERB: Final = _R(
    r"\b(?:send|upload|include|attach|paste|pass|provide|exfiltrate|forward|post|share|leak"
    r"|grab|collect|dump|cat)\b|\bcontents?\s+of\b|\b(?:read|open)\b[^.\n]{0,60}\band\s+"
    r"(?:pass|send|include|put|paste|add|provide|attach|upload|post|forward)\b"
)
_AFTER_TRANSFER: Final = _R(
    r"^[^.\n]{0,60}?\b(?:and|then)\s+(?:pass|send|include|put|paste|add|provide|attach|upload"
    r"|post|forward|return)\b"
)
_NEGATED: Final = _R(r"\b(?:never|not|n't|without|no)\s+(?:\w+\s+)?$")

_SHADOW: Final = (
    (
        ("side effect", "side-effect"),
        _R(r"\bside[\s-]effects?\s+on\s+(?:the\s+)?(?:\w+\s+){0,3}?(?:tools?\b|" + _TOOLREF + ")"),
    ),
    (
        ("when", "if ", "every time", "each time", "any time"),
        _R(
            r"\b(?:when|whenever|if|every\s+time|each\s+time|any\s+time)\b[^.\n]{0,60}?"
            r"(?P<ref>(?:(?P<pre>\w+)\s+)?(?:" + _TOOLREF + r"|tool))\s*(?:tool\s+)?(?:\)\s*)?"
            r"(?:is\s+|are\s+|gets\s+|was\s+)?(?:used|called|invoked|run|executed|available"
            r"|present|requested|triggered)\b[^.\n]{0,120}?\b(?:must|should|always|make\s+sure"
            r"|be\s+sure|ensure|need\s+to|has\s+to|have\s+to)\b[^.\n]{0,60}?\b(?:send|change"
            r"|set|add|include|redirect|forward|copy|bcc|cc|replace|append|prepend|route|attach"
            r"|upload|post|modify|rewrite|swap|instead)\b"
        ),
    ),
    (
        ("tool",),
        _R(
            r"(?P<ref>" + _TOOLREF + r")\s+tool\s+(?:must|should|will|shall)\s+(?:now\s+|also\s+"
            r"|always\s+|only\s+)*(?:send|use|include|add|forward|redirect|be\s+used|route|copy"
            r"|bcc|cc|ignore|return|change|set|be\s+called\s+with)\b"
            r"|\b(?:all|any|every|the)\s+other\s+tools?\b[^.\n]{0,80}?\b(?:must|should|shall"
            r"|need\s+to|have\s+to|are\s+(?:required|not\s+allowed)|may\s+not|cannot)\b"
            r"|\b(?:overrides?|supersedes?|takes\s+precedence\s+over|replaces?)\s+(?:the\s+)?"
            r"(?:behaviou?r|instructions?|descriptions?|rules)\s+of\s+(?:the\s+|all\s+|any\s+"
            r"|other\s+)?"
            r"|\b(?:never|do\s+not|don'?t)\s+(?:use|call|invoke|trust)\s+(?:the\s+|any\s+)?"
            r"(?:other\s+tools?|" + _TOOLREF + r"(?:\s+tool)?)\b[^.\n]{0,60}?(?:instead|use\s+this"
            r"|only\s+this)"
        ),
    ),
    (
        ("all email", "all message", "all request", "all payment", "all transfer", "all file"),
        _R(
            r"\ball\s+(?:outgoing\s+)?(?:emails?|messages?|requests?|payments?|transfers?|files?)"
            r"\s+(?:\w+\s+){0,3}?(?:must|should|will|shall|are\s+to)\s+(?:now\s+|always\s+|also\s+)?"
            r"(?:be\s+)?(?:sent|send|forwarded|redirected|routed|copied|bcc'?d|cc'?d)\s+to\b"
        ),
    ),
)

# Addressed to the model from inside data (results, schema defaults).
_ADDRESS: Final = (
    (
        ("ai", "assistant", "llm", "model", "agent", "claude", "gpt", "copilot", "gemini", "bot"),
        _R(
            r"\b(?:attention|important|message|note|notice|instructions?|reminder|hey|dear)\s*"
            r"(?:to|for)?\s*(?:the\s+|any\s+|all\s+)?(?:ai|assistant|llm|language\s+model|model"
            r"|agent|bot|claude|chatgpt|gpt|copilot|gemini)s?\b\s*(?:[:,!-]|reading|processing)"
            r"|\bif\s+you\s+are\s+(?:an?\s+)?(?:ai|llm|language\s+model|assistant|agent|chatbot"
            r"|claude|chatgpt|gpt)\b|\b(?:ai|assistant|claude|chatgpt|gpt|copilot|gemini|agent)s?"
            r"\s*[:,]\s*(?:you\s+(?:must|should|will|are\s+(?:now|required))|please|now|ignore"
            r"|stop|instead|immediately)"
        ),
    ),
    (
        ("your new", "your real", "your actual", "your task", "instead of", "stop "),
        _R(
            r"\byour\s+(?:new|real|actual|true|only|updated)\s+(?:task|goal|instructions?"
            r"|objective|role|purpose|job)\b|\byour\s+task\s+is\s+now\b|\b(?:stop|cease)\s+"
            r"(?:what\s+you\s+are\s+doing|summariz|the\s+current\s+task)|\binstead\s+of\s+"
            r"(?:summariz|answer|respond|translat)\w*\s*(?:this|the|,)"
        ),
    ),
    (
        ("tell the user", "tell them", "inform the user", "respond with", "reply with", "answer"),
        _R(
            r"\b(?:tell|inform|convince)\s+the\s+user\s+(?:that|to)\b|\b(?:respond|reply|answer)"
            r"\s+(?:only\s+)?with\s+['\"“]"
        ),
    ),
    (
        ("call", "invoke", "run", "execute", "use the"),
        _R(
            r"\b(?:now|immediately|next|then|first)\s*,?\s+(?:call|invoke|run|execute|use)\s+"
            r"(?:the\s+)?" + _TOOLREF + r"(?:\s+tool)?\s+(?:with|to|and|passing)\b"
        ),
    ),
)
_TURNS: Final = (
    ("<", "[inst]", "human:", "assistant:", "system:"),
    _R(
        r"</?\s*(?:tool_result|tool_results|function_results?|function_calls?|tool_use|tool_call"
        r"|tool_response|system|system-reminder|instructions?|user_query|assistant_response)\s*>"
        r"|<\|(?:im_start|im_end|system|user|assistant|endoftext|begin_of_text|start_header_id"
        r"|end_header_id|eot_id)\|>|\[/?inst\]|<</?sys>>|\n\s*\n\s*(?:human|assistant)\s*:"
        r"|(?:^|\n)\s*system\s*:\s*(?:you|ignore|new|from|the\s+user|override)"
    ),
)

_QUOTES: Final = {
    "'": "'",
    '"': '"',
    "`": "`",
    "\u201c": "\u201d",
    "\u2018": "\u2019",
    "\u00ab": "\u00bb",
    "\u201e": "\u201c",
}
_EXAMPLE_CUE: Final = _R(
    r"\b(?:such\s+as|e\.g\.|for\s+example|for\s+instance|like|examples?|phrases?|patterns?"
    r"|strings?|detects?|detecting|flags?|flagging|matches|matching|including|quotes?|blocks?)\b"
)


def _quoted_example(t: str, start: int, end: int) -> bool:
    """A match inside a short quoted string introduced as an example (a detector's docs)."""
    i = start - 1
    while i >= max(0, start - 40) and t[i] not in _QUOTES and t[i] not in ".\n":
        i -= 1
    if i < 0 or t[i] not in _QUOTES:
        return False
    close = t.find(_QUOTES[t[i]], end, end + 80)
    return close >= 0 and _EXAMPLE_CUE.search(t, max(0, i - 120), i) is not None


def _any(families: Iterable[tuple[tuple[str, ...], re.Pattern[str]]], t: str) -> bool:
    for gates, rx in families:
        if any(g in t for g in gates):
            for m in rx.finditer(t):
                if not _quoted_example(t, m.start(), m.end()):
                    return True
    return False


def _hidden(t: str) -> bool:
    if _any(_HIDDEN, t) or _any((_EXFIL_HIDDEN,), t):
        return True
    if "<!--" in t:
        for m in re.finditer(r"<!--(.*?)(?:-->|$)", t, re.S):
            body = m.group(1)
            if _COMMENT_TO.search(body) and _COMMENT_DO.search(body):
                return True
    return False


_COMMENT_TO: Final = _R(
    r"\b(?:assistant|ai|llm|claude|gpt|chatgpt|model|agent|copilot|gemini|language\s+model)s?\b"
)
_COMMENT_DO: Final = _R(
    r"\b(?:must|should|always|never|do\s+not|don'?t|ignore|instead|please|remember|make\s+sure"
    r"|you\s+are|your\s+task|instructions?|read|send|include)\b"
)


def _sensitive(t: str) -> bool:
    if not any(g in t for g in _SENSITIVE_GATES):
        return False
    for rx, verb in ((_SENSITIVE_STRONG, _READ_VERB), (_SENSITIVE_WEAK, _TRANSFER_VERB)):
        for m in rx.finditer(t):
            before = t[max(0, m.start() - 100) : m.start()]
            cut = max(before.rfind(". "), before.rfind("\n"))
            before = before[cut + 1 :] if cut >= 0 else before
            v = None
            for v in verb.finditer(before):  # noqa: B007 - the last one is wanted
                pass
            if v is not None and not _NEGATED.search(before, 0, v.start()):
                return True
            if _AFTER_TRANSFER.search(t, m.end(), m.end() + 80):
                return True
    return False


def _shadowing(t: str, own: str) -> bool:
    for gates, rx in _SHADOW:
        if not any(g in t for g in gates):
            continue
        for m in rx.finditer(t):
            ref = m.groupdict().get("ref")
            if ref is not None:
                name = ref.split()[-1].strip("`")
                pre = m.groupdict().get("pre")
                if name == "tool" and pre in (None, "this", "the", "a", "our"):
                    continue
                if name.replace("-", "_") == own:
                    continue
            return True
    return False


def _injection(t: str, raw: str) -> bool:
    gates, rx = _TURNS
    if any(g in t for g in gates) and rx.search(t) and not _all_quoted(rx, t):
        return True
    return _any(_ADDRESS, t) or _exfil_link(raw)


def _all_quoted(rx: re.Pattern[str], t: str) -> bool:
    return all(_quoted_example(t, m.start(), m.end()) for m in rx.finditer(t))


# --- markdown / HTML image exfiltration -------------------------------------------------------

_IMAGE: Final = _R(
    r"!\[[^\]\n]{0,300}\]\(\s*<?(https?://[^)\s>]+)|<img\b[^>]*?\bsrc\s*=\s*[\"']?(https?://[^\"'\s>]+)",
    re.I,
)
_LINK: Final = _R(r"(?<!!)\[[^\]\n]{0,300}\]\(\s*<?(https?://[^)\s>]+)", re.I)
_TEMPLATE: Final = _R(
    r"\{\{?\s*[a-z_][\w. -]{0,40}\}\}?|<[a-z_ -]{3,40}>|%3c[a-z_]{3,40}%3e|\$\{?[a-z_]{3,}\}?"
    r"|%7b%7b?[a-z_]+%7d|\[[a-z_ ]{3,40}\]",
    re.I,
)
_PARAM_WORDS = (
    "data exfil leak secret secrets password passwd pwd history conversation chat context prompt "
    "memory cookie cookies creds credentials payload content msg message summary info ssn apikey "
    "api_key userdata user_data dump body text"
)
_SUSPICIOUS_PARAM: Final = frozenset(_PARAM_WORDS.split())
_LOCAL_HOSTS: Final = ("localhost", "127.0.0.1", "[::1]")


def _suspicious_url(url: str, *, image: bool) -> bool:
    try:
        parts = urlsplit(url)
    except ValueError:
        return False
    if (parts.hostname or "") in _LOCAL_HOSTS:
        return False
    if _TEMPLATE.search(parts.query) or _TEMPLATE.search(parts.path):
        return True
    for name, value in parse_qsl(parts.query, keep_blank_values=True):
        words = len(re.findall(r"[a-z]{2,}", value.lower()))
        if name.lower() in _SUSPICIOUS_PARAM and len(value) >= (4 if image else 16):
            return True
        if words >= (3 if image else 6) and " " in value:
            return True
    return False


def _exfil_link(raw: str) -> bool:
    if "](" not in raw and "<img" not in raw.lower():
        return False
    for m in _IMAGE.finditer(raw):
        if _suspicious_url(m.group(1) or m.group(2), image=True):
            return True
    return any(_suspicious_url(m.group(1), image=False) for m in _LINK.finditer(raw))


# --- per-string checks ------------------------------------------------------------------------

_PADDING: Final = _R(r"\n(?:[ \t]*\n){24,}|[ \t\u00a0]{300,}")


def _char_rules(s: str, path: str, out: list[Finding], *, strict_ansi: bool) -> None:
    if text.suspicious(s):
        if text.invisible_reasons(s):
            out.append(_f(INVISIBLE_UNICODE, path))
        if text.has_ansi(s, strict=strict_ansi):
            out.append(_f(ANSI_ESCAPE, path))
    if len(s) > MAX_STRING or (len(s) > 300 and _PADDING.search(s)):
        out.append(_f(EXCESSIVE_LENGTH, path))


def _instructions(t: str) -> bool:
    """Decoded payload text that reads as instructions or points at secrets."""
    return (
        _hidden(t)
        or _injection(t, t)
        or _shadowing(t, "")
        or _SENSITIVE_STRONG.search(t) is not None
        or _any((_EXFIL_SCHEMA,), t)
    )


def _encoded(s: str) -> bool:
    if len(s) < 24:
        return False
    return any(_instructions(text.fold(d)) for d in text.decoded_payloads(s))


def _smuggled(s: str) -> bool:
    """Instructions spelled in invisible Unicode tag characters."""
    hidden = text.tag_text(s) if not s.isascii() else ""
    return bool(hidden) and _instructions(hidden.lower())


def _text_rules(s: str, path: str, zone: str, own: str, out: list[Finding]) -> None:
    """zone: "text" (name, title, description), "schema" (schema strings and keys), "result"."""
    _char_rules(s, path, out, strict_ansi=zone != "result")
    t = text.fold(s)
    hidden = _hidden(t) or _smuggled(s)
    if hidden:
        out.append(_f(HIDDEN_INSTRUCTIONS, path))
    if zone == "result":
        if _injection(t, s):
            out.append(_f(RESULT_INJECTION, path))
    else:
        sensitive = _sensitive(t)
        if sensitive:
            out.append(_f(SENSITIVE_FILE_ACCESS, path))
        shadow = _shadowing(t, own)
        if shadow:
            out.append(_f(CROSS_TOOL_SHADOWING, path))
        if zone == "schema" and (
            hidden or sensitive or shadow or _any((_EXFIL_SCHEMA,), t) or _any(_ADDRESS, t)
        ):
            out.append(_f(SCHEMA_POISONING, path))
    if _encoded(s):
        out.append(_f(ENCODED_PAYLOAD, path))


# --- exfiltration parameters ------------------------------------------------------------------

_EXFIL_NAME: Final = _R(
    r"(?:sys|system|developer|dev|assistant|hidden|internal|initial|original|raw|full|model"
    r"|agent|ai|llm|base|meta)(?:prompt|prompts|message|instructions?|context|rules)"
    r"|(?:conversation|convo|chat|dialog|dialogue|session|message|messages|thread|llm|model|ai"
    r"|assistant)(?:history|log|logs|transcript|context|dump|memory|so_far|sofar)"
    r"|(?:context|memory|prompt|contextwindow|state)(?:dump|window|contents?|snapshot|export|full)"
    r"|(?:previous|prior|past|earlier|all|full|entire|complete|whole)(?:messages?|conversation"
    r"|convo|context|instructions|prompts?|turns|chat|history|dialog|dialogue|transcript)"
    r"|fullcontext|contextwindow|modelcontext|yourinstructions|yourprompt"
)
_NAME_SEPARATORS: Final = _R(r"[\s_\-.]+")


def _exfil_name(name: str) -> bool:
    return _EXFIL_NAME.fullmatch(_NAME_SEPARATORS.sub("", text.fold(name))) is not None


# --- definitions ------------------------------------------------------------------------------

_SCHEMA_KEYS: Final = ("inputSchema", "outputSchema")
_TEXT_KEYS: Final = ("title", "description")


def _schema(node: Any, path: str, own: str, out: list[Finding]) -> None:
    if isinstance(node, str):
        _text_rules(node, path, "schema", own, out)
    elif isinstance(node, list):
        for i, v in enumerate(node):
            _schema(v, f"{path}.{i}", own, out)
    elif isinstance(node, dict):
        props = node.get("properties")
        required = node.get("required")
        if isinstance(props, dict) and isinstance(required, list):
            for name in required:
                if isinstance(name, str) and name in props and _exfil_name(name):
                    out.append(_f(EXFILTRATION_PARAMETER, f"{path}.properties.{name}"))
        for k, v in node.items():
            sub = f"{path}.{k}"
            if k in ("properties", "patternProperties", "$defs", "definitions") and isinstance(
                v, dict
            ):
                for name, child in v.items():
                    if isinstance(name, str):
                        _text_rules(name.replace("_", " "), f"{sub}.{name}", "schema", own, out)
                    _schema(child, f"{sub}.{name}", own, out)
            else:
                _schema(v, sub, own, out)


def _other(node: Any, path: str, out: list[Finding]) -> None:
    """Fields the model may see but that hold no prose (uri, mimeType, icons...)."""
    if isinstance(node, str):
        _char_rules(node, path, out, strict_ansi=True)
    elif isinstance(node, list):
        for i, v in enumerate(node):
            _other(v, f"{path}.{i}", out)
    elif isinstance(node, dict):
        for k, v in node.items():
            _other(v, f"{path}.{k}", out)


def _dedupe(found: list[Finding]) -> tuple[Finding, ...]:
    return tuple(dict.fromkeys(found))


def scan_definition(kind: str, definition: Mapping[str, Any]) -> tuple[Finding, ...]:
    """Findings in one tool, prompt, resource or resourceTemplate definition (`kind` is one of
    those names). Spoofing against other names needs the list: see `DefinitionScanner.scan_list`."""
    out: list[Finding] = []
    raw_name = definition.get("name")
    name = raw_name if isinstance(raw_name, str) else ""
    own = text.fold(name).replace("-", "_")
    if name:
        _char_rules(name, "name", out, strict_ansi=True)
        if len(name) > MAX_NAME:
            out.append(_f(EXCESSIVE_LENGTH, "name"))
        if text.lookalike_name(name):
            out.append(_f(TOOL_NAME_SPOOFING, "name"))
    size = 0
    for key, value in definition.items():
        if key in ("name", "_meta"):
            continue
        if key in _TEXT_KEYS and isinstance(value, str):
            size += len(value)
            _text_rules(value, key, "text", own, out)
        elif key in _SCHEMA_KEYS:
            _schema(value, key, own, out)
        elif key == "arguments" and kind == "prompt" and isinstance(value, list):
            for i, arg in enumerate(value):
                required = isinstance(arg, Mapping) and arg.get("required") is True
                if required and _exfil_name(str(arg.get("name", ""))):
                    out.append(_f(EXFILTRATION_PARAMETER, f"arguments.{i}.name"))
                _schema(arg, f"arguments.{i}", own, out)
        elif key == "annotations" and isinstance(value, Mapping):
            for k, v in value.items():
                if isinstance(v, str):
                    _text_rules(v, f"annotations.{k}", "text", own, out)
        else:
            _other(value, key, out)
    if size > MAX_DEFINITION or (size > MAX_STRING and len(_dumps(definition)) > MAX_DEFINITION):
        out.append(_f(EXCESSIVE_LENGTH, ""))
    return _dedupe(out)


# --- results ----------------------------------------------------------------------------------

_BINARY_KEYS: Final = frozenset({"blob"})


def _result(node: Any, path: str, out: list[Finding]) -> None:
    if isinstance(node, str):
        _text_rules(node, path, "result", "", out)
    elif isinstance(node, list):
        for i, v in enumerate(node):
            _result(v, f"{path}.{i}" if path else str(i), out)
    elif isinstance(node, dict):
        binary = node.get("type") in ("image", "audio")
        for k, v in node.items():
            if k == "_meta" or k in _BINARY_KEYS or (binary and k == "data"):
                continue
            _result(v, f"{path}.{k}" if path else str(k), out)


def scan_result(result: Any) -> tuple[Finding, ...]:
    """Findings in a JSON-RPC result (tool result content and structuredContent, resource
    contents, prompt messages, or any other shape: every string in it is read)."""
    out: list[Finding] = []
    _result(result, "", out)
    return _dedupe(out)


# --- names ------------------------------------------------------------------------------------


@lru_cache(maxsize=16384)
def _name_keys(name: str) -> tuple[str, str]:
    return text.fold_name(name), text.skeleton(name)


def skeleton(name: str) -> str:
    """The confusable skeleton of a name (see `text.skeleton`)."""
    return _name_keys(name)[1]


def confusable_with(name: str, others: Iterable[str]) -> str | None:
    """The first of `others` that `name` could be mistaken for (case, width, separators,
    homoglyphs, 0/o and 1/l), or None. An identical name is not a spoof."""
    fold, skel = _name_keys(name)
    for other in others:
        if other != name:
            f, s = _name_keys(other)
            if f == fold or s == skel:
                return other
    return None


def spoofed_names(names: Iterable[str]) -> dict[str, str]:
    """Every name in `names` that is confusable with another one, mapped to that other one
    (both of a pair are reported: which one is the original is not knowable here). O(n)."""
    first: dict[str, str] = {}
    found: dict[str, str] = {}
    for name in dict.fromkeys(names):
        for key in _name_keys(name):
            seen = first.setdefault(key, name)
            if seen != name:
                found.setdefault(name, seen)
                found.setdefault(seen, name)
    return found


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
        k = (kind, key if key is not None else self.key(definition))
        cache = self._cache
        hit = cache.pop(k, None)
        if hit is None:
            hit = scan_definition(kind, definition)
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
