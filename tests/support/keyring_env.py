"""The real OS keyring for tests: found, probed, cleaned up; or a private Secret Service.

CI runs pytest inside ``dbus-run-session`` with an unlocked, throwaway gnome-keyring (see
``.ci/run``). On a laptop the ambient keyring is used only for entries named
``lockgate-test-*``, removed after each test. Tests that must lock a collection run it in
a private session instead (:func:`run_in_private_secret_service`): a D-Bus session and a
gnome-keyring of their own, with their keyring files in a temporary directory.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import keyring
import keyring.backend
import keyring.backends.chainer
import keyring.backends.fail
import keyring.backends.null
import keyring.core
import keyring.errors
from jaraco.classes import properties

from lockgate.keyring import SERVICE
from lockgate.upstream.secrets import username
from tests.support import require

REASON = "no unlocked Secret Service (run under dbus-run-session with gnome-keyring, see .ci/run)"
PRIVATE_REASON = (
    "dbus-run-session and gnome-keyring-daemon are needed "
    "(apt-get install dbus-daemon gnome-keyring, see .ci/run)"
)
PROBE_PREFIX = "lockgate-test-"


@functools.cache
def default_backend() -> keyring.backend.KeyringBackend | None:
    """The backend keyring detects for this process (before any test forces another)."""
    try:
        keyring.core.init_backend()
        return keyring.get_keyring()
    except Exception:  # a probe: any failure means "no keyring here"
        return None


def _usable(backend: keyring.backend.KeyringBackend | None) -> bool:
    if backend is None:
        return False
    if isinstance(backend, keyring.backends.fail.Keyring | keyring.backends.null.Keyring):
        return False
    return not (
        isinstance(backend, keyring.backends.chainer.ChainerBackend) and not backend.backends
    )


@functools.cache
def keyring_available() -> bool:
    """A real, unlocked backend that can set, get and delete a probe entry."""
    backend = default_backend()
    if backend is None or not _usable(backend):
        return False
    user = f"{PROBE_PREFIX}probe-{uuid.uuid4().hex[:12]}"
    value = uuid.uuid4().hex
    try:
        backend.set_password(SERVICE, user, value)
        ok = backend.get_password(SERVICE, user) == value
        backend.delete_password(SERVICE, user)
        return ok and backend.get_password(SERVICE, user) is None
    except Exception:  # a probe: locked, no bus, no daemon all mean "not available"
        return False


def require_keyring() -> None:
    """Skip (fail under LOCKGATE_REQUIRE_ALL=1) without a real, unlocked keyring."""
    require(keyring_available(), REASON)


def real_keyring() -> Iterator[Callable[[], str]]:
    """Fixture body: the real keyring, and a factory of ``lockgate-test-*`` upstream names.

    Use as ``yield from keyring_env.real_keyring()`` in a pytest fixture. Every name handed
    out is deleted afterwards (chunks included), and the process's backend is restored.
    """
    require_keyring()
    backend = default_backend()
    assert backend is not None
    previous = keyring.get_keyring()
    keyring.set_keyring(backend)
    names: list[str] = []

    def new_name() -> str:
        name = f"{PROBE_PREFIX}{uuid.uuid4().hex[:12]}"
        names.append(name)
        return name

    try:
        yield new_name
    finally:
        keyring.set_keyring(backend)
        for name in names:
            _remove_all(backend, name)
        keyring.set_keyring(previous)


def _remove_all(backend: keyring.backend.KeyringBackend, name: str) -> None:
    """Remove an upstream's entry and any chunk a test left behind, whatever its state."""
    for user in [username(name)] + [f"{username(name)}#{i}" for i in range(1, 64)]:
        try:
            if backend.get_password(SERVICE, user) is not None:
                backend.delete_password(SERVICE, user)
        except Exception:  # cleanup: never mask the test's own outcome
            pass


def forced_keyring(backend: keyring.backend.KeyringBackend) -> Iterator[None]:
    """Fixture body: force a backend for one test, restore the previous one afterwards."""
    previous = keyring.get_keyring() if _has_backend() else default_backend()
    keyring.set_keyring(backend)
    try:
        yield
    finally:
        if previous is not None:
            keyring.set_keyring(previous)


