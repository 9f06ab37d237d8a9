"""`lockgate servers`, driven through typer's CliRunner and the installed entry point.

Why it exists: this is where a developer sees which route goes where and what is still
missing before a client can use it; it must list every route even when the keyring is
gone, and never print a secret.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
import typer
from rich.console import Console
from typer.testing import CliRunner

from lockgate.cli import servers as servers_cli
from lockgate.cli.views import servers as servers_view
from lockgate.errors import ProfileError
from lockgate.identity.claims import UserClaims, local_user
from lockgate.profile.model import parse_profile
from lockgate.upstream import secrets
from lockgate.upstream.catalog import catalog
from lockgate.upstream.state import SignedIn, keyring_lookup
from tests.cli.real_cli import run_lockgate, with_environ
from tests.support.doubles import (
    login_session,
    new_issuer,
    oidc_profile_text,
    three_upstreams_text,
    upstream_tokens_for,
)

runner = CliRunner()
app = typer.Typer()
app.command()(servers_cli.servers)

OIDC_HEADER = """
[identity]
kind = "oidc"
issuer = "https://login.example.com"
client_id = "lockgate"
[upstreams.x]
url = "https://x.example.com/mcp"
[routes.x]
upstream = "x"
"""


def _profile_text(static: str) -> str:
    routes = {"notes": "notes", "internal": static, "linear-ro": "linear"}
    return three_upstreams_text('kind = "dev"', ("notes", static, "linear"), routes)


def _write(tmp_path: Path, static: str = "internal") -> Path:
    path = tmp_path / "profile.toml"
    path.write_text(_profile_text(static))
    return path


def test_lists_every_route_even_without_a_keyring(no_keyring: None, tmp_path: Path) -> None:
    result = runner.invoke(app, ["--profile", str(_write(tmp_path))])
    assert result.exit_code == 0, result.output
    assert result.output.splitlines() == [
        f"local user {local_user()} (identity kind dev)",
        "internal -> internal (https://mcp.internal.example.com/mcp) [keyring unavailable] "
        "http://127.0.0.1:9100/mcp/internal",
        "linear-ro -> linear (https://mcp.linear.app/mcp) [keyring unavailable] "
        "http://127.0.0.1:9100/mcp/linear-ro",
        "notes -> notes (http://127.0.0.1:9/mcp) [no credential needed] "
        "http://127.0.0.1:9100/mcp/notes",
        "internal: keyring unavailable; fix: install and start a Secret Service such as "
        "gnome-keyring (apt-get install gnome-keyring) or KeePassXC with Secret Service "
        "integration, in your desktop session",
        "linear: keyring unavailable; fix: install and start a Secret Service such as "
        "gnome-keyring (apt-get install gnome-keyring) or KeePassXC with Secret Service "
        "integration, in your desktop session",
    ]


def test_json(no_keyring: None, tmp_path: Path) -> None:
    result = runner.invoke(app, ["--profile", str(_write(tmp_path)), "--json"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.output)
    assert doc["user"] == {"sub": local_user(), "email": None, "identity": "dev"}
    doc = doc["servers"]
    assert [d["route"] for d in doc] == ["internal", "linear-ro", "notes"]
    assert doc[2] == {
        "route": "notes",
        "upstream": "notes",
        "upstream_url": "http://127.0.0.1:9/mcp",
        "auth": "none",
        "state": "none_needed",
        "state_text": "no credential needed",
        "fix": None,
        "ready": True,
        "route_url": "http://127.0.0.1:9100/mcp/notes",
        "description": None,
    }
    assert doc[0]["state"] == "keyring_unavailable" and doc[0]["ready"] is False


def test_table_on_a_terminal_is_pinned(tmp_path: Path) -> None:
    profile = parse_profile(_profile_text("internal"))
    me_tokens: set[str] = set()
    lookup = keyring_lookup(
        profile, has_secret=lambda n: False, stored=lambda u, user: u in me_tokens
    )
    con = Console(record=True, width=160, force_terminal=True, no_color=True)
    who = SignedIn(UserClaims(sub="alice-sub", email="alice@example.com"))
    header = servers_view.user_line(parse_profile(OIDC_HEADER), who)
    servers_view.print_servers(con, catalog(profile, lookup), header)
    assert [line.rstrip() for line in con.export_text().splitlines()] == [
        "signed in as alice@example.com",
        "route      upstream  upstream URL                          state                 "
        "route URL",
        "internal   internal  https://mcp.internal.example.com/mcp  secret missing        "
        "http://127.0.0.1:9100/mcp/internal",
        "linear-ro  linear    https://mcp.linear.app/mcp            needs connect         "
        "http://127.0.0.1:9100/mcp/linear-ro",
        "notes      notes     http://127.0.0.1:9/mcp                no credential needed  "
        "http://127.0.0.1:9100/mcp/notes",
        "internal: secret missing; fix: lockgate secret set internal",
        "linear: needs connect; fix: lockgate connect linear",
    ]


def test_real_keyring_secret_set_and_missing(
    new_upstream: Callable[[], str], tmp_path: Path
) -> None:
    static = new_upstream()
    path = _write(tmp_path, static)
    result = runner.invoke(app, ["--profile", str(path), "--json"])
    state = {d["route"]: d["state"] for d in json.loads(result.output)["servers"]}
    assert state["internal"] == "secret_missing"
    secrets.set_secret(static, "never-printed-secret")
    result = runner.invoke(app, ["--profile", str(path)])
    assert result.exit_code == 0, result.output
    assert f"internal -> {static} (https://mcp.internal.example.com/mcp) [secret set]" in (
        result.output
    )
    assert "never-printed-secret" not in result.output


def _oidc(tmp_path: Path, issuer: str, a: str, b: str) -> Path:
    path = tmp_path / "oidc.toml"
    path.write_text(oidc_profile_text(issuer, a, b))
    return path


def test_real_keyring_oidc_signed_in_user_connected_and_needs_connect(
    new_upstream: Callable[[], str], tmp_path: Path
) -> None:
    a, b, issuer = new_upstream(), new_upstream(), new_issuer()
    path = _oidc(tmp_path, issuer, a, b)
    with (
        login_session(issuer, "alice-sub", "alice@example.com"),
        upstream_tokens_for(a, "alice-sub"),
    ):
        result = runner.invoke(app, ["--profile", str(path)])
        assert result.exit_code == 0, result.output
        assert result.output.splitlines() == [
            "signed in as alice@example.com",
            f"a -> {a} (https://mcp.a.example.com/mcp) [connected] http://127.0.0.1:9100/mcp/a",
            f"b -> {b} (https://mcp.b.example.com/mcp) [needs connect] http://127.0.0.1:9100/mcp/b",
            f"{b}: needs connect; fix: lockgate connect {b}",
        ]
        doc = json.loads(runner.invoke(app, ["--profile", str(path), "--json"]).output)
    assert doc["user"] == {"sub": "alice-sub", "email": "alice@example.com", "identity": "oidc"}
    assert [(d["route"], d["state"], d["fix"]) for d in doc["servers"]] == [
        ("a", "connected", None),
        ("b", "needs_connect", f"lockgate connect {b}"),
    ]
    assert "never-printed" not in result.output + json.dumps(doc)


def test_real_keyring_oidc_nobody_signed_in(
    new_upstream: Callable[[], str], tmp_path: Path
) -> None:
    a, b, issuer = new_upstream(), new_upstream(), new_issuer()
    path = _oidc(tmp_path, issuer, a, b)
    with upstream_tokens_for(a, "alice-sub"):  # someone's tokens, but nobody is signed in
        result = runner.invoke(app, ["--profile", str(path)])
        doc = json.loads(runner.invoke(app, ["--profile", str(path), "--json"]).output)
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0] == "nobody signed in: run `lockgate login`"
    assert f"a -> {a} (https://mcp.a.example.com/mcp) [sign in first] " in lines[1]
    assert sorted(lines[-2:]) == sorted(
        [f"{a}: sign in first; fix: lockgate login", f"{b}: sign in first; fix: lockgate login"]
    )
    assert doc["user"] is None
    assert {d["state"] for d in doc["servers"]} == {"sign_in_first"}


def test_no_profile_is_one_sentence_with_the_fix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LOCKGATE_PROFILE", raising=False)
    result = runner.invoke(app, [])
    assert isinstance(result.exception, ProfileError)
    assert str(result.exception).startswith("No profile given and none installed: pass --profile")


NO_KEYRING_ENV = with_environ({"PYTHON_KEYRING_BACKEND": "keyring.backends.fail.Keyring"})


def test_real_command_bad_profile_exits_2_without_traceback(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('[upstreams.x]\nurl = "ftp://nope"\n[routes.x]\nupstream = "x"\n')
    proc = run_lockgate("servers", "--profile", str(bad), env=NO_KEYRING_ENV)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert proc.stderr.startswith(f"lockgate: {bad}:2: upstreams.x.url: expected an http(s) URL")
    assert len(proc.stderr.splitlines()) == 1


def test_real_command_lists_routes(tmp_path: Path) -> None:
    proc = run_lockgate("servers", "--profile", str(_write(tmp_path)), env=NO_KEYRING_ENV)
    assert proc.returncode == 0, proc.stderr
    assert "notes -> notes (http://127.0.0.1:9/mcp) [no credential needed]" in proc.stdout


def test_help_shows_an_example() -> None:
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    assert "Example: lockgate servers" in result.output
