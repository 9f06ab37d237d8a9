"""Profiles: valid ones load; a bad one names file, line, key path and what was expected."""

from __future__ import annotations

from pathlib import Path

import pytest

from lockgate.errors import ProfileError
from lockgate.policy.routes import build_routes
from lockgate.profile.model import demo_profile_path, load_profile, parse_profile

GOOD = """\
[gateway]
listen = "127.0.0.1:8787"

[identity]
kind = "none"

[upstreams.linear]
url = "https://mcp.linear.app/mcp"

[upstreams.internal]
url = "http://127.0.0.1:9000/mcp"
auth = "header"
header = "X-Api-Key"
value = "{secret}"

[routes.linear]
upstream = "linear"
tools.deny = ["delete_*"]

[routes.linear.overrides.tools.search_issues]
description = "Search Linear issues (read-only)."
annotations = { readOnlyHint = true }

[routes.linear-readonly]
upstream = "linear"
tools.allow = ["list_*", "get_*", "search_*"]
prompts.allow = []
"""


def test_good_profile_loads_with_policies() -> None:
    profile = parse_profile(GOOD, "good.toml")
    assert set(profile.routes) == {"linear", "linear-readonly"}
    ro = profile.routes["linear-readonly"].policy()
    assert ro.tools.visible("list_issues") and not ro.tools.visible("delete_issue")
    assert not ro.prompts.visible("anything")
    full = profile.routes["linear"].policy()
    assert not full.tools.visible("delete_issue") and full.tools.visible("create_issue")
    assert full.tool_overrides["search_issues"].annotations == {"readOnlyHint": True}
    assert profile.route_url("linear") == "http://127.0.0.1:8787/mcp/linear"


def test_shipped_demo_profile_is_valid() -> None:
    profile = load_profile(demo_profile_path())
    assert {"notes", "notes-readonly"} <= set(profile.routes)


def _error(text: str) -> str:
    with pytest.raises(ProfileError) as info:
        parse_profile(text, "p.toml")
    assert info.value.exit_code == 2
    return str(info.value)


def test_unknown_key_names_line_and_path() -> None:
    text = GOOD.replace('tools.deny = ["delete_*"]', 'tools.deny = ["delete_*"]\ntool.allow = []')
    msg = _error(text)
    assert msg.startswith("p.toml:19: routes.linear.tool: unknown key"), msg


def test_route_to_undefined_upstream() -> None:
    msg = _error(GOOD.replace('upstream = "linear"\ntools.allow', 'upstream = "jira"\ntools.allow'))
    assert "p.toml:25: routes.linear-readonly.upstream" in msg and "'jira'" in msg, msg
    assert "known: internal, linear" in msg


def test_wrong_type_says_what_was_expected() -> None:
    msg = _error(GOOD.replace("prompts.allow = []", 'prompts.allow = "none"'))
    assert "p.toml:27: routes.linear-readonly.prompts.allow: expected a list" in msg, msg


def test_bad_auth_kind_lists_choices() -> None:
    msg = _error(GOOD.replace('auth = "header"', 'auth = "basic"'))
    assert "p.toml:12: upstreams.internal.auth" in msg and "'none', 'header' or 'oauth'" in msg, msg


def test_header_value_must_hold_the_secret_placeholder() -> None:
    msg = _error(GOOD.replace('value = "{secret}"', 'value = "Bearer abc"'))
    assert "upstreams.internal" in msg and "{secret}" in msg, msg


def test_secret_in_profile_refused() -> None:
    msg = _error(GOOD.replace('kind = "none"', 'kind = "none"\nclient_secret = "hunter2"'))
    assert "identity.client_secret" in msg and "keyring:" in msg and "hunter2" not in msg, msg


def test_kind_none_refused_beyond_loopback() -> None:
    msg = _error(GOOD.replace('listen = "127.0.0.1:8787"', 'listen = "0.0.0.0:8787"'))
    assert "p.toml:5: identity.kind" in msg and "loopback" in msg, msg


def test_toml_syntax_error_has_line() -> None:
    msg = _error(GOOD.replace("[routes.linear]", "[routes.linear"))
    assert msg.startswith("p.toml:16: not valid TOML"), msg


def test_bad_url_and_listen() -> None:
    assert "upstreams.linear.url" in _error(GOOD.replace("https://mcp.linear.app/mcp", "ftp://x"))
    assert "gateway.listen" in _error(GOOD.replace('"127.0.0.1:8787"', '"127.0.0.1"'))


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ProfileError, match="no such profile file"):
        load_profile(tmp_path / "absent.toml")


