"""The bundled demo upstream: a small "notes" MCP server built with the official SDK.

Why it exists:

- `lockgate demo` needs an upstream to put the gateway in front of without any account or
  network access; this is it, served on loopback.
- Tests and benchmarks need a *real* MCP server (DESIGN.md, "Real parts, in tests too"), in
  every transport shape the gateway must handle: JSON or SSE responses, stateful or stateless
  sessions, and both protocol eras (2025-xx handshake, 2026-07-28 stateless).  The tools are
  chosen to exercise every message kind the gateway forwards: plain calls, a destructive tool
  (for deny rules), progress notifications (`slow_count`, for SSE streaming), sampling
  (`summarize_note`) and elicitation (`confirm_delete`) as server-to-client requests, plus a
  prompt, a resource and a resource template (for list filtering).
- `BackgroundServer` runs any ASGI app on 127.0.0.1 port 0 in a daemon thread, so a test or a
  benchmark gets a URL without picking ports or spawning processes.
- `build_many_tools_app` serves thousands of tools for the `tools/list` benchmark.

No `from __future__ import annotations` here: the SDK evaluates tool annotations against module
globals, and the `Resolve(...)` markers below name resolvers local to `build_server`.

Sampling and elicitation go through the SDK's `Resolve(...)` resolvers: on 2025-era connections
the SDK sends `sampling/createMessage` / `elicitation/create` mid-call over the POST's SSE
stream; on 2026-07-28 connections it answers with an `InputRequiredResult` and the client retries
with the answers.  When neither is possible (no declared capability, or a 2025-era JSON-response
or stateless connection, which has no way back to the client) the tool fails with a tool error
that says why.
"""

import argparse
import asyncio
import atexit
import contextlib
import hmac
import json
import os
import socket
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Annotated, Any, Literal, Self

import uvicorn
from mcp.server.mcpserver import Context, Elicit, MCPServer, Resolve, Sample
from mcp.server.mcpserver.exceptions import ResourceError, ToolError
from mcp.server.mcpserver.tools import Tool
from mcp.server.transport_security import TransportSecuritySettings
from mcp_types import (
    CreateMessageResult,
    SamplingMessage,
    TextContent,
    ToolAnnotations,
)
from mcp_types.version import is_version_at_least
from pydantic import BaseModel, Field
from starlette.applications import Starlette
from starlette.types import ASGIApp

MCP_PATH = "/mcp"

# The SDK enables DNS-rebinding protection by itself when bound to loopback, allowing only
# `127.0.0.1:*`, `localhost:*` and `[::1]:*` (421 for another Host, 403 for another Origin).
# A gateway on another loopback port forwards `Host: 127.0.0.1:<gateway port>`, which those
# wildcards accept; we state the policy explicitly (plus the port-less forms) so it does not
# depend on the bind address and stays visible here.
LOOPBACK_SECURITY = TransportSecuritySettings(
    enable_dns_rebinding_protection=True,
    allowed_hosts=["127.0.0.1", "127.0.0.1:*", "localhost", "localhost:*", "[::1]", "[::1]:*"],
    allowed_origins=[
        "http://127.0.0.1",
        "http://127.0.0.1:*",
        "http://localhost",
        "http://localhost:*",
        "http://[::1]",
        "http://[::1]:*",
    ],
)

_INPUT_REQUIRED_VERSION = "2026-07-28"

SEED_NOTES: tuple[tuple[str, str], ...] = (
    ("Welcome", "lockgate sits between MCP clients and upstream MCP servers."),
    ("Groceries", "Milk, eggs, coffee beans, and a loaf of sourdough."),
    ("Release plan", "Cut the 0.1 branch on Friday; ship the demo profile with it."),
)


class Note(BaseModel):
    id: str
    title: str
    body: str


class ConfirmDelete(BaseModel):
    """The form `confirm_delete` asks the user to fill in."""

    confirm: bool = Field(description="Delete the note for good?")


