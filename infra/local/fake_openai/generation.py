"""What the fake model "says": a deterministic reply, its tokens, and the OpenAI payloads that carry it.

Pure functions only (no I/O, no sleeping); the app decides when each payload goes out.

Markers a test can put in the last user message (removed from the echoed text):
  [[reply:TEXT]]          the reply is exactly TEXT
  [[tool:NAME {json}]]    call function tool NAME with these arguments (when the request offers NAME)
  [[fault:KIND]]          a fault for this request (see faults.py)
  [[latency:MS]]          per-token latency for this request
"""

from __future__ import annotations

import json
import re
import secrets
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

ECHO_LIMIT = 200
DEFAULT_MODEL = "gpt-4o-mini"

_TOKEN_RE = re.compile(r"\s*\S+|\s+$")
_REPLY_RE = re.compile(r"\[\[reply:(.*?)\]\]", re.DOTALL)
_TOOL_RE = re.compile(r"\[\[tool:([A-Za-z0-9_.\-]{1,64})(?:\s+(.*?))?\s*\]\]", re.DOTALL)
_FAULT_RE = re.compile(r"\[\[fault:([^\]]+)\]\]")
_LATENCY_RE = re.compile(r"\[\[latency:(\d+(?:\.\d+)?)\]\]")
_ANY_MARKER_RE = re.compile(r"\[\[(?:reply|tool|fault|latency):.*?\]\]", re.DOTALL)


def new_id(prefix: str, nbytes: int = 16) -> str:
    return prefix + secrets.token_hex(nbytes)


def tokenize(text: str) -> list[str]:
    """Word-sized tokens that keep their leading whitespace, so `"".join(tokenize(t)) == t`."""
    return _TOKEN_RE.findall(text)


def count_tokens(text: str) -> int:
    return len(tokenize(text))


def strip_markers(text: str) -> str:
    return _ANY_MARKER_RE.sub("", text).strip()


def fault_marker(text: str) -> str | None:
    match = _FAULT_RE.search(text)
    return match.group(1).strip() if match else None


def latency_marker(text: str) -> float | None:
    match = _LATENCY_RE.search(text)
    return float(match.group(1)) if match else None


def reply_marker(text: str) -> str | None:
    match = _REPLY_RE.search(text)
    return match.group(1) if match else None


# --- reading a request -------------------------------------------------------------------


def content_text(content: Any) -> str:
    """Text of a message `content`: a string or a list of parts (`text`, `input_text`, `output_text`)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = [
            part["text"] for part in content if isinstance(part, dict) and isinstance(part.get("text"), str)
        ]
        return "\n".join(texts)
    return ""


@dataclass
class Turn:
    """The part of a request the reply depends on."""

    user_text: str = ""
    # Set when the conversation ends with a tool result: the model then answers it instead of the user.
    tool_output: str | None = None
    prompt_tokens: int = 0
    tool_names: set[str] = field(default_factory=set)

    @property
    def marker_source(self) -> str:
        """Markers belong to the user's turn; after a tool result they were already acted upon."""
        return "" if self.tool_output is not None else self.user_text


def _function_names(tools: Any) -> set[str]:
    names: set[str] = set()
    for tool in tools if isinstance(tools, list) else []:
        if not isinstance(tool, dict) or tool.get("type") != "function":
            continue
        # Chat Completions nests the function; the Responses API keeps it flat.
        name = (tool.get("function") or {}).get("name") if "function" in tool else tool.get("name")
        if isinstance(name, str):
            names.add(name)
    return names


def chat_turn(body: dict[str, Any]) -> Turn:
    messages = [m for m in body.get("messages") or [] if isinstance(m, dict)]
    turn = Turn(tool_names=_function_names(body.get("tools")))
    for message in messages:
        text = content_text(message.get("content"))
        turn.prompt_tokens += count_tokens(text)
        if message.get("role") == "user":
            turn.user_text = text
    if messages and messages[-1].get("role") == "tool":
        turn.tool_output = content_text(messages[-1].get("content"))
    turn.prompt_tokens = max(turn.prompt_tokens, 1)
    return turn


