"""Helpers of the chat integration tests (the whole local stack, the fake OpenAI in this process).

The chat rate limit counts per source IP, and every test talks to the same stack from this machine; each
test therefore sends from its own loopback address (127.x.y.z, all routed to `lo`), which the gateway
reports as the API Gateway `sourceIp`, exactly as distinct clients would be seen on AWS.
"""

from __future__ import annotations

import itertools
import json
import os
import random
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx

_counter = itertools.count(random.randrange(1, 200) * 1000 + os.getpid() % 997)


def new_ip() -> str:
    n = next(_counter)
    return f"127.{(n >> 16) % 250 + 1}.{(n >> 8) % 256}.{n % 250 + 2}"


@contextmanager
def client(stack: Any, ip: str | None = None, timeout: float = 30.0) -> Iterator[httpx.Client]:
    """An httpx client on the gateway, sending from its own loopback address."""
    transport = httpx.HTTPTransport(local_address=ip or new_ip())
    with httpx.Client(base_url=stack.base_url, transport=transport, timeout=timeout) as http:
        yield http


def stream_body(http: httpx.Client, method: str, path: str, **kwargs: Any) -> tuple[httpx.Response, bytes]:
    with http.stream(method, path, **kwargs) as response:
        body = b"".join(response.iter_raw())
    return response, body


def openai_client(stack: Any, api_key: str, ip: str | None = None) -> Any:
    """The official SDK pointed at the gateway's `/v1` (its own loopback address, no SDK retries)."""
    import httpx2
    import openai

    http_client = httpx2.Client(transport=httpx2.HTTPTransport(local_address=ip or new_ip()), timeout=30)
    return openai.OpenAI(
        base_url=stack.base_url + "/v1", api_key=api_key, max_retries=0, http_client=http_client
    )


def new_agent(**fields: Any) -> Any:
    """An agent created through the agents service (the test process points at the stack's emulator)."""
    from chatbot.models.agents import AgentCreate
    from chatbot.services.agents import AgentService

    fields.setdefault("name", f"agent-{uuid.uuid4().hex[:10]}")
    return AgentService().create(AgentCreate(**fields))


def chat_api_key(scopes: tuple[str, ...] = ("chat",)) -> str:
    """A fresh user and an API key of theirs with the given scopes; returns the key."""
    from chatbot.config import get_settings
    from chatbot.models.auth import ApiKeyCreate, UserCreate
    from chatbot.services.api_keys import ApiKeyService
    from chatbot.services.users import UserService

    settings = get_settings()
    user = UserService.from_settings(settings).create(
        UserCreate(email=f"{uuid.uuid4().hex[:12]}@example.com")
    )
    created = ApiKeyService.from_settings(settings).generate(user.id, ApiKeyCreate(scopes=list(scopes)))
    return created.key


def chat_logs(stack: Any, since: int, *, conversation_id: str | None = None) -> list[dict[str, Any]]:
    return [
        entry
        for entry in stack.logs(since)
        if entry.get("event") in ("chat_completed", "chat_failed")
        and (conversation_id is None or entry.get("conversation_id") == conversation_id)
    ]


def wait_chat_log(stack: Any, since: int, conversation_id: str, timeout: float = 10.0) -> dict[str, Any]:
    """The `chat_completed` / `chat_failed` line of a conversation's request (written after the response)."""
    deadline = time.monotonic() + timeout
    while True:
        found = chat_logs(stack, since, conversation_id=conversation_id)
        if found:
            return found[-1]
        if time.monotonic() > deadline:
            raise TimeoutError(f"no chat log line for {conversation_id}")
        time.sleep(0.05)


def sent_messages(request: dict[str, Any]) -> list[tuple[str, str]]:
    """(role, text) of what an upstream request carried (Responses `input` or Chat `messages`)."""
    body = request["body"]
    items = body.get("input") or body.get("messages") or []
    out = []
    for item in items:
        content = item.get("content")
        text = content if isinstance(content, str) else "".join(p.get("text", "") for p in content or [])
        out.append((item["role"], text))
    return out


def conversation_requests(fake: Any, marker: str) -> list[dict[str, Any]]:
    """Upstream requests whose last user message contains `marker`."""
    found = []
    for request in fake.requests:
        if request["path"] not in ("/v1/responses", "/v1/chat/completions"):
            continue
        users = [text for role, text in sent_messages(request) if role == "user"]
        if users and marker in users[-1]:
            found.append(request)
    return found


def dumps(data: Any) -> str:
    return json.dumps(data, separators=(",", ":"))
