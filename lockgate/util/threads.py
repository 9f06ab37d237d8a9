"""Blocking work (keyring, DNS) off the event loop, through anyio, imported on first use.

Why not `import anyio` where it is called: every module that needs a thread would load anyio
(~2 MB of RSS) at import, and a gateway without upstream OAuth or metadata fetches never
needs one. This is the one place that imports it.
"""

from __future__ import annotations

from collections.abc import Callable


async def run_sync[T, *Ts](
    func: Callable[[*Ts], T], *args: *Ts, abandon_on_cancel: bool = False
) -> T:
    """`anyio.to_thread.run_sync(func, *args)`: `func` in a worker thread, awaited."""
    import anyio.to_thread

    return await anyio.to_thread.run_sync(func, *args, abandon_on_cancel=abandon_on_cancel)
