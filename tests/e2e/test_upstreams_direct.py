"""The test upstreams work on their own, driven by the official SDK client with no gateway.

Why it exists: gateway tests compare "through lockgate" with "direct"; this file pins down the
direct side, so a gateway test failure is never a fixture problem. Every transport shape of
the demo upstream (JSON or SSE responses x stateful or stateless) is exercised with both
protocol eras of the SDK client: the 2025 initialize handshake (`mode="legacy"`) and the
stateless 2026-07-28 revision. The exercises are shared with `test_gateway_sdk.py`: they live
in `tests/support/demo_mcp.py`, which also says what each shape can carry.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.support.demo_mcp import SHAPES, DemoExercises, Shape
from tests.support.mcp_http import ACCEPT, initialize_request
from tests.support.upstreams import sdk_upstream


@pytest.fixture(scope="module", params=SHAPES)
def upstream(request: pytest.FixtureRequest) -> Iterator[Shape]:
    json_response, stateless = request.param
    with sdk_upstream(json_response=json_response, stateless=stateless) as url:
        yield Shape(url, json_response, stateless)


class TestDirect(DemoExercises):
    """Every exercise on the upstream itself."""

    @pytest.fixture
    def shape(self, upstream: Shape) -> Shape:
        return upstream


def test_host_and_origin_checks_admit_a_local_gateway() -> None:
    """A gateway on another loopback port forwards its own Host; a foreign Host or Origin fails."""
    initialize = initialize_request(client="t")
    with sdk_upstream(json_response=True, stateless=True) as url:

        def post(extra: dict[str, str]) -> int:
            return httpx.post(url, json=initialize, headers=ACCEPT | extra, timeout=5).status_code

        assert post({"Host": "127.0.0.1:8787", "Origin": "http://127.0.0.1:8787"}) == 200
        assert post({"Host": "localhost:8787", "Origin": "http://localhost:8787"}) == 200
        assert post({"Host": "evil.example:8787"}) == 421
        assert post({"Host": "127.0.0.1:8787", "Origin": "https://evil.example"}) == 403
