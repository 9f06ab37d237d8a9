"""A benchmark upstream in its own process (so client, proxies and upstream never share a GIL).

    python bench/upstream.py notes-json     # demo notes server, JSON responses, stateful
    python bench/upstream.py notes-sse      # demo notes server, SSE responses, stateful,
                                            #   plus `stamped_count` (see below)
    python bench/upstream.py many-json      # 2,000 tools (build_many_tools_app), JSON responses

    python bench/upstream.py notes-json --count   # and GET /count: POSTs received so far

Prints `bench upstream listening on http://127.0.0.1:PORT/mcp` once bound.

`stamped_count` is `slow_count` with one change: each progress message is the upstream's
`time.monotonic_ns()` (digits grouped by `_`) taken just before the notification is sent.
CLOCK_MONOTONIC is one clock for every process on the machine, so the client can compute each
event's one-way latency (upstream send -> client has the whole event) instead of inferring it
from arrival offsets that drift with every `asyncio.sleep`.
"""

import argparse
import asyncio
import contextlib
import sys
import time
from typing import Annotated, Any

from mcp.server.mcpserver import Context
from pydantic import Field

from lockgate.cli.demo.server import (
    build_app,
    build_many_tools_app,
    build_server,
    count_with_progress,
    serve_foreground,
)


def make_app(kind: str):  # type: ignore[no-untyped-def]
    if kind == "notes-json":
        return build_app(json_response=True)
    if kind == "many-json":
        return build_many_tools_app(2000, json_response=True)
    if kind == "notes-sse":
        server = build_server()

        @server.tool()
        async def stamped_count(
            ctx: Context[Any, Any],
            n: Annotated[int, Field(ge=0, le=10_000)],
            delay_ms: Annotated[int, Field(ge=0, le=10_000)] = 20,
        ) -> str:
            """slow_count whose progress messages carry the send time (monotonic ns)."""
            return await count_with_progress(
                # Grouped with underscores (int() reads them): a bare 14-digit run can pass
                # for a Diners card number and be masked by the gateway's redaction.
                ctx,
                n,
                delay_ms,
                lambda i, n: f"{time.monotonic_ns():_}",
            )

        return build_app(json_response=False, server=server)
    raise SystemExit(f"unknown upstream kind {kind!r}")


def counted(app: Any) -> Any:
    """`app`, counting the POSTs it receives; `GET /count` answers how many so far (what
    bench/bad_requests.py reads to tell a request the gateway stopped from one it let by)."""
    posts = 0

    async def wrapped(scope: Any, receive: Any, send: Any) -> None:
        nonlocal posts
        if scope["type"] == "http" and scope["path"] == "/count":
            body = str(posts).encode()
            headers = [(b"content-type", b"application/json")]
            await send({"type": "http.response.start", "status": 200, "headers": headers})
            await send({"type": "http.response.body", "body": body})
            return
        if scope["type"] == "http" and scope["method"] == "POST":
            posts += 1
        await app(scope, receive, send)

    return wrapped


async def serve(kind: str, port: int, count: bool = False) -> None:
    app = make_app(kind)
    # interleaved rounds leave connections idle: keep them open
    await serve_foreground(
        counted(app) if count else app, port, label="bench upstream", timeout_keep_alive=600
    )


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("kind", choices=["notes-json", "notes-sse", "many-json"])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--count", action="store_true", help="count POSTs, GET /count")
    args = parser.parse_args()
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(args.kind, args.port, args.count))
    return 0


if __name__ == "__main__":
    sys.exit(main())
