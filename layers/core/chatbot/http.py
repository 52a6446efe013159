"""The HTTP layer every FastAPI app shares: error mapping, security headers, request ids, body limit.

`install(app, service=...)` adds
- one exception table: `ChatbotError` → its envelope `{"error": {"message","code","status"}}` and status
  (`Retry-After` for RateLimited); request validation → 422 `validation_error` with the pydantic errors in
  `error.details` (location, message and type only — never the input, which may hold a secret); Starlette's
  404/405 → `not_found`/`method_not_allowed`; anything else → 500 "Internal server error", logged with its
  stack trace, never returned;
- a pure ASGI middleware (streaming responses pass through untouched) that sets the request id (API
  Gateway's `requestContext.requestId` when the app runs behind Mangum or the local gateway, else a new one)
  and the correlation id (a well-formed `X-Correlation-Id` header, else the request id), puts both on every
  log line, echoes `x-request-id`, adds the security headers to every response, and refuses bodies over
  `settings.max_request_bytes` with 413.

Route helpers: `source_ip(request)` (API Gateway's `requestContext.http.sourceIp`, else the ASGI client —
never X-Forwarded-For, which any client can forge), `request_id(request)`, and the dependency aliases
(`SettingsDep`, `RequestIdDep`, `SourceIpDep`, `PrincipalDep`) declared once here.
"""

from __future__ import annotations

import json
import os
import re
import uuid
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import JSONResponse, Response

from chatbot.config import Settings, get_settings
from chatbot.errors import (
    ChatbotError,
    MethodNotAllowed,
    NotFound,
    PayloadTooLarge,
    RateLimited,
    ValidationFailed,
)
from chatbot.models.auth import Principal
from chatbot.observability import get_logger

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

SECURITY_HEADERS: tuple[tuple[bytes, bytes], ...] = (
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"strict-transport-security", b"max-age=63072000; includeSubDomains"),
    # The APIs answer JSON and event streams: nothing in a response may load, run or be framed.
    (b"content-security-policy", b"default-src 'none'; frame-ancestors 'none'; base-uri 'none'"),
    (b"cache-control", b"no-store"),
)
_CORRELATION_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
# Starlette's own errors (routing, body reading) in our words.
_HTTP_ERRORS: dict[int, type[ChatbotError]] = {
    404: NotFound,
    405: MethodNotAllowed,
    413: PayloadTooLarge,
}
_STATUS_CODES = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 429: "rate_limited"}


def install(app: FastAPI, *, service: str, max_body_bytes: int | None = None) -> None:
    """Add the shared error table and request middleware to `app`; call it after adding other middleware
    so this one is outermost and also sees their responses."""
    app.add_exception_handler(ChatbotError, _chatbot_error)  # type: ignore[arg-type]
    app.add_exception_handler(RequestValidationError, _validation_error)  # type: ignore[arg-type]
    app.add_exception_handler(StarletteHTTPException, _http_error)  # type: ignore[arg-type]
    app.add_middleware(RequestContextMiddleware, service=service, max_body_bytes=max_body_bytes)


# -- responses ---------------------------------------------------------------------------------------------
def error_response(error: ChatbotError) -> JSONResponse:
    headers = {"Retry-After": str(error.retry_after)} if isinstance(error, RateLimited) else None
    return JSONResponse(error.envelope(), status_code=error.status, headers=headers)


def validation_details(errors: Any) -> list[dict[str, Any]]:
    """Where and why validation failed, without echoing the offending input."""
    return [
        {"loc": [str(part) for part in e.get("loc", ())], "msg": str(e.get("msg", "")), "type": e.get("type")}
        for e in errors
    ]


async def _chatbot_error(request: Request, exc: ChatbotError) -> Response:
    if exc.status >= 500:
        get_logger("chatbot").exception(
            "request failed", extra={"event": "request_failed", "code": exc.code, "path": request.url.path}
        )
    return error_response(exc)


async def _validation_error(request: Request, exc: RequestValidationError) -> Response:
    return error_response(ValidationFailed(details=validation_details(exc.errors())))


async def _http_error(request: Request, exc: StarletteHTTPException) -> Response:
    status = exc.status_code
    known = _HTTP_ERRORS.get(status)
    if known is not None:
        body = known().envelope()
    else:
        message = exc.detail if isinstance(exc.detail, str) and status < 500 else "Internal server error"
        body = {
            "error": {"message": message, "code": _STATUS_CODES.get(status, "http_error"), "status": status}
        }
    return JSONResponse(body, status_code=status, headers=getattr(exc, "headers", None))


