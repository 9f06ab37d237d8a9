"""A metadata server whose documents each upstream test chooses (test_discovery, test_oauth)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from lockgate.cli.demo.server import BackgroundServer


@dataclass
class Docs:
    """Path -> (status, JSON body or None, extra headers); every hit is recorded."""

    base: str = ""
    routes: dict[str, tuple[int, Any, dict[str, str]]] = field(default_factory=dict)
    hits: list[str] = field(default_factory=list)

    def json(self, path: str, body: Any) -> None:
        self.routes[path] = (200, body, {})

    def redirect(self, path: str, location: str) -> None:
        self.routes[path] = (302, None, {"location": location})

    def as_doc(self, issuer: str | None = None, **over: Any) -> dict[str, Any]:
        issuer = issuer or self.base
        return {
            "issuer": issuer,
            "authorization_endpoint": f"{self.base}/authorize",
            "token_endpoint": f"{self.base}/token",
            "registration_endpoint": f"{self.base}/register",
            "code_challenge_methods_supported": ["S256"],
            "response_types_supported": ["code"],
            **over,
        }


@contextmanager
def docs_server() -> Iterator[Docs]:
    docs = Docs()

    async def serve(request: Request) -> Response:
        path = request.url.path
        docs.hits.append(path)
        if path not in docs.routes:
            return JSONResponse({"error": "not found"}, status_code=404)
        status, body, headers = docs.routes[path]
        if body is None:
            return Response(b"", status_code=status, headers=headers)
        return JSONResponse(body, status_code=status, headers=headers)

    app = Starlette(routes=[Route("/{path:path}", serve, methods=["GET", "POST"])])
    with BackgroundServer(app) as server:
        docs.base = server.url
        yield docs
