"""The profile's `[guardrails]` section and its per-route override, and what they resolve to.

Why it exists: IT writes the guardrails of every route in the profile (README, "Guardrails");
this module holds the pydantic models of that syntax (validated with the rest of the profile,
so `lockgate profile check` reports a bad action or rate with file, line and key path), the
key-by-key merge of a route's override over the defaults, and `resolve`, which turns one
merged section into the frozen `GuardrailPolicy` the addon reads on the hot path: every
decision that can be made at load time (group expansion, precedence, compiled custom
detectors) is made here, once, so a message costs dictionary look-ups only.

Precedence of the redaction actions for one type and direction, lowest first: the built-in
default of its group (a custom detector: its own `action`), the group's key in
`[guardrails.redact]`, the type's key there, the group's key in `[guardrails.redact.up]` (or
`.down`), the type's key there. A direction's table beats the both-directions table; within
one table a type beats its group.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Annotated, Any, Final, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator

from lockgate.guardrails.detectors import GROUPS, TYPES, Action, Custom, Detectors
from lockgate.guardrails.limits import LimitsSpec, parse_rate

Severity = Literal["low", "medium", "high"]
DefinitionAction = Literal["warn", "hide"]
RuleAction = Literal["off", "warn", "hide"]
ResultAction = Literal["warn", "sanitize", "withhold"]
PinMode = Literal["tofu", "approve", "off"]

# The rule ids of lockgate.guardrails.findings.RULES, written out: importing the scanner (and
# its confusables table, ~70 ms) only to validate a profile would slow every command that
# loads one. tests/core/guardrails/test_policy.py keeps the two equal.
RULE_IDS: Final[tuple[str, ...]] = (
    "HIDDEN_INSTRUCTIONS",
    "SENSITIVE_FILE_ACCESS",
    "EXFILTRATION_PARAMETER",
    "INVISIBLE_UNICODE",
    "CROSS_TOOL_SHADOWING",
    "SCHEMA_POISONING",
    "EXCESSIVE_LENGTH",
    "ANSI_ESCAPE",
    "ENCODED_PAYLOAD",
    "TOOL_NAME_SPOOFING",
    "RESULT_INJECTION",
)

# Defaults when the profile says nothing: secrets and financial/national identifiers masked
# (they must never leave the laptop), contact data logged (email addresses and phone numbers
# are the payload of many legitimate tools: masking them by default would break them).
DEFAULT_GROUP_ACTIONS: Final[Mapping[str, Action]] = MappingProxyType(
    {"secret": "mask", "financial": "mask", "national": "mask", "contact": "log"}
)
_TYPE_RE: Final = re.compile(r"^[A-Z][A-Z0-9_]{0,63}$")
_SHA256_RE: Final = re.compile(r"^[0-9a-fA-F]{64}$")
_DIRECTIONS: Final = ("up", "down")


class KeyedError(ValueError):
    """A check across keys that knows the key path (relative to the model that raised it),
    so that the profile's error message can point at the line."""

    def __init__(self, loc: tuple[str | int, ...], message: str) -> None:
        super().__init__(message)
        self.loc = loc
        self.message = message


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RedactTable(BaseModel):
    """`[guardrails.redact.up]` / `.down`: action per type or group name (checked against
    the known names, custom detectors included, by `check_names`)."""

    model_config = ConfigDict(extra="allow", frozen=True)
    __pydantic_extra__: dict[str, Action] = Field(init=False)

    @model_validator(mode="before")
    @classmethod
    def _a_table(cls, data: Any) -> Any:
        if not isinstance(data, (dict, BaseModel)):
            raise ValueError('expected a table of actions such as { CARD = "block" }')
        return data

    def actions(self) -> dict[str, Action]:
        return dict(self.__pydantic_extra__ or {})


class RedactSection(RedactTable):
    """`[guardrails.redact]`: action per type or group, both directions, plus `up`/`down`."""

    up: RedactTable = RedactTable()
    down: RedactTable = RedactTable()


