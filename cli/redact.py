"""`lockgate redact`: the gateway's redaction engine on a file or stdin, so a user can see what
it finds in their own data and try a profile's policy before shipping it.

Only typer is imported at the top (the command starts fast and never loads mitmproxy); the
engine loads when the command runs, pydantic and the profile only with --profile or --route.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator, Mapping
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from lockgate.errors import LockgateError

if TYPE_CHECKING:
    from lockgate.guardrails.detectors import Action, Detectors, Span

HELP = (
    "Redact secrets and personal data in text or JSONL, as the gateway would.\n\n"
    "Reads FILE (or stdin) and prints it with every found secret or personal datum replaced "
    "by [REDACTED:TYPE].\n\n"
    "Lines that are JSON objects or arrays are JSONL: only their string values change (keys "
    "and numbers never do) and each stays one valid JSON line; the other lines are text, "
    "redacted as a whole so that a PEM key spanning lines is found. --jsonl or --text forces "
    "one reading.\n\n"
    "Without --profile or --route every span the built-in detectors find is masked: what the "
    "engine sees. With --profile (its guardrails defaults) or --route (that route's "
    "guardrails, from --profile or the active profile) the policy applies as the gateway "
    "would for --direction (default up, client to upstream): its custom detectors run; types "
    "set to mask or block are masked (block also notes on stderr that the gateway would "
    "refuse the message); types set to log are kept and listed by --spans; types set to off "
    "are not reported.\n\n"
    "--spans prints, instead of the text, one JSON object per found span: start and end "
    "(character offsets; in the input for text, in the string value for JSON lines, with the "
    "line number and the value's path), type and action.\n\n"
    "Example: lockgate redact app.log\n\n"
    "Example: cat calls.jsonl | lockgate redact --spans --profile profiles/demo.toml --route "
    "notes"
)


class Direction(StrEnum):
    up = "up"
    down = "down"


class InputError(LockgateError):
    """Input the command cannot read: a usage error (exit code 2)."""

    exit_code = 2


# --- JSON that round-trips: duplicate keys, key order and number literals are kept ---------


class _Object(list[tuple[str, Any]]):
    """A JSON object as its (key, value) pairs, duplicates and order kept."""


class _Literal(str):
    """A JSON number (or NaN/Infinity) exactly as it was written."""


def _loads(line: str) -> Any:
    import json

    return json.loads(
        line,
        object_pairs_hook=_Object,
        parse_int=_Literal,
        parse_float=_Literal,
        parse_constant=_Literal,
    )


def _string(s: str) -> str:
    import json

    try:
        s.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate (from a \ud800 escape) stays escaped
        return json.dumps(s)
    return json.dumps(s, ensure_ascii=False)


def _dumps(value: Any) -> str:
    if isinstance(value, _Literal):
        return str.__str__(value)
    if isinstance(value, str):
        return _string(value)
    if isinstance(value, _Object):
        return "{" + ", ".join(f"{_string(k)}: {_dumps(v)}" for k, v in value) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(_dumps(v) for v in value) + "]"
    if value is None:
        return "null"
    return "true" if value else "false"


def _strings(value: Any, path: str = "") -> Iterator[tuple[str, str]]:
    """Every string value with its path (`params.arguments.token`, `items[0]`)."""
    if isinstance(value, _Literal):
        return
    if isinstance(value, str):
        yield path, value
    elif isinstance(value, _Object):
        for k, v in value:
            yield from _strings(v, f"{path}.{k}" if path else k)
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _strings(v, f"{path}[{i}]")


def _replace(value: Any, change: Callable[[str], str]) -> Any:
    """`value` with each string value changed; the same object where nothing changed."""
    if isinstance(value, _Literal):
        return value
    if isinstance(value, str):
        return change(value)
    if isinstance(value, _Object):
        pairs = [(k, _replace(v, change)) for k, v in value]
        changed = any(new is not old for (_, new), (_, old) in zip(pairs, value, strict=True))
        return _Object(pairs) if changed else value
    if isinstance(value, list):
        items = [_replace(v, change) for v in value]
        return items if any(a is not b for a, b in zip(items, value, strict=True)) else value
    return value


# --- the engine and the policy -------------------------------------------------------------


class _Engine:
    """The detectors and, with a policy, each type's action in the chosen direction."""

    def __init__(self, detectors: Detectors, actions: Mapping[str, Action] | None) -> None:
        self.detectors = detectors
        self.actions = actions
        # what the text shows: block is masked too (the gateway would refuse the message)
        self.masks: dict[str, Action] | None = (
            None
            if actions is None
            else {t: "mask" if a in ("mask", "block") else a for t, a in actions.items()}
        )
        self.blocked: set[str] = set()

    def action(self, type_: str) -> Action:
        return "mask" if self.actions is None else self.actions.get(type_, "off")

    def spans(self, text: str) -> list[tuple[Span, Action]]:
        found = [(s, self.action(s.type)) for s in self.detectors.find(text)]
        return [(s, a) for s, a in found if a != "off"]

    def redact(self, text: str) -> str:
        if self.actions is not None:
            for span, action in self.spans(text):
                if action == "block":
                    self.blocked.add(span.type)
        return self.detectors.redact(text, self.masks)


