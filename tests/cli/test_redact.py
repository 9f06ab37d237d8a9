"""`lockgate redact` through the real CLI in a subprocess: text, JSONL, spans, a profile's policy,
and errors as one sentence."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lockgate.cli.redact import _dumps, _loads

GH = "ghp_" + "aB3dE5fG7hJ9kL1mN3pQ5rS7tU9vW1xY3zA5"
CARD = "4111 1111 1111 1111"
EMAIL = "bob@acme.io"
PEM = (
    "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA1234567890abcdef\n"
    "-----END RSA PRIVATE KEY-----"
)


def run(
    tmp_path: Path, *args: str, stdin: str | bytes | None = None
) -> subprocess.CompletedProcess[bytes]:
    """The real `lockgate` as a user runs it (tests/cli/real_cli.py has no stdin: this is the
    same command line with input), in a fresh home without an active profile."""
    env = {
        **os.environ,
        "HOME": str(tmp_path),
        "XDG_CONFIG_HOME": str(tmp_path / "config"),
        "XDG_STATE_HOME": str(tmp_path / "state"),
        "XDG_DATA_HOME": str(tmp_path / "data"),
        "LOCKGATE_DEBUG": "",
        "NO_COLOR": "1",
        "COLUMNS": "200",
    }
    env.pop("LOCKGATE_PROFILE", None)
    data = stdin.encode("utf-8") if isinstance(stdin, str) else stdin
    return subprocess.run(
        [sys.executable, "-m", "lockgate.cli", "redact", *args],
        input=data if data is not None else b"",
        capture_output=True,
        env=env,
        timeout=60,
        check=False,
    )


def ok(proc: subprocess.CompletedProcess[bytes]) -> str:
    assert proc.returncode == 0, proc.stderr.decode()
    return proc.stdout.decode("utf-8")


def fails(proc: subprocess.CompletedProcess[bytes], says: str, code: int = 2) -> str:
    err = proc.stderr.decode("utf-8")
    assert proc.returncode == code, err
    assert "Traceback" not in err and says in err, err
    assert len(err.strip().splitlines()) == 1, err
    assert proc.stdout == b""
    return err


def test_text_from_a_file_and_from_stdin(tmp_path: Path) -> None:
    text = f"user {EMAIL} token={GH}\ncard {CARD} and order 1234567890123 ok\n"
    (tmp_path / "in.log").write_text(text)
    want = (
        "user [REDACTED:EMAIL] token=[REDACTED:GITHUB_TOKEN]\n"
        "card [REDACTED:CARD] and order 1234567890123 ok\n"
    )
    assert ok(run(tmp_path, str(tmp_path / "in.log"))) == want
    assert ok(run(tmp_path, stdin=text)) == want
    assert ok(run(tmp_path, "-", stdin=text)) == want
    # clean text passes byte for byte, without a trailing newline added
    clean = "nothing here: lodash@4.17.21, sha 3f786850e387550fdab836ed7e6dc881de23001b"
    assert ok(run(tmp_path, stdin=clean)) == clean


def test_a_pem_key_spanning_lines_is_one_span(tmp_path: Path) -> None:
    out = ok(run(tmp_path, stdin=f"before\n{PEM}\nafter\n"))
    assert out == "before\n[REDACTED:PRIVATE_KEY]\nafter\n"


def test_jsonl_changes_string_values_only(tmp_path: Path) -> None:
    lines = [
        json.dumps({"jsonrpc": "2.0", "id": 7, "params": {"arguments": {"token": GH}}}),
        # a key that looks like an email stays; numbers keep their literal; duplicates stay
        '{"bob@acme.io": "mail bob@acme.io", "n": 1.50, "big": 12345678901234567890123, '
        '"x": 1e5, "x": "dup"}',
        '["' + CARD + '", {"nested": ["\\u0067hp_aB3dE5fG7hJ9kL1mN3pQ5rS7tU9vW1xY3zA5"]}]',
        '{"clean": "nothing to see",   "spacing": [1,2]}',
        f"a text line with {EMAIL}",
        "",
        '  {"indented": "' + EMAIL + '"}\r',
    ]
    out = ok(run(tmp_path, stdin="\n".join(lines) + "\n")).split("\n")
    assert out[-1] == ""
    out = out[:-1]
    assert len(out) == len(lines)
    first = json.loads(out[0])
    assert first == {
        "jsonrpc": "2.0",
        "id": 7,
        "params": {"arguments": {"token": "[REDACTED:GITHUB_TOKEN]"}},
    }
    assert out[1] == (
        '{"bob@acme.io": "mail [REDACTED:EMAIL]", "n": 1.50, "big": 12345678901234567890123, '
        '"x": 1e5, "x": "dup"}'
    )
    assert json.loads(out[2]) == ["[REDACTED:CARD]", {"nested": ["[REDACTED:GITHUB_TOKEN]"]}]
    assert out[3] == lines[3]  # unchanged lines are byte-identical
    assert out[4] == "a text line with [REDACTED:EMAIL]"
    assert out[5] == ""
    assert out[6] == '  {"indented": "[REDACTED:EMAIL]"}\r'
    for line in out:
        if line.strip().startswith(("{", "[")):
            json.loads(line)
    assert GH not in "\n".join(out) and EMAIL not in out[1].split(":", 1)[1]


def test_odd_json_lines_stay_valid_or_are_text(tmp_path: Path) -> None:
    deep = "[" * 5000 + '"' + EMAIL + '"' + "]" * 5000
    lines = ['{"s": "\\ud800 lone surrogate ' + EMAIL + '"}', deep, '{"broken": "' + EMAIL]
    out = ok(run(tmp_path, stdin="\n".join(lines))).split("\n")
    assert out[0] == '{"s": "\\ud800 lone surrogate [REDACTED:EMAIL]"}'
    assert json.loads(out[0])["s"].endswith("[REDACTED:EMAIL]")
    assert EMAIL not in out[1] and out[1].startswith("[[[")  # too deep for JSON: redacted as text
    assert out[2] == '{"broken": "[REDACTED:EMAIL]'


def test_jsonl_and_text_force_one_reading(tmp_path: Path) -> None:
    line = '{"k": "' + EMAIL + '"}\nnot json\n'
    fails(run(tmp_path, "--jsonl", stdin=line), "Line 2 is not a JSON object or array")
    assert ok(run(tmp_path, "--jsonl", stdin=line.split("\n")[0] + "\n\n")).startswith('{"k"')
    # as text, the JSON escape is not decoded: the escaped token is not a token
    escaped = '{"k": "\\u0067hp_aB3dE5fG7hJ9kL1mN3pQ5rS7tU9vW1xY3zA5"}\n'
    assert ok(run(tmp_path, "--text", stdin=escaped)) == escaped
    assert "[REDACTED:GITHUB_TOKEN]" in ok(run(tmp_path, stdin=escaped))
    fails(run(tmp_path, "--jsonl", "--text", stdin=line), "exclude each other")


def test_spans_for_text_index_the_input(tmp_path: Path) -> None:
    text = f"héllo {EMAIL}\n{PEM}\ncard {CARD}"
    records = [json.loads(line) for line in ok(run(tmp_path, "--spans", stdin=text)).splitlines()]
    assert [r["type"] for r in records] == ["EMAIL", "PRIVATE_KEY", "CARD"]
    assert [text[r["start"] : r["end"]] for r in records] == [EMAIL, PEM, CARD]
    assert all(r["action"] == "mask" for r in records)


def test_spans_for_jsonl_name_line_and_path(tmp_path: Path) -> None:
    lines = [
        "plain text",
        json.dumps({"params": {"arguments": {"to": EMAIL, "list": ["x", f"card {CARD}"]}}}),
    ]
    out = ok(run(tmp_path, "--spans", stdin="\n".join(lines)))
    records = [json.loads(line) for line in out.splitlines()]
    assert records == [
        {
            "line": 2,
            "path": "params.arguments.to",
            "start": 0,
            "end": 11,
            "type": "EMAIL",
            "action": "mask",
        },
        {
            "line": 2,
            "path": "params.arguments.list[1]",
            "start": 5,
            "end": 24,
            "type": "CARD",
            "action": "mask",
        },
    ]


PROFILE = """\
[upstreams.notes]
url = "http://127.0.0.1:9000/mcp"

