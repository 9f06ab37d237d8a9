"""Fixtures of the upstream tests: an in-memory keyring backend forced for the test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support import keyring_env
from tests.support.keyring_env import MemoryKeyring


@pytest.fixture
def memory() -> Iterator[MemoryKeyring]:
    backend = MemoryKeyring()
    for _ in keyring_env.forced_keyring(backend):
        yield backend
