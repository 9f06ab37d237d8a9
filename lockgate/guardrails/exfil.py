"""Exfiltration channels: links and images whose URL carries data out, and parameters named
for the model's own context.

Why it exists: these two rules read structure (a URL's query, a parameter's name), not prose,
so they do not fit the anchored text families of `rules.py`. `urllib.parse` splits the URLs.
"""

from __future__ import annotations

import re
from typing import Final
from urllib.parse import parse_qsl, urlsplit

from lockgate.guardrails import text

_R = re.compile

# --- markdown / HTML images and links --------------------------------------------------------

_IMAGE: Final = _R(
    r"!\[[^\]\n]{0,300}\]\(\s*<?(https?://[^)\s]+)"
    r"|<img\b[^>]*?\bsrc\s*=\s*[\"']?(https?://[^\"'\s>]+)",
    re.I,
)
_LINK: Final = _R(r"(?<!!)\[[^\]\n]{0,300}\]\(\s*<?(https?://[^)\s]+)", re.I)
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
# An image query holding an upper-case placeholder for the model to fill
# (`?q=PASTE_THE_USER_SECRETS_HERE`): three or more segments, one of them naming data or
# asking to fill; an enum such as `DARK_MODE_V2` names neither.
_CAPS: Final = _R(r"(?<![A-Za-z0-9])[A-Z]{2,}(?:_[A-Z0-9]{2,}){2,}(?![A-Za-z0-9])")
_FILL_NAMES = (
    "PASTE INSERT FILL PUT HERE SECRET SECRETS PASSWORD PASSWORDS TOKEN TOKENS KEY KEYS HISTORY "
    "CONVERSATION CHAT CONTEXT PROMPT DATA MESSAGE MESSAGES CREDENTIAL CREDENTIALS INFO EMAIL "
    "EMAILS"
)
_FILL_WORDS: Final = frozenset(_FILL_NAMES.split())


def _placeholder(caps: str) -> bool:
    return not _FILL_WORDS.isdisjoint(caps.split("_"))


def _suspicious_url(url: str, *, image: bool) -> bool:
    """A URL whose query (or path) carries data out: a template to fill, a data-named parameter,
    or a sentence. Images load by themselves, so their bar is lower than links'."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return False
    if (parts.hostname or "") in _LOCAL_HOSTS:
        return False
    if _TEMPLATE.search(parts.query) or _TEMPLATE.search(parts.path):
        return True
    if image and any(_placeholder(m.group()) for m in _CAPS.finditer(parts.query)):
        return True
    for name, value in parse_qsl(parts.query, keep_blank_values=True):
        if name.lower() in _SUSPICIOUS_PARAM and len(value) >= (4 if image else 16):
            return True
        if " " in value and len(re.findall(r"[a-z]{2,}", value.lower())) >= (3 if image else 6):
            return True
    return False


def exfil_link(raw: str) -> bool:
    """A markdown/HTML image or markdown link to an external host carrying data."""
    if "](" not in raw and "<img" not in raw.lower():
        return False
    for m in _IMAGE.finditer(raw):
        if _suspicious_url(m.group(1) or m.group(2), image=True):
            return True
    return any(_suspicious_url(m.group(1), image=False) for m in _LINK.finditer(raw))


# --- exfiltration parameter names -------------------------------------------------------------

_EXFIL_NAME: Final = _R(
    r"(?:sys|system|developer|dev|assistant|hidden|internal|initial|original|raw|full|model"
    r"|agent|ai|llm|base|meta)(?:prompt|prompts|message|instructions?|context|rules)"
    r"|(?:full|entire|complete|whole)?(?:conversation|convo|chat|dialog|dialogue|session|message|messages|thread|llm|model|ai"
    r"|assistant)(?:history|log|logs|transcript|context|dump|memory|so_far|sofar)"
    r"|(?:context|memory|prompt|contextwindow)(?:dump|window|contents?|snapshot|export|full)"
    r"|(?:previous|prior|past|earlier|all|full|entire|complete|whole)(?:messages?|conversation"
    r"|convo|context|instructions|prompts?|turns|chat|history|dialog|dialogue|transcript)"
    r"|fullcontext|contextwindow|modelcontext|yourinstructions|yourprompt"
)
_NAME_SEPARATORS: Final = _R(r"[\s_\-.]+")


def exfil_name(name: str) -> bool:
    """A parameter named for the model's own context (system_prompt, conversationHistory...)."""
    return _EXFIL_NAME.fullmatch(_NAME_SEPARATORS.sub("", text.fold(name))) is not None
