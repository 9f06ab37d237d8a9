"""`tools/call` arguments checked against the `inputSchema` the route last listed.

Why jsonschema-rs: measured on this machine for a small schema (two properties, one
required), compiling costs 15 us and validating a valid instance 0.7 us; fastjsonschema
costs 1,030 us to compile (it generates and execs Python) and 1.7 us to validate. Both
are maintained; the Rust one is faster at both and needs no `exec`.

Schemas are remembered per (route, tool name) from the `tools/list` results the client
was shown, bounded in count (oldest dropped first); a compiled validator is cached per
definition hash (the schema's canonical JSON), bounded too, so a thousand routes listing
the same tool compile it once. A tool never seen listed passes: the guardrails stage
decides on unlisted tools. A schema that does not compile passes too (the upstream is
the authority on its own schema; refusing every call would break the tool).

jsonschema-rs is imported by the first compile, not at import: ~5 MB of RSS that a gateway
whose clients call no listed tool never needs; the first call of a listed tool pays its
import once (~20 ms measured here), each later one nothing.

A refusal names the argument's path and what the schema expects, never the value
(an argument may be a secret).
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from typing import Any

import orjson

MAX_TOOLS = 4096
MAX_VALIDATORS = 1024
_BOUNDS = frozenset(
    {"minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "minLength", "maxLength"}
    | {"minItems", "maxItems", "minProperties", "maxProperties", "multipleOf"}
)


def _path(parts: list[str | int]) -> str:
    out = "arguments"
    for p in parts:
        out += f"[{p}]" if isinstance(p, int) else f".{p}"
    return out


def _at(doc: Any, path: list[str | int]) -> Any:
    for p in path:
        doc = doc[p]
    return doc


def _expected(
    schema: Any, schema_path: list[str | int], instance: Any, where: list[str | int]
) -> str:
    """What the failing keyword asks, from the schema alone (never the instance's value)."""
    keyword = schema_path[-1] if schema_path else ""
    try:
        rule = _at(schema, schema_path)
    except (KeyError, IndexError, TypeError):
        rule = None
    if keyword == "required" and isinstance(rule, list):
        try:
            have = _at(instance, where)
        except (KeyError, IndexError, TypeError):
            have = {}
        missing = [r for r in rule if isinstance(r, str) and r not in have]
        return f"needs {', '.join(repr(m) for m in missing) or 'its required properties'}"
    if keyword == "type":
        types = rule if isinstance(rule, list) else [rule]
        return "must be " + " or ".join(str(t) for t in types)
    if keyword == "additionalProperties":
        return "has a property the tool does not take"
    if keyword in _BOUNDS and type(rule) in (int, float):
        return f"must satisfy {keyword} {rule}"
    if keyword in ("enum", "const"):
        return "must be one of the values the schema allows"
    return f"breaks the schema's {keyword!r} rule" if keyword else "does not match the schema"


class ArgumentSchemas:
    """The listed input schemas of each route's tools, and their compiled validators."""

    def __init__(self, max_tools: int = MAX_TOOLS, max_validators: int = MAX_VALIDATORS) -> None:
        self._max_tools = max_tools
        self._max_validators = max_validators
        self._schemas: OrderedDict[tuple[str, str], tuple[str | None, Any]] = OrderedDict()
        self._validators: OrderedDict[str, Any] = OrderedDict()
        # Per route: the `jsonrpc.result_key` of its last list body, and the names remembered
        # from bodies with that key (still held): the same upstream bytes hold the same schemas.
        self._last: dict[str, tuple[bytes, set[str]]] = {}

    def remember(self, route: str, result: object, key: bytes | None = None) -> None:
        """Take note of the tools in one `tools/list` result shown on `route`; `key`: the
        body's `jsonrpc.result_key`, when known."""
        tools = result.get("tools") if isinstance(result, dict) else None
        if not isinstance(tools, list):
            return
        last = self._last.get(route)
        if key is None:
            self._last.pop(route, None)
            known: set[str] = set()
        elif last is not None and last[0] == key:
            known = last[1]
        else:
            known = set()
            self._last[route] = (key, known)
        schemas = self._schemas
        for tool in tools:
            if not isinstance(tool, dict):
                continue
            name = tool.get("name")
            if name in known:
                # Listed before in identical bytes, still held: replacing it with an equal
                # copy (2,000 of them) cost more than the rest of the list's checks.
                continue
            schema = tool.get("inputSchema")
            if not isinstance(name, str) or not isinstance(schema, dict):
                continue
            entry = (route, name)
            # Hashed at the first call, not here: a list of 2,000 tools would pay ~4 us each.
            schemas[entry] = (None, schema)
            schemas.move_to_end(entry)
            if key is not None:
                known.add(name)
            while len(schemas) > self._max_tools:
                (gone_route, gone), _ = schemas.popitem(last=False)
                held = self._last.get(gone_route)
                if held is not None:
                    held[1].discard(gone)

    def _validator(self, digest: str, schema: Any) -> Any:
        v = self._validators.get(digest)
        if v is None:
            import jsonschema_rs

            try:
                v = jsonschema_rs.validator_for(schema)
            except (ValueError, jsonschema_rs.ValidationError):
                v = False  # an uncompilable schema: remembered, and passed
            self._validators[digest] = v
            while len(self._validators) > self._max_validators:
                self._validators.popitem(last=False)
        else:
            self._validators.move_to_end(digest)
        return v

    def problem(self, route: str, name: str, arguments: object) -> str | None:
        """One sentence when `arguments` break the listed schema of `name`; None otherwise."""
        entry = self._schemas.get((route, name))
        if entry is None:
            return None
        digest, schema = entry
        if digest is None:
            try:
                digest = hashlib.sha256(
                    orjson.dumps(schema, option=orjson.OPT_SORT_KEYS)
                ).hexdigest()
            except (TypeError, orjson.JSONEncodeError):
                return None  # not JSON orjson writes: passed, as an uncompilable schema
            self._schemas[(route, name)] = (digest, schema)
        validator = self._validator(digest, schema)
        instance = {} if arguments is None else arguments
        if validator is False or validator.is_valid(instance):
            return None
        for error in validator.iter_errors(instance):
            where = list(error.instance_path)
            what = _expected(schema, list(error.schema_path), instance, where)
            return f"The argument {_path(where)} of tool {name!r} {what}."
        return None
