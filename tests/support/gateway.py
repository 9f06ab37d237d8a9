"""A real gateway for tests: `lockgate up` in a subprocess on a free port, stopped by SIGTERM."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from lockgate.audit.read import read_events
from tests.support.process import terminate_group, watch_lines


@dataclass
class GatewayProcess:
    base_url: str
    audit_path: Path
    proc: subprocess.Popen[str]
    output: list[str] = field(default_factory=list)

    def route_url(self, route: str) -> str:
        return f"{self.base_url}/mcp/{route}"

    def events(self) -> list[dict[str, object]]:
        return list(read_events(self.audit_path)) if self.audit_path.exists() else []

    def wait_for_events(self, predicate, timeout: float = 5.0) -> list[dict[str, object]]:  # type: ignore[no-untyped-def]
        deadline = time.monotonic() + timeout
        while True:
            events = self.events()
            if predicate(events) or time.monotonic() > deadline:
                return events
            time.sleep(0.02)

    def matching_events(self, match, timeout: float = 5.0) -> list[dict[str, object]]:  # type: ignore[no-untyped-def]
        """The events for which `match(event)` holds, once there is one (or at the timeout)."""
        events = self.wait_for_events(lambda evs: any(match(e) for e in evs), timeout)
        return [e for e in events if match(e)]


@dataclass
class GatewayStack:
    """What a module's gateway fixture yields; test modules subclass it with their parts."""

    gw: GatewayProcess

    @property
    def base(self) -> str:
        return self.gw.base_url


def profile_text(
    upstreams: Mapping[str, str | Sequence[str]],
    routes: Mapping[str, str | Sequence[str]],
    extra: str = "",
    *,
    kind: str = "none",
    identity: list[str] | None = None,
) -> str:
    """A profile: `upstreams` name -> url (or [url, its other lines...]), `routes` name ->
    upstream (or [upstream, the route's other lines...]); `[identity] kind`, or the whole
    `identity` section's lines."""
    lines = [*(identity or ["[identity]", f'kind = "{kind}"']), ""]
    for name, upstream in upstreams.items():
        url, *own = [upstream] if isinstance(upstream, str) else upstream
        lines += [f"[upstreams.{name}]", f'url = "{url}"', *own, ""]
    for name, route in routes.items():
        upstream, *settings = [route] if isinstance(route, str) else route
        lines += [f'[routes."{name}"]', f'upstream = "{upstream}"', *settings, ""]
    return "\n".join(lines) + "\n" + extra


def lockgate_up_args(
    profile: Path, listen: str = "127.0.0.1:0", *, quiet: bool = False
) -> list[str]:
    """The arguments after the Python executable that run `lockgate up` on `profile`."""
    args = ["-m", "lockgate.cli", "up", "--profile", str(profile), "--listen", listen]
    return [*args, "--quiet"] if quiet else args


@contextmanager
def running_gateway(
    profile: str,
    tmp_path: Path,
    *,
    env: dict[str, str] | None = None,
    timeout: float = 30.0,
    listen: str = "127.0.0.1:0",
) -> Iterator[GatewayProcess]:
    """Start `lockgate up` on `listen` (a free port by default) with `profile` (TOML text);
    yield once it listens."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    profile_path = tmp_path / "profile.toml"
    profile_path.write_text(profile, encoding="utf-8")
    home = tmp_path / "gateway-home"
    audit_path = home / "audit.jsonl"
    full_env = {
        **os.environ,
        "LOCKGATE_HOME": str(home),
        "LOCKGATE_AUDIT_LOG": str(audit_path),
        "NO_COLOR": "1",
        "PYTHONUNBUFFERED": "1",
        **(env or {}),
    }
    proc = subprocess.Popen(
        [sys.executable, *lockgate_up_args(profile_path, listen, quiet=True)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=full_env,
        start_new_session=True,
    )
    listening = watch_lines(proc.stdout, r"listening on (http://\S+)")
    url = listening.wait(timeout)
    if url is None:
        proc.kill()
        raise RuntimeError("the gateway did not start:\n" + "".join(listening.lines))
    gw = GatewayProcess(url, audit_path, proc, listening.lines)
    try:
        yield gw
    finally:
        terminate_group(proc, timeout=10)


@dataclass(frozen=True)
class Fronted:
    """An upstream's own URL and a gateway in front of it: the same request both ways."""

    direct: str
    gw: GatewayProcess


@contextmanager
def fronted(
    url: str, name: str, routes: Mapping[str, str], extra: str, home: Path
) -> Iterator[Fronted]:
    """A gateway whose profile has the one upstream `name` at `url` and `routes` over it."""
    profile = profile_text(upstreams={name: url}, routes=routes, extra=extra)
    with running_gateway(profile, home) as gw:
        yield Fronted(url, gw)
