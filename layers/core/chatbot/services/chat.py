"""The chat service: one user message in, one streamed (or whole) reply out, history and usage kept.

A request goes through three phases:

1. `prepare` — everything that can refuse the request, before any byte of the reply: the per-IP rate
   limit, the agent (cached in memory), the conversation history and the quota reservation, started
   together so the first token waits for about one DynamoDB round trip; then any uploads. A refusal here
   is a plain HTTP error (400, 429 with Retry-After).
2. `events` / `complete` — the upstream call. A completed reply is added to the history right after
   `done` and before `close` (before the JSON reply when not streaming), so the next message of the
   conversation sees it; a failed, cut or abandoned reply is not stored.
3. `finish` — after the reply: usage is recorded (and the quota reservation settled), and `chat_completed`
   or `chat_failed` is logged. It runs even when the client went away mid-stream.

`widget_frames` / `widget_reply` render the original widget's protocol (`chatbot.services.sse`);
`chatbot.services.chat_compat` renders the OpenAI-compatible one from the same events.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import secrets
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from chatbot.config import Settings, get_settings
from chatbot.dal.base import Item
from chatbot.dal.conversations import ConversationRepository
from chatbot.errors import BadRequest, ChatbotError, RateLimited, UpstreamError
from chatbot.models.chat import (
    CONVERSATION_ID_PATTERN,
    ChatMessage,
    ChatReply,
    ChatRequest,
    ChatSettings,
    TokenUsage,
)
from chatbot.observability import get_logger, log_event
from chatbot.services import sse
from chatbot.services.chat_agents import ChatAgents
from chatbot.services.concurrency import run_io, shielded, start_io
from chatbot.services.rate_limit import Limit, RateLimiter
from chatbot.services.tools import fill_file_search, merge_tools, normalize_tools, parse_request_tools
from chatbot.services.usage import NO_KEY, Reservation, UsageService, estimate_tokens
from chatbot.upstream.chat_gateway import (
    GENERIC_MESSAGE,
    ChatGateway,
    Finished,
    Notice,
    Started,
    TextDelta,
    ToolActivity,
    UpstreamCall,
    UpstreamReply,
)

_CONVERSATION_ID = re.compile(CONVERSATION_ID_PATTERN)
_FALSE = (False, "false", "False", "FALSE", 0, "0", "no", "off")
_API_TYPES = {"responses": "responses", "chat": "chat", "assistants": "responses"}
_MAX_ID = 255


# -- request validation --------------------------------------------------------------------------------------
def parse_chat_request(
    raw: Mapping[str, Any], *, method: str, settings: Settings | None = None
) -> ChatRequest:
    """Validate a `/chat` request as the original did, with proper 400s (its empty message was a 500)."""
    from chatbot.services.uploads import parse_files

    settings = settings or get_settings()
    message = raw.get("message")
    if message is None or message == "":
        raise BadRequest("Message is required", code="message_required")
    if not isinstance(message, str):
        raise BadRequest("Message must be a string", code="invalid_message")
    if not message.strip():
        raise BadRequest("Message cannot be empty", code="message_empty")
    if len(message) > settings.max_message_length:
        raise BadRequest(
            f"Message too long (at most {settings.max_message_length} characters)", code="message_too_long"
        )

    conversation_id = _optional_str(raw, "conversation_id", 100_000)
    new_conversation = conversation_id is None
    if conversation_id is None:
        conversation_id = new_conversation_id()
    elif not _CONVERSATION_ID.match(conversation_id):
        raise BadRequest("Invalid conversation ID format", code="invalid_conversation_id")

    api_type = _optional_str(raw, "api_type", 32)
    if api_type is not None:
        if api_type.lower() not in _API_TYPES:
            raise BadRequest("Invalid api_type: expected responses or chat", code="invalid_api_type")
        api_type = _API_TYPES[api_type.lower()]

    stream = True
    if method.upper() == "POST" and "stream" in raw:
        stream = raw["stream"] not in _FALSE

    tools = parse_request_tools(raw.get("tools"))
    if tools is not None:
        tools = normalize_tools(tools, max_tools=settings.chat_max_tools)
    files = parse_files(raw.get("file_data"), settings) if method.upper() == "POST" else []
    if files and api_type == "chat":
        raise BadRequest("Files are only supported with api_type=responses", code="files_not_supported")

    return ChatRequest(
        message=message,
        conversation_id=conversation_id,
        new_conversation=new_conversation,
        agent_id=_optional_str(raw, "agent_id", 128),
        api_type=api_type,  # type: ignore[arg-type]
        prompt_id=_optional_str(raw, "prompt_id", _MAX_ID),
        prompt_version=_optional_str(raw, "prompt_version", _MAX_ID),
        tools=tools,
        files=files,
        stream=stream,
    )


def new_conversation_id() -> str:
    return "conv_" + secrets.token_hex(8)


def _optional_str(raw: Mapping[str, Any], key: str, max_length: int) -> str | None:
    value = raw.get(key)
    if value is None:
        return None
    if isinstance(value, int | float) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str):
        raise BadRequest(f"Invalid {key}", code=f"invalid_{key}")
    value = value.strip()
    if not value:
        return None
    if len(value) > max_length:
        raise BadRequest(f"Invalid {key}: too long", code=f"invalid_{key}")
    return value


# -- precedence ----------------------------------------------------------------------------------------------
def resolve_settings(
    cfg: Settings,
    agent: Mapping[str, Any] | None,
    *,
    api_type: str | None = None,
    prompt_id: str | None = None,
    prompt_version: str | None = None,
    request_tools: list[dict[str, Any]] | None = None,
) -> ChatSettings:
    """Request > agent > config for api_type, prompt and tools; agent > config for model and sampling."""
    agent = agent or {}
    resolved_api = api_type or agent.get("api_type") or cfg.api_type
    responses = resolved_api == "responses"
    model = agent.get("model") or (cfg.responses_model if responses else cfg.openai_model)
    max_out = agent.get("max_output_tokens") or (cfg.max_output_tokens if responses else cfg.max_tokens)

    # The prompt version belongs to the prompt it came with, unless the request names a version itself.
    if prompt_id:
        pid, pver = prompt_id, prompt_version
    elif agent.get("prompt_id"):
        pid, pver = agent["prompt_id"], prompt_version or agent.get("prompt_version")
    elif cfg.responses_prompt_id:
        pid, pver = cfg.responses_prompt_id, prompt_version or cfg.responses_prompt_version or None
    else:
        pid, pver = None, None

    config_stores = [s.strip() for s in cfg.responses_vector_store_ids.split(",") if s.strip()]
    config_tools = normalize_tools(parse_request_tools(cfg.responses_tools) or [])
    if not config_tools and config_stores:
        config_tools = [{"type": "file_search"}]
    agent_tools = normalize_tools(agent.get("tools") or [])
    agent_stores = list(agent.get("vector_store_ids") or [])
    if agent_stores and not any(t.get("type") == "file_search" for t in agent_tools):
        # An agent with vector stores searches them (the original needed the tool spelled out).
        agent_tools.append({"type": "file_search"})
    tools = merge_tools(config_tools, agent_tools or None, request_tools)
    tools = fill_file_search(
        tools,
        vector_store_ids=agent_stores or config_stores,
        max_num_results=agent.get("max_num_results") or cfg.responses_max_num_results,
    )
    temperature = agent.get("temperature")
    top_p = agent.get("top_p")
    return ChatSettings(
        api_type=resolved_api,
        model=model,
        system_message=agent.get("system_message") or cfg.system_message or None,
        temperature=cfg.temperature if temperature is None else temperature,
        top_p=cfg.top_p if top_p is None else top_p,
        max_output_tokens=max_out,
        frequency_penalty=None if responses else cfg.frequency_penalty,
        presence_penalty=None if responses else cfg.presence_penalty,
        prompt_id=pid if responses else None,
        prompt_version=pver if responses and pid else None,
        tools=tools,
        agent_id=agent.get("id"),
    )


def history_window(turns: list[Item], max_messages: int) -> list[ChatMessage]:
    """The last `max_messages - 1` stored messages (room for the new one); the system message is never stored,
    it is always sent first, so trimming cannot drop it."""
    messages: list[ChatMessage] = []
    for turn in turns:
        for m in turn.get("messages", []):
            if m.get("role") in ("user", "assistant"):
                messages.append(
                    ChatMessage(
                        role=m["role"],
                        content=str(m.get("content", "")),
                        file_ids=list(m.get("file_ids") or []),
                        image_file_ids=list(m.get("image_file_ids") or []),
                    )
                )
    keep = max(0, max_messages - 1)
    return messages[-keep:] if keep else []


# -- a prepared request --------------------------------------------------------------------------------------
@dataclass
class Caller:
    source_ip: str
    key_id: str | None = None
    endpoint: str = "widget"
    # When the request arrived (durations and time to first token count from here).
    started: float = field(default_factory=time.perf_counter)


@dataclass
class ChatTurn:
    """One admitted request and what happened to it."""

    conversation_id: str | None
    requested_agent_id: str | None
    options: ChatSettings
    call: UpstreamCall
    user_message: ChatMessage | None
    reservation: Reservation
    caller: Caller
    stream: bool
    started: float = field(default_factory=time.perf_counter)
    started_ms: int = field(default_factory=lambda: int(time.time() * 1000))
    pending: list[asyncio.Task[Any]] = field(default_factory=list)
    # outcome
    text: list[str] = field(default_factory=list)
    response_id: str | None = None
    finish_reason: str | None = None
    usage: TokenUsage | None = None
    ttft_ms: float | None = None
    prepare_ms: float | None = None
    status: str = "cancelled"
    error: BaseException | None = None
    error_code: str | None = None
    upstream_called: bool = False
    finished: bool = False

    @property
    def reply_text(self) -> str:
        return "".join(self.text)


class ChatService:
    def __init__(
        self,
        settings: Settings | None = None,
        *,
        agents: ChatAgents | None = None,
        conversations: ConversationRepository | None = None,
        usage: UsageService | None = None,
        limiter: RateLimiter | None = None,
        gateway: ChatGateway | None = None,
    ) -> None:
        self.settings = settings or get_settings()
        self.agents = agents or ChatAgents()
        self._conversations = conversations
        self.usage = usage or UsageService(settings=self.settings)
        self._limiter = limiter
        self.gateway = gateway or ChatGateway(self.settings)
        self.logger = get_logger("chat")
        self.ip_limit = Limit(
            "chat-ip", self.settings.chat_rate_limit, self.settings.chat_rate_window_seconds
        )

    @property
    def conversations(self) -> ConversationRepository:
        if self._conversations is None:
            self._conversations = ConversationRepository(self.settings.conversations_table)
        return self._conversations

    @property
    def limiter(self) -> RateLimiter:
        if self._limiter is None:
            self._limiter = RateLimiter.from_settings(self.settings)
        return self._limiter

    # -- phase 1 -------------------------------------------------------------------------------------------
    async def prepare(self, request: ChatRequest, caller: Caller) -> ChatTurn:
        """Admit a widget request (limits, agent, history, quota at once; then uploads) or raise."""
        settings = self.settings
        rate = start_io(self.limiter.hit, self.ip_limit, caller.source_ip)
        max_turns = (settings.chat_max_messages + 1) // 2
        history_task = (
            _resolved([])  # an id we just made up has no history: one emulator/DynamoDB call fewer
            if request.new_conversation
            else start_io(self.conversations.recent_turns, request.conversation_id, max_turns=max_turns)
        )
        try:
            agent = await self._agent(request.agent_id)
            options = resolve_settings(
                settings,
                agent,
                api_type=request.api_type,
                prompt_id=request.prompt_id,
                prompt_version=request.prompt_version,
                request_tools=request.tools,
            )
            if request.files and options.api_type != "responses":
                # The agent chose Chat Completions, which cannot take files: refuse rather than drop them.
                raise BadRequest(
                    "Files are only supported with api_type=responses", code="files_not_supported"
                )
            base_estimate = self._estimate([options.system_message or "", request.message], options)
            reserve = self._reserve(options.agent_id, caller.key_id, base_estimate)
        except BaseException:
            await _settle_tasks(rate, history_task)
            raise
        results = await asyncio.gather(rate, history_task, reserve, return_exceptions=True)
        reservation = results[2] if isinstance(results[2], Reservation) else None
        failure = next((r for r in results if isinstance(r, BaseException)), None)
        if failure is not None:
            # The rate limit decides first: a client over it must not learn anything about quotas.
            rate_error = results[0] if isinstance(results[0], BaseException) else None
            if reservation is not None:
                await run_io(self.usage.release, reservation)
            raise rate_error or failure
        assert reservation is not None
        history = history_window(results[1], settings.chat_max_messages)

        turn = ChatTurn(
            conversation_id=request.conversation_id,
            requested_agent_id=request.agent_id,
            options=options,
            call=UpstreamCall(api_type=options.api_type, model=options.model, messages=[]),
            user_message=ChatMessage(role="user", content=request.message),
            reservation=reservation,
            caller=caller,
            stream=request.stream,
            started=caller.started,
        )
        if reservation.held and history:
            turn.pending.append(
                start_io(self.usage.top_up, reservation, estimate_tokens(m.content for m in history))
            )
        if request.files:
            try:
                await self._upload(request, turn)
            except BaseException as exc:
                turn.error = exc
                await shielded(self.finish(turn))
                raise
        turn.call = self._call(options, [*history, turn.user_message])  # type: ignore[list-item]
        turn.prepare_ms = _ms_since(caller.started)
        return turn

    async def prepare_completion(
        self, agent: Item, messages: list[ChatMessage], *, caller: Caller, stream: bool, tools: Any = None
    ) -> ChatTurn:
        """Admit an OpenAI-compatible request (authenticated and rate limited by its API key already)."""
        request_tools = (
            normalize_tools(tools, max_tools=self.settings.chat_max_tools) if tools is not None else None
        )
        options = resolve_settings(self.settings, agent, request_tools=request_tools)
        if any(m.role in ("system", "developer") for m in messages):
            options = options.model_copy(update={"system_message": None})
        estimate = self._estimate([options.system_message or "", *(m.content for m in messages)], options)
        reservation = await self._reserve(options.agent_id, caller.key_id, estimate)
        turn = ChatTurn(
            conversation_id=None,
            requested_agent_id=agent.get("id"),
            options=options,
            call=self._call(options, messages),
            user_message=None,
            reservation=reservation,
            caller=caller,
            stream=stream,
            started=caller.started,
        )
        turn.prepare_ms = _ms_since(caller.started)
        return turn

    def _reserve(
        self, agent_id: str | None, key_id: str | None, estimate: int
    ) -> asyncio.Future[Reservation]:
        """The quota reservation as a future; without a quota (known from the cache) no thread is needed."""
        free = self.usage.unreserved(agent_id, key_id)
        if free is not None:
            return _resolved(free)
        return start_io(self.usage.reserve, agent_id, key_id, estimate)

    async def _agent(self, agent_id: str | None) -> Item | None:
        hit, agent = self.agents.peek(agent_id)
        if hit:
            return agent
        return await run_io(self.agents.resolve, agent_id)

    def _estimate(self, texts: list[str], options: ChatSettings) -> int:
        return estimate_tokens(texts) + (options.max_output_tokens or self.settings.max_output_tokens)

    @staticmethod
    def _call(options: ChatSettings, messages: list[ChatMessage]) -> UpstreamCall:
        return UpstreamCall(
            api_type=options.api_type,
            model=options.model,
            messages=messages,
            system_message=options.system_message,
            temperature=options.temperature,
            top_p=options.top_p,
            max_output_tokens=options.max_output_tokens,
            frequency_penalty=options.frequency_penalty,
            presence_penalty=options.presence_penalty,
            prompt_id=options.prompt_id,
            prompt_version=options.prompt_version,
            tools=list(options.tools),
        )

    async def _upload(self, request: ChatRequest, turn: ChatTurn) -> None:
        assert turn.user_message is not None
        ids = await asyncio.gather(*(self.gateway.upload_file(f) for f in request.files))
        for file, file_id in zip(request.files, ids, strict=True):
            (turn.user_message.image_file_ids if file.is_image else turn.user_message.file_ids).append(
                file_id
            )

    # -- phase 2 -------------------------------------------------------------------------------------------
    async def events(
        self, turn: ChatTurn
    ) -> AsyncIterator[Started | TextDelta | ToolActivity | Notice | Finished]:
        """The upstream reply as events, recorded on `turn` as they pass."""
        turn.upstream_called = True
        async for event in self.gateway.stream(turn.call):
            if isinstance(event, TextDelta):
                if turn.ttft_ms is None:
                    turn.ttft_ms = _ms_since(turn.started)
                turn.text.append(event.text)
            elif isinstance(event, Started):
                turn.response_id = event.response_id or turn.response_id
            elif isinstance(event, Finished):
                turn.response_id = event.response_id or turn.response_id
                turn.finish_reason = event.finish_reason
                turn.usage = event.usage
                turn.status = "completed"
            yield event

    async def complete(self, turn: ChatTurn) -> UpstreamReply:
        """The whole reply; a conversation's history is saved before it is returned."""
        turn.upstream_called = True
        reply = await self.gateway.complete(turn.call)
        turn.text = [reply.text]
        turn.response_id = reply.response_id
        turn.finish_reason = reply.finish_reason
        turn.usage = reply.usage
        turn.status = "completed"
        await self.save_history(turn)
        return reply

    async def save_history(self, turn: ChatTurn) -> None:
        """Add a completed turn to its conversation (shielded: a client leaving now must not lose it)."""
        if turn.conversation_id is None or turn.user_message is None or turn.status != "completed":
            return
        user = {"role": "user", "content": turn.user_message.content}
        if turn.user_message.file_ids:
            user["file_ids"] = turn.user_message.file_ids
        if turn.user_message.image_file_ids:
            user["image_file_ids"] = turn.user_message.image_file_ids
        try:
            await shielded(
                run_io(
                    self.conversations.add_turn,
                    turn.conversation_id,
                    [user, {"role": "assistant", "content": turn.reply_text}],
                    started_ms=turn.started_ms,
                    ttl=int(time.time()) + self.settings.conversation_ttl_days * 86400,
                    agent_id=turn.options.agent_id,
                    response_id=turn.response_id,
                )
            )
        except ChatbotError:
            # The reply reached the user; losing its history entry is logged, not turned into an error.
            self.logger.exception("history not saved", extra={"event": "history_save_failed"})

    # -- phase 3 -------------------------------------------------------------------------------------------
    async def finish(self, turn: ChatTurn) -> None:
        """Record usage and log the outcome, once per turn; runs after the response has been sent (a
        background task), or from the stream's cleanup when the client went away."""
        if turn.finished:
            return
        turn.finished = True
        if turn.error is not None:
            turn.status = "failed"
            turn.error_code = getattr(turn.error, "code", None) or type(turn.error).__name__
        usage = turn.usage
        if usage is None and turn.upstream_called and turn.text:
            # The stream broke before OpenAI reported usage: charge what certainly was used.
            usage = TokenUsage(
                input_tokens=estimate_tokens(m.content for m in turn.call.messages) // 4,
                output_tokens=max(1, len(turn.reply_text) // 4),
            )
        for task in turn.pending:
            await _settle_tasks(task)
        try:
            await shielded(self._settle(turn, usage))
        except ChatbotError:
            self.logger.exception("usage not recorded", extra={"event": "usage_record_failed"})
        self._log(turn, usage)

    async def _settle(self, turn: ChatTurn, usage: TokenUsage | None) -> None:
        calls = self.usage.settle_calls(turn.reservation, usage, ok=turn.status == "completed")
        results = await asyncio.gather(*(run_io(call) for call in calls), return_exceptions=True)
        for result in results:
            if isinstance(result, BaseException):
                raise result

    def _log(self, turn: ChatTurn, usage: TokenUsage | None) -> None:
        ok = turn.status == "completed"
        context: dict[str, Any] = {
            "agent_id": turn.options.agent_id,
            "api_type": turn.options.api_type,
            "model": turn.call.model,
            "endpoint": turn.caller.endpoint,
            "stream": turn.stream,
            "status": turn.status,
            "duration_ms": round(_ms_since(turn.started), 2),
            "prompt_tokens": usage.input_tokens if usage else None,
            "completion_tokens": usage.output_tokens if usage else None,
            "total_tokens": usage.total_tokens if usage else None,
            "finish_reason": turn.finish_reason,
        }
        if turn.ttft_ms is not None:
            context["ttft_ms"] = round(turn.ttft_ms, 2)
        if turn.prepare_ms is not None:
            context["prepare_ms"] = round(turn.prepare_ms, 2)
        if turn.conversation_id:
            context["conversation_id"] = turn.conversation_id
        if turn.caller.key_id:
            context["api_key_id"] = turn.caller.key_id
        if not ok:
            context["error_code"] = turn.error_code or turn.status
        if self.settings.log_message_text and turn.user_message is not None:
            context["message_text"] = turn.user_message.content
            context["reply_text"] = turn.reply_text
        event, level = ("chat_completed", "info") if ok else ("chat_failed", "warning")
        log_event(self.logger, event, level, **context)

    # -- the widget protocol -------------------------------------------------------------------------------
    def start_frame(self, turn: ChatTurn) -> bytes:
        return sse.frame(
            "start",
            {
                "conversation_id": turn.conversation_id,
                "api_type": turn.options.api_type,
                "agent_id": turn.requested_agent_id or "",
            },
        )

    async def widget_frames(self, turn: ChatTurn, *, finish: bool = True) -> AsyncIterator[bytes]:
        """`start`, `message` frames (start, chunk…, tool_call, notice, done or error), `close` last.

        The history is saved right after `done` and before `close`. With `finish=False` the caller runs
        `finish(turn)` after the response (a background task); if the client goes away mid-stream it runs
        here either way.
        """
        responses = turn.options.api_type == "responses"
        try:
            try:
                yield self.start_frame(turn)
                async for event in self.events(turn):
                    if isinstance(event, TextDelta):
                        payload: dict[str, Any] = {"type": "chunk", "content": event.text}
                    elif isinstance(event, Started):
                        payload = {"type": "start"}
                    elif isinstance(event, ToolActivity):
                        payload = {
                            "type": "tool_call",
                            "tool_name": event.tool_name,
                            "arguments": event.arguments,
                            "call_id": event.call_id,
                        }
                        if event.status:
                            payload["status"] = event.status
                    elif isinstance(event, Notice):
                        yield sse.message({"type": "notice", "message": event.message})
                        continue
                    else:
                        payload = {"type": "done", "finish_reason": event.finish_reason}
                    if responses and turn.response_id:
                        payload["response_id"] = turn.response_id
                    yield sse.message(payload)
                    if isinstance(event, Finished):
                        await self.save_history(turn)
            except ChatbotError as exc:
                turn.error = exc
                yield sse.message(error_payload(exc))
            except Exception as exc:  # the stream has started: the client gets an error frame, not a cut
                turn.error = exc
                self.logger.exception("chat stream failed", extra={"event": "chat_stream_error"})
                yield sse.message({"type": "error", "message": GENERIC_MESSAGE, "code": "internal_error"})
            yield sse.CLOSE
        except BaseException:
            # The client went away (the task is cancelled) or the consumer stopped early.
            await shielded(self.finish(turn))
            raise
        if finish:
            await shielded(self.finish(turn))

    async def widget_reply(self, turn: ChatTurn, *, finish: bool = True) -> ChatReply:
        """The non-streaming reply; with `finish=False` the caller runs `finish(turn)` afterwards."""
        try:
            reply = await self.complete(turn)
        except BaseException as exc:
            turn.error = exc if not isinstance(exc, asyncio.CancelledError) else None
            await shielded(self.finish(turn))
            raise
        if finish:
            await shielded(self.finish(turn))
        return ChatReply(
            response=reply.text,
            response_id=reply.response_id if turn.options.api_type == "responses" else None,
            conversation_id=turn.conversation_id or "",
            api_type=turn.options.api_type,
            agent_id=turn.requested_agent_id,
        )


def error_payload(exc: ChatbotError) -> dict[str, Any]:
    """An error frame's data; server-side failures get the generic message, never details."""
    message = exc.message if exc.status < 500 or isinstance(exc, UpstreamError) else GENERIC_MESSAGE
    if isinstance(exc, RateLimited):
        message = exc.message
    return {"type": "error", "message": message, "code": exc.code}


def _resolved(value: Any) -> asyncio.Future[Any]:
    future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
    future.set_result(value)
    return future


async def _settle_tasks(*tasks: asyncio.Task[Any]) -> None:
    """Wait for background calls that were started (never leave a thread's result unobserved)."""
    for task in tasks:
        # Only waiting: the caller is already handling a failure of its own.
        with contextlib.suppress(BaseException):
            await shielded(task)


def _ms_since(start: float) -> float:
    return (time.perf_counter() - start) * 1000


__all__ = [
    "NO_KEY",
    "Caller",
    "ChatService",
    "ChatTurn",
    "error_payload",
    "get_chat_service",
    "history_window",
    "new_conversation_id",
    "parse_chat_request",
    "reset_chat_service",
    "resolve_settings",
]


_service: ChatService | None = None


def get_chat_service() -> ChatService:
    """The process's chat service: its caches (agents, quotas) and upstream client live across invocations.

    Rebuilt when the settings object changes (tests clear `get_settings` after changing the environment).
    """
    global _service
    settings = get_settings()
    if _service is None or _service.settings is not settings:
        _service = ChatService(settings)
    return _service


def reset_chat_service() -> None:
    """Forget the process's service (tests that change settings call this)."""
    global _service
    _service = None
