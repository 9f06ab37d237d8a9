"""Profiles: the TOML file IT writes and signs, validated into typed models.

Every error names the file, the line (where it can be found) and the key path,
and says what was expected: a profile is written by hand and must be fixable
from the message alone.
"""

from __future__ import annotations

import ipaddress
import os
import re
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from lockgate.errors import ProfileError
from lockgate.guardrails.policy import GuardrailsSection, KeyedError
from lockgate.policy.view import Override, Policy, Rule

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")

Pattern = Annotated[str, Field(min_length=1)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def is_loopback_host(host: str) -> bool:
    """True for names and addresses that never leave this machine."""
    host = host.strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def split_listen(listen: str) -> tuple[str, int]:
    """`host:port` (IPv6 in brackets) into its parts; ValueError when malformed."""
    host, sep, port = listen.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"expected host:port such as 127.0.0.1:8787, got {listen!r}")
    return host.strip("[]"), int(port)


class GatewaySection(_Model):
    listen: str = "127.0.0.1:8787"
    public_url: str | None = None
    max_body_bytes: int = Field(default=4 * 1024 * 1024, gt=0)
    # The largest whole (non-streamed) answer an upstream may send: larger ones are a 502.
    max_response_bytes: int = Field(default=16 * 1024 * 1024, gt=0)
    # Seconds an upstream may take: to accept the connection, to start its answer, and
    # to stay silent on an event stream while a request waits (each then a JSON-RPC error).
    upstream_connect_timeout: float = Field(default=10.0, gt=0)
    upstream_timeout: float = Field(default=60.0, gt=0)
    upstream_idle_timeout: float = Field(default=60.0, gt=0)
    # The longest an answer on an event stream may take in all, however much progress it
    # reports (a task that says "1 %" forever).
    upstream_answer_timeout: float = Field(default=3600.0, gt=0)
    allowed_origins: tuple[str, ...] = ()
    upstream_ca: str | None = None
    # Hostile clients (addons/client_wire/): a request head must arrive whole within
    # client_head_timeout seconds (also the longest a kept-alive connection may sit idle
    # between requests), a request body may pause at most client_idle_timeout seconds and
    # must be whole within client_body_timeout seconds (a body trickled just fast enough to
    # beat the idle deadline would hold its connection for hours), and past max_connections
    # open client connections a new one is answered 503 and closed.
    client_head_timeout: float = Field(default=10.0, gt=0)
    client_idle_timeout: float = Field(default=10.0, gt=0)
    client_body_timeout: float = Field(default=60.0, gt=0)
    max_connections: int = Field(default=256, gt=0)

    @field_validator("listen")
    @classmethod
    def _listen(cls, v: str) -> str:
        split_listen(v)
        return v

    @field_validator("public_url")
    @classmethod
    def _public_url(cls, v: str | None) -> str | None:
        if v is not None:
            _check_url(v)
        return v.rstrip("/") if v else v

    @property
    def host(self) -> str:
        return split_listen(self.listen)[0]

    @property
    def port(self) -> int:
        return split_listen(self.listen)[1]


class IdentitySection(_Model):
    kind: Literal["none", "dev", "oidc"] = "none"
    issuer: str | None = None
    client_id: str | None = None
    client_secret: str | None = None
    scopes: tuple[str, ...] = ("openid", "email", "profile", "offline_access")
    groups_claim: str = "groups"
    # The ID token claim with the user's roles; a dotted path (`realm_access.roles`) reaches
    # into nested claims when no claim has that literal name. Same for groups_claim.
    roles_claim: str = Field(default="roles", min_length=1)
    # Where the gateway's token signing key lives: the OS keyring, or (kind "dev" only) this
    # process's memory, for machines without an unlocked keyring; tokens end at a restart.
    signing_key: Literal["keyring", "memory"] = "keyring"

    @field_validator("signing_key")
    @classmethod
    def _memory_key_only_for_dev(cls, v: str, info: ValidationInfo) -> str:
        if v == "memory" and info.data.get("kind") != "dev":
            raise ValueError(
                'signing_key = "memory" is only allowed with kind = "dev"; '
                'use "keyring" (the default)'
            )
        return v

    @field_validator("client_secret")
    @classmethod
    def _secret_in_keyring(cls, v: str | None) -> str | None:
        if v is not None and not v.startswith("keyring:"):
            raise ValueError('secrets stay out of profiles: use "keyring:<entry name>"')
        return v

    @model_validator(mode="after")
    def _oidc_needs_issuer(self) -> IdentitySection:
        if self.kind == "oidc" and not (self.issuer and self.client_id):
            raise ValueError('kind = "oidc" needs issuer and client_id')
        return self


