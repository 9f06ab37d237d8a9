"""Issue 9 item 6 through the real CLI: `lockgate audit verify` refuses tampered logs.

The first tests run `lockgate` as a subprocess with the suite's test key; the last one runs
gateway writes and verify in a private Secret Service, where the key is made in the keyring.
"""

from __future__ import annotations

import json
import subprocess
import textwrap
from pathlib import Path

from lockgate.audit.log import AuditLog
from tests.cli.real_cli import run_lockgate, with_environ
from tests.support import keyring_env


def _cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return run_lockgate(*args, env=with_environ(env))


def _write(path: Path, n: int) -> None:
    with AuditLog(path) as log:
        for i in range(n):
            log.append({"event": "tool.call", "route": "notes", "name": f"t{i}"})


def test_verify_ok_then_a_cut_copy_is_refused(tmp_path: Path) -> None:
    log = tmp_path / "audit.jsonl"
    _write(log, 5)
    ok = _cli("audit", "verify", "--file", str(log))
    assert ok.returncode == 0, ok.stderr
    assert "audit log OK: 5 events" in ok.stdout
    cut = tmp_path / "x"  # head -n -1 audit.jsonl > x
    cut.write_bytes(b"".join(log.read_bytes().splitlines(keepends=True)[:-1]))
    bad = _cli("audit", "verify", "--file", str(cut))
    assert bad.returncode == 1
    assert "tail cut" in bad.stdout and "1 line(s) cut off the end" in bad.stdout
    assert "Traceback" not in bad.stderr


def test_a_forged_appended_line_is_refused(tmp_path: Path) -> None:
    log = tmp_path / "audit.jsonl"
    _write(log, 3)
    last = json.loads(log.read_bytes().splitlines()[-1])
    forged = {**last, "seq": 4, "prev": last["mac"], "name": "wipe_all", "mac": "0" * 64}
    with open(log, "a") as f:
        f.write(json.dumps(forged, sort_keys=True, separators=(",", ":")) + "\n")
    bad = _cli("audit", "verify", "--file", str(log))
    assert bad.returncode == 1
    assert "BROKEN at line 4: mac mismatch" in bad.stdout


def test_verify_without_the_key_says_how_to_fix_it(tmp_path: Path) -> None:
    keyring_env.require_private_session()
    log = tmp_path / "audit.jsonl"
    _write(log, 2)
    script = textwrap.dedent(
        f"""
        import os, subprocess, sys
        env = {{k: v for k, v in os.environ.items() if k != "LOCKGATE_AUDIT_KEY_SOURCE"}}
        r = subprocess.run([sys.executable, "-m", "lockgate.cli", "audit", "verify",
                            "--file", {str(log)!r}], env=env, capture_output=True, text=True)
        print(r.returncode)
        print(r.stdout + r.stderr)
        """
    )
    done = keyring_env.run_in_private_secret_service(script)
    assert done.returncode == 0, done.stderr
    code, _, text = done.stdout.partition("\n")
    assert code.strip() != "0"
    assert "its key is not in this OS keyring" in text
    assert "run `lockgate audit verify` as the OS user that runs the gateway" in text
    assert "Traceback" not in text


def test_the_key_is_made_in_the_keyring_on_first_write(tmp_path: Path) -> None:
    keyring_env.require_private_session()
    log = tmp_path / "audit.jsonl"
    script = textwrap.dedent(
        f"""
        import os, subprocess, sys
        from pathlib import Path
        os.environ.pop("LOCKGATE_AUDIT_KEY_SOURCE", None)
        from lockgate.audit import log as audit
        from lockgate import keyring as secrets
        assert secrets.get_entry(audit.KEY_ENTRY) is None
        with audit.AuditLog(Path({str(log)!r})) as log:
            log.append({{"event": "tool.call", "name": "a"}})
        assert len(bytes.fromhex(secrets.get_entry(audit.KEY_ENTRY))) == 32
        r = subprocess.run([sys.executable, "-m", "lockgate.cli", "audit", "verify",
                            "--file", {str(log)!r}], capture_output=True, text=True)
        print(r.returncode, r.stdout.strip())
        """
    )
    done = keyring_env.run_in_private_secret_service(script)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "0 audit log OK: 1 events, chain intact"
