"""A route's curated view of its upstream: which tools, prompts and resources it shows.

This runs on every list result and every call, so patterns are compiled once,
list results are filtered in one pass, and only the items an override changes
are copied.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from lockgate.mcp.uris import UriError, normalise, normalise_pattern, normalise_template


def _translate(pattern: str) -> str:
    """Regex for a glob with `*` and `?` only, immune to catastrophic backtracking.

    Each segment between two stars is matched at its leftmost occurrence inside an
    atomic group (the technique CPython's fnmatch uses): for fixed-length segments
    the leftmost match is always a correct choice, so the regex never retries
    earlier segments and a client-chosen name cannot make matching exponential.
    """

    def literal(segment: str) -> str:
        return "".join("." if c == "?" else re.escape(c) for c in segment)

    head, *rest = pattern.split("*")
    if not rest:
        return literal(head)
    *middle, tail = rest
    inner = "".join(f"(?>.*?{literal(m)})" for m in middle if m)
    return f"{literal(head)}{inner}.*{literal(tail)}"


@lru_cache(maxsize=4096)
def _compile(pattern: str) -> re.Pattern[str]:
    return re.compile(_translate(pattern), re.DOTALL)


def glob_match(pattern: str, name: str) -> bool:
    """Whole-name, case-sensitive glob: `*` any run (slashes included), `?` one character."""
    return _compile(pattern).fullmatch(name) is not None


class _Matcher:
    """A set of globs compiled into one lookup: exact names in a set, the rest in one regex."""

    __slots__ = ("_literals", "_regex")

    def __init__(self, patterns: Iterable[str]) -> None:
        literals: set[str] = set()
        globs: list[str] = []
        for p in patterns:
            if "*" in p or "?" in p:
                globs.append(f"(?:{_translate(p)})")
            else:
                literals.add(p)
        self._literals = frozenset(literals)
        self._regex = re.compile("|".join(globs), re.DOTALL) if globs else None

    def __call__(self, name: str) -> bool:
        if name in self._literals:
            return True
        return self._regex is not None and self._regex.fullmatch(name) is not None


def _patterns(value: object, what: str) -> tuple[str, ...]:
    # A bare string would silently become a tuple of one-character patterns.
    if isinstance(value, str) or not isinstance(value, Iterable):
        raise TypeError(f"{what} must be a sequence of glob patterns, not {type(value).__name__}")
    items = tuple(value)
    for item in items:
        if not isinstance(item, str):
            raise TypeError(f"{what} patterns must be strings, not {type(item).__name__}")
    return items


# Verdicts are memoized per name: list results repeat the same names on every call.
# Names come from clients too, so the memo is bounded in entries and in name length.
_MEMO_ENTRIES = 16_384
_MEMO_NAME_MAX = 512


@dataclass(frozen=True)
class Rule:
    """Allow/deny globs for one kind of capability; deny wins, `allow=None` allows all."""

    allow: tuple[str, ...] | None = None
    deny: tuple[str, ...] = ()
    _allow: _Matcher | None = field(init=False, repr=False, compare=False)
    _deny: _Matcher = field(init=False, repr=False, compare=False)
    _memo: dict[str, bool] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        allow = None if self.allow is None else _patterns(self.allow, "allow")
        deny = _patterns(self.deny, "deny")
        object.__setattr__(self, "allow", allow)
        object.__setattr__(self, "deny", deny)
        object.__setattr__(self, "_allow", None if allow is None else _Matcher(allow))
        object.__setattr__(self, "_deny", _Matcher(deny))
        object.__setattr__(self, "_memo", {})

    @property
    def is_passthrough(self) -> bool:
        return self.allow is None and not self.deny

    def visible(self, name: str) -> bool:
        verdict = self._memo.get(name)
        if verdict is None:
            verdict = not self._deny(name) and (self._allow is None or self._allow(name))
            if len(name) <= _MEMO_NAME_MAX:
                if len(self._memo) >= _MEMO_ENTRIES:
                    self._memo.clear()
                self._memo[name] = verdict
        return verdict


@dataclass(frozen=True)
class Override:
    """What a route says about an item instead of the upstream; annotations merge over its own."""

    description: str | None = None
    title: str | None = None
    annotations: dict[str, Any] | None = None


def _apply(item: dict[str, Any], override: Override, annotations_ok: bool) -> dict[str, Any]:
    changed = dict(item)
    if override.description is not None:
        changed["description"] = override.description
    if override.title is not None:
        changed["title"] = override.title
    if annotations_ok and override.annotations is not None:
        upstream = item.get("annotations")
        base = upstream if isinstance(upstream, dict) else {}
        changed["annotations"] = {**base, **override.annotations}
    return changed


_NO_OVERRIDES: Mapping[str, Override] = {}


@dataclass(frozen=True, slots=True)
class _View:
    key: str  # the result's list key
    match: str  # the item key patterns match on
    rule: Rule
    overrides: Mapping[str, Override]
    annotations: bool  # only tools carry annotations
    normal: Callable[[str], str] | None = None  # uris and templates: matched in normal form

    @property
    def is_passthrough(self) -> bool:
        return self.rule.is_passthrough and not self.overrides


@dataclass(frozen=True)
class Policy:
    """A route's view of its upstream; resource overrides are keyed by uri."""

    tools: Rule = field(default_factory=Rule)
    prompts: Rule = field(default_factory=Rule)
    resources: Rule = field(default_factory=Rule)
    resource_templates: Rule = field(default_factory=Rule)
    tool_overrides: Mapping[str, Override] = field(default_factory=dict)
    prompt_overrides: Mapping[str, Override] = field(default_factory=dict)
    resource_overrides: Mapping[str, Override] = field(default_factory=dict)
    _views: dict[str, _View] = field(init=False, repr=False, compare=False)
    _passthrough: bool = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # Resource rules match URIs in normal form (lockgate.mcp.uris): so must their patterns.
        object.__setattr__(self, "resources", _normal_rule(self.resources, template=False))
        object.__setattr__(
            self, "resource_templates", _normal_rule(self.resource_templates, template=True)
        )
        overrides = {normalise_pattern(k): v for k, v in self.resource_overrides.items()}
        if list(overrides) != list(self.resource_overrides):
            object.__setattr__(self, "resource_overrides", overrides)
        views = {
            "tools/list": _View("tools", "name", self.tools, self.tool_overrides, True),
            "prompts/list": _View("prompts", "name", self.prompts, self.prompt_overrides, False),
            "resources/list": _View(
                "resources", "uri", self.resources, self.resource_overrides, False, normalise
            ),
            "resources/templates/list": _View(
                "resourceTemplates",
                "uriTemplate",
                self.resource_templates,
                _NO_OVERRIDES,
                False,
                normalise_template,
            ),
        }
        object.__setattr__(self, "_views", views)
        object.__setattr__(self, "_passthrough", all(v.is_passthrough for v in views.values()))

    @property
    def is_passthrough(self) -> bool:
        """Nothing hidden, nothing overridden: callers may skip parsing list results."""
        return self._passthrough

    @property
    def restricts_resources(self) -> bool:
        """Whether some resource or template rule may hide a URI (which then must have a
        normal form to be matched at all)."""
        return not (self.resources.is_passthrough and self.resource_templates.is_passthrough)

    def hiding(
        self,
        *,
        tools: Iterable[str] = (),
        prompts: Iterable[str] = (),
        resources: Iterable[str] = (),
        resource_templates: Iterable[str] = (),
    ) -> Policy:
        """This view with more deny patterns (one user's access rules); itself if none.

        The same rules, memos and matching serve a per-user view as the route's own, so a
        name is hidden from lists exactly when a call to it is refused."""
        extra = (tuple(tools), tuple(prompts), tuple(resources), tuple(resource_templates))
        if not any(extra):
            return self

        def more(rule: Rule, deny: tuple[str, ...]) -> Rule:
            return rule if not deny else Rule(allow=rule.allow, deny=(*rule.deny, *deny))

        return Policy(
            tools=more(self.tools, extra[0]),
            prompts=more(self.prompts, extra[1]),
            resources=more(self.resources, extra[2]),
            resource_templates=more(self.resource_templates, extra[3]),
            tool_overrides=self.tool_overrides,
            prompt_overrides=self.prompt_overrides,
            resource_overrides=self.resource_overrides,
        )

    def hidden_target(self, method: str, params: Mapping[str, Any] | None) -> str | None:
        """The name or uri a request targets when this view hides it, else None.

        A malformed target (a name that is not a string, a missing ref) comes back as
        `"<invalid ...>"` on a restricted capability, so the caller refuses it rather
        than trust the upstream to read it the way we did; with nothing to hide, the
        upstream answers its own invalid-params error. Note that `""` is a valid
        hidden name: test the result against None.
        """
        if method == "tools/call":
            return _target(self.tools, params, "name")
        if method == "prompts/get":
            return _target(self.prompts, params, "name")
        if method in RESOURCE_METHODS:
            if not self.restricts_resources:
                return None
            uri = params.get("uri") if isinstance(params, Mapping) else None
            if not isinstance(uri, str):
                return "<invalid uri>"
            try:
                uri = normalise(uri)
            except UriError:
                return "<invalid uri>"  # no normal form: nothing to match it against
            if not self.resources.visible(uri):
                return uri
            if self._denied_templates is not None and self._denied_templates.fullmatch(uri):
                return uri
            return None
        if method == "completion/complete":
            return self._completion_target(params)
        return None

    @functools.cached_property
    def _denied_templates(self) -> re.Pattern[str] | None:
        """URIs a denied resource template would produce: hiding a template hides its reads.

        Each deny pattern is read as an RFC 6570 template whose `{...}` expressions match
        any text; `*` and `?` keep their glob meaning.
        """
        parts = [_template_regex(p) for p in self.resource_templates.deny if "{" in p]
        return re.compile("|".join(parts), re.DOTALL) if parts else None

    def _completion_target(self, params: Mapping[str, Any] | None) -> str | None:
        if self.prompts.is_passthrough and self.resource_templates.is_passthrough:
            return None
        ref = params.get("ref") if isinstance(params, Mapping) else None
        kind = ref.get("type") if isinstance(ref, Mapping) else None
        if kind == "ref/prompt":
            return _target(self.prompts, ref, "name")
        if kind == "ref/resource" and isinstance(ref, Mapping):
            if self.resource_templates.is_passthrough:
                return None
            uri = ref.get("uri")
            if not isinstance(uri, str):
                return "<invalid uri>"
            try:
                uri = normalise_template(uri)
            except UriError:
                return "<invalid uri>"
            return None if self.resource_templates.visible(uri) else uri
        if isinstance(kind, str):
            # A reference kind this gateway does not know could point at anything hidden.
            return f"<unknown ref {kind}>"
        return "<invalid ref>"

    def filter_result(self, method: str, result: dict[str, Any]) -> dict[str, Any]:
        """A list result as this view shows it; the input is never modified.

        Items that are not objects or lack their name/uri are dropped: the gateway
        cannot tell whether they are hidden. Other keys (`nextCursor`, `_meta`) stay.
        """
        view = self._views.get(method)
        if view is None or view.is_passthrough or view.key not in result:
            return result
        items = result[view.key]
        kept: list[Any] = []
        if isinstance(items, list):
            match, overrides, normal = view.match, view.overrides, view.normal
            visible, memo = view.rule.visible, view.rule._memo.get
            for item in items:
                if not isinstance(item, dict):
                    continue
                name = item.get(match)
                if not isinstance(name, str):
                    continue
                if normal is not None:
                    try:
                        name = normal(name)
                    except UriError:
                        continue  # no normal form: cannot tell whether it is hidden
                verdict = memo(name)
                if not (visible(name) if verdict is None else verdict):
                    continue
                override = overrides.get(name) if overrides else None
                kept.append(item if override is None else _apply(item, override, view.annotations))
        return {**result, view.key: kept}


RESOURCE_METHODS = frozenset({"resources/read", "resources/subscribe", "resources/unsubscribe"})


def _normal_rule(rule: Rule, *, template: bool) -> Rule:
    """`rule` with its patterns in the normal form of the URIs they match (itself if so)."""

    def normal(patterns: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(normalise_pattern(p, template=template) for p in patterns)

    allow = None if rule.allow is None else normal(rule.allow)
    deny = normal(rule.deny)
    if allow == rule.allow and deny == rule.deny:
        return rule
    return Rule(allow=allow, deny=deny)


def _template_regex(pattern: str) -> str:
    out: list[str] = []
    for piece in re.split(r"(\{[^}]*\}|\*|\?)", pattern):
        if (piece.startswith("{") and piece.endswith("}")) or piece == "*":
            out.append(".*")
        elif piece == "?":
            out.append(".")
        else:
            out.append(re.escape(piece))
    return "(?:" + "".join(out) + ")"


def _target(rule: Rule, params: Mapping[str, Any] | None, key: str) -> str | None:
    if rule.is_passthrough:
        return None
    value = params.get(key) if isinstance(params, Mapping) else None
    if not isinstance(value, str):
        return f"<invalid {key}>"
    return None if rule.visible(value) else value