def _check_url(v: str) -> None:
    parts = urlsplit(v)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"expected an http(s) URL such as https://mcp.example.com/mcp, got {v!r}")


class UpstreamSection(_Model):
    url: str
    auth: Literal["none", "header", "oauth"] = "none"
    header: str = "Authorization"
    value: str = "Bearer {secret}"
    timeout: float | None = Field(default=None, gt=0)
    connect_timeout: float | None = Field(default=None, gt=0)
    idle_timeout: float | None = Field(default=None, gt=0)
    answer_timeout: float | None = Field(default=None, gt=0)
    # auth = "oauth": a client pre-registered at the upstream's authorization server
    # (else lockgate registers itself), its secret in the keyring, the scopes to ask for.
    client_id: str | None = Field(default=None, min_length=1)
    client_secret: str | None = None
    scopes: tuple[Pattern, ...] | None = None

    @field_validator("url")
    @classmethod
    def _url(cls, v: str) -> str:
        _check_url(v)
        return v

    @field_validator("client_secret")
    @classmethod
    def _upstream_secret_in_keyring(cls, v: str | None) -> str | None:
        if v is not None and (not v.startswith("keyring:") or v == "keyring:"):
            raise ValueError('secrets stay out of profiles: use "keyring:<entry name>"')
        return v

    @field_validator("header")
    @classmethod
    def _header(cls, v: str) -> str:
        if not re.fullmatch(r"[A-Za-z0-9!#$%&'*+.^_`|~-]+", v):
            raise ValueError(f"expected an HTTP header name, got {v!r}")
        return v

    @model_validator(mode="after")
    def _value_has_secret(self) -> UpstreamSection:
        if self.auth == "header" and "{secret}" not in self.value:
            raise ValueError('value must contain "{secret}", where the keyring secret goes')
        if self.auth != "oauth":
            for key in ("client_id", "client_secret", "scopes"):
                if getattr(self, key) is not None:
                    raise ValueError(f'{key} is only used with auth = "oauth"')
        elif self.client_secret is not None and self.client_id is None:
            raise ValueError("client_secret needs the client_id it belongs to")
        return self


class ListSection(_Model):
    allow: tuple[Pattern, ...] | None = None
    deny: tuple[Pattern, ...] = ()

    def rule(self) -> Rule:
        return Rule(allow=self.allow, deny=self.deny)


class OverrideSection(_Model):
    description: str | None = None
    title: str | None = None
    annotations: dict[str, Any] | None = None

    def override(self) -> Override:
        return Override(
            description=self.description, title=self.title, annotations=self.annotations
        )


class OverridesSection(_Model):
    tools: dict[str, OverrideSection] = {}
    prompts: dict[str, OverrideSection] = {}
    resources: dict[str, OverrideSection] = {}


def _scope_token(v: str) -> str:
    # RFC 6749 section 3.3: a scope token is printable ASCII without space, `"` or `\`.
    if not re.fullmatch(r"[\x21\x23-\x5b\x5d-\x7e]+", v):
        raise ValueError(f'expected an OAuth scope without spaces, quotes or "\\", got {v!r}')
    return v


ScopeToken = Annotated[str, AfterValidator(_scope_token)]


