"""`lockgate doctor` as a user runs it: real upstreams, ports, provider and keyring.

Why it exists: the doctor's promise is one line per check, a fix under every failure, and
an exit code scripts can trust (0 only when everything passes). The installed entry point
runs in a subprocess so exit codes and the absence of tracebacks are the real ones; the
all-pass case runs in a private D-Bus session with its own unlocked gnome-keyring.
"""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import typer
from rich.console import Console
from typer.testing import CliRunner

from lockgate.cli import doctor as doctor_cli
from lockgate.cli.views import doctor as doctor_view
from lockgate.keyring import delete_chunked, set_entry
from lockgate.ops.checks import CheckResult
from lockgate.ops.doctor import Check
from tests.cli.real_cli import run_lockgate, with_environ
from tests.support import keyring_env
from tests.support.doubles import login_session, oidc_profile_text, upstream_tokens_for
from tests.support.gateway import profile_text
from tests.support.process import free_port
from tests.support.upstreams import sdk_upstream

runner = CliRunner()
app = typer.Typer()
app.command()(doctor_cli.doctor)

NO_KEYRING = {"PYTHON_KEYRING_BACKEND": "keyring.backends.fail.Keyring"}


@pytest.fixture
def notes_url() -> Iterator[str]:
    with sdk_upstream() as url:
        yield url