def _pattern(v: str) -> str:
    try:
        re.compile(v)
    except re.error as e:
        raise ValueError(f"the pattern does not compile ({e}); check the regular expression") from e
    if re.fullmatch(v, ""):
        raise ValueError("the pattern matches the empty string; it must match at least 1 char")
    return v


class DetectorSection(_Model):
    """`[[guardrails.detectors]]`: a custom detector."""

    name: str
    pattern: Annotated[str, Field(min_length=1), AfterValidator(_pattern)]
    validator: Literal["luhn", "mod97"] | None = None
    action: Action = "mask"

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not _TYPE_RE.match(v):
            raise ValueError(
                f"{v!r} is not a valid detector name: use upper-case letters, digits and '_', "
                "starting with a letter, such as EMPLOYEE_ID"
            )
        if v in TYPES:
            raise ValueError(f"{v} is a built-in type; give the custom detector its own name")
        return v

    def custom(self) -> Custom:
        return Custom(self.name, self.pattern, self.validator)


class DefinitionsSection(_Model):
    high: DefinitionAction = "hide"
    medium: DefinitionAction = "warn"
    low: DefinitionAction = "warn"


class FindingsSection(_Model):
    definitions: DefinitionsSection = DefinitionsSection()
    results: ResultAction = "warn"
    rules: dict[str, RuleAction] = {}

    @field_validator("rules")
    @classmethod
    def _rules(cls, v: dict[str, RuleAction]) -> dict[str, RuleAction]:
        for rule in v:
            if rule not in RULE_IDS:
                raise ValueError(f"unknown rule {rule!r} (known: {', '.join(RULE_IDS)})")
        return v


def _pin(v: str) -> str:
    if not _SHA256_RE.match(v):
        raise ValueError(
            "a pin is the 64 hex digits of a SHA-256, as `lockgate tools pins` prints it"
        )
    return v.lower()


ToolName = Annotated[str, Field(min_length=1)]
Pin = Annotated[str, AfterValidator(_pin)]


class PinningSection(_Model):
    mode: PinMode = "tofu"
    # upstream -> tool name -> pin (shipped by IT; checked against the upstreams by Profile)
    pins: dict[
        str, dict[Annotated[str, Field(min_length=1)], Annotated[str, AfterValidator(_pin)]]
    ] = {}


def _rate(v: str) -> str:
    if v != "off":
        parse_rate(v)
    return v


RateText = Annotated[str, AfterValidator(_rate)]


class LimitsSection(_Model):
    """Rates such as "60/minute" (or "off", to lift a default in a route's override)."""

    route: RateText | None = None
    user: RateText | None = None
    tool: RateText | None = None
    burst: int | None = Field(default=None, ge=1, le=1_000_000_000)

    def spec(self) -> LimitsSpec | None:
        def rate(v: str | None) -> Any:
            return parse_rate(v) if v is not None and v != "off" else None

        spec = LimitsSpec(rate(self.route), rate(self.user), rate(self.tool), self.burst)
        return None if spec.empty else spec


class GuardrailsSection(_Model):
    """`[guardrails]` (defaults of every route) or `[routes.<r>.guardrails]` (an override)."""

    enabled: bool = True
    redact: RedactSection = RedactSection()
    detectors: tuple[DetectorSection, ...] = ()
    findings: FindingsSection = FindingsSection()
    pinning: PinningSection = PinningSection()
    limits: LimitsSection = LimitsSection()

    @model_validator(mode="after")
    def _unique_detectors(self) -> GuardrailsSection:
        seen: set[str] = set()
        for i, d in enumerate(self.detectors):
            if d.name in seen:
                raise KeyedError(
                    ("detectors", i, "name"), f"detector {d.name} is defined twice; rename one"
                )
            seen.add(d.name)
        return self

    def merged(self, override: GuardrailsSection | None) -> GuardrailsSection:
        """This section with `override`'s keys on top, key by key: a route's
        `redact.EMAIL` keeps the other redact keys, its `limits.tool` the other limits;
        detectors merge by name. The merged tables then resolve as one, so a route's group
        key (`contact = "mask"`) does not beat a type key of the defaults (`EMAIL = "log"`):
        the route names the type to change it."""
        if override is None:
            return self
        base = self.model_dump(exclude_unset=True)
        top = override.model_dump(exclude_unset=True)
        detectors = {d["name"]: d for d in base.pop("detectors", ())}
        detectors.update({d["name"]: d for d in top.pop("detectors", ())})
        data = _deep_merge(base, top)
        if detectors:
            data["detectors"] = list(detectors.values())
        return GuardrailsSection.model_validate(data)

    def custom_names(self) -> tuple[str, ...]:
        return tuple(d.name for d in self.detectors)

    def check_names(self, custom: Iterable[str] = ()) -> None:
        """KeyedError for a redact key that names no group, built-in type or custom detector
        (this section's own or those of `custom`, the defaults an override inherits)."""
        known = {*GROUPS, *TYPES, *self.custom_names(), *custom}
        tables = [((), self.redact)] + [((d,), getattr(self.redact, d)) for d in _DIRECTIONS]
        for where, table in tables:
            for key in table.actions():
                if key not in known:
                    hint = (
                        "a group (secret, financial, national, contact), a built-in type "
                        "such as EMAIL or CARD, or the name of a custom detector"
                    )
                    raise KeyedError(
                        ("redact", *where, key), f"unknown type {key!r}: expected {hint}"
                    )