class AccessRuleSection(_Model):
    """`[[routes.X.access.tools]]`: who may see and call the items `match` names, and the
    scopes a call needs. Every rule matching an item must admit the user; an item no rule
    matches is open to everyone the route admits."""

    match: tuple[Pattern, ...] = Field(min_length=1)
    users: tuple[str, ...] | None = None
    groups: tuple[str, ...] | None = None
    roles: tuple[str, ...] | None = None
    scopes: tuple[ScopeToken, ...] = ()

    @model_validator(mode="after")
    def _says_something(self) -> AccessRuleSection:
        if self.users is None and self.groups is None and self.roles is None and not self.scopes:
            raise ValueError(
                "a rule needs users, groups, roles or scopes; to hide items from everyone "
                "use the route's deny list"
            )
        return self


class AccessSection(_Model):
    groups: tuple[str, ...] | None = None
    users: tuple[str, ...] | None = None
    roles: tuple[str, ...] | None = None
    # Scopes every token for this route must carry (OAuth scope, with step-up on a 403).
    scopes: tuple[ScopeToken, ...] = ()
    tools: tuple[AccessRuleSection, ...] = ()
    prompts: tuple[AccessRuleSection, ...] = ()
    resources: tuple[AccessRuleSection, ...] = ()
    resource_templates: tuple[AccessRuleSection, ...] = ()


class RouteSection(_Model):
    upstream: str
    description: str | None = None
    tools: ListSection = ListSection()
    prompts: ListSection = ListSection()
    resources: ListSection = ListSection()
    resource_templates: ListSection = ListSection()
    overrides: OverridesSection = OverridesSection()
    access: AccessSection = AccessSection()
    # Merged key by key over the profile's [guardrails] (Profile.guardrails_for).
    guardrails: GuardrailsSection | None = None

    def policy(self) -> Policy:
        return Policy(
            tools=self.tools.rule(),
            prompts=self.prompts.rule(),
            resources=self.resources.rule(),
            resource_templates=self.resource_templates.rule(),
            tool_overrides={k: v.override() for k, v in self.overrides.tools.items()},
            prompt_overrides={k: v.override() for k, v in self.overrides.prompts.items()},
            resource_overrides={k: v.override() for k, v in self.overrides.resources.items()},
        )


