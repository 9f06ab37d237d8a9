"""Crash safety: `kill -9` under heavy traffic, a full disk, an unwritable audit directory.

Why it exists: issue 12 asks that a gateway killed mid-traffic leaves an audit log
`lockgate audit verify` accepts (a torn last line reported and skipped) and a pins store that
opens, and that a full disk or a read-only audit directory fails closed with a clear error
instead of serving unaudited. Everything here is real: `lockgate up` in a child process, the
demo notes upstream, HTTP clients in threads, SIGKILL, the CLI's `audit verify`. The tests
must mean something as root (CI runs as root, where file modes stop nothing): a full disk is
the child's own file size limit (RLIMIT_FSIZE, SIGXFSZ ignored, so writes fail with EFBIG),
and an unwritable directory is a path under a regular file, or a read-only bind mount in a
private user and mount namespace (`unshare -rm`) where the kernel allows one.
"""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from lockgate.guardrails.pinstore import PinStore
from tests.support.gateway import lockgate_up_args, profile_text
from tests.support.process import terminate_group, watch_lines
from tests.support.upstreams import sdk_upstream

resource = pytest.importorskip("resource", reason="POSIX signals and rlimits (not Windows)")

HEADERS = {
    "content-type": "application/json",
    "accept": "application/json, text/event-stream",
    "mcp-protocol-version": "2025-11-25",
}


@contextmanager
def upstream() -> Iterator[str]:
    with sdk_upstream(json_response=True, stateless=True) as url:
        yield url


def _env(home: Path, audit: Path) -> dict[str, str]:
    return {
        **os.environ,
        "LOCKGATE_HOME": str(home),
        "LOCKGATE_AUDIT_LOG": str(audit),
        "NO_COLOR": "1",
        "PYTHONUNBUFFERED": "1",
    }


def start(
    profile: Path,
    home: Path,
    audit: Path,
    *,
    preexec: Callable[[], None] | None = None,
    wrap: list[str] | None = None,
) -> tuple[subprocess.Popen[str], str | None, list[str]]:
    """`lockgate up` in its own process group: (process, its base URL or None, its output)."""
    proc = subprocess.Popen(
        [*(wrap or []), sys.executable, *lockgate_up_args(profile, quiet=True)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=_env(home, audit),
        start_new_session=True,
        preexec_fn=preexec,
    )
    watch = watch_lines(proc.stdout, r"listening on (http://\S+)")
    url = watch.wait(30)
    return proc, url, watch.lines


def rpc(method: str, params: dict[str, Any], rid: int) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": rid, "method": method, "params": params}


def call(name: str, arguments: dict[str, Any], rid: int) -> dict[str, Any]:
    return rpc("tools/call", {"name": name, "arguments": arguments}, rid)


def verify_cli(home: Path, audit: Path) -> subprocess.CompletedProcess[str]:
    """The real `lockgate audit verify`, as the gateway's user (its key, its checkpoints)."""
    return subprocess.run(
        [sys.executable, "-m", "lockgate.cli", "audit", "verify", "--file", str(audit)],
        env=_env(home, audit),
        capture_output=True,
        text=True,
        timeout=60,
    )


def _profile(tmp_path: Path, url: str) -> Path:
    path = tmp_path / "profile.toml"
    path.write_text(profile_text({"up": url}, {"notes": "up"}), encoding="utf-8")
    return path


class Traffic:
    """Client threads posting tools/list and tools/call as fast as the gateway answers."""

    def __init__(self, url: str, threads: int = 8) -> None:
        self.url = url
        self.stop = threading.Event()
        self.answers: dict[int, int] = {}
        self.errors: set[str] = set()
        self.flowing = threading.Event()  # the first 200: the gateway serves
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self._run, args=(k,)) for k in range(threads)]

    def _run(self, k: int) -> None:
        with httpx.Client(timeout=5) as client:
            i = 0
            while not self.stop.is_set():
                i += 1
                body = rpc("tools/list", {}, i) if i % 4 == 0 else call("list_notes", {}, i)
                if i % 7 == 0:
                    body = call("add_note", {"title": f"t{k}-{i}", "body": "x" * 200}, i)
                try:
                    status = client.post(self.url, json=body, headers=HEADERS).status_code
                except httpx.HTTPError as e:
                    status = 0  # the gateway died under it
                    self.errors.add(type(e).__name__ + ": " + str(e)[:80])
                with self.lock:
                    self.answers[status] = self.answers.get(status, 0) + 1
                if status == 200:
                    self.flowing.set()

    def __enter__(self) -> Traffic:
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(10)


