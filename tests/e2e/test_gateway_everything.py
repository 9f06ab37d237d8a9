"""The reference server `@modelcontextprotocol/server-everything` through the gateway.

Why it exists: the demo upstream is ours, built with the Python SDK; the reference server is
the TypeScript SDK's, with its own framing, headers and timing. Driven by the official Python
SDK client through `lockgate up`, it must answer what it answers directly: the same tools,
resources and prompts, its echo, and its long-running operation with progress streamed as it
happens. A curated route hides its `get-env` tool (which would hand a client the server's
environment).

Needs Node >= 22 and the npm packages of tests/node (`tests/node/install.sh`): skipped with
that reason on a laptop without them, failed in CI (LOCKGATE_REQUIRE_ALL=1).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import mcp_types as types
import pytest
from mcp import Client
from mcp.shared.exceptions import MCPError

from tests.support import require
from tests.support.demo_mcp import text_of
from tests.support.gateway import Fronted, fronted
from tests.support.node import INSTALL_HINT, everything_cmd, everything_upstream

pytestmark = pytest.mark.node

CURATED = """
[routes.everything-curated.tools]
deny = ["get-env", "gzip-*"]
"""


class Everything(Fronted):
    @property
    def direct_url(self) -> str:
        return self.direct

    @property
    def url(self) -> str:
        return self.gw.route_url("everything")


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
def everything(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Everything]:
    require(
        everything_cmd() is not None, f"server-everything or Node >= 22 missing: {INSTALL_HINT}"
    )
    routes = {"everything": "everything", "everything-curated": "everything"}
    home = tmp_path_factory.mktemp("gateway")
    with everything_upstream() as url, fronted(url, "everything", routes, CURATED, home) as f:
        yield Everything(f.direct, f.gw)


def client(url: str, **kwargs: Any) -> Client:
    # The reference server speaks the 2025 revisions only: "auto" probes, then falls back.
    return Client(url, mode="auto", read_timeout_seconds=15, **kwargs)


@pytest.mark.anyio
async def test_lists_match_the_direct_ones(everything: Everything) -> None:
    lists: dict[str, Any] = {}
    for where, url in (("direct", everything.direct_url), ("gateway", everything.url)):
        async with client(url) as c:
            assert c.server_info is not None
            lists[where] = {
                "server": c.server_info.name,
                "version": c.protocol_version,
                "tools": [t.model_dump() for t in (await c.list_tools()).tools],
                "resources": [r.model_dump() for r in (await c.list_resources()).resources],
                "templates": [
                    t.uri_template for t in (await c.list_resource_templates()).resource_templates
                ],
                "prompts": [p.name for p in (await c.list_prompts()).prompts],
            }
    via, direct = lists["gateway"], lists["direct"]
    assert via == direct
    names = {t["name"] for t in via["tools"]}
    assert {"echo", "get-sum", "trigger-long-running-operation"} <= names
    assert via["resources"], "server-everything lists static resources"
    assert via["version"] == "2025-11-25"


@pytest.mark.anyio
async def test_echo_sum_and_read_a_resource(everything: Everything) -> None:
    marker = f"hello through lockgate {time.monotonic_ns()}"
    async with client(everything.url) as c:
        echo = await c.call_tool("echo", {"message": marker})
        assert not echo.is_error
        assert text_of(echo) == f"Echo: {marker}"

        total = await c.call_tool("get-sum", {"a": 2, "b": 40})
        assert not total.is_error
        assert "42" in text_of(total)

        resources = (await c.list_resources()).resources
        first = resources[0]
        read = await c.read_resource(str(first.uri))
    content = read.contents[0]
    assert isinstance(content, types.TextResourceContents)
    assert str(content.uri) == str(first.uri)
    assert content.text.strip()

    async with client(everything.direct_url) as c:
        direct = await c.read_resource(str(first.uri))
    assert read.model_dump() == direct.model_dump()

    def mine(e: dict[str, Any]) -> bool:
        return e.get("event") == "tool.call" and (e.get("args") or {}).get("message") == marker

    [event] = everything.gw.matching_events(mine)
    assert event["outcome"] == "success"
    assert event["name"] == "echo"
    assert event["route"] == "everything"


@pytest.mark.anyio
async def test_long_running_operation_streams_progress(everything: Everything) -> None:
    steps, duration = 4, 1
    seen: list[tuple[float, float, float | None]] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        seen.append((time.monotonic(), progress, total))

    async with client(everything.url) as c:
        started = time.monotonic()
        result = await c.call_tool(
            "trigger-long-running-operation",
            {"duration": duration, "steps": steps},
            progress_callback=on_progress,
        )
        done = time.monotonic()

    assert not result.is_error
    assert f"Steps: {steps}" in text_of(result)
    assert [(p, t) for _, p, t in seen] == [(float(i), float(steps)) for i in range(1, steps + 1)]
    # Each step arrived as it happened: the first long before the end, not in one burst.
    step = duration / steps
    assert seen[0][0] - started < duration - step
    assert done - seen[0][0] >= 2 * step
    assert seen[-1][0] - seen[0][0] >= 2 * step


@pytest.mark.anyio
async def test_curated_route_hides_get_env(everything: Everything) -> None:
    async with client(everything.gw.route_url("everything-curated")) as c:
        names = {t.name for t in (await c.list_tools()).tools}
        assert "echo" in names
        assert "get-env" not in names
        assert not any(n.startswith("gzip-") for n in names)
        with pytest.raises(MCPError) as refused:
            await c.call_tool("get-env", {})
        assert refused.value.code == -32601
        assert not (await c.call_tool("echo", {"message": "still here"})).is_error