class Profile(_Model):
    gateway: GatewaySection = GatewaySection()
    identity: IdentitySection = IdentitySection()
    guardrails: GuardrailsSection = GuardrailsSection()
    upstreams: dict[str, UpstreamSection]
    routes: dict[str, RouteSection]
    source: str = Field(default="<profile>", exclude=True)

    @field_validator("upstreams", "routes")
    @classmethod
    def _names(cls, v: dict[str, Any]) -> dict[str, Any]:
        for name in v:
            if not NAME_RE.match(name):
                raise ValueError(
                    f"{name!r} is not a valid name: use letters, digits, '-', '_' and '.'"
                )
        if not v:
            raise ValueError("expected at least one entry")
        return v

    @model_validator(mode="after")
    def _cross_checks(self) -> Profile:
        for name, route in self.routes.items():
            if route.upstream not in self.upstreams:
                known = ", ".join(sorted(self.upstreams))
                raise _KeyedError(
                    ("routes", name, "upstream"),
                    f"names upstream {route.upstream!r}, which is not defined (known: {known})",
                )
        self._check_guardrails()
        if self.identity.kind in ("none", "dev") and not is_loopback_host(self.gateway.host):
            raise _KeyedError(
                ("identity", "kind"),
                f'kind = "{self.identity.kind}" is only allowed when gateway.listen is a '
                'loopback address; use kind = "oidc" to listen beyond this machine',
            )
        return self

    def _check_guardrails(self) -> None:
        # (key path, section, custom names it inherits, the upstreams its pins may name)
        everyone = tuple(self.upstreams)
        sections: list[tuple[tuple[str, ...], GuardrailsSection, tuple[str, ...], tuple[str, ...]]]
        sections = [(("guardrails",), self.guardrails, (), everyone)]
        inherited = self.guardrails.custom_names()
        for name, route in self.routes.items():
            if route.guardrails is not None:
                where = ("routes", name, "guardrails")
                sections.append((where, route.guardrails, inherited, (route.upstream,)))
        for prefix, section, custom, upstreams in sections:
            try:
                section.check_names(custom)
            except KeyedError as e:
                raise _KeyedError((*prefix, *e.loc), e.message) from None
            for upstream in section.pinning.pins:
                if upstream in upstreams:
                    continue
                if upstream in self.upstreams:  # a route's override pins its own upstream only
                    message = (
                        f"pins tools of upstream {upstream!r}, but route {prefix[1]!r} serves "
                        f"{upstreams[0]!r}; move these pins to [guardrails.pinning.pins]"
                    )
                else:
                    known = ", ".join(sorted(self.upstreams))
                    message = (
                        f"pins tools of upstream {upstream!r}, which is not defined "
                        f"(known: {known})"
                    )
                raise _KeyedError((*prefix, "pinning", "pins", upstream), message)
        self._check_pin_modes()

    def _check_pin_modes(self) -> None:
        """Pins are kept per upstream: a tofu route would approve on first use what an approve
        route of the same upstream holds, so the routes of one upstream pin in one mode."""
        modes: dict[str, tuple[str, str]] = {}  # upstream -> (mode, the route that set it)
        for name, route in self.routes.items():
            section = self.guardrails_for(name)
            mode = section.pinning.mode if section.enabled else "off"
            if mode == "off":
                continue  # a route that does not pin consults no pins
            first_mode, first_route = modes.setdefault(route.upstream, (mode, name))
            if first_mode == mode:
                continue
            own = route.guardrails
            if own is not None and "mode" in own.pinning.model_fields_set:
                where: tuple[str, ...] = ("routes", name, "guardrails", "pinning", "mode")
            else:
                where = ("routes", name)
            raise _KeyedError(
                where,
                f"pins upstream {route.upstream!r} in {mode!r} mode, but route "
                f"{first_route!r} pins it in {first_mode!r} mode; pins are kept per upstream, "
                "so give both routes the same [guardrails.pinning] mode",
            )

    def guardrails_for(self, route: str) -> GuardrailsSection:
        """The guardrails of one route: its override merged over the defaults; resolve it
        with lockgate.guardrails.policy.resolve."""
        return self.guardrails.merged(self.routes[route].guardrails)

    def route_url(self, route: str, base: str | None = None) -> str:
        """The URL a client uses for a route."""
        return f"{(base or self.base_url()).rstrip('/')}/mcp/{route}"

    def base_url(self) -> str:
        if self.gateway.public_url:
            return self.gateway.public_url
        host, port = split_listen(self.gateway.listen)
        host = f"[{host}]" if ":" in host else host
        return f"http://{host}:{port}"


# A cross-field error that knows its key path (relative to the model that raised it), so
# the message can point at the line.
_KeyedError = KeyedError


def _find_line(text: str, loc: tuple[str | int, ...]) -> int | None:
    """Best-effort line of a key path in TOML text: the table header, then the key."""
    keys = [str(k) for k in loc if not isinstance(k, int)]
    # An index after a key path names one of its `[[array.of.tables]]` headers.
    index_after: dict[int, int] = {}
    seen_keys = 0
    for k in loc:
        if isinstance(k, int):
            index_after[seen_keys] = k
        else:
            seen_keys += 1
    lines = text.splitlines()
    best: int | None = None
    # Try the longest table prefix that has a header, then the next key below it.
    for cut in range(len(keys), 0, -1):
        header = re.compile(
            r"^\s*\[\[?\s*"
            + r"\s*\.\s*".join(_key_re(k) for k in keys[:cut])
            + r"\s*\]\]?\s*(#.*)?$"
        )
        skip = index_after.get(cut, 0)
        for i, line in enumerate(lines):
            if header.match(line):
                if skip > 0:
                    skip -= 1
                    continue
                best = i + 1
                rest = keys[cut:]
                if rest:
                    key = re.compile(
                        r"^\s*" + r"\s*\.\s*".join(_key_re(k) for k in rest[:2]) + r"\s*[=.]"
                    )
                    for j in range(i + 1, len(lines)):
                        if lines[j].lstrip().startswith("["):
                            break
                        if key.match(lines[j]):
                            return j + 1
                return best
    if keys:
        key = re.compile(r"^\s*" + _key_re(keys[-1]) + r"\s*=")
        for i, line in enumerate(lines):
            if key.match(line):
                return i + 1
    return best