def test_kill_9_under_heavy_traffic_leaves_a_log_verify_accepts_and_a_store_that_opens(
    tmp_path: Path,
) -> None:
    rounds, torn_seen, served = 4, 0, 0
    home, audit = tmp_path / "home", tmp_path / "home" / "audit.jsonl"
    rng = random.Random()
    with upstream() as url:
        profile = _profile(tmp_path, url)
        for n in range(rounds):
            proc, base, lines = start(profile, home, audit)
            assert base is not None, "".join(lines)
            try:
                with Traffic(f"{base}/mcp/notes") as traffic:
                    assert traffic.flowing.wait(30), traffic.errors
                    time.sleep(rng.uniform(0.3, 1.5))  # a random moment mid-traffic
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait(10)
                    time.sleep(0.2)  # the clients see the dead gateway
                served += traffic.answers.get(200, 0)
            finally:
                terminate_group(proc)
            result = verify_cli(home, audit)
            assert result.returncode == 0, (n, result.stdout, result.stderr)
            out = " ".join(result.stdout.split())
            assert out.startswith("audit log OK: "), out
            data = audit.read_bytes()
            if data and not data.endswith(b"\n"):  # a torn tail: verify must have said so
                assert "torn line" in out, out
            found = re.search(r"(\d+) torn line", out)
            torn_seen = int(found.group(1)) if found else 0
            print(f"\nround {n}: {traffic.answers} {traffic.errors} -> {out}")
    assert served > 40, f"too little traffic to mean anything ({served} answers)"
    events = whole_events(audit)
    assert len(events) > served  # a started event and a completion per call
    with PinStore.open(home / "pins.db") as store:  # opens cleanly after four SIGKILLs
        names = {pin.name for pin in store.pins("up")}
    assert {"list_notes", "add_note"} <= names
    print(f"\n{rounds} kills, {served} calls answered, {len(events)} events, torn {torn_seen}")


def _fsize_limit(limit: int) -> Callable[[], None]:
    def preexec() -> None:  # in the child, before exec: both survive exec
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # EFBIG instead of death
        # Soft limit only: the test raises it again from outside (`prlimit`), as freeing disk
        # space would.
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, resource.RLIM_INFINITY))

    return preexec


@pytest.mark.skipif(not hasattr(resource, "prlimit"), reason="prlimit(2) is Linux-only")
def test_a_full_disk_answers_503_naming_the_audit_log_and_serves_nothing_unaudited(
    tmp_path: Path,
) -> None:
    home, audit = tmp_path / "home", tmp_path / "home" / "audit.jsonl"
    limit = 256 * 1024  # room for the pins store (SQLite WAL), then the audit log fills
    with upstream() as url:
        profile = _profile(tmp_path, url)
        proc, base, lines = start(profile, home, audit, preexec=_fsize_limit(limit))
        assert base is not None, "".join(lines)
        try:
            route = f"{base}/mcp/notes"
            with httpx.Client(timeout=10) as client:
                refused: httpx.Response | None = None
                for i in range(2000):
                    resp = client.post(route, json=call("list_notes", {}, i), headers=HEADERS)
                    if resp.status_code != 200:
                        refused, served = resp, i
                        break
                assert refused is not None, "the audit log never filled up"
                assert refused.status_code == 503, refused.text + "".join(lines)
                message = refused.json()["error"]["message"]
                assert message == (
                    f"The gateway cannot write its audit log {audit} (File too large), so it "
                    "serves nothing: free disk space (or raise the file size limit), then "
                    "retry the request"
                )
                # A call with a side effect is refused before it reaches the upstream.
                add = call("add_note", {"title": "unaudited", "body": "must not exist"}, 9001)
                resp = client.post(route, json=add, headers=HEADERS)
                assert resp.status_code == 503, resp.text
                listing = client.post(route, json=rpc("tools/list", {}, 9002), headers=HEADERS)
                assert listing.status_code == 503  # read-only methods get no answer either
                direct = client.post(url, json=call("list_notes", {}, 1), headers=HEADERS)
                assert "unaudited" not in direct.text  # the upstream never saw the add
                # Room again (the limit lifted): served and audited, no restart.
                unlimited = (resource.RLIM_INFINITY, resource.RLIM_INFINITY)
                resource.prlimit(proc.pid, resource.RLIMIT_FSIZE, unlimited)
                again = client.post(route, json=call("list_notes", {}, 9003), headers=HEADERS)
                assert again.status_code == 200, again.text
        finally:
            terminate_group(proc)
        # Every call answered 200 has its event; none answered 503 has one.
        done = [e for e in whole_events(audit) if e.get("event") == "tool.call"]
        assert len(done) == served + 1 and served > 50
        # The gap is recorded once, when the log could be written again.
        resumed = [e for e in whole_events(audit) if e.get("event") == "audit.resumed"]
        assert len(resumed) == 1 and "File too large" in resumed[0]["reason"]
        assert done[-1]["outcome"] == "success" and audit.stat().st_size > limit
    result = verify_cli(home, audit)  # what was written still verifies
    assert result.returncode == 0, result.stdout + result.stderr
    print(f"\n{served} calls served, then 503; verify: {' '.join(result.stdout.split())}")


def whole_events(path: Path) -> list[dict[str, Any]]:
    """The events of a log whose last line may be torn."""
    out = []
    for raw in path.read_bytes().splitlines():
        try:
            out.append(json.loads(raw))
        except ValueError:
            continue
    return out


