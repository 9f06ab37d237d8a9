"""The matching machinery behind `findings`: rule families as anchored regexes, document gates.

Why it exists apart from `findings.py` (which walks definitions and results and names the
findings): this is the hot path, shaped for speed. Python's `re` is fast when a pattern starts
with a literal and slow (0.05-0.3 µs per character) when it starts with an alternation or `\\b`.
So each family lists its anchors, the literals its matches start with; `str.find` (C speed)
locates them and the regex is only `match`ed at those positions, bounded to the string the
anchor is in. Before that, `gates.py` reads the item's JSON once as a set of words, and a
family whose `words` are absent is not even looked for: each gate is a word every match of the
family contains, so skipping never loses a match. The context checks a match must pass
(quoted examples, a verb before a path, which tool a sentence is about) are in `checks.py`.

All text here is folded first (`text.fold`: lower case; NFKC, homoglyphs and invisible
characters undone for non-ASCII text).
"""

from __future__ import annotations

import re
from bisect import bisect_right
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Final

from lockgate.guardrails.checks import (
    READ_VERB,
    TOOLREF,
    TRANSFER_VERB,
    Check,
    after_blank_line,
    comment,
    line_start,
    not_self,
    quoted_example,
    ref_before,
    verb_near,
)
from lockgate.guardrails.exfil import exfil_link

_R = re.compile
_TOOLREF = TOOLREF
_NOT = r"(?:not|never|without|n['\u2019]t|dont)"


@dataclass(frozen=True, slots=True)
class Family:
    """One pattern of a rule group. `group` decides the rule per zone (see findings.py)."""

    group: str
    anchors: tuple[str, ...]
    rx: re.Pattern[str]
    check: Check | None = None
    words: tuple[frozenset[bytes], ...] = ()  # gate: each set meets the item's words
    snake: bool = False  # matches may need "_" (tool names, paths): also run on the raw text
    quoted_exempt: bool = True  # a quoted example ("such as 'ignore previous...'") is not a hit


def _fam(
    group: str,
    anchors: str,
    pattern: str,
    check: Check | None = None,
    *,
    words: str = "",
    snake: bool = False,
    quoted_exempt: bool = True,
) -> Family:
    gate = tuple(frozenset(w.encode() for w in part.split()) for part in words.split("|") if part)
    return Family(
        group, tuple(anchors.split("|")), _R(pattern, re.S), check, gate, snake, quoted_exempt
    )


# --- families ---------------------------------------------------------------------------------

_EXFIL_STRONG = (
    r"your\s+(?:full\s+|entire\s+|complete\s+|whole\s+)?(?:system\s+prompt|instructions|initial"
    r"\s+prompt|context(?:\s+window)?|memory|previous\s+messages|conversation(?:\s+history)?"
    r"|chat\s+history|prompt)|everything\s+(?:above|before\s+this|so\s+far|in\s+(?:the|your)"
    r"\s+context|the\s+user\s+(?:has\s+)?(?:said|wrote|typed|told\s+you|asked))|conversation\s+so\s+far|all\s+(?:prior|previous|earlier)\s+messages"
    r"|system\s+prompt\s+verbatim|verbatim\s+(?:copy\s+of\s+)?(?:the\s+|your\s+)?"
    r"(?:system\s+prompt|conversation|instructions)"
)
_STRONG_ANCHORS = "your|everything|conversation|all|system|verbatim"
_EXFIL_WEAK = (
    r"(?:full|entire|complete|whole)\s+(?:conversation|chat|history|context|transcript"
    r"|system\s+prompt|message\s+history)|system\s+prompt|previous\s+(?:messages|turns"
    r"|instructions)|(?:conversation|chat)\s+history"
)
_TARGET_WORDS = (
    "prompt instructions context memory messages conversation history far above before verbatim "
    "said wrote typed told asked"
)
_WEAK_ANCHORS = "full|entire|complete|whole|system|previous|conversation|chat"
_VERBS = (
    "fill|populate|set|put|pass|include|provide|insert|paste|copy|send|add|attach|dump|enter"
    "|repeat|output|print|append|forward|list|supply|give"
)
_VERB_BEFORE: Final = _R(r"\b(?:" + _VERBS + r")\b[^.\n]{0,40}?$")


