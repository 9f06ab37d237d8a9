"""Fixtures of the upstream tests: an in-memory keyring backend forced for the test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.addons.test_credentials import MemoryKeyring
from tests.support import keyring_env


@pytest.fixture
def memory() -> Iterator[MemoryKeyring]:
    backend = MemoryKeyring()
    for _ in keyring_env.forced_keyring(backend):
        yield backend