[routes.notes]
upstream = "notes"

[routes.strict]
upstream = "notes"

[guardrails.redact]
EMAIL = "log"
IP = "off"

[guardrails.redact.up]
CARD = "block"

[[guardrails.detectors]]
name = "EMPLOYEE_ID"
pattern = 'EMP-\\d{6}'

[routes.strict.guardrails]
redact.EMAIL = "mask"
"""

SAMPLE = f"from {EMAIL} at 10.1.2.3 by EMP-123456 paid {CARD} with {GH}\n"


def test_profile_policy_applies_per_direction_and_route(tmp_path: Path) -> None:
    profile = tmp_path / "p.toml"
    profile.write_text(PROFILE)
    proc = run(tmp_path, "--profile", str(profile), stdin=SAMPLE)
    assert ok(proc) == (
        f"from {EMAIL} at 10.1.2.3 by [REDACTED:EMPLOYEE_ID] paid [REDACTED:CARD] "
        "with [REDACTED:GITHUB_TOKEN]\n"
    )
    err = proc.stderr.decode()
    assert "would refuse" in err and "CARD" in err and "up" in err
    assert CARD not in err and "4111" not in err
    # down: CARD is masked by the default and nothing is refused
    proc = run(tmp_path, "--profile", str(profile), "--direction", "down", stdin=SAMPLE)
    assert "[REDACTED:CARD]" in ok(proc) and proc.stderr == b""
    # the route override masks email; IP = "off" is kept from the defaults, key by key
    out = ok(run(tmp_path, "--profile", str(profile), "--route", "strict", stdin=SAMPLE))
    assert out.startswith("from [REDACTED:EMAIL] at 10.1.2.3 by [REDACTED:EMPLOYEE_ID]")
    # --route without --profile takes the active profile: there is none in this home
    fails(run(tmp_path, "--route", "strict", stdin=SAMPLE), "No profile given")


def test_profile_spans_list_logged_types_and_skip_off_ones(tmp_path: Path) -> None:
    profile = tmp_path / "p.toml"
    profile.write_text(PROFILE)
    out = ok(run(tmp_path, "--spans", "--profile", str(profile), stdin=SAMPLE))
    records = [json.loads(line) for line in out.splitlines()]
    assert [(r["type"], r["action"]) for r in records] == [
        ("EMAIL", "log"),
        ("EMPLOYEE_ID", "mask"),
        ("CARD", "block"),
        ("GITHUB_TOKEN", "mask"),
    ]
    # without a policy the engine's view: every span found, custom detectors unknown
    plain = [json.loads(line) for line in ok(run(tmp_path, "--spans", stdin=SAMPLE)).splitlines()]
    assert [r["type"] for r in plain] == ["EMAIL", "IP", "CARD", "GITHUB_TOKEN"]


def test_disabled_guardrails_change_nothing(tmp_path: Path) -> None:
    profile = tmp_path / "p.toml"
    head = "[guardrails]\nenabled = false\n\n[guardrails.redact]\n"
    profile.write_text(PROFILE.replace("[guardrails.redact]\n", head))
    proc = run(tmp_path, "--profile", str(profile), stdin=SAMPLE)
    assert ok(proc) == SAMPLE
    assert "guardrails are off" in proc.stderr.decode()


def test_errors_are_one_sentence(tmp_path: Path) -> None:
    fails(run(tmp_path, str(tmp_path / "absent.log")), "No such file")
    fails(run(tmp_path, str(tmp_path)), "is a directory")
    (tmp_path / "bin").write_bytes(b"\xff\xfe\x00binary")
    fails(run(tmp_path, str(tmp_path / "bin")), "is not UTF-8 text")
    bad = tmp_path / "bad.toml"
    bad.write_text(PROFILE.replace('IP = "off"', 'IP = "hide"'))
    err = fails(
        run(tmp_path, "--profile", str(bad), stdin=SAMPLE), f"{bad}:12: guardrails.redact.IP"
    )
    assert "'mask'" in err
    good = tmp_path / "p.toml"
    good.write_text(PROFILE)
    fails(run(tmp_path, "-p", str(good), "--route", "nope", stdin="x"), "no route 'nope'")
    fails(run(tmp_path, "--profile", str(tmp_path / "none.toml"), stdin="x"), "no such profile")
    usage = run(tmp_path, "--direction", "sideways", stdin="x")  # click's usage error
    assert usage.returncode == 2 and b"'sideways' is not one of 'up', 'down'" in usage.stderr


def test_starts_without_mitmproxy_or_the_profile(tmp_path: Path) -> None:
    probe = (
        "import runpy, sys\n"
        "sys.argv = ['lockgate', 'redact', '--spans']\n"
        "try:\n    runpy.run_module('lockgate.cli', run_name='__main__')\n"
        "except SystemExit:\n    pass\n"
        "names = ('mitmproxy', 'lockgate.profile.model', 'lockgate.guardrails.policy')\n"
        "print(sorted(m for m in names if m in sys.modules),"
        " file=sys.stderr)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", probe],
        input=SAMPLE.encode(),
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.decode().strip().splitlines()[-1] == "[]"
    assert b"GITHUB_TOKEN" in proc.stdout


# --- the JSON round trip the command relies on (in-process: it is a pure function) ---------

JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(JSON)
def test_json_round_trips_exactly(value: object) -> None:
    text = json.dumps(value)
    again = _dumps(_loads(text))
    assert json.loads(again) == value
    assert _dumps(_loads(again)) == again


@pytest.mark.parametrize(
    "line", ['{"a": 1, "a": 2}', "[1.0, 1e5, -0, 12345678901234567890]", '{"x": NaN}']
)
def test_json_literals_and_duplicates_are_kept(line: str) -> None:
    assert _dumps(_loads(line)) == line