@dataclass
class NoteStore:
    """In-memory notes; one store per server instance, so tests never share state."""

    notes: dict[str, Note]
    next_id: int

    @classmethod
    def seeded(cls) -> Self:
        notes = {
            str(i): Note(id=str(i), title=title, body=body)
            for i, (title, body) in enumerate(SEED_NOTES, start=1)
        }
        return cls(notes=notes, next_id=len(notes) + 1)

    def get(self, note_id: str) -> Note:
        try:
            return self.notes[note_id]
        except KeyError:
            raise ToolError(f"no note with id {note_id!r}") from None

    def add(self, title: str, body: str) -> Note:
        note = Note(id=str(self.next_id), title=title, body=body)
        self.notes[note.id] = note
        self.next_id += 1
        return note

    def delete(self, note_id: str) -> Note:
        note = self.get(note_id)
        del self.notes[note_id]
        return note


async def count_with_progress(
    ctx: Context[Any, Any], n: int, delay_ms: int, say: Callable[[int, int], str]
) -> str:
    """Count to n, one progress notification per step, delay_ms apart; `say(i, n)` is each
    notification's message."""
    for i in range(1, n + 1):
        await asyncio.sleep(delay_ms / 1000)
        await ctx.report_progress(i, n, say(i, n))
    return f"counted to {n}"


def _require_client_request(
    ctx: Context[Any, Any], capability: Literal["sampling", "elicitation"]
) -> None:
    """Raise a `ToolError` naming the reason when `capability` cannot be used on this call.

    The SDK prefixes the message with "Error executing tool <name>: ".
    """
    version = ctx.protocol_version
    modern = version is not None and is_version_at_least(version, _INPUT_REQUIRED_VERSION)
    if not modern and not ctx.session.can_send_request:
        raise ToolError(
            f"{capability} is unavailable on this connection (protocol {version}): the server "
            "answers in JSON or without a session, so it has no channel for a server-to-client "
            "request. Connect over SSE with a session, or with protocol 2026-07-28."
        )
    caps = ctx.client_capabilities
    if caps is None or getattr(caps, capability) is None:
        raise ToolError(f"{capability} is unavailable: the client did not declare that capability.")


