"""The OpenAI-compatible face of the chat service: `/v1/chat/completions` and `/v1/models` shapes.

Any OpenAI SDK pointed at `<base>/v1` works: streamed `chat.completion.chunk` frames ending with
`data: [DONE]` (plus a usage chunk with `stream_options.include_usage`), a `chat.completion` object when not
streaming, `model` = an agent's id or name, and errors in OpenAI's shape
`{"error": {"message", "type", "param", "code"}}`. Whatever the agent's upstream API (Chat Completions or
Responses), the client sees Chat Completions.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import AsyncIterator
from typing import Any

from chatbot import clock
from chatbot.dal.base import Item
from chatbot.errors import ChatbotError, QuotaExceeded, RateLimited, UpstreamError
from chatbot.models.chat import ChatCompletionRequest, ChatMessage
from chatbot.services import sse
from chatbot.services.chat import ChatService, ChatTurn
from chatbot.services.concurrency import shielded
from chatbot.upstream.chat_gateway import GENERIC_MESSAGE, Finished, TextDelta, ToolActivity

_FINISH_REASONS = {"completed": "stop", "incomplete": "length"}
_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "invalid_request_error",
    403: "invalid_request_error",
    404: "invalid_request_error",
    413: "invalid_request_error",
    422: "invalid_request_error",
    429: "requests",
}
_ERROR_CODES = {
    "unauthorized": "invalid_api_key",
    "missing_credentials": "invalid_api_key",
    "invalid_credentials": "invalid_api_key",
    "expired_key": "invalid_api_key",
    "revoked_key": "invalid_api_key",
    "inactive_user": "invalid_api_key",
    "rate_limited": "rate_limit_exceeded",
}


def completion_id() -> str:
    return "chatcmpl-" + secrets.token_hex(12)


def to_messages(request: ChatCompletionRequest) -> list[ChatMessage]:
    messages = []
    for m in request.messages:
        role = "system" if m.role == "developer" else m.role
        if role == "tool":
            continue  # tool results need the call they answer; the agents' tools run client-side
        messages.append(ChatMessage(role=role, content=m.text()))
    if not any(m.role == "user" for m in messages):
        raise_invalid("messages must contain at least one user message", param="messages")
    return messages


def raise_invalid(message: str, *, param: str | None = None) -> None:
    from chatbot.errors import BadRequest

    raise BadRequest(message, code="invalid_request_error", details={"param": param} if param else None)


def finish_reason(turn: ChatTurn, saw_tool_calls: bool) -> str:
    if saw_tool_calls and turn.options.api_type == "responses":
        return "tool_calls"
    reason = turn.finish_reason or "stop"
    return _FINISH_REASONS.get(reason, reason)


def usage_payload(turn: ChatTurn) -> dict[str, int]:
    usage = turn.usage
    prompt = usage.input_tokens if usage else 0
    completion = usage.output_tokens if usage else 0
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


async def completion_chunks(
    service: ChatService, turn: ChatTurn, *, model: str, include_usage: bool, finish: bool = True
) -> AsyncIterator[bytes]:
    """`chat.completion.chunk` frames, a usage chunk if asked for, then `[DONE]`.

    With `finish=False` the caller runs `service.finish(turn)` after the response (a background task).
    """
    cid, created = completion_id(), int(time.time())
    base = {"id": cid, "object": "chat.completion.chunk", "created": created, "model": model}

    def chunk(delta: dict[str, Any], reason: str | None = None) -> bytes:
        return sse.openai_chunk({**base, "choices": [{"index": 0, "delta": delta, "finish_reason": reason}]})

    tool_index: dict[str, int] = {}
    sent_arguments: dict[str, int] = {}
    try:
        try:
            yield chunk({"role": "assistant", "content": ""})
            async for event in service.events(turn):
                if isinstance(event, TextDelta):
                    if event.text:
                        yield chunk({"content": event.text})
                elif isinstance(event, ToolActivity) and event.tool_name != "file_search":
                    index = tool_index.setdefault(event.call_id, len(tool_index))
                    new = event.arguments[sent_arguments.get(event.call_id, 0) :]
                    first = event.call_id not in sent_arguments
                    sent_arguments[event.call_id] = len(event.arguments)
                    if not new and not first:
                        continue
                    call: dict[str, Any] = {"index": index, "function": {"arguments": new}}
                    if first:
                        call.update(id=event.call_id, type="function")
                        call["function"]["name"] = event.tool_name
                    yield chunk({"tool_calls": [call]})
                elif isinstance(event, Finished):
                    yield chunk({}, finish_reason(turn, bool(tool_index)))
            if include_usage:
                yield sse.openai_chunk({**base, "choices": [], "usage": usage_payload(turn)})
        except ChatbotError as exc:
            turn.error = exc
            yield sse.openai_chunk(error_body(exc))
        except Exception as exc:  # the stream has started: an error chunk, not a cut connection
            turn.error = exc
            service.logger.exception("completion stream failed", extra={"event": "chat_stream_error"})
            yield sse.openai_chunk(error_body(UpstreamError()))
        yield sse.OPENAI_DONE
    except BaseException:
        await shielded(service.finish(turn))
        raise
    if finish:
        await shielded(service.finish(turn))


async def completion_object(
    service: ChatService, turn: ChatTurn, *, model: str, finish: bool = True
) -> dict[str, Any]:
    try:
        reply = await service.complete(turn)
    except BaseException as exc:
        turn.error = exc if not isinstance(exc, asyncio.CancelledError) else None
        await shielded(service.finish(turn))
        raise
    if finish:
        await shielded(service.finish(turn))
    reason = _FINISH_REASONS.get(reply.finish_reason, reply.finish_reason)
    return {
        "id": completion_id(),
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": reply.text, "refusal": None},
                "logprobs": None,
                "finish_reason": reason,
            }
        ],
        "usage": usage_payload(turn),
    }


def models_list(agents: list[Item]) -> dict[str, Any]:
    data = []
    for agent in sorted(agents, key=lambda a: str(a.get("name", ""))):
        created = agent.get("created_at")
        data.append(
            {
                "id": agent["id"],
                "object": "model",
                "created": int(clock.parse_iso(created).timestamp()) if created else 0,
                "owned_by": "chatbot",
                "name": agent.get("name"),
            }
        )
    return {"object": "list", "data": data}


def error_body(exc: ChatbotError) -> dict[str, Any]:
    """OpenAI's error shape for one of our errors; 5xx messages stay generic."""
    status = exc.status
    message = exc.message if status < 500 or isinstance(exc, UpstreamError) else GENERIC_MESSAGE
    error_type = _ERROR_TYPES.get(status, "server_error" if status >= 500 else "invalid_request_error")
    code: str | None = _ERROR_CODES.get(exc.code, exc.code)
    if isinstance(exc, QuotaExceeded):
        error_type, code = "insufficient_quota", "insufficient_quota"
    elif isinstance(exc, RateLimited):
        error_type, code = "requests", "rate_limit_exceeded"
    param = exc.details.get("param") if isinstance(exc.details, dict) else None
    return {"error": {"message": message, "type": error_type, "param": param, "code": code}}