def test_up_refuses_an_audit_path_under_a_regular_file(tmp_path: Path) -> None:
    """What root cannot write either: a directory that is a file."""
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("x")
    audit = blocker / "audit.jsonl"
    with upstream() as url:
        proc, base, lines = start(_profile(tmp_path, url), tmp_path / "home", audit)
        try:
            assert base is None
            assert proc.wait(30) != 0
        finally:
            terminate_group(proc)
    assert "".join(lines).strip() == (
        f"lockgate: The gateway cannot write its audit log {audit} (part of the path is a "
        "file, not a directory), so it will not start: make that directory writable for the "
        "gateway's user (or set LOCKGATE_AUDIT_LOG to a writable path)"
    )


def _read_only_mount(directory: Path) -> list[str] | None:
    """A wrapper that runs a command with `directory` bind-mounted read-only in a private
    user and mount namespace (no change to this machine's mounts); None where the kernel or
    the tools do not allow one."""
    if shutil.which("unshare") is None:
        return None
    script = 'mount --bind "$0" "$0" && mount -o remount,bind,ro "$0" && exec "$@"'
    wrap = ["unshare", "-rm", "sh", "-c", script, str(directory)]
    probe = subprocess.run([*wrap, "sh", "-c", f'! touch "{directory}/probe"'], timeout=30)
    return wrap if probe.returncode == 0 else None


def test_up_refuses_a_read_only_audit_directory(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    wrap = _read_only_mount(home)
    if wrap is None:
        pytest.skip("no unprivileged read-only bind mount here (unshare -rm refused)")
    audit = home / "audit.jsonl"
    with upstream() as url:
        proc, base, lines = start(_profile(tmp_path, url), home, audit, wrap=wrap)
        try:
            assert base is None
            assert proc.wait(30) != 0
        finally:
            terminate_group(proc)
    out = "".join(lines).strip()
    assert out.startswith("lockgate: The gateway cannot write its audit ")
    assert "(Read-only file system), so it will not start" in out


@pytest.mark.skipif(not hasattr(resource, "prlimit"), reason="prlimit(2) is Linux-only")
def test_a_full_disk_under_the_pins_store_answers_503_naming_it(tmp_path: Path) -> None:
    """The first call pins the upstream's tools (SQLite, WAL): too little room for that."""
    home, audit = tmp_path / "home", tmp_path / "home" / "audit.jsonl"
    with upstream() as url:
        proc, base, lines = start(
            _profile(tmp_path, url), home, audit, preexec=_fsize_limit(48 * 1024)
        )
        assert base is not None, "".join(lines)
        try:
            with httpx.Client(timeout=10) as client:
                route = f"{base}/mcp/notes"
                resp = client.post(route, json=call("list_notes", {}, 1), headers=HEADERS)
                assert resp.status_code == 503, resp.text
                assert resp.json()["error"]["message"] == (
                    f"The gateway cannot write its pins store {home / 'pins.db'} (disk I/O "
                    "error), so it serves nothing: free disk space or make that directory "
                    "writable, then retry the request"
                )
                unlimited = (resource.RLIM_INFINITY, resource.RLIM_INFINITY)
                resource.prlimit(proc.pid, resource.RLIMIT_FSIZE, unlimited)
                again = client.post(route, json=call("list_notes", {}, 2), headers=HEADERS)
                assert again.status_code == 200, again.text
                listed = client.post(route, json=rpc("tools/list", {}, 3), headers=HEADERS)
                assert listed.status_code == 200, listed.text
        finally:
            terminate_group(proc)
    with PinStore.open(home / "pins.db") as store:
        assert "list_notes" in {pin.name for pin in store.pins("up")}


@pytest.mark.skipif(not hasattr(resource, "prlimit"), reason="prlimit(2) is Linux-only")
def test_a_full_disk_under_an_sse_reply_answers_the_error_in_the_stream(tmp_path: Path) -> None:
    """An SSE reply's status is sent before its events: the reply becomes the error."""
    home, audit = tmp_path / "home", tmp_path / "home" / "audit.jsonl"
    with sdk_upstream(json_response=False, stateless=True) as url:
        proc, base, lines = start(
            _profile(tmp_path, url), home, audit, preexec=_fsize_limit(256 * 1024)
        )
        assert base is not None, "".join(lines)
        try:
            with httpx.Client(timeout=10) as client:
                for i in range(3000):  # a list writes one event, at its reply: in the stream
                    resp = client.post(
                        f"{base}/mcp/notes", json=rpc("tools/list", {}, i), headers=HEADERS
                    )
                    if '"result"' not in resp.text:
                        break
                assert resp.headers["content-type"].startswith("text/event-stream"), resp.text
                data = [ln[5:].strip() for ln in resp.text.splitlines() if ln.startswith("data:")]
                assert len(data) == 1, resp.text
                error = json.loads(data[0])
                assert error["id"] == i and '"result"' not in resp.text
                assert error["error"]["message"].startswith(
                    f"The gateway cannot write its audit log {audit} (File too large)"
                )
        finally:
            terminate_group(proc)