def test_memory_signing_key_only_for_kind_dev() -> None:
    base = '[upstreams.a]\nurl = "https://a.example/mcp"\n[routes.a]\nupstream = "a"\n'
    dev = parse_profile(f'[identity]\nkind = "dev"\nsigning_key = "memory"\n{base}', "p.toml")
    assert dev.identity.signing_key == "memory"
    assert parse_profile(base, "p.toml").identity.signing_key == "keyring"
    msg = _error(f'[identity]\nkind = "none"\nsigning_key = "memory"\n{base}')
    assert msg.startswith("p.toml:3: identity.signing_key:"), msg
    assert 'only allowed with kind = "dev"' in msg
    msg = _error(f'[identity]\nkind = "dev"\nsigning_key = "file"\n{base}')
    assert msg.startswith("p.toml:3: identity.signing_key:"), msg


# --- the keys of auth = "oauth" -----------------------------------------------------------

PROFILE_HEAD = '[routes.a]\nupstream = "a"\n\n[upstreams.a]\nurl = "https://mcp.example.com/mcp"\n'


@pytest.mark.parametrize(
    ("extra", "line", "expected"),
    [
        ('auth = "oauth"\nclient_secret = "hunter2"\n', 7, 'use "keyring:<entry name>"'),
        ('auth = "oauth"\nclient_id = "c"\nclient_secret = "keyring:"\n', 8, "keyring:"),
        ('auth = "header"\nclient_id = "c"\n', 4, 'only used with auth = "oauth"'),
        ('auth = "oauth"\nclient_secret = "keyring:x"\n', 4, "needs the client_id"),
        ('auth = "oauth"\nscopes = "read"\n', 7, "expected a list"),
    ],
)
def test_profile_oauth_keys_are_checked_with_file_and_line(
    extra: str, line: int, expected: str
) -> None:
    from lockgate.errors import ProfileError
    from lockgate.profile.model import parse_profile

    with pytest.raises(ProfileError) as e:
        parse_profile(PROFILE_HEAD + extra, "p.toml")
    assert str(e.value).startswith(f"p.toml:{line}: upstreams.a")
    assert expected in str(e.value)


def test_profile_oauth_keys_are_read() -> None:
    from lockgate.profile.model import parse_profile

    profile = parse_profile(
        PROFILE_HEAD
        + 'auth = "oauth"\nclient_id = "lockgate"\nclient_secret = "keyring:linear-client"\n'
        + 'scopes = ["read", "write"]\n',
        "p.toml",
    )
    up = profile.upstreams["a"]
    assert (up.client_id, up.client_secret, up.scopes) == (
        "lockgate",
        "keyring:linear-client",
        ("read", "write"),
    )


# --- [guardrails] and [routes.X.guardrails] (issue 11) ------------------------------------

GUARDED = """\
[upstreams.linear]
url = "https://mcp.linear.app/mcp"

[routes.linear]
upstream = "linear"

[routes.linear-readonly]
upstream = "linear"

[guardrails.redact]
secret = "mask"
EMAIL = "log"

[guardrails.redact.up]
CARD = "block"

[[guardrails.detectors]]
name = "EMPLOYEE_ID"
pattern = 'EMP-\\d{6}'
validator = "luhn"

[guardrails.findings]
definitions = { high = "hide", medium = "warn", low = "warn" }
rules = { EXCESSIVE_LENGTH = "off" }

[guardrails.pinning.pins.linear]
create_issue = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

[guardrails.limits]
user = "120/minute"
tool = "30/minute"

[routes.linear-readonly.guardrails]
findings.results = "withhold"
redact.EMPLOYEE_ID = "off"
"""


def test_guardrails_section_loads_and_merges_per_route() -> None:
    from lockgate.guardrails.limits import Rate
    from lockgate.guardrails.policy import resolve

    profile = parse_profile(GUARDED, "p.toml")
    full = resolve(profile.guardrails_for("linear"))
    ro = resolve(profile.guardrails_for("linear-readonly"))
    assert full.results == "warn" and ro.results == "withhold"
    assert full.up["EMPLOYEE_ID"] == "mask" and ro.up["EMPLOYEE_ID"] == "off"
    assert ro.up["CARD"] == "block" and ro.up["EMAIL"] == "log"  # inherited key by key
    assert ro.limits is not None and ro.limits.tool == Rate(30, 60.0)
    assert ro.pins["linear"]["create_issue"].startswith("0123")
    # a profile without the section gets the defaults
    plain = parse_profile(GOOD, "good.toml")
    assert plain.guardrails.enabled and resolve(plain.guardrails_for("linear")).up["CARD"] == "mask"


