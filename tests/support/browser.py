"""A real headless browser for tests: Debian's Chromium driven over the DevTools protocol.

Why it exists: what a browser does with the gateway's pages (sends Origin and
Sec-Fetch-Site on a form post, follows a redirect to a loopback callback, refuses to frame
a page sent with X-Frame-Options/CSP frame-ancestors, enforces CORS on a page's fetch) is
only proven by a browser. `chromium()` starts `/usr/bin/chromium --headless` with a fresh
profile and `--remote-debugging-port=0`, reads the DevTools URL it prints on stderr, and
talks CDP over one websocket (`websockets`' sync client), one flattened session per tab.
No browser is downloaded: the distribution's Chromium is used (.ci/run installs it).

`serve_pages()` serves small HTML pages on 127.0.0.1:0 and records every request (a
loopback "other site", or an OAuth client's redirect URI).
"""

from __future__ import annotations

import itertools
import json
import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from websockets.sync.client import ClientConnection, connect

from tests.support.httpd import http_server
from tests.support.process import terminate_group, wait_until, watch_lines

FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
    "--remote-debugging-port=0",
]


def chromium_path() -> str | None:
    return shutil.which("chromium")


class CdpError(RuntimeError):
    pass


class Browser:
    """One CDP connection to the browser; tabs are flattened sessions on it."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.ids = itertools.count(1)
        self.events: list[dict[str, Any]] = []

    def send(
        self,
        method: str,
        params: dict[str, Any] | None = None,
        session: str | None = None,
        timeout: float = 30.0,
    ) -> dict[str, Any]:
        msg_id = next(self.ids)
        msg: dict[str, Any] = {"id": msg_id, "method": method, "params": params or {}}
        if session is not None:
            msg["sessionId"] = session
        self.ws.send(json.dumps(msg))
        deadline = time.monotonic() + timeout
        while True:
            reply = self._recv(deadline)
            if reply is None:
                raise CdpError(f"{method}: no answer within {timeout}s")
            if reply.get("id") == msg_id:
                if "error" in reply:
                    raise CdpError(f"{method}: {reply['error']}")
                result: dict[str, Any] = reply.get("result", {})
                return result

    def _recv(self, deadline: float) -> dict[str, Any] | None:
        left = deadline - time.monotonic()
        if left <= 0:
            return None
        try:
            raw = self.ws.recv(timeout=left)
        except TimeoutError:
            return None
        msg: dict[str, Any] = json.loads(raw)
        if "method" in msg:
            self.events.append(msg)
        return msg

    def wait_event(
        self, predicate: Callable[[dict[str, Any]], bool], timeout: float = 15.0
    ) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        seen = 0
        while True:
            for ev in self.events[seen:]:
                if predicate(ev):
                    return ev
            seen = len(self.events)
            if self._recv(deadline) is None and time.monotonic() >= deadline:
                raise CdpError("timed out waiting for a DevTools event")

    def new_tab(self) -> Tab:
        target = self.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = self.send("Target.attachToTarget", {"targetId": target, "flatten": True})[
            "sessionId"
        ]
        tab = Tab(self, session)
        for domain in ("Page", "Runtime", "Network"):
            tab.send(f"{domain}.enable")
        return tab


@dataclass
class Tab:
    browser: Browser
    session: str

    def send(self, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        return self.browser.send(method, params, self.session)

    def event(
        self,
        method: str,
        predicate: Callable[[dict[str, Any]], bool] = lambda p: True,
        timeout: float = 15.0,
    ) -> dict[str, Any]:
        ev = self.browser.wait_event(
            lambda e: (
                e.get("sessionId") == self.session
                and e["method"] == method
                and predicate(e.get("params", {}))
            ),
            timeout,
        )
        params: dict[str, Any] = ev.get("params", {})
        return params

    def navigate(self, url: str) -> None:
        """Load `url` in the main frame and wait for its load event."""
        del self.browser.events[:]
        result = self.send("Page.navigate", {"url": url})
        if result.get("errorText"):
            raise CdpError(f"navigation to {url} failed: {result['errorText']}")
        self.event("Page.loadEventFired")

    def evaluate(self, expression: str, context_id: int | None = None) -> Any:
        params: dict[str, Any] = {"expression": expression, "returnByValue": True}
        if context_id is not None:
            params["contextId"] = context_id
        result = self.send("Runtime.evaluate", params)
        if "exceptionDetails" in result:
            raise CdpError(f"{expression!r} threw: {result['exceptionDetails']}")
        return result["result"].get("value")

    def wait_until(self, expression: str, timeout: float = 15.0) -> Any:
        """Poll `expression` in the page (across navigations) until it is truthy."""

        def value() -> Any:
            try:
                return self.evaluate(expression)
            except CdpError:
                return None  # mid-navigation: no context yet

        try:
            return wait_until(value, repr(expression), timeout=timeout)
        except TimeoutError:
            raise CdpError(f"{expression!r} stayed falsy for {timeout}s") from None

    def click(self, selector: str) -> None:
        """A real mouse click in the middle of the element (trusted input, not JS)."""
        box = self.evaluate(
            f"(() => {{ const r = document.querySelector({json.dumps(selector)})"
            ".getBoundingClientRect(); return [r.x + r.width / 2, r.y + r.height / 2]; })()"
        )
        x, y = box
        for kind in ("mousePressed", "mouseReleased"):
            self.send(
                "Input.dispatchMouseEvent",
                {"type": kind, "x": x, "y": y, "button": "left", "clickCount": 1},
            )

    def response(self, url_part: str, timeout: float = 15.0) -> dict[str, Any]:
        """The first Network.responseReceived for a URL containing `url_part`, waited for."""
        params = self.event(
            "Network.responseReceived", lambda p: url_part in p["response"]["url"], timeout
        )
        response: dict[str, Any] = params["response"]
        return response

    def failures(self, url_part: str) -> list[str]:
        """errorText of every Network.loadingFailed so far for URLs containing `url_part`."""
        mine = [e for e in self.browser.events if e.get("sessionId") == self.session]
        ids = {
            e["params"]["requestId"]
            for e in mine
            if e["method"] == "Network.requestWillBeSent"
            and url_part in e["params"]["request"]["url"]
        }
        return [
            e["params"]["errorText"]
            for e in mine
            if e["method"] == "Network.loadingFailed" and e["params"]["requestId"] in ids
        ]

    def responses(self, url_part: str) -> list[dict[str, Any]]:
        """Network.responseReceived events seen so far for URLs containing `url_part`."""
        return [
            e["params"]["response"]
            for e in self.browser.events
            if e.get("sessionId") == self.session
            and e["method"] == "Network.responseReceived"
            and url_part in e["params"]["response"]["url"]
        ]


@contextmanager
def chromium(tmp_path: Path, timeout: float = 30.0) -> Iterator[Browser]:
    exe = chromium_path()
    assert exe is not None
    profile = tmp_path / "chromium-profile"
    profile.mkdir(parents=True, exist_ok=True)
    proc = subprocess.Popen(
        [exe, *FLAGS, f"--user-data-dir={profile}", "about:blank"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    devtools = watch_lines(proc.stderr, r"DevTools listening on (ws://\S+)")
    try:
        url = devtools.wait(timeout)
        if url is None:
            raise RuntimeError("chromium did not start:\n" + "".join(devtools.lines[-30:]))
        with connect(url, max_size=None, open_timeout=timeout) as ws:
            yield Browser(ws)
    finally:
        # Its own process group (start_new_session): the renderers go with it.
        terminate_group(proc, timeout=10)


@dataclass
class Hit:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes


@dataclass
class PageServer:
    """Pages by path on http://127.0.0.1:<port>; every request is recorded."""

    pages: dict[str, str] = field(default_factory=dict)
    hits: list[Hit] = field(default_factory=list)
    origin: str = ""
    arrived: threading.Event = field(default_factory=threading.Event)

    def url(self, path: str) -> str:
        return self.origin + path

    def wait_for(self, path: str, timeout: float = 15.0) -> Hit:
        deadline = time.monotonic() + timeout
        while True:
            for hit in self.hits:
                if hit.path == path:
                    return hit
            if time.monotonic() > deadline:
                raise TimeoutError(f"nothing requested {path} on {self.origin}")
            self.arrived.wait(0.05)
            self.arrived.clear()


@contextmanager
def serve_pages(
    pages: dict[str, str] | None = None, host: str = "127.0.0.1"
) -> Iterator[PageServer]:
    server_state = PageServer(dict(pages or {}))

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _handle(self) -> None:
            length = int(self.headers.get("content-length") or 0)
            body = self.rfile.read(length) if length else b""
            parts = urlsplit(self.path)
            server_state.hits.append(
                Hit(
                    self.command,
                    parts.path,
                    {k: v[0] for k, v in parse_qs(parts.query).items()},
                    {k.lower(): v for k, v in self.headers.items()},
                    body,
                )
            )
            server_state.arrived.set()
            page = server_state.pages.get(parts.path, "<!doctype html><title>ok</title><p>ok")
            data = page.encode()
            self.send_response(200)
            self.send_header("content-type", "text/html; charset=utf-8")
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = _handle

    with http_server(Handler, host) as server:
        server_state.origin = f"http://{host}:{server.server_address[1]}"
        yield server_state