def _engine(profile: Path | None, route: str | None, direction: Direction) -> _Engine:
    if profile is None and route is None:
        from lockgate.guardrails.detectors import Detectors

        return _Engine(Detectors(), None)
    from lockgate.guardrails.policy import resolve
    from lockgate.profile.model import active_profile_path, load_profile

    path = active_profile_path(profile)
    loaded = load_profile(path)
    if route is None:
        section = loaded.guardrails
    elif route in loaded.routes:
        section = loaded.guardrails_for(route)
    else:
        raise InputError(
            f"The profile {path} has no route '{route}'",
            f"use one of: {', '.join(sorted(loaded.routes))}",
        )
    policy = resolve(section)
    if not policy.enabled:
        typer.echo(
            "lockgate: guardrails are off (enabled = false) for this policy: nothing is changed.",
            err=True,
        )
        return _Engine(policy.detectors, {})
    return _Engine(policy.detectors, policy.up if direction is Direction.up else policy.down)


# --- input -----------------------------------------------------------------------------------


def _read(file: Path | None) -> str:
    if file is None or str(file) == "-":
        if sys.stdin is None or sys.stdin.isatty():
            raise InputError("Nothing to redact", "give a FILE or pipe text on stdin")
        data = sys.stdin.buffer.read()
        name = "stdin"
    else:
        try:
            data = file.read_bytes()
        except FileNotFoundError:
            raise InputError(f"No such file: {file}", "check the path") from None
        except IsADirectoryError:
            raise InputError(f"{file} is a directory", "give a file") from None
        except OSError as e:
            raise InputError(f"Cannot read {file} ({e.strerror or e})") from None
        name = str(file)
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise InputError(f"{name} is not UTF-8 text", "convert it to UTF-8 first") from None


def _lines(text: str) -> list[str]:
    """The lines of `text`, each with its "\\n" (only "\\n" ends a line, as in JSONL)."""
    parts = text.split("\n")
    lines = [p + "\n" for p in parts[:-1]]
    if parts[-1]:
        lines.append(parts[-1])
    return lines


# Deeper JSON is read as text (the walkers recurse; no real message nests this deep).
MAX_DEPTH = 200


def _depth_ok(value: Any) -> bool:
    stack = [(value, 1)]
    while stack:
        v, depth = stack.pop()
        if isinstance(v, list):  # an array, or an object's pairs
            if depth > MAX_DEPTH:
                return False
            items = (x for _, x in v) if isinstance(v, _Object) else iter(v)
            stack.extend((x, depth + 1) for x in items)
    return True


