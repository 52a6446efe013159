"""The OpenAI-compatible API: `POST /v1/chat/completions` and `GET /v1/models`.

Authorised by an API key with the `chat` scope (`Authorization: Bearer chatbot_...`); `model` is an agent's id
or name. Errors use OpenAI's shape so SDKs raise their usual exceptions.
"""

from __future__ import annotations

import time
from functools import cache
from typing import Any

from fastapi import APIRouter, Request
from pydantic import ValidationError
from starlette.background import BackgroundTask
from starlette.responses import JSONResponse, Response

from chatbot import safe_json
from chatbot.config import Settings, get_settings
from chatbot.errors import BadRequest, ChatbotError, NotFound, RateLimited
from chatbot.http import request_id, source_ip
from chatbot.models.auth import Principal

try:
    from .streaming import EventStreamResponse
except ImportError:  # on Lambda the function folder itself is the import root
    from streaming import EventStreamResponse  # type: ignore[no-redef]

router = APIRouter()
_CORS = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Allow-Methods": "GET, POST, OPTIONS",
    "Access-Control-Allow-Headers": "Authorization, Content-Type",
}


@cache
def _guard_for(settings: Settings) -> Any:
    from chatbot.services.auth import AccessGuard

    return AccessGuard.for_chat(settings)


def _guard() -> Any:
    # Keyed by the settings object: one guard per process, a new one when tests change the environment.
    return _guard_for(get_settings())


async def _principal(request: Request) -> Principal:
    from chatbot.services.auth import RequestInfo
    from chatbot.services.concurrency import run_io

    info = RequestInfo(
        authorization=request.headers.get("authorization"),
        source_ip=source_ip(request),
        request_id=request_id(request),
        path=request.url.path,
    )
    return await run_io(_guard().admit, info)


def openai_error(exc: ChatbotError) -> Response:
    from chatbot.services.chat_compat import error_body

    headers = dict(_CORS)
    if isinstance(exc, RateLimited):
        headers["Retry-After"] = str(exc.retry_after)
    return JSONResponse(error_body(exc), status_code=exc.status, headers=headers)


async def options(request: Request) -> Response:
    return Response(status_code=200, headers=_CORS)


router.add_api_route("/v1/chat/completions", options, methods=["OPTIONS"], include_in_schema=False)
router.add_api_route("/v1/models", options, methods=["OPTIONS"], include_in_schema=False)


@router.post("/v1/chat/completions", include_in_schema=False)
async def chat_completions(request: Request) -> Response:
    from chatbot.models.chat import ChatCompletionRequest
    from chatbot.services import chat_compat, sse
    from chatbot.services.chat import Caller, get_chat_service
    from chatbot.services.concurrency import run_io

    started = time.perf_counter()
    service = get_chat_service()
    try:
        principal = await _principal(request)
        try:
            body = ChatCompletionRequest.model_validate(safe_json.loads(await request.body() or b"null"))
        except ValueError as exc:
            raise BadRequest(_validation_message(exc), code="invalid_request_error") from None
        agent = await run_io(service.agents.find, body.model)
        if agent is None:
            raise NotFound(f"The model '{body.model}' does not exist", code="model_not_found")
        caller = Caller(
            source_ip=source_ip(request), key_id=principal.credential_id, endpoint="openai", started=started
        )
        turn = await service.prepare_completion(
            agent, chat_compat.to_messages(body), caller=caller, stream=body.stream, tools=body.tools
        )
        # Usage and the log line are written after the response has gone out.
        after = BackgroundTask(service.finish, turn)
        if body.stream:
            include_usage = bool(body.stream_options and body.stream_options.include_usage)
            frames = chat_compat.completion_chunks(
                service, turn, model=body.model, include_usage=include_usage, finish=False
            )
            headers = {**sse.HEADERS, **_CORS}
            return EventStreamResponse(frames, media_type=sse.CONTENT_TYPE, headers=headers, background=after)
        completion = await chat_compat.completion_object(service, turn, model=body.model, finish=False)
        return JSONResponse(completion, headers=_CORS, background=after)
    except ChatbotError as exc:
        return openai_error(exc)


@router.get("/v1/models", include_in_schema=False)
async def list_models(request: Request) -> Response:
    from chatbot.services import chat_compat
    from chatbot.services.chat import get_chat_service
    from chatbot.services.concurrency import run_io

    try:
        await _principal(request)
        agents = await run_io(get_chat_service().agents.list_agents)
    except ChatbotError as exc:
        return openai_error(exc)
    return JSONResponse(chat_compat.models_list(agents), headers=_CORS)


def _validation_message(exc: ValueError) -> str:
    if isinstance(exc, ValidationError):
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ()))
        return (
            f"Invalid request: {where}: {first.get('msg')}"
            if where
            else f"Invalid request: {first.get('msg')}"
        )
    return "We could not parse the JSON body of your request."