def _verb_before(doc: str, m: re.Match[str], lo: int, own: str) -> bool:
    """A fill/pass/include... verb shortly before the exfiltration target."""
    return _VERB_BEFORE.search(doc, max(lo, m.start() - 50), m.start()) is not None


# "List previous messages", "include the chat history" describe honest chat tools: a generic
# target ("the full conversation", "previous messages") needs a verb that fills a field.
_FILL_VERBS = "fill|populate|paste|dump|insert|put|copy|repeat|supply|append|attach"
_FILL_BEFORE: Final = _R(r"\b(?:" + _FILL_VERBS + r")\b[^.\n]{0,40}?$")


_INTO_THIS: Final = _R(
    r"[^.\n]{0,40}?\b(?:here|this\s+(?:field|parameter|argument|property|value))\b"
)


def _fill_before(doc: str, m: re.Match[str], lo: int, own: str) -> bool:
    """A filling verb before, or any such verb and "here"/"this field" after the target."""
    if _FILL_BEFORE.search(doc, max(lo, m.start() - 50), m.start()) is not None:
        return True
    return _verb_before(doc, m, lo, own) and _INTO_THIS.match(doc, m.end()) is not None


_MODEL = r"(?:ai|assistant|llm|language\s+model|model|agent|bot|claude|chatgpt|gpt|copilot|gemini)"
_TELL = r"(?:tell|telling|inform|informing|notify|notifying|alert|alerting|warn|warning)"
_SHOW = (
    r"(?:mention|mentioning|reveal|revealing|disclose|disclosing|show|showing|explain|explaining"
    r"|report|reporting)"
)
_WHAT = (
    r"(?:this|it|that|these|any\s+of\s+(?:this|these)|the\s+(?:above|following|instructions?"
    r"|notes?|steps?|side\s+effects?|requirements?))"
)
# A tag named in prose ("the <system> tag is not supported") is not a forged turn.
_NOT_A_TAG_MENTION = r"(?!\s*(?:tags?|elements?)\b)"
# Who the model must keep in the dark: the user, or the same person described.
_USER = (
    r"(?:(?:human\s+)?users?|(?:the\s+)?human(?:\s+operator)?|operators?|(?:the\s+)?person\s+you"
    r"(?:['\u2019]re|\s+are)\s+(?:helping|assisting|talking\s+to|working\s+for))"
)
_VOID = (
    r"(?:void|cancell?ed|obsolete|outdated|revoked|invalid|overridden|suspended|superseded"
    r"|withdrawn|no\s+longer\s+valid)\b"
)
# A bracketed label that opens orders for the model ("[assistant instructions]"); not a
# disclosure such as "[AI note] this page was translated automatically".
_LABEL = (
    r"\[(?:assistant|system|ai|model|admin|agent)\s+(?:instructions?|prompt|directives?"
    r"|override)\s*\]"
)
_LABEL_ANCHORS = "[assistant|[system|[ai|[model|[admin|[agent"
_LABEL_WORDS = (
    "assistant system ai model admin agent|instruction instructions prompt directive directives "
    "override"
)
_READ_WORDS = (
    "read reads reading cat open opens opening dump print output copy send upload include attach "
    "paste pass provide exfiltrate forward post share leak grab collect extract contents content "
    "text put add return then"
)
_SENSITIVE_STRONG = (
    r"\.ssh\b(?!/(?:known_hosts|config|authorized_keys)\b)|\bid_(?:rsa|ed25519|ecdsa|dsa)\b"
    r"|\.aws/(?:credentials|config)|\.config/gcloud|\bapplication_default_credentials\.json"
    r"|\.azure/|\.kube/config|\.docker/config\.json|\.netrc\b|\.npmrc\b|\.pypirc\b"
    r"|\.git-credentials\b|\bmcp\.json\b|\bclaude_desktop_config\.json|\.cursor/"
    r"|/etc/(?:shadow|passwd|sudoers)\b|\.gnupg\b|\blogin\.keychain|\bwallet\.dat"
    r"|\bprivate[\s_]keys?\b|\bcookies(?:\.sqlite)?\b|\blogin\s+data\b"
)
SENSITIVE_STRONG: Final = _R(_SENSITIVE_STRONG)