def responses_turn(body: dict[str, Any]) -> Turn:
    turn = Turn(tool_names=_function_names(body.get("tools")))
    instructions = body.get("instructions")
    if isinstance(instructions, str):
        turn.prompt_tokens += count_tokens(instructions)
    items = body.get("input")
    if isinstance(items, str):
        items = [{"role": "user", "content": items}]
    items = [i for i in items or [] if isinstance(i, dict)]
    for item in items:
        if item.get("type") == "function_call_output":
            text = content_text(item.get("output"))
        else:
            text = content_text(item.get("content"))
            if item.get("role") == "user":
                turn.user_text = text
        turn.prompt_tokens += count_tokens(text)
    if items and items[-1].get("type") == "function_call_output":
        turn.tool_output = content_text(items[-1].get("output"))
    turn.prompt_tokens = max(turn.prompt_tokens, 1)
    return turn


# --- deciding the reply ------------------------------------------------------------------


@dataclass
class ToolCall:
    name: str
    arguments: str
    call_id: str = field(default_factory=lambda: new_id("call_", 12))
    item_id: str = field(default_factory=lambda: new_id("fc_", 16))


@dataclass
class Plan:
    text: str
    tool_calls: list[ToolCall]
    tokens: list[str]
    # True when max tokens cut the text short.
    truncated: bool = False

    @property
    def completion_tokens(self) -> int:
        return len(self.tokens) + sum(count_tokens(call.arguments) for call in self.tool_calls)


def default_reply(turn: Turn) -> str:
    if turn.tool_output is not None:
        return f"Tool result: {turn.tool_output[:ECHO_LIMIT]}"
    return f"Hello from fake OpenAI! You said: {strip_markers(turn.user_text)[:ECHO_LIMIT]}"


def plan_reply(turn: Turn, take_override: Callable[[], str | None], max_tokens: int | None = None) -> Plan:
    """Reply text (marker > queued/sticky override > default) and the tool calls it triggers."""
    text = reply_marker(turn.marker_source)
    if text is None:
        text = take_override()
    tool_source = turn.marker_source if text is None else text
    if text is None:
        text = default_reply(turn)
    calls = [
        ToolCall(name=name, arguments=(args or "{}").strip())
        for name, args in _TOOL_RE.findall(tool_source)
        if name in turn.tool_names
    ]
    if calls:
        return Plan(text="", tool_calls=calls, tokens=[])
    tokens = tokenize(text)
    truncated = max_tokens is not None and 0 < max_tokens < len(tokens)
    if truncated:
        tokens = tokens[:max_tokens]
        text = "".join(tokens)
    return Plan(text=text, tool_calls=[], tokens=tokens, truncated=truncated)


# --- Chat Completions payloads -----------------------------------------------------------


def _chat_usage(prompt_tokens: int, completion_tokens: int) -> dict[str, Any]:
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
        "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": 0,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }


def _chat_finish_reason(plan: Plan) -> str:
    if plan.tool_calls:
        return "tool_calls"
    return "length" if plan.truncated else "stop"


def chat_completion(model: str, turn: Turn, plan: Plan) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": None, "refusal": None, "annotations": []}
    if plan.tool_calls:
        message["tool_calls"] = [
            {"id": c.call_id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
            for c in plan.tool_calls
        ]
    else:
        message["content"] = plan.text
    return {
        "id": new_id("chatcmpl-", 14),
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {"index": 0, "message": message, "logprobs": None, "finish_reason": _chat_finish_reason(plan)}
        ],
        "usage": _chat_usage(turn.prompt_tokens, plan.completion_tokens),
        "service_tier": "default",
        "system_fingerprint": "fp_fake",
    }


@dataclass
class Frame:
    """One SSE frame; `token` frames carry generated text and are paced by the token latency, `tail`
    frames close the generated text (a stream fault that has not fired yet fires before the first one)."""

    data: dict[str, Any]
    token: bool = False
    event: str | None = None
    tail: bool = False