@pytest.mark.parametrize(
    ("old", "new", "where", "says"),
    [
        ('EMAIL = "log"', 'EMAL = "log"', "p.toml:12: guardrails.redact.EMAL", "unknown type"),
        ('EMAIL = "log"', 'EMAIL = "hide"', "p.toml:12: guardrails.redact.EMAIL", "'mask'"),
        ('CARD = "block"', 'CADR = "block"', "p.toml:15: guardrails.redact.up.CADR", "unknown"),
        ('"120/minute"', '"60/minit"', "p.toml:30: guardrails.limits.user", '"60/minute"'),
        ("'EMP-\\d{6}'", "'EMP-(\\d{6}'", "p.toml:19: guardrails.detectors.0.pattern", "compile"),
        ('"EMPLOYEE_ID"', '"EMAIL"', "p.toml:18: guardrails.detectors.0.name", "built-in"),
        ('"luhn"', '"crc32"', "p.toml:20: guardrails.detectors.0.validator", "'mod97'"),
        ('"0123456789abcdef0123', '"0123', "p.toml:27: guardrails.pinning.pins.linear.", "64 hex"),
        ("pins.linear]", "pins.jira]", "p.toml:26: guardrails.pinning.pins.jira", "'jira'"),
        ("EXCESSIVE_LENGTH", "TOO_LONG", "p.toml:24: guardrails.findings.rules", "unknown rule"),
        ('results = "withhold"', 'results = "drop"', "p.toml:34: routes.linear-readonly", "'warn'"),
        (
            "redact.EMPLOYEE_ID",
            "redact.EMPLOYEE",
            "p.toml:35: routes.linear-readonly.guardrails.redact.EMPLOYEE",
            "unknown type",
        ),
        ("[guardrails.limits]", "[guardrails.limit]", "p.toml:29: guardrails.limit", "unknown key"),
        (
            'findings.results = "withhold"',
            'findings.results = "withhold"\npinning.mode = "approve"',
            "p.toml:35: routes.linear-readonly.guardrails.pinning.mode",
            "pins upstream 'linear' in 'approve' mode, but route 'linear' pins it in 'tofu'",
        ),
    ],
)
def test_guardrails_errors_name_line_and_key_path(
    old: str, new: str, where: str, says: str
) -> None:
    assert old in GUARDED
    msg = _error(GUARDED.replace(old, new, 1))
    assert msg.startswith(where), msg
    assert says in msg, msg


def test_a_route_override_pins_only_its_own_upstream() -> None:
    two = GUARDED.replace(
        "[routes.linear]",
        '[upstreams.jira]\nurl = "https://jira.example.com/mcp"\n\n[routes.linear]',
    )
    pin = "a" * 64
    ok = parse_profile(two + f'pinning.pins.linear.create_issue = "{pin}"\n', "p.toml")
    assert ok.guardrails_for("linear-readonly").pinning.pins["linear"]["create_issue"] == pin
    msg = _error(two + f'pinning.pins.jira.create_issue = "{pin}"\n')
    assert msg.startswith("p.toml:39: routes.linear-readonly.guardrails.pinning.pins.jira"), msg
    assert "serves 'linear'" in msg


def test_client_side_limits_have_defaults_and_are_read() -> None:
    gw = parse_profile(GOOD, "p.toml").gateway
    assert (gw.client_head_timeout, gw.client_idle_timeout, gw.max_connections) == (10, 10, 256)
    assert gw.client_body_timeout == 60
    text = "[gateway]\nclient_head_timeout = 2.5\nclient_idle_timeout = 1\nmax_connections = 8\n"
    gw = parse_profile(text + "client_body_timeout = 30\n" + PROFILE_HEAD, "p.toml").gateway
    assert (gw.client_head_timeout, gw.client_idle_timeout, gw.max_connections) == (2.5, 1, 8)
    assert gw.client_body_timeout == 30


@pytest.mark.parametrize(
    "line",
    [
        "client_head_timeout = 0",
        "client_idle_timeout = -1",
        "client_body_timeout = 0",
        "max_connections = 0",
    ],
)
def test_client_side_limits_must_be_positive(line: str) -> None:
    msg = _error(f"[gateway]\n{line}\n" + PROFILE_HEAD)
    key = line.split(" ")[0]
    assert f"p.toml:2: gateway.{key}" in msg and "greater than 0" in msg, msg


def test_an_upstream_answer_timeout_defaults_to_the_gateways_and_must_be_positive() -> None:
    route = build_routes(parse_profile(PROFILE_HEAD, "p.toml"))["a"]
    assert (route.limits.idle, route.limits.answer) == (60, 3600)
    own = parse_profile(PROFILE_HEAD + "answer_timeout = 90\n", "p.toml")
    assert build_routes(own)["a"].limits.answer == 90
    gw = parse_profile("[gateway]\nupstream_answer_timeout = 120\n" + PROFILE_HEAD, "p.toml")
    assert build_routes(gw)["a"].limits.answer == 120
    msg = _error(PROFILE_HEAD + "answer_timeout = 0\n")
    assert "upstreams.a.answer_timeout" in msg and "greater than 0" in msg, msg
