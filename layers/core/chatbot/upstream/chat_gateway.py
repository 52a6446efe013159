"""The chat path's OpenAI gateway: Chat Completions and Responses through the official `openai` SDK.

The SDK's generic `post` sends each request and reads the JSON (or stream of JSON events) it returns, without
building its typed models (see `_mapping` for why).

It turns one `UpstreamCall` into a stream of neutral events (`Started`, `TextDelta`, `ToolActivity`,
`Notice`, `Finished`) or one `UpstreamReply`, and owns the upstream rules:

- retries: 429 (except `insufficient_quota`), 5xx and connection failures are retried with exponential
  backoff (honouring `retry-after`) only while nothing has reached the client; after that a failure is
  raised as an `UpstreamError` and the caller ends the stream with an error frame;
- fallbacks of the original: a client error (400/404/422) with a prompt → `Notice` and retry without the
  prompt; still a client error and not on the fallback model → `Notice` and retry with the fallback model;
- timeouts: `chat_timeout_seconds` / `responses_timeout_seconds` (connect and between bytes);
- cancellation: the SDK's `AsyncOpenAI` streams over an async HTTP client, so when the caller's task is
  cancelled (the browser went away) the upstream response is closed and OpenAI stops generating.

`openai` is imported on first use, never at module import: it costs about a second of cold start.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from chatbot.config import Settings, get_settings
from chatbot.errors import UpstreamError, UpstreamTimeout
from chatbot.models.chat import ChatFile, ChatMessage, TokenUsage
from chatbot.observability import get_logger, log_event

if TYPE_CHECKING:
    from openai import AsyncOpenAI

GENERIC_MESSAGE = "An error occurred while processing your request."
PROMPT_NOTICE = "Prompt unavailable. Retrying without prompt."
_CLIENT_ERRORS = (400, 404, 422)


class UpstreamRateLimited(UpstreamError):
    status, code, default_message = (
        503,
        "upstream_rate_limited",
        "The AI service is busy. Please try again shortly.",
    )


class UpstreamRejected(UpstreamError):
    """OpenAI refused the request itself (a 4xx other than auth): its message is safe and useful to show."""

    status, code = 400, "upstream_rejected"


# -- events --------------------------------------------------------------------------------------------------
@dataclass(slots=True)
class Started:
    response_id: str | None = None


@dataclass(slots=True)
class TextDelta:
    text: str


@dataclass(slots=True)
class ToolActivity:
    tool_name: str
    call_id: str
    arguments: str = ""
    status: str | None = None


@dataclass(slots=True)
class Notice:
    message: str


@dataclass(slots=True)
class Finished:
    finish_reason: str
    response_id: str | None = None
    usage: TokenUsage | None = None


Event = Started | TextDelta | ToolActivity | Notice | Finished


@dataclass(slots=True)
class UpstreamCall:
    api_type: str
    model: str
    messages: list[ChatMessage]
    system_message: str | None = None
    temperature: float | None = None
    top_p: float | None = None
    max_output_tokens: int | None = None
    frequency_penalty: float | None = None
    presence_penalty: float | None = None
    prompt_id: str | None = None
    prompt_version: str | None = None
    tools: list[dict[str, Any]] = field(default_factory=list)


@dataclass(slots=True)
class UpstreamReply:
    text: str
    finish_reason: str
    response_id: str | None = None
    usage: TokenUsage | None = None
    notices: list[str] = field(default_factory=list)


# -- request bodies ------------------------------------------------------------------------------------------
def chat_completions_params(call: UpstreamCall, *, stream: bool) -> dict[str, Any]:
    from chatbot.services.tools import for_chat_completions

    messages: list[dict[str, Any]] = []
    if call.system_message:
        messages.append({"role": "system", "content": call.system_message})
    messages.extend({"role": m.role, "content": m.content} for m in call.messages)
    params: dict[str, Any] = {"model": call.model, "messages": messages}
    _set(params, "temperature", call.temperature)
    _set(params, "top_p", call.top_p)
    _set(params, "max_tokens", call.max_output_tokens)
    _set(params, "frequency_penalty", call.frequency_penalty)
    _set(params, "presence_penalty", call.presence_penalty)
    tools = for_chat_completions(call.tools)
    if tools:
        params["tools"] = tools
    if stream:
        params["stream"] = True
        params["stream_options"] = {"include_usage": True}
    return params


def responses_params(call: UpstreamCall, *, stream: bool) -> dict[str, Any]:
    items: list[dict[str, Any]] = []
    if call.system_message:
        items.append({"role": "system", "content": [{"type": "input_text", "text": call.system_message}]})
    for message in call.messages:
        part_type = "output_text" if message.role == "assistant" else "input_text"
        content: list[dict[str, Any]] = [{"type": part_type, "text": message.content}]
        if message.role == "user":
            content.extend({"type": "input_file", "file_id": fid} for fid in message.file_ids)
            content.extend({"type": "input_image", "file_id": fid} for fid in message.image_file_ids)
        items.append({"role": message.role, "content": content})
    params: dict[str, Any] = {"model": call.model, "input": items}
    _set(params, "temperature", call.temperature)
    _set(params, "top_p", call.top_p)
    _set(params, "max_output_tokens", call.max_output_tokens)
    if call.tools:
        params["tools"] = call.tools
    if call.prompt_id:
        params["prompt"] = {"id": call.prompt_id}
        if call.prompt_version:
            params["prompt"]["version"] = call.prompt_version
    if stream:
        params["stream"] = True
    return params


def _endpoint(call: UpstreamCall, *, stream: bool) -> tuple[str, dict[str, Any]]:
    """The API path and request body of `call`."""
    if call.api_type == "responses":
        return "/responses", responses_params(call, stream=stream)
    return "/chat/completions", chat_completions_params(call, stream=stream)


def _set(params: dict[str, Any], key: str, value: Any) -> None:
    if value is not None:
        params[key] = value


# -- the gateway ---------------------------------------------------------------------------------------------
class ChatGateway:
    def __init__(self, settings: Settings | None = None, *, client: AsyncOpenAI | None = None) -> None:
        self.settings = settings or get_settings()
        self._client = client
        self._clients: dict[int, AsyncOpenAI] = {}
        self._api_key: str | None = None
        self._retired: list[AsyncOpenAI] = []
        self.logger = get_logger("chat")

    async def client(self) -> AsyncOpenAI:
        if self._client is not None:
            return self._client
        # An async HTTP client belongs to the event loop that created it (tests run several loops).
        loop_id = id(asyncio.get_running_loop())
        client = self._clients.get(loop_id)
        if client is None:
            key = self._api_key or await asyncio.to_thread(_read_api_key, self.settings)
            self._api_key = key
            from openai import AsyncOpenAI

            # Retries are ours (they must stop once the client has seen a byte); the SDK's are off.
            client = AsyncOpenAI(api_key=key, max_retries=0)
            self._clients = {loop_id: client}
        return client

    async def _client_with_rotated_key(self) -> AsyncOpenAI | None:
        """After a 401: a client with the key read again, if an operator has put a new one in the secret since
        this container read it (so a rotated OpenAI key needs no redeploy); None when the key is unchanged."""
        if self._client is not None:
            return None
        key = await asyncio.to_thread(_read_api_key, self.settings)
        if key == self._api_key:
            return None
        self._api_key = key
        self._retired += self._clients.values()  # requests in flight finish on the old client
        self._clients = {}
        log_event(self.logger, "upstream_key_reloaded")
        return await self.client()

    async def aclose(self) -> None:
        """Close the upstream clients (connections) of this gateway."""
        clients = [*self._clients.values(), *self._retired]
        self._clients, self._retired = {}, []
        for client in clients:
            await client.close()

    def timeout_for(self, api_type: str) -> Any:
        import openai

        settings = self.settings
        seconds = (
            settings.responses_timeout_seconds if api_type == "responses" else settings.chat_timeout_seconds
        )
        return openai.Timeout(seconds, connect=min(10.0, seconds))

    # -- streaming -----------------------------------------------------------------------------------------
    async def stream(self, call: UpstreamCall) -> AsyncIterator[Event]:
        """Events of one reply; raises an `UpstreamError` (after any events already yielded) on failure."""
        import openai

        client = await self.client()
        attempt = 0
        emitted = False
        key_checked = False
        while True:
            try:
                async for event in self._stream_once(client, call):
                    if not isinstance(event, Notice):
                        emitted = True
                    yield event
                return
            except (openai.APIError, *_transport_errors()) as exc:
                if emitted:
                    self._log_error(exc, call, attempt, getattr(exc, "status_code", None))
                    raise self._translate(exc, call) from None
                if isinstance(exc, openai.AuthenticationError) and not key_checked:
                    key_checked = True
                    if fresh := await self._client_with_rotated_key():
                        client = fresh
                        continue
                decision = self._after_failure(exc, call, attempt)
                if isinstance(decision, UpstreamCall):
                    yield Notice(_notice_for(call, decision))
                    call = decision
                    continue
                if decision is None:
                    raise self._translate(exc, call) from None
                attempt += 1
                await asyncio.sleep(decision)

    async def _stream_once(self, client: AsyncOpenAI, call: UpstreamCall) -> AsyncIterator[Event]:
        from openai import AsyncStream

        path, params = _endpoint(call, stream=True)
        handler = _ResponsesEvents() if call.api_type == "responses" else _ChatChunks()
        stream = await client.post(
            path,
            body=params,
            cast_to=object,
            options={"timeout": self.timeout_for(call.api_type)},
            stream=True,
            stream_cls=AsyncStream[object],
        )
        try:
            async for raw in stream:
                for event in handler.feed(raw):
                    yield event
            final = handler.finish()
            if final is not None:
                yield final
        finally:
            await _close_shielded(stream)

    # -- non-streaming -------------------------------------------------------------------------------------
    async def complete(self, call: UpstreamCall) -> UpstreamReply:
        import openai

        client = await self.client()
        attempt = 0
        notices: list[str] = []
        key_checked = False
        while True:
            try:
                reply = await self._complete_once(client, call)
                reply.notices = notices
                return reply
            except (openai.APIError, *_transport_errors()) as exc:
                if isinstance(exc, openai.AuthenticationError) and not key_checked:
                    key_checked = True
                    if fresh := await self._client_with_rotated_key():
                        client = fresh
                        continue
                decision = self._after_failure(exc, call, attempt)
                if isinstance(decision, UpstreamCall):
                    notices.append(_notice_for(call, decision))
                    call = decision
                    continue
                if decision is None:
                    raise self._translate(exc, call) from None
                attempt += 1
                await asyncio.sleep(decision)

    async def _complete_once(self, client: AsyncOpenAI, call: UpstreamCall) -> UpstreamReply:
        path, params = _endpoint(call, stream=False)
        options: Any = {"timeout": self.timeout_for(call.api_type)}
        resp = _mapping(await client.post(path, body=params, cast_to=object, options=options))
        if call.api_type == "responses":
            if resp.get("status") == "failed":
                raise UpstreamError(GENERIC_MESSAGE, code="response_error")
            return UpstreamReply(
                text=_output_text(resp),
                finish_reason=resp.get("status") or "completed",
                response_id=resp.get("id"),
                usage=_responses_usage(resp.get("usage")),
            )
        choice = _mapping((resp.get("choices") or [None])[0])
        return UpstreamReply(
            text=_str(_mapping(choice.get("message")).get("content")),
            finish_reason=choice.get("finish_reason") or "stop",
            usage=_chat_usage(resp.get("usage")),
        )

    # -- files ---------------------------------------------------------------------------------------------
    async def upload_file(self, file: ChatFile) -> str:
        import openai

        client = await self.client()
        try:
            created = await client.files.create(
                file=(file.name, file.data, file.mime_type),
                purpose="user_data",
                timeout=self.timeout_for("chat"),
            )
        except openai.APIError as exc:
            raise self._translate(exc, None) from None
        return created.id

    # -- failures ------------------------------------------------------------------------------------------
    def _after_failure(self, exc: Exception, call: UpstreamCall, attempt: int) -> float | UpstreamCall | None:
        """After a failure before the first byte: a delay before retrying, a changed call, or None."""
        import openai

        status = getattr(exc, "status_code", None)
        self._log_error(exc, call, attempt, status)
        if status in _CLIENT_ERRORS:
            if call.prompt_id:
                return replace(call, prompt_id=None, prompt_version=None)
            if call.model != self.settings.fallback_model:
                return replace(call, model=self.settings.fallback_model)
            return None
        if attempt >= self.settings.upstream_max_retries:
            return None
        if _is_timeout(exc):
            return None  # already waited the whole timeout; the client should not wait twice
        if isinstance(exc, openai.RateLimitError) and getattr(exc, "code", None) == "insufficient_quota":
            return None
        retryable = (
            isinstance(exc, (openai.APIConnectionError, *_transport_errors()))
            or status == 429
            or (status or 0) >= 500
        )
        if not retryable:
            return None
        return self._backoff(exc, attempt)

    def _backoff(self, exc: Exception, attempt: int) -> float:
        cap = self.settings.upstream_retry_max_seconds
        response = getattr(exc, "response", None)
        headers = getattr(response, "headers", None) or {}
        for name, scale in (("retry-after-ms", 0.001), ("retry-after", 1.0)):
            try:
                value = float(headers.get(name)) * scale
            except (TypeError, ValueError):
                continue
            if 0 <= value <= cap:
                return value
        base = self.settings.upstream_retry_base_seconds * (2**attempt)
        return min(cap, base * random.uniform(0.5, 1.0))

    def _translate(self, exc: Exception, call: UpstreamCall | None) -> UpstreamError:
        if _is_timeout(exc):
            return UpstreamTimeout("The AI service took too long to answer. Please try again.")
        status = getattr(exc, "status_code", None)
        if status == 429:
            return UpstreamRateLimited()
        if status is not None and 400 <= status < 500 and status not in (401, 403):
            message = getattr(exc, "message", None) or GENERIC_MESSAGE
            return UpstreamRejected(_short(message))
        return UpstreamError(GENERIC_MESSAGE)

    def _log_error(self, exc: Exception, call: UpstreamCall, attempt: int, status: int | None) -> None:
        log_event(
            self.logger,
            "upstream_error",
            level="warning",
            api_type=call.api_type,
            model=call.model,
            status=status,
            error_type=type(exc).__name__,
            error_code=getattr(exc, "code", None),
            attempt=attempt + 1,
        )


def _http() -> Any:
    """The HTTP library the installed SDK is built on (`httpx2` in openai 3, `httpx` before)."""
    try:
        import httpx2

        return httpx2
    except ImportError:  # pragma: no cover - older SDKs
        import httpx

        return httpx


def _transport_errors() -> tuple[type[Exception], ...]:
    """Errors the HTTP client raises while a stream is read (the SDK wraps only those before it starts)."""
    http = _http()
    return (http.TransportError, http.StreamError)


def _is_timeout(exc: Exception) -> bool:
    import openai

    return isinstance(exc, (openai.APITimeoutError, _http().TimeoutException))


def _notice_for(old: UpstreamCall, new: UpstreamCall) -> str:
    if old.prompt_id and not new.prompt_id:
        return PROMPT_NOTICE
    return f"Model unsupported. Falling back to {new.model}."


def _short(message: str) -> str:
    message = " ".join(str(message).split())
    return message[:500]


async def _close_shielded(stream: Any) -> None:
    """Close the upstream response even while our task is being cancelled (that is when it matters most)."""
    import anyio

    with anyio.CancelScope(shield=True):
        # Closing a broken connection may fail; it is closed either way.
        with contextlib.suppress(Exception):
            await stream.close()


def _read_api_key(settings: Settings) -> str:
    """`OPENAI_API_KEY` if set (what the SDK reads), else the current secret from Secrets Manager."""
    key = os.environ.get("OPENAI_API_KEY")
    if key:
        return key
    from chatbot import aws

    value = aws.client("secretsmanager").get_secret_value(
        SecretId=settings.openai_secret_id, VersionStage="AWSCURRENT"
    )
    return str(value.get("SecretString") or "").strip()


# The SDK's generic `post` hands us the JSON OpenAI sent (`cast_to=object`) instead of its typed models: their
# request transform and one model per stream event took 1.3 of the 3.0 ms to a first token and 2.3 ms of CPU
# per short reply (docs/performance.md). The SDK still sends, authenticates, times out and raises its errors.
# These readers take what they need and treat anything missing or of the wrong type as absent.
def _mapping(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _int(value: Any) -> int:
    return value if isinstance(value, int) else 0


def _str(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _output_text(response: dict[str, Any]) -> str:
    """The reply's text, as the SDK's `Response.output_text` joins it."""
    texts = []
    for output in response.get("output") or ():
        if _mapping(output).get("type") == "message":
            for content in output.get("content") or ():
                if _mapping(content).get("type") == "output_text" and isinstance(content.get("text"), str):
                    texts.append(content["text"])
    return "".join(texts)


def _responses_usage(usage: Any) -> TokenUsage | None:
    if not isinstance(usage, dict):
        return None
    return TokenUsage(
        input_tokens=_int(usage.get("input_tokens")), output_tokens=_int(usage.get("output_tokens"))
    )


def _chat_usage(usage: Any) -> TokenUsage | None:
    if not isinstance(usage, dict):
        return None
    return TokenUsage(
        input_tokens=_int(usage.get("prompt_tokens")), output_tokens=_int(usage.get("completion_tokens"))
    )


# -- stream parsers ------------------------------------------------------------------------------------------
class _ResponsesEvents:
    """Responses API stream events → neutral events."""

    def __init__(self) -> None:
        self.response_id: str | None = None
        self.started = False
        self.finished: Finished | None = None
        # function call item id → [name, call_id, accumulated arguments]
        self.calls: dict[str, list[str]] = {}

    def feed(self, event: Any) -> list[Event]:
        event = _mapping(event)
        kind = event.get("type", "")
        out: list[Event] = []
        if kind == "response.created":
            self.response_id = _mapping(event.get("response")).get("id")
            out.extend(self._start())
        elif kind in ("response.output_text.delta", "response.refusal.delta"):
            out.extend(self._start())
            delta = _delta_text(event.get("delta"))
            if delta:
                out.append(TextDelta(delta))
        elif kind == "response.output_item.added":
            item = _mapping(event.get("item"))
            if item.get("type") == "function_call":
                self.calls[item.get("id") or item.get("call_id") or ""] = [
                    item.get("name") or "function",
                    item.get("call_id") or "",
                    "",
                ]
            elif item.get("type") == "file_search_call":
                out.extend(self._start())
                out.append(ToolActivity("file_search", item.get("id") or "", status="in_progress"))
        elif kind == "response.function_call_arguments.delta":
            item_id = event.get("item_id") or ""
            call = self.calls.setdefault(item_id, ["function", item_id, ""])
            call[2] += event.get("delta") or ""
            out.extend(self._start())
            out.append(ToolActivity(call[0], call[1], call[2]))
        elif kind == "response.function_call_arguments.done":
            item_id = event.get("item_id") or ""
            call = self.calls.setdefault(item_id, ["function", item_id, ""])
            arguments = event.get("arguments")
            call[2] = arguments if isinstance(arguments, str) else call[2]
            out.append(ToolActivity(call[0], call[1], call[2], status="completed"))
        elif kind == "response.file_search_call.completed":
            out.append(ToolActivity("file_search", event.get("item_id") or "", status="completed"))
        elif kind in ("response.completed", "response.incomplete"):
            response = _mapping(event.get("response"))
            self.response_id = response.get("id") or self.response_id
            out.extend(self._start())
            self.finished = Finished(
                finish_reason=response.get("status")
                or ("completed" if kind == "response.completed" else "incomplete"),
                response_id=self.response_id,
                usage=_responses_usage(response.get("usage")),
            )
        elif kind in ("response.failed", "error"):
            raise UpstreamError(GENERIC_MESSAGE, code="response_error")
        return out

    def _start(self) -> list[Event]:
        if self.started:
            return []
        self.started = True
        return [Started(self.response_id)]

    def finish(self) -> Finished | None:
        if self.finished is None:
            # The stream ended without response.completed: the reply is not complete.
            raise UpstreamError(GENERIC_MESSAGE, code="incomplete_stream")
        return self.finished


class _ChatChunks:
    """Chat Completions chunks → neutral events."""

    def __init__(self) -> None:
        self.started = False
        self.finish_reason: str | None = None
        self.usage: TokenUsage | None = None
        self.calls: dict[int, list[str]] = {}

    def feed(self, chunk: Any) -> list[Event]:
        chunk = _mapping(chunk)
        out: list[Event] = []
        if not self.started:
            self.started = True
            out.append(Started(None))
        if chunk.get("usage") is not None:
            self.usage = _chat_usage(chunk["usage"])
        for choice in chunk.get("choices") or ():
            choice = _mapping(choice)
            delta = choice.get("delta")
            if isinstance(delta, dict):
                if isinstance(delta.get("content"), str):
                    # The original forwarded even the first, empty delta as a chunk; embeds may rely on it.
                    out.append(TextDelta(delta["content"]))
                for tc in delta.get("tool_calls") or ():
                    tc = _mapping(tc)
                    call = self.calls.setdefault(_int(tc.get("index")), ["function", "", ""])
                    if tc.get("id"):
                        call[1] = tc["id"]
                    function = tc.get("function")
                    if isinstance(function, dict):
                        if function.get("name"):
                            call[0] = function["name"]
                        call[2] += function.get("arguments") or ""
                    out.append(ToolActivity(call[0], call[1], call[2]))
            if choice.get("finish_reason"):
                self.finish_reason = choice["finish_reason"]
        return out

    def finish(self) -> Finished | None:
        if self.finish_reason is None:
            raise UpstreamError(GENERIC_MESSAGE, code="incomplete_stream")
        return Finished(finish_reason=self.finish_reason, usage=self.usage)


def _delta_text(delta: Any) -> str:
    if isinstance(delta, str):
        return delta
    if isinstance(delta, dict):
        for key in ("text", "output_text"):
            if isinstance(delta.get(key), str):
                return delta[key]
        parts = delta.get("content")
        if isinstance(parts, list):
            return "".join(str(p.get("text", "")) for p in parts if isinstance(p, dict))
    return ""


def now_ms() -> float:
    return time.perf_counter() * 1000
