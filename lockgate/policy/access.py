"""The resource server's access decisions: who may use a route, which of its tools, prompts
and resources each user sees and calls, and which OAuth scopes a request needs.

Why it exists: a profile hands a route, or a few dangerous tools on it, to a team by the
identity provider's groups and roles, by user, and by scope. These decisions run on every
request, so each route's rules are compiled once, and each user's view (the route's view
plus deny patterns for the items their rules do not admit) is built once per user, cached,
and used by the same filter machinery as the route's own allow/deny lists: an item hidden
from a user's lists is exactly an item whose call is refused.

The rules, as the README states them:

- A route with no `users`, `groups` or `roles` list admits everyone signed in; otherwise the
  user must be on `users` (by sub or email), in one of `groups`, or hold one of `roles`.
- Only an identity provider vouches for groups and roles: with kinds "none" and "dev" a
  `groups` or `roles` list admits nobody (fail closed), on a route and on a rule alike.
- Item rules (`[[routes.X.access.tools]]`, and `prompts`, `resources`,
  `resource_templates`) restrict only what their `match` globs name: an item no rule matches
  is open to everyone the route admits; an item several rules match needs every one of them.
- Scopes: `access.scopes` are needed on every request to the route (and are what a 401
  challenge asks for); a rule's `scopes` are needed to call, get or read what it matches
  (the item stays listed, so the client can step up after the 403 `insufficient_scope`).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from lockgate.policy.view import Policy, Rule
from lockgate.profile.model import AccessRuleSection, AccessSection

Kind = Literal["tools", "prompts", "resources", "resource_templates"]
KINDS: tuple[Kind, ...] = ("tools", "prompts", "resources", "resource_templates")
_LABEL: dict[Kind, str] = {
    "tools": "Tool",
    "prompts": "Prompt",
    "resources": "Resource",
    "resource_templates": "Resource",
}
POLICY_CACHE_SIZE = 1024


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is asking, as the gateway's token (or the local kind) says.

    ``groups``/``roles`` are None when the identity kind knows none (kinds "none" and
    "dev"); ``scopes`` is None when there is no token at all (kind "none")."""

    user: str
    email: str | None = None
    groups: tuple[str, ...] | None = None
    roles: tuple[str, ...] | None = None
    scopes: frozenset[str] | None = None

    @property
    def key(self) -> tuple[object, ...]:
        """What a user's view depends on (scopes do not hide anything)."""
        return (self.user, self.email, self.groups, self.roles)


def admits(
    users: tuple[str, ...] | None,
    groups: tuple[str, ...] | None,
    roles: tuple[str, ...] | None,
    who: Principal | None,
) -> bool:
    """No lists: everyone. Otherwise by user (sub or email), group, or role; a group or role
    list admits nobody when the identity kind knows no groups or roles."""
    if who is None:
        return False
    if users is None and groups is None and roles is None:
        return True
    if (groups is not None and who.groups is None) or (roles is not None and who.roles is None):
        return False
    if users is not None and (who.user in users or (who.email is not None and who.email in users)):
        return True
    if groups is not None and not set(groups).isdisjoint(who.groups or ()):
        return True
    return roles is not None and not set(roles).isdisjoint(who.roles or ())


