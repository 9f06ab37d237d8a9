"""lockgate.keyring against the real Secret Service, and its message for each keyring failure."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import keyring
import keyring.backend
import keyring.backends.chainer
import keyring.backends.fail
import keyring.backends.null
import pytest

from lockgate.errors import KeyringUnavailable, LockgateError, SecretMissing
from lockgate.keyring import split_chunks
from lockgate.upstream import secrets
from tests.support import keyring_env
from tests.support.doubles import private_keyring_json

ROOT = Path(__file__).resolve().parents[2]
SECRET = "s3cr3t-value-never-in-messages"


# --- the real keyring -------------------------------------------------------------------


def test_round_trip(upstream: str) -> None:
    assert secrets.get_secret(upstream) is None
    secrets.set_secret(upstream, SECRET)
    assert secrets.get_secret(upstream) == SECRET
    assert keyring.get_password("lockgate", f"upstream:{upstream}") == SECRET
    secrets.set_secret(upstream, "replaced")
    assert secrets.get_secret(upstream) == "replaced"
    assert secrets.delete_secret(upstream) is True
    assert secrets.get_secret(upstream) is None
    assert secrets.delete_secret(upstream) is False


def test_unicode_round_trip(upstream: str) -> None:
    value = "Bearer ключ-🔑-\u00e9\n second line "
    secrets.set_secret(upstream, value)
    assert secrets.get_secret(upstream) == value


def _entries(upstream: str) -> dict[str, str]:
    """Every keyring entry of an upstream, main and chunks, read straight from the keyring."""
    found: dict[str, str] = {}
    for user in [f"upstream:{upstream}"] + [f"upstream:{upstream}#{i}" for i in range(1, 40)]:
        value = keyring.get_password("lockgate", user)
        if value is not None:
            found[user] = value
    return found


def test_ten_kilobyte_secret_is_chunked(upstream: str) -> None:
    value = "".join(f"{i:05d}-" for i in range(2000))[:10_240]
    assert len(value) == 10_240
    secrets.set_secret(upstream, value)
    assert secrets.get_secret(upstream) == value

    entries = _entries(upstream)
    main = entries.pop(f"upstream:{upstream}")
    assert main.startswith("lockgate-chunked:v1:")
    assert value not in main
    assert len(entries) >= 5
    assert sorted(entries) == sorted(f"upstream:{upstream}#{i}" for i in range(1, len(entries) + 1))
    for chunk in entries.values():  # each fits Windows Credential Manager's 2,560 bytes
        assert len(chunk.encode("utf-16-le")) <= 2_560
    assert "".join(entries[f"upstream:{upstream}#{i}"] for i in range(1, len(entries) + 1)) == value

    # Replacing it with a short value leaves no stale chunk behind.
    secrets.set_secret(upstream, "short")
    assert _entries(upstream) == {f"upstream:{upstream}": "short"}
    secrets.set_secret(upstream, value)
    assert secrets.delete_secret(upstream) is True
    assert _entries(upstream) == {}


def test_long_non_bmp_secret_is_chunked_within_limit(upstream: str) -> None:
    value = "🔑" * 3_000  # 4 UTF-16 bytes each
    secrets.set_secret(upstream, value)
    assert secrets.get_secret(upstream) == value
    for chunk in _entries(upstream).values():
        assert len(chunk.encode("utf-16-le")) <= 2_560


def test_shrinking_chunked_secret_removes_extra_chunks(upstream: str) -> None:
    secrets.set_secret(upstream, "a" * 10_000)
    before = len(_entries(upstream))
    secrets.set_secret(upstream, "b" * 3_000)
    after = _entries(upstream)
    assert len(after) < before
    assert secrets.get_secret(upstream) == "b" * 3_000


def test_value_that_looks_like_a_marker_round_trips(upstream: str) -> None:
    value = "lockgate-chunked:v1:3:" + "0" * 32
    secrets.set_secret(upstream, value)
    assert secrets.get_secret(upstream) == value


def test_missing_chunk_is_reported_not_truncated(upstream: str) -> None:
    secrets.set_secret(upstream, "x" * 10_000)
    keyring.delete_password("lockgate", f"upstream:{upstream}#2")
    with pytest.raises(SecretMissing) as info:
        secrets.get_secret(upstream)
    assert f"lockgate secret set {upstream}" in str(info.value)
    assert secrets.delete_secret(upstream) is True
    assert _entries(upstream) == {}


def test_empty_secret_and_bad_names_are_refused(upstream: str) -> None:
    with pytest.raises(LockgateError, match="empty secret"):
        secrets.set_secret(upstream, "")
    for bad in ["", "a#1", "has space", "ctl\x01"]:
        with pytest.raises(LockgateError, match="not a valid upstream name"):
            secrets.set_secret(bad, SECRET)


# --- chunking, pure -----------------------------------------------------------------------


def test_split_chunks_respects_utf16_budget() -> None:
    value = ("ab🔑é" * 2_000)[:7_001]
    chunks = split_chunks(value, limit=100)
    assert "".join(chunks) == value
    assert all(0 < len(c.encode("utf-16-le")) <= 100 for c in chunks)
    assert split_chunks("short") == ["short"]


# --- failure modes: one clear sentence, never the secret ----------------------------------


def _assert_clear(error: KeyringUnavailable, *needles: str) -> None:
    text = str(error)
    assert SECRET not in text
    assert "\n" not in text
    assert "Traceback" not in text
    for needle in needles:
        assert needle in text, text


@pytest.fixture
def fail_backend() -> Iterator[None]:
    yield from keyring_env.forced_keyring(keyring.backends.fail.Keyring())


def test_fail_backend_is_no_keyring(fail_backend: None) -> None:
    for call in (
        lambda: secrets.get_secret("internal"),
        lambda: secrets.set_secret("internal", SECRET),
        lambda: secrets.delete_secret("internal"),
    ):
        with pytest.raises(KeyringUnavailable) as info:
            call()
        assert not isinstance(info.value, keyring.errors.KeyringError)
        _assert_clear(info.value, "No OS keyring is available")
        if sys.platform.startswith("linux"):
            _assert_clear(info.value, "Secret Service", "gnome-keyring")


@pytest.fixture
def null_backend() -> Iterator[None]:
    yield from keyring_env.forced_keyring(keyring.backends.null.Keyring())


def test_null_backend_is_no_keyring_not_silent_loss(null_backend: None) -> None:
    with pytest.raises(KeyringUnavailable) as info:
        secrets.set_secret("internal", SECRET)
    _assert_clear(info.value, "No OS keyring is available")


@pytest.fixture
def empty_chainer(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(keyring.backend, "_limit", lambda _backend: False)
    yield from keyring_env.forced_keyring(keyring.backends.chainer.ChainerBackend())


def test_chainer_without_backends_is_no_keyring(empty_chainer: None) -> None:
    assert keyring.backends.chainer.ChainerBackend.backends == []
    with pytest.raises(KeyringUnavailable) as info:
        secrets.set_secret("internal", SECRET)
    _assert_clear(info.value, "No OS keyring is available")


def _try_each_op(upstream: str) -> str:
    """The end of a subprocess script: get, set and delete `upstream`'s secret, and print
    what each raised (KeyringUnavailable's message) into the script's `out` as JSON."""
    return textwrap.dedent(
        f"""
        for op, call in [
            ("get", lambda: secrets.get_secret({upstream!r})),
            ("set", lambda: secrets.set_secret({upstream!r}, "SECRET-VALUE")),
            ("delete", lambda: secrets.delete_secret({upstream!r})),
        ]:
            try:
                call()
                out[op] = "no error"
            except KeyringUnavailable as e:
                out[op] = str(e)
        print(json.dumps(out))
        """
    )


NO_BUS_SCRIPT = textwrap.dedent(
    """
    import json, sys
    import keyring
    from lockgate.upstream import secrets
    from lockgate.errors import KeyringUnavailable

    if sys.argv[1] == "instance":
        import keyring.backends.SecretService
        keyring.set_keyring(keyring.backends.SecretService.Keyring())
    out = {}
    """
) + _try_each_op("internal")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Secret Service is Linux-only")
@pytest.mark.parametrize("how", ["env", "instance"])
def test_secret_service_without_bus(how: str) -> None:
    """PYTHON_KEYRING_BACKEND forcing SecretService (a plain RuntimeError), or an instance."""
    env = {k: v for k, v in os.environ.items() if k != "DBUS_SESSION_BUS_ADDRESS"}
    if how == "env":
        env["PYTHON_KEYRING_BACKEND"] = "keyring.backends.SecretService.Keyring"
    env["PYTHONPATH"] = str(ROOT)
    proc = subprocess.run(
        [sys.executable, "-c", NO_BUS_SCRIPT, how],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    for op in ("get", "set", "delete"):
        message = out[op]
        assert "no D-Bus session" in message, message
        assert "dbus-run-session" in message
        assert "SECRET-VALUE" not in message


LOCKED_SCRIPT = textwrap.dedent(
    """
    import json
    import secretstorage
    from lockgate.upstream import secrets
    from lockgate.errors import KeyringUnavailable

    secrets.set_secret("lockgate-test-locked", "SECRET-VALUE")
    assert secrets.get_secret("lockgate-test-locked") == "SECRET-VALUE"
    connection = secretstorage.dbus_init()
    collection = secretstorage.get_default_collection(connection)
    collection.lock()
    out = {"locked": collection.is_locked()}
    """
) + _try_each_op("lockgate-test-locked")


def test_locked_collection() -> None:
    """Lock the login collection of a private gnome-keyring: every call says 'unlock'."""
    out = private_keyring_json(LOCKED_SCRIPT)
    assert out["locked"] is True
    for op in ("get", "set", "delete"):
        message = out[op]
        assert message.startswith("The OS keyring is locked: unlock your keyring"), message
        assert "SECRET-VALUE" not in message
