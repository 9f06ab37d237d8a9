"""A lean embedded mitmproxy master with only the one-line addon: the floor lockgate builds on.

    python bench/lean_master.py http://127.0.0.1:UPSTREAM PORT CONFDIR

Loads what lockgate's `Gateway` loads from mitmproxy (core, proxyserver, next_layer, tlsconfig),
reverse mode, `connection_strategy=lazy`, plus bench/oneline_addon.py instead of the pipeline.
lockgate minus this path is what the pipeline itself costs; mitmdump minus this path is what
mitmproxy's default addons cost (the room DESIGN.md gives the pipeline).
"""

import asyncio
import signal
import sys
from pathlib import Path

from mitmproxy import options
from mitmproxy.addons import core, next_layer, proxyserver, tlsconfig
from mitmproxy.master import Master

sys.path.insert(0, str(Path(__file__).resolve().parent))
import oneline_addon


class OneLine:
    responseheaders = staticmethod(oneline_addon.responseheaders)


def build(target: str, port: int, confdir: str) -> Master:
    """The lean master on 127.0.0.1:port in front of `target`, in the running loop."""
    opts = options.Options()
    master = Master(opts, event_loop=asyncio.get_running_loop())
    master.addons.add(
        core.Core(),
        proxyserver.Proxyserver(),
        next_layer.NextLayer(),
        tlsconfig.TlsConfig(),
        OneLine(),
    )
    opts.update(
        mode=[f"reverse:{target}@127.0.0.1:{port}"], connection_strategy="lazy", confdir=confdir
    )
    return master


async def main(target: str, port: int, confdir: str) -> None:
    master = build(target, port, confdir)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, master.shutdown)
    await master.run()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2]), sys.argv[3]))