FAMILIES: Final = (
    # hidden instructions
    _fam(
        "hidden",
        "<",
        r"<\s*/?\s*(?:important|instructions?|system|secret|hidden|admin|critical|assistant_only"
        r"|tool_result|function_results?|system-reminder)\s*>"
        + _NOT_A_TAG_MENTION
        + r"|<\|(?:im_start|im_end|system|endoftext|begin_of_text|start_header_id|eot_id)\|>"
        r"|<</?sys>>",
        snake=True,
    ),
    _fam("hidden", "[inst|[/inst", r"\[/?inst\]", words="inst"),
    _fam(
        "hidden",
        "ignor|disregard|forget|pay|set aside|discard",
        r"\b(?:ignore|ignoring|disregard|disregarding|forget|pay\s+no\s+attention\s+to|set\s+aside"
        r"|discard)\W+(?:(?:all|any|the|of|every|your"
        r"|everything|each)\W+){0,3}(?:previous|prior|above|earlier|preceding|former|original"
        r"|initial|system|safety|developer)\W+(?:\w+\W+){0,2}?(?:instructions?|prompts?"
        r"|directions?|guidelines|directives|commands|rules|messages|context)\b"
        r"|\b(?:ignore|disregard|forget)\W+(?:all\W+)?(?:of\W+)?(?:the\W+)?(?:above|everything"
        r"\W+(?:above|before|you\W+(?:were|have\W+been)\W+told))\b"
        r"|\b(?:ignore|disregard|forget)\W+your\W+(?:\w+\W+)?(?:instructions|guidelines"
        r"|system\W+prompt|programming|rules|training)\b",
        words="ignore ignoring disregard disregarding forget pay aside discard",
    ),
    _fam(
        "hidden",
        "previous|prior|earlier|above|original|system|all",
        r"\b(?:previous|prior|earlier|above|original|system|all)\s+(?:system\s+)?(?:instructions"
        r"|directions|guidelines|guidance|rules|prompts?)(?:\s+(?:from|of|by)\s+(?:\w+\s+){0,2}?"
        r"\w+)?\s+(?:no\s+longer\s+apply|(?:are|is|have\s+been|has\s+been)\s+(?:now\s+)?"
        + _VOID
        + r"|(?:do|does)\s+not\s+apply)",
        words="instructions directions guidelines guidance rules prompt prompts|longer void "
        "cancelled canceled obsolete outdated revoked invalid overridden suspended superseded "
        "withdrawn apply",
    ),
    _fam(
        "hidden",
        "not|never|without|n't|n\u2019t|dont|no need",
        r"(?:" + _NOT + r"|no\s+need\s+to)\s+(?:ever\s+)?" + _TELL + r"\s+(?:the\s+)?users?\b"
        r"(?!['\u2019]s)(?!\s+(?:more|again|twice))"
        r"|" + _NOT + r"\s+(?:ever\s+)?(?:let|letting)\s+(?:the\s+)?users?\s+(?:know|see|notice"
        r"|find\s+out|be\s+aware)"
        r"|"
        + _NOT
        + r"\s+(?:ever\s+)?"
        + _SHOW
        + r"\s+(?:anything\s+|this\s+)?to\s+(?:the\s+)?"
        + _USER
        + r"\s+(?:that|about|how|why|what)\b"
        r"|" + _NOT + r"\s+(?:ever\s+)?" + _SHOW + r"\s+" + _WHAT + r"\b(?:[^.\n]{0,30}?\bto\s+"
        r"(?:the\s+)?users?\b|(?<=instructions)|(?<=instruction)|(?<=note)|(?<=notes)"
        r"|(?<=steps)|(?<=effect)|(?<=effects))",
        words=(
            "not never without don dont no t|user users instructions instruction "
            "note notes steps effect effects person human operator operators"
        ),
    ),
    _fam(
        "hidden",
        "user",
        r"users?\s+(?:must|should|need)\s+(?:not|never)\s+(?:know|see|notice|find\s+out"
        r"|be\s+(?:told|informed|aware|notified))",
        words="not never",
    ),
    _fam(
        "hidden",
        "under no circumstances|never|not",
        r"(?:under\s+no\s+circumstances|never|not)\s+(?:should|must|may|shall|will|can)\s+(?:the\s+)?"
        r"users?\s+(?:ever\s+)?(?:learn|know|find\s+out|discover|realize|notice|see|be\s+told)\b",
        words="user users|learn know find discover realize notice see told",
    ),
    _fam(
        "hidden",
        "keep|hide|behind|silently|secretly|covertly|quietly",
        r"\b(?:keep|hide)\s+(?:this|it|that|these)(?:\s+\w+){0,3}?\s+(?:secret\s+|hidden\s+)?"
        r"from\s+(?:the\s+)?" + _USER + r"\b|\bbehind\s+the\s+users?['\u2019]?s?\s+back\b"
        r"|\b(?:silently|secretly|covertly|quietly)\s+(?:also\s+)?(?:send|forward|copy|upload"
        r"|include|add|read|exfiltrate|bcc|cc|post|transmit|attach|leak)\b",
        words="keep hide behind silently secretly covertly quietly",
    ),
    _fam(
        "hidden",
        "new|updated|real|actual|true|hidden|secret|override|additional|important|system|you"
        "|from|enable|enter",
        r"\b(?:new|updated|real|actual|true|hidden|secret|override|additional|important)\s+"
        r"(?:system\s+)?instructions?\s*(?::|follow)|\bsystem\s+(?:override|prompt\s+override"
        r"|instruction)s?\s*:|\byou\s+are\s+now\s+(?:in\s+)?(?:developer|dan|jailbroken"
        r"|jailbreak|unrestricted|admin|god|an?\s+unfiltered)\b|\byou\s+are\s+now\s+an?\s+"
        r"(?:\w+\s+){0,2}?(?:bot|assistant|agent|ai|model|persona|character)\b"
        r"|\bfrom\s+now\s+on,?\s+you"
        r"\s+(?:must|will|are|should|shall)\b|\b(?:enable|enter)\s+(?:developer|jailbreak)\s+mode",
        words="instruction instructions override overrides now mode",
    ),
    _fam(
        "hidden",
        _STRONG_ANCHORS,
        r"\b(?:" + _EXFIL_STRONG + ")",
        _verb_before,
        words=_VERBS.replace("|", " ") + "|" + _TARGET_WORDS,
    ),
    _fam(
        "hidden",
        "instructions|directions|guidance|prompt",
        # Not "rules" or "guidelines": "the rules you received last year are outdated" is HR.
        r"(?:instructions|directions|guidance|prompts?)\s+(?:you\s+(?:received"
        r"|were\s+given|got|have\s+been\s+given)|given\s+to\s+you|(?:given|received)\s+"
        r"(?:before|earlier|previously|so\s+far))(?:\s+\w+){0,4}?\s+(?:are|is|have\s+been"
        r"|has\s+been)\s+(?:now\s+)?" + _VOID,
        words="you given received|void cancelled canceled obsolete outdated revoked invalid "
        "overridden suspended superseded withdrawn valid",
    ),
    _fam(
        "hidden",
        "ignor|disregard|forget",
        r"\b(?:ignore|disregard|forget)\W+(?:the\W+|this\W+|that\W+)?(?:(?:user['\u2019]s|earlier"
        r"|previous|original|prior|above|last)\W+)+(?:request|task|question|query|ask)s?\b"
        r"(?:\W+from\W+(?:the\W+)?users?)?[^.\n]{0,20}?\binstead\b",
        words="ignore disregard forget|request requests task tasks question questions query "
        "queries ask asks|instead",
    ),
    _fam("hidden", _LABEL_ANCHORS, _LABEL, words=_LABEL_WORDS),
    _fam("hidden", "<!--", r"<!--(.*?)(?:-->|$)", comment, snake=True, quoted_exempt=False),
    # sensitive files: strong targets after a read verb, weak ones after a transfer verb
    *(
        _fam(
            "sensitive",
            anchors,
            _SENSITIVE_STRONG,
            verb_near(READ_VERB),
            words=_READ_WORDS + "|" + targets,
            snake=True,
            quoted_exempt=False,
        )
        for anchors, targets in (
            (".ssh|id_", "ssh rsa ed ecdsa dsa"),
            (
                ".aws/|.config/gcloud|application_default|.azure/|.kube/|.docker/|.netrc|.npmrc"
                "|.pypirc|.git-credentials",
                "aws gcloud credentials azure kube docker netrc npmrc pypirc",
            ),
            ("mcp.json|claude_desktop|.cursor/", "mcp claude cursor"),
            (
                "/etc/|.gnupg|login|wallet.dat|private|cookies",
                "etc gnupg login wallet private cookies",
            ),
        )
    ),
    _fam(
        "sensitive",
        ".env|_history|secrets.|credentials.json|.pem",
        r"(?<![\w.])\.env(?:\.[a-z]+)?\b|_history\b|secrets\.(?:ya?ml|json|toml)\b"
        r"|credentials\.json\b|\.pem\b",
        verb_near(TRANSFER_VERB),
        words=_READ_WORDS + "|env history secrets credentials pem",
        snake=True,
        quoted_exempt=False,
    ),
    # cross-tool shadowing
    _fam(
        "shadow",
        "side",
        r"\bside[\s-]effects?\s+on\s+(?:the\s+)?(?:\w+\s+){0,3}?(?:tools?\b|" + _TOOLREF + ")",
        snake=True,
        words="side|effect effects",
    ),
    _fam(
        "shadow",
        "when|if|every|each|any",
        r"\b(?:when|whenever|if|every\s+time|each\s+time|any\s+time)\b[^.\n]{0,60}?"
        r"(?P<ref>(?:(?P<pre>\w+)\s+)?(?:" + _TOOLREF + r"|tool))\s*(?:tool\s+)?(?:\)\s*)?"
        r"(?:is\s+|are\s+|gets\s+|was\s+)?(?:used|called|invoked|run|executed|available"
        r"|present|requested|triggered)\b[^.\n]{0,120}?\b(?:must|should|always|make\s+sure"
        r"|be\s+sure|ensure|need\s+to|has\s+to|have\s+to)\b[^.\n]{0,60}?\b(?:send|change"
        r"|set|add|include|redirect|forward|copy|bcc|cc|replace|append|prepend|route|attach"
        r"|upload|post|modify|rewrite|swap|instead)\b",
        not_self,
        words=(
            "used called invoked run executed available present requested "
            "triggered|must should always make be ensure need has have|send change "
            "set add include redirect forward copy bcc cc replace append prepend "
            "route attach upload post modify rewrite swap instead"
        ),
        snake=True,
    ),
    _fam(
        "shadow",
        "when|if|every|each|any",
        r"\b(?:when|whenever|if|every\s+time|each\s+time|any\s+time)\b[^.\n]{0,40}?\b(?:calls?"
        r"|uses?|invokes?|runs?|triggers?)\s+(?:the\s+)?(?P<ref>" + _TOOLREF + r")(?:\s+tool)?\b"
        r"[^.\n]{0,120}?\b(?:must|should|always|make\s+sure|be\s+sure|ensure|need\s+to|has\s+to"
        r"|have\s+to)\b[^.\n]{0,60}?\b(?:send|change|set|add|include|redirect|forward|copy|bcc|cc"
        r"|replace|append|prepend|route|attach|upload|post|modify|rewrite|swap|instead|move)\b",
        not_self,
        words="call calls use uses invoke invokes run runs trigger triggers|must should always "
        "make be ensure need has have",
        snake=True,
    ),
    _fam(
        "shadow",
        "tool",
        r"tool\s+(?:must|should|will|shall)\s+(?:now\s+|also\s+|always\s+|only\s+)*(?:send|use"
        r"|include|add|forward|redirect|be\s+used|route|copy|bcc|cc|ignore|return|change|set"
        r"|be\s+called\s+with)\b",
        ref_before,
        words="must should will shall",
        snake=True,
    ),
    _fam(
        "shadow",
        "other",
        r"\bother\s+tools?\b[^.\n]{0,80}?\b(?:must|should|shall|need\s+to|have\s+to|are\s+"
        r"(?:required|not\s+allowed)|may\s+not|cannot)\b",
        words="other|tool tools",
    ),
    _fam(
        "shadow",
        "overrid|supersed|takes|replace",
        r"\b(?:overrides?|supersedes?|takes\s+precedence\s+over|replaces?)\s+(?:the\s+)?"
        r"(?:behaviou?r|instructions?|descriptions?|rules)\s+of\b",
        words=(
            "overrides override supersedes supersede precedence replaces replace|behavior "
            "behaviour instructions instruction description descriptions rules"
        ),
    ),
    _fam(
        "shadow",
        "never|not|n't|dont",
        _NOT
        + r"\s+(?:use|call|invoke|trust)\s+(?:the\s+|any\s+)?(?P<ref>other\s+tools?|"
        + _TOOLREF
        + r")(?:\s+tool)?\b[^.\n]{0,60}?(?:instead|use\s+this|only\s+this)",
        not_self,
        words="use call invoke trust|instead this",
        snake=True,
    ),
    _fam(
        "shadow",
        "all",
        r"\ball\s+(?:outgoing\s+)?(?:emails?|messages?|requests?|payments?|transfers?|files?)"
        r"\s+(?:\w+\s+){0,5}?(?:must|should|will|shall|are\s+to)\s+(?:now\s+|always\s+|also\s+)?"
        r"(?:be\s+)?(?:sent|send|forwarded|redirected|routed|copied|bcc'?d|cc'?d)\s+to\b",
        words=(
            "sent send forwarded redirected routed copied bcc cc bccd ccd|must "
            "should will shall are"
        ),
    ),
    _fam(
        "shadow",
        "use this",
        r"\buse\s+this\s+(?:tool\s+|one\s+)?instead\b[^.\n]{0,60}?\b(?:never|not|n['\u2019]t"
        r"|dont)\s+(?:use|call|invoke)\s+(?:the\s+)?(?P<ref>" + _TOOLREF + r")(?:\s+tool)?\b",
        not_self,
        words="instead|never not don dont t",
        snake=True,
    ),
    # addressed to the model from inside data (results, schema text)
    _fam(
        "address",
        "attention|important|message|note|notice|instruction|reminder|hey|dear",
        r"\b(?:attention|important|message|note|notice|instructions?|reminder|hey|dear)\s*"
        r"(?:to|for)?\s*(?:the\s+|any\s+|all\s+)?"
        + _MODEL
        + r"s?(?:\s+(?:assistant|agent|model|bot)s?)?\b\s*(?:[:,!-]|reading"
        r"|processing)",
        words=(
            "ai ais assistant assistants llm llms language model models agent "
            "agents bot bots claude claudes chatgpt chatgpts gpt gpts copilot "
            "copilots gemini geminis"
        ),
    ),
    _fam(
        "address",
        "if",
        r"\bif\s+you\s+are\s+(?:an?\s+)?(?:ai|llm|language\s+model|assistant|agent|chatbot"
        r"|claude|chatgpt|gpt)\b",
        words="you|ai llm language assistant agent chatbot claude chatgpt gpt",
    ),
    _fam(
        "address",
        "ai|assistant|claude|chatgpt|gpt|copilot|gemini|agent|llm|language|bot",
        r"\b(?:ai|assistant|claude|chatgpt|gpt|copilot|gemini|agent)s?\s*[:,]\s*(?:you\s+(?:must"
        r"|should|will|are\s+(?:now|required))|please|now|ignore|stop|instead|immediately|run"
        r"|call|send|forward|delete|execute|invoke|tell|reply|respond|disregard)"
        r"|\b(?:ai|llm|language\s+model|assistant|agent|bot|claude|chatgpt|gpt|copilot|gemini)s?\s+"
        r"(?:reading|processing|parsing|summari[sz]ing|viewing)\s+(?:this|these|the)\b",
        words=(
            "ai ais assistant assistants claude claudes chatgpt gpt gpts copilot "
            "copilots gemini agent agents llm llms language bot bots"
        ),
    ),
    _fam(
        "address",
        "your|stop|cease|instead",
        r"\byour\s+(?:new|real|actual|true|only|updated)\s+(?:task|goal|instructions?"
        r"|objective|role|purpose|job)\b|\byour\s+task\s+is\s+now\b|\b(?:stop|cease)\s+"
        r"(?:what\s+you\s+are\s+doing|summariz|the\s+current\s+task)|\binstead\s+of\s+"
        r"(?:summariz|answer|respond|translat)\w*\s*(?:this|the|,)",
        words="your stop cease instead",
    ),
    _fam(
        "address",
        "tell|inform|convince|respond|reply|answer",
        r"\b(?:tell|inform|convince)\s+the\s+user\s+(?:that|to)\b|\b(?:respond|reply|answer)"
        r"\s+(?:only\s+)?with\s+['\"\u201c]",
        words="tell inform convince respond reply answer",
    ),
    _fam(
        "address",
        "now|immediately|next|then|first",
        r"\b(?:now|immediately|next|then|first)\s*,?\s+(?:call|invoke|run|execute|use)\s+"
        r"(?:the\s+)?" + _TOOLREF + r"(?:\s+tool)?\s+(?:with|to|and|passing)\b",
        words="call invoke run execute use",
        snake=True,
    ),
    # asks for the model's context inside schema text
    _fam(
        "exfil",
        _STRONG_ANCHORS,
        r"\b(?:" + _EXFIL_STRONG + ")",
        _verb_before,
        words=_VERBS.replace("|", " ") + "|" + _TARGET_WORDS,
    ),
    _fam(
        "exfil",
        _WEAK_ANCHORS,
        r"\b(?:" + _EXFIL_WEAK + ")",
        _fill_before,
        words=_VERBS.replace("|", " ")
        + " "
        + _FILL_VERBS.replace("|", " ")
        + "|"
        + _TARGET_WORDS
        + " transcript turns",
    ),
    # forged turns inside a result
    _fam(
        "turns",
        "<",
        r"</?\s*(?:tool_result|tool_results|function_results?|function_calls?|tool_use|tool_call"
        r"|tool_response|system|system-reminder|instructions?|user_query|assistant_response)\s*>"
        + _NOT_A_TAG_MENTION
        + r"|<\|(?:im_start|im_end|system|user|assistant|endoftext|begin_of_text|start_header_id"
        r"|end_header_id|eot_id)\|>|<</?sys>>",
        snake=True,
    ),
    _fam("turns", _LABEL_ANCHORS, _LABEL, words=_LABEL_WORDS),
    _fam("turns", "[inst|[/inst", r"\[/?inst\]", words="inst"),
    _fam(
        "turns",
        "human|assistant",
        r"\b(?:human|assistant)\s*:",
        after_blank_line,
        words="human assistant",
    ),
    _fam(
        "turns",
        "system",
        r"\bsystem\s*:\s*(?:you|ignore|new|from|the\s+user|override)",
        line_start,
        words="system",
    ),
)