def build_server(name: str = "demo-notes") -> MCPServer:
    """The demo notes server, with fresh in-memory state seeded with three notes."""
    server: MCPServer = MCPServer(
        name,
        version="0.1.0",
        instructions="A tiny notes server bundled with lockgate.",
        log_level="WARNING",
    )
    store = NoteStore.seeded()

    @server.tool()
    def list_notes() -> list[Note]:
        """List every note (id, title, body)."""
        return list(store.notes.values())

    @server.tool()
    def get_note(id: str) -> Note:
        """Get one note by id."""
        return store.get(id)

    @server.tool()
    def search_notes(query: str) -> list[Note]:
        """Find notes whose title or body contains `query` (case-insensitive)."""
        q = query.casefold()
        return [
            n for n in store.notes.values() if q in n.title.casefold() or q in n.body.casefold()
        ]

    @server.tool()
    def add_note(title: str, body: str) -> Note:
        """Add a note and return it with its new id."""
        return store.add(title, body)

    @server.tool(annotations=ToolAnnotations(destructive_hint=True, read_only_hint=False))
    def delete_note(id: str) -> str:
        """Delete a note by id, without asking."""
        note = store.delete(id)
        return f"deleted note {note.id} ({note.title})"

    @server.tool()
    async def slow_count(
        ctx: Context[Any, Any],
        n: Annotated[int, Field(ge=0, le=10_000)],
        delay_ms: Annotated[int, Field(ge=0, le=10_000)] = 50,
    ) -> str:
        """Count to n, sending one progress notification per step, delay_ms apart."""
        return await count_with_progress(ctx, n, delay_ms, lambda i, n: f"counted {i} of {n}")

    async def ask_for_summary(id: str, ctx: Context[Any, Any]) -> Sample:
        note = store.get(id)
        _require_client_request(ctx, "sampling")
        prompt = f"Summarize this note in one sentence.\n\n# {note.title}\n\n{note.body}"
        return Sample(
            [SamplingMessage(role="user", content=TextContent(type="text", text=prompt))],
            max_tokens=200,
        )

    @server.tool()
    async def summarize_note(
        id: str, sampled: Annotated[CreateMessageResult, Resolve(ask_for_summary)]
    ) -> str:
        """Summarize a note with the client's model (uses sampling)."""
        content = sampled.content
        if not isinstance(content, TextContent):
            raise ToolError(f"the client's model answered with {content.type} content, not text")
        return content.text

    async def ask_to_confirm(id: str, ctx: Context[Any, Any]) -> Elicit[ConfirmDelete]:
        note = store.get(id)
        _require_client_request(ctx, "elicitation")
        return Elicit(f"Delete note {note.id} ({note.title!r})?", ConfirmDelete)

    @server.tool(annotations=ToolAnnotations(destructive_hint=True, read_only_hint=False))
    async def confirm_delete(
        id: str, answer: Annotated[ConfirmDelete, Resolve(ask_to_confirm)]
    ) -> str:
        """Delete a note after the user confirms (uses elicitation)."""
        if not answer.confirm:
            return f"kept note {id}"
        note = store.delete(id)
        return f"deleted note {note.id} ({note.title})"

    @server.prompt()
    def note_prompt(topic: str) -> str:
        """Ask the model to draft a note about a topic."""
        return f"Write a short note about {topic}: a title line, then two or three sentences."

    @server.resource("notes://index", mime_type="application/json")
    def notes_index() -> str:
        """Ids and titles of every note."""
        return json.dumps([{"id": n.id, "title": n.title} for n in store.notes.values()])

    @server.resource("notes://note/{id}", mime_type="text/markdown")
    def note_resource(id: str) -> str:
        """One note as markdown."""
        note = store.notes.get(id)
        if note is None:
            raise ResourceError(f"no note with id {id!r}")
        return f"# {note.title}\n\n{note.body}\n"

    return server


def build_app(
    *,
    json_response: bool = False,
    stateless: bool = False,
    server: MCPServer | None = None,
) -> Starlette:
    """The streamable HTTP ASGI app (path /mcp) of a fresh demo server (or of `server`).

    Each app runs its own session manager, which can run once: build one app per server start.
    """
    srv = server if server is not None else build_server()
    return srv.streamable_http_app(
        streamable_http_path=MCP_PATH,
        json_response=json_response,
        stateless_http=stateless,
        transport_security=LOOPBACK_SECURITY,
    )


def build_many_tools_app(
    count: int = 2000, *, json_response: bool = False, stateless: bool = False
) -> Starlette:
    """An app serving `count` small tools (tool_0000, ...) for `tools/list` benchmarks.

    The tools share one analysed function (copied under new names): building 2,000 tools one
    by one with `add_tool` takes seconds.
    """

    def echo(text: str) -> str:
        return text

    template = Tool.from_function(echo)
    width = max(4, len(str(count - 1)))
    tools = [
        template.model_copy(
            update={
                "name": f"tool_{i:0{width}d}",
                "description": f"Echo the text back (tool number {i}).",
            }
        )
        for i in range(count)
    ]
    server: MCPServer = MCPServer("many-tools", version="0.1.0", log_level="WARNING", tools=tools)
    return build_app(json_response=json_response, stateless=stateless, server=server)


