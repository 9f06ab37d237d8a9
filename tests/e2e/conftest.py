"""End-to-end tests drive the `mcp` SDK on asyncio only; the scripted upstream's gateway.

`scripted` is a raw-socket upstream that answers with whatever the test scripts
(tests/support/scripted.py); `scripted_gw` is a gateway in front of it with two routes:
`open` (nothing hidden) and `curated` (hides `delete_*` tools).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.gateway import GatewayProcess, profile_text, running_gateway
from tests.support.scripted import Scripted, scripted_upstream
from tests.support.upstreams import https_upstream  # noqa: F401 (a fixture of test_https_upstream)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def scripted() -> Iterator[Scripted]:
    with scripted_upstream() as up:
        yield up


@pytest.fixture
def scripted_gw(scripted: Scripted, tmp_path: Path) -> Iterator[GatewayProcess]:
    curated = ["up", 'tools.deny = ["delete_*"]']
    profile = profile_text(
        upstreams={"up": scripted.url}, routes={"open": "up", "curated": curated}
    )
    with running_gateway(profile, tmp_path) as gw:
        yield gw