def hits(
    doc: str,
    starts: Sequence[int],
    ends: Sequence[int],
    groups: frozenset[str],
    own: str = "",
    words: frozenset[bytes] | None = None,
) -> Iterator[tuple[str, int]]:
    """(group, index of the string) for every family of `groups` matching in `doc`, the
    strings' folded texts laid end to end (string i is doc[starts[i]:ends[i]])."""
    for fam in FAMILIES:
        if fam.group in groups and (words is None or is_open(fam, words)):
            for m, i in matches(fam, doc, starts, ends):
                lo = starts[i]
                if (fam.check is None or fam.check(doc, m, lo, own)) and not (
                    fam.quoted_exempt and quoted_example(doc, m.start(), m.end(), lo)
                ):
                    yield fam.group, i


def is_open(fam: Family, words: frozenset[bytes]) -> bool:
    for ws in fam.words:  # noqa: SIM110 - a plain loop, no generator: this runs per family
        if ws.isdisjoint(words):
            return False
    return True


def matches(
    fam: Family, doc: str, starts: Sequence[int], ends: Sequence[int]
) -> Iterator[tuple[re.Match[str], int]]:
    rx = fam.rx
    for anchor in fam.anchors:
        p = doc.find(anchor)
        while p >= 0:
            i = bisect_right(starts, p) - 1
            m = rx.match(doc, p, ends[i])
            if m is not None:
                yield m, i
            p = doc.find(anchor, p + 1)


def instructions(t: str) -> bool:
    """Folded text (a decoded payload, tag-smuggled text) that reads as instructions or names
    a secret file: any family at all, and any strong sensitive path even without a verb."""
    groups = frozenset({"hidden", "shadow", "address", "exfil", "turns"})
    return (
        next(hits(t, (0,), (len(t),), groups), None) is not None
        or SENSITIVE_STRONG.search(t) is not None
        or exfil_link(t)
    )