def _key_re(key: str) -> str:
    return r"(?:" + re.escape(key) + r'|"' + re.escape(key) + r'")'


def _describe(err: dict[str, Any]) -> str:
    kind = err.get("type", "")
    msg = str(err.get("msg", "invalid value"))
    if kind == "extra_forbidden":
        return "unknown key (check its spelling against the profile reference in README.md)"
    if kind == "missing":
        return "required key is missing"
    if kind == "literal_error":
        ctx = err.get("ctx") or {}
        return f"expected one of {ctx.get('expected', '')}"
    if kind in ("tuple_type", "list_type"):
        return 'expected a list such as ["list_*", "get_*"]'
    msg = msg.removeprefix("Value error, ")
    return msg.replace("Input should be a valid", "expected a").replace(
        "Input should be", "expected"
    )


def parse_profile(text: str, source: str = "<profile>") -> Profile:
    """Parse and validate profile text; ProfileError names source:line, key path and fix."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        found = re.search(r"\(at line (\d+), column \d+\)", str(e))
        line = getattr(e, "lineno", None) or (int(found.group(1)) if found else None)
        where = f"{source}:{line}" if line else source
        reason = re.sub(r"\s*\(at line \d+, column \d+\)", "", getattr(e, "msg", str(e)))
        raise ProfileError(
            f"{where}: not valid TOML ({reason})",
            "fix the syntax at that line",
        ) from e
    data["source"] = source
    try:
        return Profile.model_validate(data)
    except ValidationError as e:
        errors = e.errors()
        first = errors[0]
        loc: tuple[str | int, ...] = tuple(first.get("loc", ()))
        message = _describe(dict(first))
        ctx_err = (first.get("ctx") or {}).get("error")
        if isinstance(ctx_err, _KeyedError):
            loc, message = (*loc, *ctx_err.loc), ctx_err.message
        path = ".".join(str(p) for p in loc) or "(top level)"
        line = _find_line(text, loc)
        where = f"{source}:{line}" if line else source
        more = f" (and {len(errors) - 1} more problem(s))" if len(errors) > 1 else ""
        raise ProfileError(f"{where}: {path}: {message}{more}") from e


def load_profile(path: Path) -> Profile:
    """Read a profile file; a missing or unreadable file is a ProfileError too."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as e:
        raise ProfileError(f"{path}: no such profile file", "check the path") from e
    except (OSError, UnicodeDecodeError) as e:
        raise ProfileError(f"{path}: cannot read the profile ({e})") from e
    return parse_profile(text, str(path))


def demo_profile_path() -> Path:
    """The profile shipped inside the package (profiles/demo.toml)."""
    from importlib.resources import files

    return Path(str(files("lockgate.profiles").joinpath("demo.toml")))


def active_profile_path(explicit: Path | None = None) -> Path:
    """The profile `lockgate up` would serve: --profile, else $LOCKGATE_PROFILE, else the
    installed one in the data dir; ProfileError (exit 2) with the fix when there is none."""
    if explicit is not None:
        return explicit
    env = os.environ.get("LOCKGATE_PROFILE")
    if env:
        return Path(env)
    from lockgate.paths import data_dir

    path = data_dir() / "profile.toml"
    if not path.exists():
        raise ProfileError(
            "No profile given and none installed",
            f"pass --profile FILE, set LOCKGATE_PROFILE, or copy one to {path}",
        )
    return path