def chat_chunks(model: str, turn: Turn, plan: Plan, include_usage: bool) -> Iterator[Frame]:
    cid, created = new_id("chatcmpl-", 14), int(time.time())

    def chunk(delta: dict[str, Any], finish_reason: str | None = None) -> dict[str, Any]:
        data: dict[str, Any] = {
            "id": cid,
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
            "service_tier": "default",
            "system_fingerprint": "fp_fake",
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}],
        }
        if include_usage:
            data["usage"] = None
        return data

    if plan.tool_calls:
        yield Frame(chunk({"role": "assistant", "content": None, "refusal": None}))
        for index, call in enumerate(plan.tool_calls):
            head = {"index": index, "id": call.call_id, "type": "function"}
            yield Frame(chunk({"tool_calls": [{**head, "function": {"name": call.name, "arguments": ""}}]}))
            for piece in tokenize(call.arguments):
                yield Frame(
                    chunk({"tool_calls": [{"index": index, "function": {"arguments": piece}}]}), token=True
                )
    else:
        yield Frame(chunk({"role": "assistant", "content": "", "refusal": None}))
        for token in plan.tokens:
            yield Frame(chunk({"content": token}), token=True)
    yield Frame(chunk({}, _chat_finish_reason(plan)), tail=True)
    if include_usage:
        final = chunk({})
        final["choices"] = []
        final["usage"] = _chat_usage(turn.prompt_tokens, plan.completion_tokens)
        yield Frame(final, tail=True)


def chat_error_chunk(message: str) -> dict[str, Any]:
    return {"error": {"message": message, "type": "server_error", "param": None, "code": None}}


# --- Responses payloads ------------------------------------------------------------------


def responses_usage(input_tokens: int, output_tokens: int) -> dict[str, Any]:
    return {
        "input_tokens": input_tokens,
        "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
        "output_tokens": output_tokens,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": input_tokens + output_tokens,
    }


def message_item(item_id: str, text: str, status: str) -> dict[str, Any]:
    content = [output_text_part(text)] if status != "in_progress" else []
    return {"id": item_id, "type": "message", "status": status, "role": "assistant", "content": content}


def output_text_part(text: str) -> dict[str, Any]:
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}


def function_call_item(call: ToolCall, status: str) -> dict[str, Any]:
    arguments = "" if status == "in_progress" else call.arguments
    return {
        "id": call.item_id,
        "type": "function_call",
        "status": status,
        "call_id": call.call_id,
        "name": call.name,
        "arguments": arguments,
    }


