"""Run the official MCP conformance suite's server scenarios against a URL and read its results.

Why it exists: DESIGN.md asks that the suite (`@modelcontextprotocol/conformance`) scores the
same through the gateway as directly against the same upstream. `run_conformance(url, dir)`
runs `conformance server --url URL --suite all --spec-version 2025-11-25 -o DIR` with the
Node 22 from tests/node (see tests/support/node.py) and returns scenario -> status, read from
the per-scenario `checks.json` files the suite writes (never from its coloured stdout).

Statuses, from a scenario's checks (SUCCESS / FAILURE / WARNING / INFO / SKIPPED):
  "failed"   at least one FAILURE check
  "passed"   no FAILURE, at least one SUCCESS
  "warning"  only WARNING / INFO checks (the suite itself counts this as not failed)
  "skipped"  only SKIPPED checks, or no checks at all
  "error"    the suite listed the scenario but wrote no result (the scenario threw)
  "timeout"  the run hit its time bound before the scenario wrote a result
"""

from __future__ import annotations

import json
import os
import re
import selectors
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

from tests.support.node import NODE_DIR, conformance_cmd, node_env
from tests.support.process import terminate_group

SPEC_VERSION = "2025-11-25"
SUITE = "all"
DEFAULT_TIMEOUT = 900.0  # seconds for the whole suite; one run takes well under a minute here

NOT_FAILED = frozenset({"passed", "warning", "skipped"})

FIXTURE_SERVER = Path(__file__).resolve().parents[1] / "fixtures" / "conformance_server.py"
_LISTENING = re.compile(r"conformance upstream listening on (?P<url>http://\S+)")

# server-<scenario>-<ISO timestamp with ':' and '.' replaced by '-'>
_RESULT_DIR = re.compile(
    r"^server-(?P<scenario>.+)-(?P<ts>\d{4}-\d{2}-\d{2}T\d{2}-\d{2}-\d{2}-\d{3}Z)$"
)
_LISTED = re.compile(r"^\s+-\s+(?P<name>\S+)")


def list_scenarios(spec_version: str = SPEC_VERSION) -> list[str]:
    """The server scenario names the installed suite runs for `spec_version` (suite "all")."""
    cmd = _require_cmd()
    out = subprocess.run(
        [*cmd, "list", "--server", "--spec-version", spec_version],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
        env=node_env(),
        cwd=NODE_DIR,
    ).stdout
    names = []
    for line in out.splitlines():
        match = _LISTED.match(line)
        if match:
            names.append(match.group("name"))
    return names


def scenario_status(checks: list[dict[str, Any]]) -> str:
    statuses = {str(c.get("status", "")).upper() for c in checks}
    if "FAILURE" in statuses:
        return "failed"
    if "SUCCESS" in statuses:
        return "passed"
    if statuses & {"WARNING", "INFO"}:
        return "warning"
    return "skipped"


def load_checks(out_dir: Path) -> dict[str, list[dict[str, Any]]]:
    """scenario -> its checks, from the newest `server-<scenario>-<ts>/checks.json` in out_dir."""
    newest: dict[str, tuple[str, Path]] = {}
    for entry in out_dir.iterdir() if out_dir.is_dir() else ():
        match = _RESULT_DIR.match(entry.name)
        checks_file = entry / "checks.json"
        if not match or not checks_file.is_file():
            continue
        scenario, ts = match.group("scenario"), match.group("ts")
        if scenario not in newest or ts > newest[scenario][0]:
            newest[scenario] = (ts, checks_file)
    results: dict[str, list[dict[str, Any]]] = {}
    for scenario, (_ts, path) in newest.items():
        data = json.loads(path.read_text())
        results[scenario] = data if isinstance(data, list) else []
    return results


def failure_details(out_dir: Path, scenarios: list[str] | None = None) -> str:
    """One line per FAILURE (or WARNING) check of the given scenarios, for assertion messages."""
    lines = []
    for scenario, checks in sorted(load_checks(out_dir).items()):
        if scenarios is not None and scenario not in scenarios:
            continue
        for c in checks:
            if c.get("status") in ("FAILURE", "WARNING"):
                msg = c.get("errorMessage") or c.get("description") or ""
                lines.append(f"  {scenario}: [{c.get('status')}] {c.get('id')}: {msg}")
    return "\n".join(lines)


def run_conformance(
    url: str,
    out_dir: Path,
    *,
    timeout: float = DEFAULT_TIMEOUT,
    spec_version: str = SPEC_VERSION,
    suite: str = SUITE,
    scenario: str | None = None,
) -> dict[str, str]:
    """Run the suite's server scenarios against `url`; return scenario name -> status.

    Results go to `out_dir` (created; use a fresh one per run), plus the suite's own output in
    `out_dir/conformance.log`. Scenarios the suite lists for this spec version but which left
    no result come back as "error" (or "timeout" when the run hit `timeout` seconds, after
    which the suite's process group is killed).
    """
    cmd = _require_cmd()
    out_dir.mkdir(parents=True, exist_ok=True)
    expected = [scenario] if scenario else list_scenarios(spec_version)
    args = [*cmd, "server", "--url", url, "--spec-version", spec_version, "-o", str(out_dir)]
    args += ["--scenario", scenario] if scenario else ["--suite", suite]
    timed_out = False
    with (out_dir / "conformance.log").open("wb") as log:
        proc = subprocess.Popen(
            args,
            cwd=out_dir,
            env=node_env(),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            timed_out = True
        finally:
            if proc.poll() is None:
                with suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
    statuses = {name: scenario_status(checks) for name, checks in load_checks(out_dir).items()}
    for name in expected:
        statuses.setdefault(name, "timeout" if timed_out else "error")
    return dict(sorted(statuses.items()))


def _require_cmd() -> list[str]:
    cmd = conformance_cmd()
    if cmd is None:
        raise RuntimeError(
            "the conformance suite or Node >= 22 is missing: run tests/node/install.sh"
        )
    return cmd


@contextmanager
def conformance_upstream(*, startup_timeout: float = 30.0) -> Iterator[str]:
    """Start tests/fixtures/conformance_server.py on a free port; yield its MCP URL.

    The server runs in its own process group, terminated when the block exits.
    """
    with tempfile.TemporaryFile() as errors:
        proc = subprocess.Popen(
            [sys.executable, str(FIXTURE_SERVER), "--port", "0"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=errors,
            start_new_session=True,
        )
        try:
            assert proc.stdout is not None
            try:
                url = _read_url(proc, proc.stdout, startup_timeout)
            except RuntimeError as e:
                errors.seek(0)
                tail = errors.read()[-2000:].decode(errors="replace")
                raise RuntimeError(f"{e}\nstderr:\n{tail}") from None
            yield url
        finally:
            terminate_group(proc)
            if proc.stdout is not None:
                proc.stdout.close()


def _read_url(proc: subprocess.Popen[bytes], stdout: Any, timeout: float) -> str:
    deadline = time.monotonic() + timeout
    seen = b""
    with selectors.DefaultSelector() as sel:
        sel.register(stdout, selectors.EVENT_READ)
        while (left := deadline - time.monotonic()) > 0:
            if not sel.select(left):
                break
            chunk = os.read(stdout.fileno(), 4096)
            if not chunk:
                break
            seen += chunk
            match = _LISTENING.search(seen.decode(errors="replace"))
            if match:
                return match.group("url")
    raise RuntimeError(
        f"conformance fixture server did not report its URL within {timeout}s "
        f"(exit code {proc.poll()}, output {seen[-500:]!r})"
    )
