"""The admin FastAPI app: the action table's routes, the public liveness route, the origin guard, OpenAPI."""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any
from urllib.parse import urlsplit

from fastapi import FastAPI
from starlette.datastructures import Headers

from chatbot import http
from chatbot.admin import actions as action_modules
from chatbot.admin.framework import actions
from chatbot.config import get_settings
from chatbot.errors import Forbidden

TITLE = "Chatbot admin API"
VERSION = "1.0.0"
_CORS_METHODS = "GET, POST, PUT, PATCH, DELETE, OPTIONS"
_CORS_HEADERS = "Authorization, Content-Type, X-Correlation-Id"
_PUBLIC_HEALTH = {
    "/health": {
        "get": {
            "operationId": "liveness",
            "summary": "Liveness (public, no details)",
            "security": [],
            "tags": ["system"],
            "responses": {
                "200": {
                    "description": "Alive",
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "properties": {"status": {"type": "string", "const": "ok"}},
                            }
                        }
                    },
                }
            },
        }
    }
}


def load_actions() -> None:
    """Import every module of `chatbot.admin.actions`, so each declares its actions in the table."""
    for module in sorted(m.name for m in pkgutil.iter_modules(action_modules.__path__)):
        importlib.import_module(f"{action_modules.__name__}.{module}")


def create_app() -> FastAPI:
    load_actions()
    app = FastAPI(
        title=TITLE, version=VERSION, openapi_url="/admin/openapi.json", docs_url=None, redoc_url=None
    )

    @app.get("/health", include_in_schema=False)
    def liveness() -> dict[str, str]:
        return {"status": "ok"}

    actions.mount(app)

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = actions.openapi(title=TITLE, version=VERSION, extra_paths=_PUBLIC_HEALTH)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    app.add_middleware(OriginGuard)
    http.install(app, service="admin")  # last, so its middleware is outermost
    return app


Scope = MutableMapping[str, Any]
ASGIApp = Callable[[Scope, Any, Any], Awaitable[None]]


class OriginGuard:
    """Browsers may call the admin API from its own origin or from `ADMIN_CORS_ORIGINS` (comma list) only.

    API Gateway's CORS configuration is API-wide (the widget is embedded anywhere), so the admin origins are
    enforced here: a request whose `Origin` is neither same-origin nor listed is refused (403
    `origin_not_allowed`); listed origins get CORS headers (and preflights an answer) where no gateway gives
    them. Requests without `Origin` (scripts, curl) are not browser requests and pass.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._allowed: frozenset[str] | None = None

    @property
    def allowed(self) -> frozenset[str]:
        if self._allowed is None:  # settings are read on first use: tests set the environment after import
            raw = get_settings().admin_cors_origins
            self._allowed = frozenset(o.strip().rstrip("/") for o in raw.split(",") if o.strip())
        return self._allowed

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        origin = headers.get("origin")
        if origin is None or urlsplit(origin).netloc == headers.get("host"):
            await self.app(scope, receive, send)
            return
        if origin not in self.allowed and "*" not in self.allowed:
            response = http.error_response(Forbidden("Origin not allowed", code="origin_not_allowed"))
            await response(scope, receive, send)
            return
        cors = [
            (b"access-control-allow-origin", origin.encode()),
            (b"vary", b"Origin"),
            (b"access-control-expose-headers", b"Retry-After, X-Request-Id"),
        ]
        if scope["method"] == "OPTIONS" and "access-control-request-method" in headers:
            preflight = [
                *cors,
                (b"access-control-allow-methods", _CORS_METHODS.encode()),
                (b"access-control-allow-headers", _CORS_HEADERS.encode()),
                (b"access-control-max-age", b"600"),
            ]
            await send({"type": "http.response.start", "status": 204, "headers": preflight})
            await send({"type": "http.response.body", "body": b""})
            return

        async def send_with_cors(message: MutableMapping[str, Any]) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *cors]
            await send(message)

        await self.app(scope, receive, send_with_cors)