def _json_line(line: str) -> Any | None:
    stripped = line.strip()
    if not stripped or stripped[0] not in "{[":
        return None
    try:
        value = _loads(stripped)
    except (ValueError, RecursionError):
        return None
    return value if _depth_ok(value) else None


# --- the command -----------------------------------------------------------------------------


def redact(  # the help is HELP, set below
    file: Path | None = typer.Argument(
        None, help="The text or JSONL file (default: stdin; - is stdin too).", show_default=False
    ),
    spans: bool = typer.Option(False, "--spans", help="Print the found spans as JSON lines."),
    jsonl: bool = typer.Option(False, "--jsonl", help="Every non-blank line must be JSON."),
    text_only: bool = typer.Option(False, "--text", help="Read all of the input as text."),
    profile: Path | None = typer.Option(
        None, "--profile", "-p", help="Apply this profile's guardrails (its defaults)."
    ),
    route: str | None = typer.Option(
        None,
        "--route",
        "-r",
        help="Apply this route's guardrails (from --profile, else the active profile).",
    ),
    direction: Direction = typer.Option(
        Direction.up, "--direction", help="With a policy: up (client to upstream) or down."
    ),
) -> None:
    if jsonl and text_only:
        raise InputError("--jsonl and --text exclude each other", "give one of them")
    engine = _engine(profile, route, direction)
    source = _read(file)
    out: list[str] = []
    emit = out.append
    if text_only:
        _text(engine, source, 0, spans, emit)
    else:
        _mixed(engine, source, jsonl, spans, emit)
    sys.stdout.buffer.write("".join(out).encode("utf-8"))
    sys.stdout.flush()
    if engine.blocked:
        where = "up" if direction is Direction.up else "down"
        typer.echo(
            f"lockgate: the gateway would refuse the messages holding "
            f"{', '.join(sorted(engine.blocked))} (set to block on the way {where}); "
            "they are masked here.",
            err=True,
        )


redact.__doc__ = HELP


def _text(
    engine: _Engine, chunk: str, offset: int, spans: bool, emit: Callable[[str], Any]
) -> None:
    import json

    if not spans:
        emit(engine.redact(chunk))
        return
    for span, action in engine.spans(chunk):
        if action == "block":
            engine.blocked.add(span.type)
        record = {
            "start": offset + span.start,
            "end": offset + span.end,
            "type": span.type,
            "action": action,
        }
        emit(json.dumps(record) + "\n")


def _mixed(
    engine: _Engine, source: str, jsonl: bool, spans: bool, emit: Callable[[str], Any]
) -> None:
    import json

    pending: list[str] = []  # the text lines since the last JSON line
    pending_at = 0
    offset = 0
    for number, line in enumerate(_lines(source), 1):
        value = _json_line(line)
        if value is None and jsonl and line.strip():
            raise InputError(
                f"Line {number} is not a JSON object or array (nesting at most {MAX_DEPTH} deep)",
                "drop --jsonl to redact such lines as text",
            )
        if value is None:
            if not pending:
                pending_at = offset
            pending.append(line)
            offset += len(line)
            continue
        if pending:
            _text(engine, "".join(pending), pending_at, spans, emit)
            pending = []
        offset += len(line)
        if spans:
            for path, s in _strings(value):
                for span, action in engine.spans(s):
                    if action == "block":
                        engine.blocked.add(span.type)
                    record = {"line": number, "path": path, "start": span.start}
                    record |= {"end": span.end, "type": span.type, "action": action}
                    emit(json.dumps(record, ensure_ascii=False) + "\n")
            continue
        new = _replace(value, engine.redact)
        if new is value:
            emit(line)
        else:
            body = line.rstrip("\n")
            lead = body[: len(body) - len(body.lstrip())]
            trail = body[len(body.rstrip()) :]
            emit(lead + _dumps(new) + trail + line[len(body) :])
    if pending:
        _text(engine, "".join(pending), pending_at, spans, emit)
