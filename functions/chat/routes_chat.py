"""The widget's chat endpoint: `/chat` and `/chat-unified.php` (GET EventSource, POST JSON or form, OPTIONS).

Parse → admit (`ChatService.prepare`: rate limit, agent, history, quota) → stream frames or return JSON.
Anything refused before the reply starts is a plain HTTP error with the JSON error envelope (400, 413,
429 with Retry-After); once streaming, errors are `message` frames of type `error`, and `close` ends it.
"""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import parse_qsl

from fastapi import APIRouter, Request
from starlette.background import BackgroundTask
from starlette.responses import JSONResponse, Response

from chatbot import safe_json
from chatbot.config import Settings, get_settings
from chatbot.errors import BadRequest, ChatbotError
from chatbot.http import error_response, source_ip

try:
    from .streaming import EventStreamResponse
except ImportError:  # on Lambda the function folder itself is the import root
    from streaming import EventStreamResponse  # type: ignore[no-redef]

router = APIRouter()
PATHS = ("/chat", "/chat-unified.php")
_ALLOW_METHODS = "GET, POST, OPTIONS"
_ALLOW_HEADERS = "Content-Type"


def cors_headers(request: Request, settings: Settings) -> dict[str, str]:
    """The original answered `*` everywhere; `CHAT_CORS_ORIGINS` (comma-separated) narrows it."""
    allowed = [o.strip() for o in settings.chat_cors_origins.split(",") if o.strip()]
    headers = {"Access-Control-Allow-Methods": _ALLOW_METHODS, "Access-Control-Allow-Headers": _ALLOW_HEADERS}
    if not allowed or "*" in allowed:
        headers["Access-Control-Allow-Origin"] = "*"
        return headers
    headers["Vary"] = "Origin"
    origin = request.headers.get("origin")
    if origin and origin in allowed:
        headers["Access-Control-Allow-Origin"] = origin
    return headers


async def chat_options(request: Request) -> Response:
    return Response(status_code=200, headers=cors_headers(request, get_settings()))


async def chat_get(request: Request) -> Response:
    return await _chat(request, dict(request.query_params), "GET", time.perf_counter())


async def chat_post(request: Request) -> Response:
    started = time.perf_counter()
    try:
        raw = await read_body(request)
    except ChatbotError as exc:
        return _error(request, exc)
    return await _chat(request, raw, "POST", started)


for _path in PATHS:
    router.add_api_route(_path, chat_options, methods=["OPTIONS"], include_in_schema=False)
    router.add_api_route(_path, chat_get, methods=["GET"], include_in_schema=False)
    router.add_api_route(_path, chat_post, methods=["POST"], include_in_schema=False)


async def _chat(request: Request, raw: dict[str, Any], method: str, started: float) -> Response:
    from chatbot.services import sse
    from chatbot.services.chat import Caller, get_chat_service, parse_chat_request

    settings = get_settings()
    service = get_chat_service()
    try:
        chat_request = parse_chat_request(raw, method=method, settings=settings)
        turn = await service.prepare(chat_request, Caller(source_ip=source_ip(request), started=started))
    except ChatbotError as exc:
        return _error(request, exc)
    cors = cors_headers(request, settings)
    # Usage and the log line are written after the response has gone out.
    after = BackgroundTask(service.finish, turn)
    if chat_request.stream:
        frames = service.widget_frames(turn, finish=False)
        return EventStreamResponse(
            frames, media_type=sse.CONTENT_TYPE, headers={**sse.HEADERS, **cors}, background=after
        )
    try:
        reply = await service.widget_reply(turn, finish=False)
    except ChatbotError as exc:
        return _error(request, exc)
    return JSONResponse(reply.model_dump(exclude_none=True), headers=cors, background=after)


async def read_body(request: Request) -> dict[str, Any]:
    """A JSON object or a URL-encoded form (the original read JSON only and ignored forms)."""
    body = await request.body()
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if not body.strip():
        return {}
    if content_type == "application/x-www-form-urlencoded" or (
        content_type not in ("application/json", "") and not body.lstrip().startswith(b"{")
    ):
        if content_type.startswith("multipart/"):
            raise BadRequest(
                "Unsupported content type: send JSON or a URL-encoded form", code="unsupported_media"
            )
        return _form(body)
    try:
        data = safe_json.loads(body)
    except ValueError:  # also invalid UTF-8, deep nesting, unpaired surrogates
        raise BadRequest("Invalid JSON in request body", code="invalid_json") from None
    if not isinstance(data, dict):
        raise BadRequest("Request body must be a JSON object", code="invalid_json")
    return data


def _form(body: bytes) -> dict[str, Any]:
    try:
        pairs = parse_qsl(body.decode("utf-8"), keep_blank_values=True, strict_parsing=False)
    except UnicodeDecodeError:
        raise BadRequest("Invalid form body", code="invalid_form") from None
    data: dict[str, Any] = dict(pairs)
    # Structured fields arrive JSON-encoded in forms, as they do in GET query strings.
    if isinstance(data.get("file_data"), str) and data["file_data"].strip()[:1] in ("[", "{"):
        try:
            data["file_data"] = safe_json.loads(data["file_data"])
        except ValueError:
            raise BadRequest("Invalid file data format", code="invalid_file_data") from None
    return data


def _error(request: Request, exc: ChatbotError) -> Response:
    if exc.status >= 500:
        from chatbot.observability import get_logger

        get_logger("chat").warning("chat request failed", extra={"event": "request_failed", "code": exc.code})
    response = error_response(exc)
    response.headers.update(cors_headers(request, get_settings()))
    return response
