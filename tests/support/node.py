"""Node 22 and the MCP npm packages the tests run, found in tests/node/node_modules.

Why it exists: the official conformance suite and the reference server
(`@modelcontextprotocol/server-everything`) need Node >= 22. `tests/node/install.sh` brings
one as the npm package `node@22` together with both packages, pinned by
tests/node/package-lock.json. These helpers run them with that Node directly (never through
npx, which would download at test time) and return None when something is missing, so a
test can `require(...)` it: skipped with a reason on a laptop, failed in CI.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import cache
from pathlib import Path

from tests.support.process import free_port, terminate_group, wait_for_port

NODE_DIR = Path(__file__).resolve().parents[1] / "node"
NODE_MODULES = NODE_DIR / "node_modules"
MIN_NODE_MAJOR = 22
INSTALL_HINT = "run tests/node/install.sh (npm ci: Node 22 and the MCP npm packages)"

CONFORMANCE_PKG = "@modelcontextprotocol/conformance"
EVERYTHING_PKG = "@modelcontextprotocol/server-everything"


def _node_major(node: Path) -> int | None:
    try:
        out = subprocess.run(
            [str(node), "--version"], capture_output=True, text=True, timeout=20, check=True
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    match = re.match(r"v(\d+)\.", out.strip())
    return int(match.group(1)) if match else None


@cache
def node_bin() -> Path | None:
    """The Node >= 22 binary: tests/node's `node@22` package first, else a system node >= 22."""
    candidates = [NODE_MODULES / ".bin" / "node", NODE_MODULES / "node" / "bin" / "node"]
    system = shutil.which("node")
    if system:
        candidates.append(Path(system))
    for candidate in candidates:
        if candidate.is_file() and os.access(candidate, os.X_OK):
            major = _node_major(candidate)
            if major is not None and major >= MIN_NODE_MAJOR:
                return candidate.resolve()
    return None


def package_bin(package: str) -> Path | None:
    """The file a package's `bin` entry points at (its first one), if the package is installed."""
    manifest = NODE_MODULES / package / "package.json"
    try:
        meta = json.loads(manifest.read_text())
    except (OSError, ValueError):
        return None
    entry = meta.get("bin")
    if isinstance(entry, dict):
        entry = next(iter(entry.values()), None)
    if not isinstance(entry, str):
        return None
    path = (manifest.parent / entry).resolve()
    return path if path.is_file() else None


def package_version(package: str) -> str | None:
    try:
        return str(json.loads((NODE_MODULES / package / "package.json").read_text())["version"])
    except (OSError, ValueError, KeyError):
        return None


def _command(package: str) -> list[str] | None:
    node = node_bin()
    script = package_bin(package)
    if node is None or script is None:
        return None
    return [str(node), str(script)]


def conformance_cmd() -> list[str] | None:
    """`[node, .../conformance/dist/index.js]`, or None when Node 22 or the package is missing."""
    return _command(CONFORMANCE_PKG)


def everything_cmd() -> list[str] | None:
    """`[node, .../server-everything/dist/index.js]`, or None when missing."""
    return _command(EVERYTHING_PKG)


def node_env() -> dict[str, str]:
    """The environment for a Node child: Node 22 first on PATH, no colours, no npm update checks."""
    env = dict(os.environ)
    node = node_bin()
    if node is not None:
        env["PATH"] = f"{node.parent}{os.pathsep}{env.get('PATH', '')}"
    env.update({"NO_COLOR": "1", "FORCE_COLOR": "0", "NO_UPDATE_NOTIFIER": "1"})
    return env


@contextmanager
def everything_upstream(*, startup_timeout: float = 30.0) -> Iterator[str]:
    """Run server-everything in streamableHttp mode on a free port; yield its MCP URL.

    The server takes its port from the environment variable PORT (no argument, no port 0:
    it logs the PORT it was given, not the bound one) and listens on all interfaces; we pick
    a free loopback port, retry on a lost race, and wait until 127.0.0.1:PORT accepts.
    """
    cmd = everything_cmd()
    if cmd is None:
        raise RuntimeError(f"server-everything or Node >= {MIN_NODE_MAJOR} missing: {INSTALL_HINT}")
    with _node_server(
        lambda port: ([*cmd, "streamableHttp"], {"PORT": str(port)}),
        "server-everything",
        startup_timeout,
    ) as url:
        yield url


def express_upstream_cmd() -> list[str] | None:
    """`[node, tests/node/express_upstream.mjs]` (the TypeScript SDK's Express helper, which
    server-everything brings), or None when Node 22 or the SDK is missing."""
    node = node_bin()
    if node is None or not (NODE_MODULES / "@modelcontextprotocol" / "sdk").is_dir():
        return None
    return [str(node), str(NODE_DIR / "express_upstream.mjs")]


@contextmanager
def express_upstream(*, startup_timeout: float = 30.0) -> Iterator[str]:
    """Run tests/node/express_upstream.mjs on a free loopback port; yield its MCP URL."""
    cmd = express_upstream_cmd()
    if cmd is None:
        raise RuntimeError(
            f"the MCP TypeScript SDK or Node >= {MIN_NODE_MAJOR} missing: {INSTALL_HINT}"
        )
    with _node_server(
        lambda port: ([*cmd, str(port)], {}), "express_upstream.mjs", startup_timeout
    ) as url:
        yield url


@contextmanager
def _node_server(
    spawn: Callable[[int], tuple[list[str], dict[str, str]]], what: str, startup_timeout: float
) -> Iterator[str]:
    """Start `spawn(port)`'s command on a free port (retried on a lost race) until it
    accepts on 127.0.0.1; yield its /mcp URL; end its process group after."""
    last_err = ""
    cmd: list[str] = []
    for _attempt in range(3):
        port = free_port()
        cmd, extra = spawn(port)
        with tempfile.TemporaryFile() as log:
            proc = subprocess.Popen(
                cmd,
                cwd=NODE_DIR,
                env=node_env() | extra,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
            try:
                if wait_for_port(port, proc, startup_timeout):
                    yield f"http://127.0.0.1:{port}/mcp"
                    return
            finally:
                terminate_group(proc)
            log.seek(0)
            last_err = log.read().decode(errors="replace")
        if "EADDRINUSE" not in last_err and "already in use" not in last_err:
            break
    raise RuntimeError(f"{what} did not start (cmd {cmd}): {last_err.strip()[-2000:]}")
