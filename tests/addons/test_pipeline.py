"""addons/__init__.py's Pipeline: one mitmproxy addon calling every pipeline addon's hooks
itself, in mitmproxy's own order, with mitmproxy's AddonManager driving it."""

from __future__ import annotations

import asyncio
import inspect
from typing import Any

from mitmproxy import addonmanager, hooks
from mitmproxy.proxy.layers.http import HttpRequestHeadersHook, HttpRequestHook
from mitmproxy.test import taddons, tflow

from lockgate.addons import Pipeline, pipeline
from lockgate.addons.config import Config


def test_each_hook_calls_exactly_the_addons_mitmproxy_would_in_its_order() -> None:
    chain = Pipeline(Config())
    assert not hasattr(chain, "addons")  # mitmproxy must not walk the children again
    nested = type("Nested", (), {"addons": pipeline(Config())})()
    for name in hooks.all_hooks:
        expected = [type(a) for a in addonmanager.traverse(nested.addons) if hasattr(a, name)]
        got = [type(a) for a in chain.hooked.get(name, ())]
        assert got == expected, name
        assert callable(getattr(chain, name, None)) is bool(expected), name
    # The hooks a request goes through are there, sync or async as their addons are.
    for name in ("requestheaders", "request", "responseheaders", "response", "error"):
        assert name in chain.hooked, name
    assert inspect.iscoroutinefunction(chain.request)  # credentials' and connect's are async


class _Recorder:
    def __init__(self, tag: str, log: list[str], is_async: bool) -> None:
        self.tag, self.log = tag, log
        if is_async:

            async def request(flow: Any) -> None:
                await asyncio.sleep(0)
                log.append(f"{tag}.request")

            self.request = request

    def requestheaders(self, flow: Any) -> None:
        self.log.append(f"{self.tag}.requestheaders")


class _Parent(_Recorder):
    def __init__(self, log: list[str]) -> None:
        super().__init__("parent", log, False)
        self.addons = [_Recorder("child", log, True)]


def test_mitmproxy_runs_the_hooks_once_each_in_order(monkeypatch: Any) -> None:
    """Driven by mitmproxy's own AddonManager: each hook once, parents before children, an
    async one awaited before the next runs."""
    log: list[str] = []
    import lockgate.addons as package

    monkeypatch.setattr(
        package,
        "pipeline",
        lambda config=None: [_Recorder("a", log, True), _Parent(log), _Recorder("b", log, False)],
    )
    chain = Pipeline()
    with taddons.context(chain) as tctx:
        flow = tflow.tflow()
        tctx.master.event_loop.run_until_complete(
            tctx.master.addons.handle_lifecycle(HttpRequestHeadersHook(flow))
        )
        tctx.master.event_loop.run_until_complete(
            tctx.master.addons.handle_lifecycle(HttpRequestHook(flow))
        )
    assert log == [
        "a.requestheaders",
        "parent.requestheaders",
        "child.requestheaders",
        "b.requestheaders",
        "a.request",
        "child.request",
    ]