def _deep_merge(base: dict[str, Any], top: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in top.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _deep_merge(out[key], value)
        else:
            out[key] = value
    return out


@dataclass(frozen=True, slots=True, eq=False)
class GuardrailPolicy:
    """One route's guardrails, resolved: what the addon reads per message."""

    enabled: bool
    detectors: Detectors
    up: Mapping[str, Action]  # every built-in and custom type -> its action, client→upstream
    down: Mapping[str, Action]  # the same, upstream→client
    redacts_up: bool  # enabled and some type is not "off" on the way up
    redacts_down: bool
    definitions: Mapping[Severity, DefinitionAction]
    rules: Mapping[str, RuleAction]
    results: ResultAction
    pin_mode: PinMode
    pins: Mapping[str, Mapping[str, str]]  # upstream -> tool -> sha256 hex (lower case)
    limits: LimitsSpec | None

    def definition_action(self, rule: str, severity: Severity) -> RuleAction:
        """What to do with a definition that has a finding of `rule`: the rule's own action
        if the profile names it, else the action of its severity."""
        own = self.rules.get(rule)
        return own if own is not None else self.definitions[severity]


def _actions(section: GuardrailsSection, direction: str) -> dict[str, Action]:
    both = section.redact.actions()
    one = getattr(section.redact, direction).actions()
    out: dict[str, Action] = {}
    for group, types in GROUPS.items():
        for t in types:
            out[t] = DEFAULT_GROUP_ACTIONS.get(group, "mask")
    for d in section.detectors:
        out[d.name] = d.action
    for table in (both, one):
        for group, types in GROUPS.items():
            if group in table:
                for t in types:
                    out[t] = table[group]
        for name, action in table.items():
            if name not in GROUPS:
                out[name] = action
    return out


def resolve(section: GuardrailsSection | None = None) -> GuardrailPolicy:
    """The policy of one (merged) section; None: the defaults. ValueError for a redact key
    that names no known type (Profile checks this at load, with file and line)."""
    if section is None:
        section = GuardrailsSection()
    section.check_names()
    up = _actions(section, "up")
    down = _actions(section, "down")
    pins = {u: MappingProxyType(dict(tools)) for u, tools in section.pinning.pins.items()}
    definitions = section.findings.definitions
    return GuardrailPolicy(
        enabled=section.enabled,
        detectors=Detectors(d.custom() for d in section.detectors),
        up=MappingProxyType(up),
        down=MappingProxyType(down),
        redacts_up=section.enabled and any(a != "off" for a in up.values()),
        redacts_down=section.enabled and any(a != "off" for a in down.values()),
        definitions=MappingProxyType(
            {"high": definitions.high, "medium": definitions.medium, "low": definitions.low}
        ),
        rules=MappingProxyType(dict(section.findings.rules)),
        results=section.findings.results,
        pin_mode=section.pinning.mode,
        pins=MappingProxyType(pins),
        limits=section.limits.spec(),
    )