def _doctor(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return run_lockgate("doctor", *args, env=with_environ(env), timeout=120)


def _lines(out: str) -> dict[str, str]:
    """name -> the check's line, for lines that start with a mark."""
    found: dict[str, str] = {}
    for line in out.splitlines():
        if line[:2] in ("✓ ", "✗ ", "! "):
            found[line[2:].split(":", 1)[0]] = line
    return found


def test_failures_each_get_a_fix_and_exit_1(tmp_path: Path, notes_url: str) -> None:
    dead = f"http://127.0.0.1:{free_port()}/mcp"
    path = tmp_path / "p.toml"
    path.write_text(profile_text({"notes": notes_url, "dead": dead}, {"n": "notes", "d": "dead"}))
    proc = _doctor("--profile", str(path), "--listen", f"127.0.0.1:{free_port()}", env=NO_KEYRING)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
    lines = _lines(proc.stdout)
    assert lines["python"].startswith("✓ python: Python 3.")
    assert lines["mitmproxy"].startswith("✓ mitmproxy: mitmproxy 12.")
    # Nothing in this profile lives in the keyring: its absence is a note, not a failure.
    assert lines["keyring"].startswith("! keyring: No OS keyring is available")
    assert lines["keyring"].endswith("; this profile does not need it")
    assert lines["profile"] == f"✓ profile: {path} is valid (2 routes, 2 upstreams, identity none)"
    assert lines["listen port"].endswith("is free")
    assert lines["upstream notes"].startswith(f"✓ upstream notes: {notes_url} answered HTTP ")
    assert lines["upstream dead"] == f"✗ upstream dead: {dead} is unreachable (ConnectError)"
    assert lines["credential notes"] == "✓ credential notes: auth none: no credential needed"
    out = proc.stdout.splitlines()
    for i, line in enumerate(out):
        if line.startswith("✗ "):
            assert out[i + 1].startswith("    fix: "), line
    assert out[-1] == "1 of 10 checks failed; fix them and run lockgate doctor again."


def test_busy_port_and_bad_upstream_secret(tmp_path: Path, notes_url: str) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(4)
        port = busy.getsockname()[1]
        path = tmp_path / "p.toml"
        path.write_text(
            f'[gateway]\nlisten = "127.0.0.1:{port}"\n'
            + profile_text({"notes": notes_url}, {"n": "notes"})
        )
        proc = _doctor("--profile", str(path), "--timeout", "1", env=NO_KEYRING)
    assert proc.returncode == 1
    lines = _lines(proc.stdout)
    assert lines["listen port"] == f"✗ listen port: 127.0.0.1:{port} is in use by another program"
    assert "    fix: stop that program, or change gateway.listen" in proc.stdout


def test_bad_profile_is_reported_and_the_rest_skipped(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text(
        '[gateway]\nlisten = "0.0.0.0:80"\n[upstreams.a]\nurl = "http://x/mcp"\n'
        '[routes.a]\nupstream = "a"\n'
    )
    proc = _doctor("--profile", str(bad), env=NO_KEYRING)
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    lines = _lines(proc.stdout)
    assert lines["profile"].startswith(f'✗ profile: {bad}: identity.kind: kind = "none" is only')
    assert lines["listen port"] == "! listen port: skipped: needs a valid profile"
    assert lines["upstreams"] == "! upstreams: skipped: needs a valid profile"


def test_oidc_provider_and_oauth_upstream(
    tmp_path: Path,
    oidc_issuer: str,
    notes_url: str,
    no_keyring: None,
) -> None:
    path = tmp_path / "p.toml"
    path.write_text(
        textwrap.dedent(
            f"""
            [gateway]
            listen = "127.0.0.1:{free_port()}"
            [identity]
            kind = "oidc"
            issuer = "{oidc_issuer}"
            client_id = "lockgate-test"
            [upstreams.linear]
            url = "{notes_url}"
            auth = "oauth"
            [routes.linear]
            upstream = "linear"
            """
        )
    )
    result = runner.invoke(app, ["--profile", str(path), "--json"])
    doc = json.loads(result.output)
    checks = {c["name"]: c for c in doc["checks"]}
    assert checks["identity provider"]["status"] == "ok"
    assert checks["identity provider"]["detail"].startswith(f"{oidc_issuer}: discovery document OK")
    # Without a keyring nobody can be known to be signed in: the state says why.
    assert checks["credential linear"]["status"] == "fail"
    assert checks["credential linear"]["detail"] == "auth oauth: keyring unavailable"
    assert checks["signing key"]["status"] == "fail"
    assert "gnome-keyring" in checks["signing key"]["fix"]
    assert checks["keyring"]["status"] == "fail"
    assert doc["ok"] is False and result.exit_code == 1


@pytest.fixture
def new_name() -> Iterator[Callable[[], str]]:
    yield from keyring_env.real_keyring()


def _oidc_profile(tmp_path: Path, issuer: str, a: str, b: str, secret_entry: str) -> Path:
    path = tmp_path / "oidc.toml"
    text = oidc_profile_text(issuer, a, b).replace(
        'client_id = "lockgate"',
        f'client_id = "lockgate"\nclient_secret = "keyring:{secret_entry}"',
    )
    path.write_text(text.replace("127.0.0.1:9100", f"127.0.0.1:{free_port()}"))
    return path


def test_real_keyring_oidc_signed_in_user_and_identity_secrets(
    tmp_path: Path,
    oidc_issuer: str,
    new_name: Callable[[], str],
) -> None:
    a, b, entry = new_name(), new_name(), new_name()
    path = _oidc_profile(tmp_path, oidc_issuer, a, b, entry)
    # Nobody signed in, no client secret stored yet.
    result = runner.invoke(app, ["--profile", str(path), "--timeout", "2"])
    lines = _lines(result.output)
    assert lines[f"credential {a}"] == (
        f"! credential {a}: auth oauth: sign in first (tokens are per user)"
    )
    assert lines["client secret"] == (
        f"✗ client secret: the identity provider's client secret is not in the keyring "
        f"(entry {entry!r})"
    )
    assert f"    fix: store it with `keyring set lockgate {entry}`" in result.output
    assert lines["signing key"].startswith("✓ signing key: ")
    assert result.exit_code == 1

    set_entry(entry, "idp-secret-never-printed")
    try:
        with (
            login_session(oidc_issuer, "alice-sub", "alice@example.com"),
            upstream_tokens_for(a, "alice-sub"),
        ):
            result = runner.invoke(app, ["--profile", str(path), "--timeout", "2", "--json"])
    finally:
        delete_chunked(entry)
    checks = {c["name"]: c for c in json.loads(result.output)["checks"]}
    assert checks["client secret"]["status"] == "ok"
    assert checks[f"credential {a}"] == {
        "name": f"credential {a}",
        "status": "ok",
        "detail": "auth oauth: connected for alice@example.com",
        "fix": None,
    }
    assert checks[f"credential {b}"] == {
        "name": f"credential {b}",
        "status": "fail",
        "detail": "auth oauth: needs connect for alice@example.com",
        "fix": f"lockgate connect {b}",
    }
    assert "never-printed" not in result.output


ALL_PASS_SCRIPT = textwrap.dedent(
    """
    import sys
    from lockgate.upstream import secrets
    from lockgate.cli.main import main

    secrets.set_secret("internal", "never-printed-secret")
    sys.argv = ["lockgate", "doctor", "--profile", sys.argv[1]]
    main()
    """
)


def test_all_pass_exits_0_in_a_real_keyring_session(tmp_path: Path, notes_url: str) -> None:
    keyring_env.require_private_session()
    path = tmp_path / "p.toml"
    path.write_text(
        f'[gateway]\nlisten = "127.0.0.1:{free_port()}"\n[identity]\nkind = "dev"\n'
        f'[upstreams.notes]\nurl = "{notes_url}"\n'
        f'[upstreams.internal]\nurl = "{notes_url}"\nauth = "header"\n'
        '[routes.notes]\nupstream = "notes"\n[routes.internal]\nupstream = "internal"\n'
    )
    script = ALL_PASS_SCRIPT.replace("sys.argv[1]", repr(str(path)))
    proc = keyring_env.run_in_private_secret_service(script)
    assert proc.returncode == 0, proc.stdout + proc.stderr[-2000:]
    lines = _lines(proc.stdout)
    assert lines["keyring"].endswith("reachable and unlocked")
    assert lines["credential internal"] == "✓ credential internal: auth header: secret set"
    assert lines["signing key"] == (
        "✓ signing key: not in the keyring yet; `lockgate up` creates 'gateway:signing-key'"
    )
    assert proc.stdout.splitlines()[-1] == "All 11 checks passed."
    assert "never-printed-secret" not in proc.stdout + proc.stderr


def test_live_display_on_a_terminal_shows_running_checks() -> None:
    async def slow() -> CheckResult:
        await asyncio.sleep(0.2)
        return CheckResult("slow thing", "ok", "done")

    async def broken() -> CheckResult:
        return CheckResult("broken thing", "fail", "it broke", "mend it")

    con = Console(record=True, width=100, force_terminal=True, no_color=True)
    results = doctor_view.run_with_display(
        con, [Check("slow thing", slow), Check("broken thing", broken)]
    )
    assert [r.status for r in results] == ["ok", "fail"]
    recorded = con.export_text()
    assert "slow thing..." in recorded  # the spinner line while it ran


def test_result_and_summary_text() -> None:
    fail = doctor_view.result_text(CheckResult("port", "fail", "busy", "change it"))
    assert fail.plain == "✗ port: busy\n    fix: change it"
    assert doctor_view.result_text(CheckResult("x", "warn", "later", "do y")).plain.startswith(
        "! x"
    )
    ok = [CheckResult("a", "ok", "fine"), CheckResult("b", "warn", "note")]
    assert doctor_view.summary_text(ok).plain == "All 2 checks passed (1 with a note)."


def test_help_shows_an_example() -> None:
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    assert "Example: lockgate doctor" in result.output


def test_the_commands_default_timeout_is_the_checks() -> None:
    from lockgate.ops import checks

    assert doctor_cli.DEFAULT_TIMEOUT == checks.DEFAULT_TIMEOUT