class ResponseDraft:
    """One Responses API response as it moves from `in_progress` to a final status."""

    def __init__(self, body: dict[str, Any], turn: Turn, plan: Plan) -> None:
        self.body, self.turn, self.plan = body, turn, plan
        self.id = new_id("resp_", 16)
        self.message_id = new_id("msg_", 16)
        self.created_at = int(time.time())
        self.model = str(body.get("model") or DEFAULT_MODEL)

    @property
    def final_status(self) -> str:
        return "incomplete" if self.plan.truncated else "completed"

    def output(self) -> list[dict[str, Any]]:
        if self.plan.tool_calls:
            return [function_call_item(call, "completed") for call in self.plan.tool_calls]
        return [message_item(self.message_id, self.plan.text, self.final_status)]

    def snapshot(self, status: str, *, error: dict[str, Any] | None = None) -> dict[str, Any]:
        body = self.body
        done = status not in ("in_progress", "queued")
        return {
            "id": self.id,
            "object": "response",
            "created_at": self.created_at,
            "completed_at": int(time.time()) if status == "completed" else None,
            "status": status,
            "background": bool(body.get("background", False)),
            "error": error,
            "incomplete_details": {"reason": "max_output_tokens"} if status == "incomplete" else None,
            "instructions": body.get("instructions"),
            "max_output_tokens": body.get("max_output_tokens"),
            "max_tool_calls": body.get("max_tool_calls"),
            "model": self.model,
            "output": self.output() if done and error is None else [],
            "parallel_tool_calls": bool(body.get("parallel_tool_calls", True)),
            "previous_response_id": body.get("previous_response_id"),
            "prompt": body.get("prompt"),
            "reasoning": {"effort": None, "summary": None},
            "service_tier": "default",
            "store": bool(body.get("store", True)),
            "temperature": body.get("temperature", 1.0),
            "text": body.get("text") or {"format": {"type": "text"}, "verbosity": "medium"},
            "tool_choice": body.get("tool_choice", "auto"),
            "tools": body.get("tools") or [],
            "top_p": body.get("top_p", 1.0),
            "truncation": body.get("truncation", "disabled"),
            "usage": responses_usage(self.turn.prompt_tokens, self.plan.completion_tokens) if done else None,
            "user": body.get("user"),
            "metadata": body.get("metadata") or {},
        }

    def events(self) -> Iterator[Frame]:
        """The typed event sequence of a streamed response; `sequence_number` is filled in by the caller."""
        yield _event("response.created", response=self.snapshot("in_progress"))
        yield _event("response.in_progress", response=self.snapshot("in_progress"))
        if self.plan.tool_calls:
            for index, call in enumerate(self.plan.tool_calls):
                yield from self._tool_call_events(index, call)
        else:
            yield from self._message_events()
        final = self.final_status
        yield _event(f"response.{final}", tail=True, response=self.snapshot(final))

    def _message_events(self) -> Iterator[Frame]:
        ids = {"item_id": self.message_id, "output_index": 0, "content_index": 0}
        text = self.plan.text
        yield _event(
            "response.output_item.added",
            output_index=0,
            item=message_item(self.message_id, "", "in_progress"),
        )
        yield _event("response.content_part.added", **ids, part=output_text_part(""))
        for token in self.plan.tokens:
            yield _event("response.output_text.delta", token=True, **ids, delta=token, logprobs=[])
        yield _event("response.output_text.done", tail=True, **ids, text=text, logprobs=[])
        yield _event("response.content_part.done", tail=True, **ids, part=output_text_part(text))
        item = message_item(self.message_id, text, self.final_status)
        yield _event("response.output_item.done", tail=True, output_index=0, item=item)

    def _tool_call_events(self, index: int, call: ToolCall) -> Iterator[Frame]:
        ids = {"item_id": call.item_id, "output_index": index}
        yield _event(
            "response.output_item.added", output_index=index, item=function_call_item(call, "in_progress")
        )
        for piece in tokenize(call.arguments):
            yield _event("response.function_call_arguments.delta", token=True, **ids, delta=piece)
        done = {"name": call.name, "arguments": call.arguments}
        yield _event("response.function_call_arguments.done", tail=True, **ids, **done)
        item = function_call_item(call, "completed")
        yield _event("response.output_item.done", tail=True, output_index=index, item=item)

    def failure_events(self, message: str) -> Iterator[Frame]:
        """An `error` event, then the terminal `response.failed`, as OpenAI sends when generation breaks."""
        yield _event("error", code="server_error", message=message, param=None)
        error = {"code": "server_error", "message": message}
        yield _event("response.failed", response=self.snapshot("failed", error=error))


def _event(event_type: str, *, token: bool = False, tail: bool = False, **fields: Any) -> Frame:
    return Frame(data={"type": event_type, **fields}, token=token, event=event_type, tail=tail)


def sse(frame: Frame, sequence_number: int | None = None) -> bytes:
    data = frame.data
    if sequence_number is not None:
        data = {**data, "sequence_number": sequence_number}
    payload = json.dumps(data, separators=(",", ":"))
    if frame.event:
        return f"event: {frame.event}\ndata: {payload}\n\n".encode()
    return f"data: {payload}\n\n".encode()


SSE_DONE = b"data: [DONE]\n\n"
