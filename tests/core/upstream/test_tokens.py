"""lockgate/upstream/tokens.py: one user's tokens for one upstream, as JSON in the keyring.

Why it exists: the gateway reads these on every call to an `auth = "oauth"` upstream and
`lockgate servers` asks `stored()`. A damaged entry must read as "connect again", never as
half a token; long tokens must survive the chunking; secrets must not show in a repr.
Most tests force an in-memory keyring backend (the real `lockgate.keyring` code runs); one
uses the real OS keyring (skipped, failed in CI, without one).
"""

from __future__ import annotations

import pytest

from lockgate.errors import SecretMissing
from lockgate.keyring import CHUNK_BYTES, SERVICE
from lockgate.upstream import tokens as upstream_tokens
from tests.support import keyring_env
from tests.support.doubles import tokens
from tests.support.keyring_env import MemoryKeyring


def test_save_load_delete(memory: MemoryKeyring) -> None:
    assert upstream_tokens.load("linear", "alice") is None
    assert not upstream_tokens.stored("linear", "alice")
    upstream_tokens.save("linear", "alice", tokens())
    assert upstream_tokens.stored("linear", "alice")
    assert not upstream_tokens.stored("linear", "bob")  # per user
    assert not upstream_tokens.stored("github", "alice")  # per upstream
    loaded = upstream_tokens.load("linear", "alice")
    assert loaded == tokens(obtained_at=loaded.obtained_at if loaded else 0)
    assert (SERVICE, "oauth:linear:alice") in memory.entries
    assert upstream_tokens.delete("linear", "alice")
    assert not upstream_tokens.delete("linear", "alice")
    assert upstream_tokens.load("linear", "alice") is None


def test_long_tokens_are_chunked_and_reassembled(memory: MemoryKeyring) -> None:
    long = "j" * (CHUNK_BYTES * 3)
    upstream_tokens.save("linear", "alice", tokens(access_token=long))
    assert (SERVICE, "oauth:linear:alice#2") in memory.entries
    loaded = upstream_tokens.load("linear", "alice")
    assert loaded is not None and loaded.access_token == long
    upstream_tokens.save("linear", "alice", tokens())  # shorter again: old chunks go
    assert (SERVICE, "oauth:linear:alice#2") not in memory.entries


@pytest.mark.parametrize("raw", ["not json", '{"access_token": "x"}', "[]"])
def test_a_damaged_entry_reads_as_connect_again(memory: MemoryKeyring, raw: str) -> None:
    memory.set_password(SERVICE, "oauth:linear:alice", raw)
    with pytest.raises(SecretMissing) as e:
        upstream_tokens.load("linear", "alice")
    assert "lockgate connect linear" in str(e.value)
    assert upstream_tokens.stored("linear", "alice")  # something is there, but unusable


def test_the_repr_shows_no_secret() -> None:
    text = repr(tokens(client_secret="cs-secret"))
    for secret in ("at-secret", "rt-secret", "cs-secret"):
        assert secret not in text


def test_expiry_is_judged_ahead_of_time() -> None:
    now = 1_000_000.0
    assert tokens(expires_at=now + 30).expires_within(60, now=now)
    assert not tokens(expires_at=now + 120).expires_within(60, now=now)
    assert not tokens(expires_at=None).expires_within(60, now=now)


@pytest.mark.keyring
def test_real_keyring_round_trip() -> None:
    for new_name in keyring_env.real_keyring():
        name = new_name()
        try:
            upstream_tokens.save(name, "alice", tokens(access_token="a" * 5000))
            loaded = upstream_tokens.load(name, "alice")
            assert loaded is not None and loaded.access_token == "a" * 5000
            assert upstream_tokens.stored(name, "alice")
        finally:
            upstream_tokens.delete(name, "alice")
        assert not upstream_tokens.stored(name, "alice")