def _unique(items: Iterable[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(items))


def _cover(kind: Kind, match: tuple[str, ...]) -> Policy:
    """A view hiding exactly what `match` names: whether a request targets one of those
    items is then the filters' own `hidden_target` (names, uris, templates, completions)."""
    if kind == "tools":
        return Policy(tools=Rule(deny=match))
    if kind == "prompts":
        return Policy(prompts=Rule(deny=match))
    if kind == "resources":
        return Policy(resources=Rule(deny=match))
    return Policy(resource_templates=Rule(deny=match))


@dataclass(frozen=True)
class AccessRule:
    """One `[[routes.X.access.<kind>]]` entry, compiled."""

    kind: Kind
    match: tuple[str, ...]
    users: tuple[str, ...] | None = None
    groups: tuple[str, ...] | None = None
    roles: tuple[str, ...] | None = None
    scopes: tuple[str, ...] = ()
    _cover: Policy = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_cover", _cover(self.kind, self.match))

    @classmethod
    def of(cls, kind: Kind, section: AccessRuleSection) -> AccessRule:
        return cls(
            kind=kind,
            match=tuple(section.match),
            users=section.users,
            groups=section.groups,
            roles=section.roles,
            scopes=tuple(section.scopes),
        )

    @property
    def restricts(self) -> bool:
        """Whether the rule says who (else it only asks for scopes)."""
        return self.users is not None or self.groups is not None or self.roles is not None

    def admits(self, who: Principal) -> bool:
        return not self.restricts or admits(self.users, self.groups, self.roles, who)

    def covers(self, method: str, params: Mapping[str, Any] | None) -> bool:
        """Whether the request targets an item this rule matches (a malformed target on a
        capability the rule restricts counts as matched: fail closed)."""
        return self._cover.hidden_target(method, params) is not None

    def required(self) -> dict[str, list[str]]:
        """The groups and roles that admit, for the error's `data` (user names stay out)."""
        return {"groups": list(self.groups or ()), "roles": list(self.roles or ())}

    def requirement(self) -> str:
        """What admits a user, in words; never the names on a `users` list."""
        parts: list[str] = []
        if self.groups:
            parts.append(" or ".join(f"group {g!r}" for g in self.groups))
        if self.roles:
            parts.append(" or ".join(f"role {r!r}" for r in self.roles))
        if self.users:
            parts.append("being named on its users list")
        return " or ".join(parts) or "access nobody has"


def scopes_supported(access: AccessSection) -> tuple[str, ...]:
    """The scopes a route declares: its own, then its rules', each once, in profile order."""
    rules = (rule for kind in KINDS for rule in getattr(access, kind))
    return _unique([*access.scopes, *(s for rule in rules for s in rule.scopes)])


class RouteAccess:
    """A route's access rules, compiled once; users' views built on demand and cached."""

    def __init__(
        self,
        route: str,
        access: AccessSection,
        base: Policy,
        *,
        cache_size: int = POLICY_CACHE_SIZE,
    ) -> None:
        self.route = route
        self.section = access
        self.base = base
        self.rules = tuple(AccessRule.of(kind, r) for kind in KINDS for r in getattr(access, kind))
        self.scopes = _unique(access.scopes)
        self.scopes_supported = scopes_supported(access)
        self._hiding = tuple(r for r in self.rules if r.restricts)
        self._scoped = tuple(r for r in self.rules if r.scopes)
        self._cache_size = cache_size
        self._policies: OrderedDict[tuple[object, ...], Policy] = OrderedDict()
        self._by_verdicts: dict[tuple[bool, ...], Policy] = {}
        self._lock = threading.Lock()
        self.builds = 0  # how many user views were built (tests read it)

    @property
    def restricts_items(self) -> bool:
        return bool(self._hiding)

    @property
    def restricts_resources(self) -> bool:
        """Whether a rule (of any kind: one asking only for scopes too) matches URIs: they
        must then have a normal form to be matched at all."""
        return self.base.restricts_resources or any(
            r.kind in ("resources", "resource_templates") for r in self.rules
        )

    def admits_route(self, who: Principal) -> bool:
        s = self.section
        return admits(s.users, s.groups, s.roles, who)

    def policy_for(self, who: Principal) -> Policy:
        """This user's view of the route: the route's view minus what their rules hide."""
        if not self._hiding:
            return self.base
        key = who.key
        with self._lock:
            cached = self._policies.get(key)
            if cached is not None:
                self._policies.move_to_end(key)
                return cached
        verdicts = tuple(rule.admits(who) for rule in self._hiding)
        with self._lock:
            policy = self._by_verdicts.get(verdicts)
            if policy is None:
                hidden: dict[Kind, list[str]] = {kind: [] for kind in KINDS}
                for rule, ok in zip(self._hiding, verdicts, strict=True):
                    if not ok:
                        hidden[rule.kind].extend(rule.match)
                policy = self.base.hiding(**hidden)
                if len(self._by_verdicts) >= self._cache_size:
                    self._by_verdicts.clear()
                self._by_verdicts[verdicts] = policy
                self.builds += 1
            self._policies[key] = policy
            while len(self._policies) > self._cache_size:
                self._policies.popitem(last=False)
        return policy

    def refusing_rule(
        self, who: Principal, method: str, params: Mapping[str, Any] | None
    ) -> AccessRule | None:
        """The first rule that targets this request and does not admit the user."""
        for rule in self._hiding:
            if rule.covers(method, params) and not rule.admits(who):
                return rule
        return None

    def required_scopes(self, method: str, params: Mapping[str, Any] | None) -> tuple[str, ...]:
        """The route's scopes plus those of every rule that targets this request."""
        extra = [s for rule in self._scoped if rule.covers(method, params) for s in rule.scopes]
        return _unique([*self.scopes, *extra]) if extra else self.scopes


def missing_scopes(needed: Iterable[str], who: Principal) -> tuple[str, ...]:
    """The needed scopes the token lacks (all of them when there is no token)."""
    if who.scopes is None:
        return tuple(needed)
    return tuple(s for s in needed if s not in who.scopes)


def denial_message(rule: AccessRule, target: str, route: str, who: Principal) -> str:
    """The 403 for an item a rule keeps from this user: what admits, and how to get it."""
    label = _LABEL[rule.kind]
    message = f"{label} {target!r} on route {route!r} needs {rule.requirement()}"
    if (rule.groups is not None and who.groups is None) or (
        rule.roles is not None and who.roles is None
    ):
        return (
            f"{message}, and this gateway's sign-in carries no groups or roles; "
            'use [identity] kind = "oidc" to sign in through the identity provider.'
        )
    return f"{message}; ask whoever maintains the profile for access."
