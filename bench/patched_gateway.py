"""`lockgate up` with the patches bench proposes applied at run time (an experiment).

    python bench/patched_gateway.py up --profile FILE --listen 127.0.0.1:0 --quiet

Nothing under addons/ or lockgate/ is edited; this process monkeypatches two things before
running the normal CLI, so `bench/run.py --with-patched` can measure them end to end:

1. nested pipeline: `Gateway.run` registers core addons, then the nine pipeline addons, then
   its `_Started` hook. mitmproxy's AddonManager creates a coroutine and a `safecall` context
   for every top-level addon on every event (8 per request: 4 hooks + 4 `update`), whether or
   not it has the hook. Registered as children of one parent addon, the pipeline costs one
   such call per event instead of nine; the order is unchanged, and since every pipeline hook
   is `guarded` none raises, so no child is skipped.
2. deferred audit write: `Audit.record` still refuses at once when the log cannot be opened, but
   the serialization, hashing and write happen in a `call_soon` callback, i.e. after mitmproxy
   has written the response to the client (it does so in the same task, before yielding to
   the loop). Events keep their order. Trade-off: the response can reach the client before
   its audit line is on disk (one loop iteration); a write failure there must stop the
   gateway (here: logged and re-raised in the callback).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from mitmproxy import addonmanager

from lockgate.addons import audit as audit_addon
from lockgate.addons.config import Config

logger = logging.getLogger("lockgate")


class Pipeline:
    """One mitmproxy addon whose children are the pipeline addons, in order."""

    def __init__(self, children: list[Any]) -> None:
        self.addons = children


def nest_pipeline() -> None:
    original_add = addonmanager.AddonManager.add

    def add(self: Any, *addons: Any) -> None:
        idx = [i for i, a in enumerate(addons) if isinstance(a, Config)]
        if not idx:
            return original_add(self, *addons)
        first, last = idx[0], len(addons) - 1  # Gateway.run passes its _Started hook last
        return original_add(self, *addons[:first], Pipeline(list(addons[first:last])), addons[last])

    addonmanager.AddonManager.add = add  # type: ignore[method-assign]


def defer_audit() -> None:
    original_record = audit_addon.Audit.record

    def flush(self: Any) -> None:
        pending, self._bench_pending = self._bench_pending, []
        for event in pending:
            original_record(self, event)

    def record(self: Any, event: dict[str, Any]) -> None:
        self._open()  # refuses at once (raises) when the log cannot be used
        pending = self.__dict__.setdefault("_bench_pending", [])
        pending.append(event)
        if len(pending) == 1:
            asyncio.get_running_loop().call_soon(flush, self)

    audit_addon.Audit.record = record  # type: ignore[method-assign]


def main() -> None:
    nest_pipeline()
    defer_audit()
    from lockgate.cli.entry import main as cli_main

    cli_main()


if __name__ == "__main__":
    main()