# -- middleware --------------------------------------------------------------------------------------------
class RequestContextMiddleware:
    def __init__(
        self, app: Callable[..., Awaitable[None]], *, service: str, max_body_bytes: int | None
    ) -> None:
        self.app = app
        self.service = service
        self._max_body_bytes = max_body_bytes

    @property
    def max_body_bytes(self) -> int:
        # Read lazily: settings come from the environment, which tests set after import.
        if self._max_body_bytes is None:
            self._max_body_bytes = get_settings().max_request_bytes
        return self._max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        context = _aws_event(scope).get("requestContext") or {}
        request_id = str(context.get("requestId") or uuid.uuid4().hex)
        correlation_id = headers.get("x-correlation-id", "")
        if not _CORRELATION_ID.match(correlation_id):
            correlation_id = request_id
        state = scope.setdefault("state", {})
        state["request_id"], state["correlation_id"] = request_id, correlation_id
        logger = get_logger(self.service)
        logger.thread_safe_append_keys(request_id=request_id, correlation_id=correlation_id)

        started = False
        extra_headers = [*SECURITY_HEADERS, (b"x-request-id", request_id.encode())]

        async def send_with_headers(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                present = {name.lower() for name, _ in message.get("headers", [])}
                message["headers"] = [
                    *message.get("headers", []),
                    *((n, v) for n, v in extra_headers if n not in present),
                ]
            await send(message)

        declared = headers.get("content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.max_body_bytes):
            await _send_error(send_with_headers, PayloadTooLarge())
            return
        try:
            await self.app(scope, _limit_body(receive, self.max_body_bytes), send_with_headers)
        except Exception:  # the one boundary where an unexpected error becomes a generic 500
            logger.exception("unhandled error", extra={"event": "unhandled_error", "path": scope.get("path")})
            if not started:
                await _send_error(send_with_headers, ChatbotError())  # the generic 500


def _limit_body(receive: Receive, limit: int) -> Receive:
    """Count body bytes as they arrive (chunked uploads declare no length) and stop at `limit`."""
    received = 0

    async def limited() -> Message:
        nonlocal received
        message = await receive()
        if message["type"] == "http.request":
            received += len(message.get("body", b""))
            if received > limit:
                # An HTTPException, because FastAPI turns other errors raised while reading a body into 400s.
                raise StarletteHTTPException(413, PayloadTooLarge.default_message)
        return message

    return limited


async def _send_error(send: Send, error: ChatbotError) -> None:
    body = json.dumps(error.envelope()).encode()
    await send(
        {
            "type": "http.response.start",
            "status": error.status,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})


def _aws_event(scope: Scope) -> dict[str, Any]:
    event = scope.get("aws.event")
    return event if isinstance(event, dict) else {}


# -- request helpers and dependencies ----------------------------------------------------------------------
def source_ip(request: Request) -> str:
    """The caller's address as API Gateway saw it; X-Forwarded-For is never trusted."""
    context = _aws_event(request.scope).get("requestContext") or _web_adapter_context(request)
    address = (context.get("http") or {}).get("sourceIp") or (context.get("identity") or {}).get("sourceIp")
    if address:
        return str(address)
    return request.client.host if request.client else "unknown"


def _web_adapter_context(request: Request) -> dict[str, Any]:
    """Behind the Lambda Web Adapter (the streaming deployment) the request context arrives as a header that
    the adapter sets from the invocation event itself, replacing any header of that name the client sent;
    elsewhere the header is the client's own and ignored."""
    if not os.environ.get("AWS_LWA_INVOKE_MODE"):
        return {}
    try:
        context = json.loads(request.headers.get("x-amzn-request-context") or "{}")
    except ValueError:
        return {}
    return context if isinstance(context, dict) else {}


def request_id(request: Request) -> str:
    return str(request.scope.get("state", {}).get("request_id") or "")


def admin_principal(request: Request, settings: Annotated[Settings, Depends(get_settings)]) -> Principal:
    """The admin gate (IP limit → authenticate → credential limit) for routes outside the action table."""
    from chatbot.services.auth import AccessGuard, RequestInfo

    cached = request.scope.get("state", {}).get("principal")
    if cached is not None:
        return cached  # type: ignore[no-any-return]
    principal = AccessGuard.for_admin(settings).admit(
        RequestInfo(
            authorization=request.headers.get("authorization"),
            source_ip=source_ip(request),
            request_id=request_id(request),
            path=request.url.path,
        )
    )
    request.scope.setdefault("state", {})["principal"] = principal
    return principal


SettingsDep = Annotated[Settings, Depends(get_settings)]
RequestIdDep = Annotated[str, Depends(request_id)]
SourceIpDep = Annotated[str, Depends(source_ip)]
PrincipalDep = Annotated[Principal, Depends(admin_principal)]