class BackgroundServer:
    """Serve an ASGI app with uvicorn on 127.0.0.1 in a daemon thread.

    `start()` returns the base URL (`http://127.0.0.1:PORT`) once the socket is bound;
    `stop()` shuts uvicorn down and closes the socket. Also a context manager. A server still
    running when the interpreter exits is stopped by an `atexit` hook.
    """

    def __init__(
        self, app: ASGIApp, *, host: str = "127.0.0.1", port: int = 0, log_level: str = "warning"
    ) -> None:
        self._config = uvicorn.Config(
            app,
            host=host,
            port=port,
            log_level=log_level,
            access_log=False,
            lifespan="on",
            timeout_graceful_shutdown=2,
        )
        self._server = uvicorn.Server(self._config)
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None
        self.host = host
        self.port: int | None = None

    @property
    def url(self) -> str:
        if self.port is None:
            raise RuntimeError("the server is not running")
        return f"http://{self.host}:{self.port}"

    def _run(self) -> None:
        try:
            asyncio.run(self._server.serve())
        except BaseException as e:  # SystemExit from a failed startup, or a crash
            self._error = e

    def start(self, timeout: float = 10.0) -> str:
        if self._thread is not None:
            raise RuntimeError("a BackgroundServer starts only once")
        self._thread = threading.Thread(target=self._run, name="lockgate-upstream", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive():
                where = f"{self.host}:{self._config.port}"
                raise RuntimeError(f"the server on {where} failed to start: {self._error!r}")
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"the server did not start within {timeout} s")
            time.sleep(0.005)
        sockets: list[socket.socket] = [
            s for srv in self._server.servers for s in (srv.sockets or ())
        ]
        self.port = int(sockets[0].getsockname()[1])
        atexit.register(self.stop)
        return self.url

    def stop(self, timeout: float = 10.0) -> None:
        thread = self._thread
        if thread is None:
            return
        self._server.should_exit = True
        thread.join(timeout)
        if thread.is_alive():
            self._server.force_exit = True
            thread.join(timeout)
        atexit.unregister(self.stop)

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def require_bearer(app: ASGIApp, token: str) -> ASGIApp:
    """Answer 401 unless the request carries `Authorization: Bearer <token>`: an upstream
    with a static credential, for trying `auth = "header"` and `lockgate secret set`."""
    expected = f"Bearer {token}".encode()

    async def guarded(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            presented = dict(scope["headers"]).get(b"authorization", b"")
            if not hmac.compare_digest(presented, expected):
                await send(
                    {
                        "type": "http.response.start",
                        "status": 401,
                        "headers": [
                            (b"content-type", b"application/json"),
                            (b"www-authenticate", b"Bearer"),
                        ],
                    }
                )
                await send({"type": "http.response.body", "body": b'{"error": "unauthorized"}'})
                return
        await app(scope, receive, send)

    return guarded


async def serve_foreground(
    app: ASGIApp, port: int, *, label: str = "demo upstream", **options: Any
) -> None:
    """Serve `app` on 127.0.0.1 until stopped, saying `<label> listening on <url>` once bound;
    `options` go to uvicorn.Config."""
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=port,
        log_level="warning",
        access_log=False,
        lifespan="on",
        **options,
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    while not server.started and not task.done():
        await asyncio.sleep(0.005)
    if server.started:
        bound = server.servers[0].sockets[0].getsockname()[1]
        print(f"{label} listening on http://127.0.0.1:{bound}{MCP_PATH}", flush=True)
    await task


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m lockgate.cli.demo.server",
        description="Serve the demo notes MCP server on 127.0.0.1 (streamable HTTP at /mcp).",
        epilog="example: python -m lockgate.cli.demo.server --port 9000 --json",
    )
    parser.add_argument("--port", type=int, default=0, help="port to bind (0: any free port)")
    parser.add_argument("--json", action="store_true", help="answer in JSON instead of SSE")
    parser.add_argument("--stateless", action="store_true", help="no sessions (stateless HTTP)")
    parser.add_argument(
        "--bearer-env",
        metavar="VAR",
        help="require `Authorization: Bearer <$VAR>` (read from the environment, not argv)",
    )
    args = parser.parse_args(argv)
    app: ASGIApp = build_app(json_response=args.json, stateless=args.stateless)
    if args.bearer_env:
        token = os.environ.get(args.bearer_env, "")
        if not token:
            parser.error(f"--bearer-env {args.bearer_env}: that variable is empty or not set")
        app = require_bearer(app, token)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve_foreground(app, args.port))
    return 0


if __name__ == "__main__":
    sys.exit(main())