def _has_backend() -> bool:
    try:
        keyring.get_keyring()
    except Exception:  # a forced backend that cannot start
        return False
    return True


# `--unlock` returns before the daemon owns its bus name: wait for it, or the first client
# D-Bus-activates a second, locked daemon. Files and control socket stay in the temp dir.
_PRIVATE_SESSION = """
printf %s "$LOCKGATE_TEST_KEYRING_PASSWORD" |
    XDG_DATA_HOME="$LOCKGATE_TEST_KEYRING_DATA" XDG_RUNTIME_DIR="$LOCKGATE_TEST_KEYRING_RUN" \\
    gnome-keyring-daemon --unlock --components=secrets >/dev/null || exit 90
for _ in $(seq 100); do
    dbus-send --session --print-reply --dest=org.freedesktop.DBus /org/freedesktop/DBus \\
        org.freedesktop.DBus.NameHasOwner string:org.freedesktop.secrets 2>/dev/null |
        grep -q "boolean true" && break
    sleep 0.1
done
exec "$0" "$1"
"""


def private_session_available() -> bool:
    """Whether a private D-Bus session with its own gnome-keyring can be started."""
    return (
        sys.platform.startswith("linux")
        and shutil.which("dbus-run-session") is not None
        and shutil.which("gnome-keyring-daemon") is not None
        and shutil.which("dbus-send") is not None
    )


def require_private_session() -> None:
    require(private_session_available(), PRIVATE_REASON)


def run_in_private_secret_service(
    script: str, *, password: str = "lockgate-test-pass", timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """Run a Python script in a private D-Bus session with an unlocked, throwaway gnome-keyring.

    The keyring files live in a temporary XDG_DATA_HOME, DISPLAY is unset so no unlock
    prompt can appear, and the developer's own keyring is never reached.
    """
    with tempfile.TemporaryDirectory(prefix="lockgate-test-keyring-") as tmp:
        data, run = Path(tmp) / "data", Path(tmp) / "run"
        data.mkdir(mode=0o700)
        run.mkdir(mode=0o700)
        script_path = Path(tmp) / "script.py"
        script_path.write_text(script)
        env = {
            k: v
            for k, v in os.environ.items()
            if k not in {"DBUS_SESSION_BUS_ADDRESS", "DISPLAY", "WAYLAND_DISPLAY"}
        }
        env["LOCKGATE_TEST_KEYRING_DATA"] = str(data)
        env["LOCKGATE_TEST_KEYRING_RUN"] = str(run)
        env["LOCKGATE_TEST_KEYRING_PASSWORD"] = password
        env["PYTHONPATH"] = os.pathsep.join(
            [str(Path(__file__).resolve().parents[2]), env.get("PYTHONPATH", "")]
        ).rstrip(os.pathsep)
        return subprocess.run(
            [
                "dbus-run-session",
                "--",
                "sh",
                "-c",
                _PRIVATE_SESSION,
                sys.executable,
                str(script_path),
            ],
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )


class MemoryKeyring(keyring.backend.KeyringBackend):
    """A real keyring backend that keeps its entries in a dict and counts reads."""

    @properties.classproperty
    def priority(cls) -> float:  # type: ignore[override]
        # Not viable for keyring's own detection: a test backend must never become (part of)
        # the default that tests of the real keyring find.
        raise RuntimeError("a test backend, forced explicitly where used")

    def __init__(self) -> None:
        super().__init__()
        self.entries: dict[tuple[str, str], str] = {}
        self.reads = 0

    def get_password(self, service: str, username: str) -> str | None:
        self.reads += 1
        return self.entries.get((service, username))

    def set_password(self, service: str, username: str, password: str) -> None:
        self.entries[(service, username)] = password

    def delete_password(self, service: str, username: str) -> None:
        if self.entries.pop((service, username), None) is None:
            raise keyring.errors.PasswordDeleteError(username)
