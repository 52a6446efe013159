"""Fixtures of the chat service tests: the fake OpenAI on a free port, and a chat service against it.

The service runs in this process against moto (`aws_env`, the template's tables) and the fake OpenAI over
real HTTP through the official SDK; only OpenAI is faked. Test modules import the fixtures they use.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest

from chatbot.config import get_settings
from chatbot.services.chat import Caller, ChatService, parse_chat_request
from tests.unit.resources_env import mocked_tables, serialised_dynamodb


@pytest.fixture(name="fake_openai_server", scope="module")
def fake_openai_server_fixture() -> Iterator[Any]:
    from infra.local.fake_openai.server import FakeOpenAI

    with FakeOpenAI(token_latency_ms=0, retry_after_s=0.01) as fake:
        yield fake


@pytest.fixture(name="fake_openai")
def fake_openai_fixture(fake_openai_server: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """The module's fake OpenAI, reset for this test (requests, faults, replies), as OPENAI_BASE_URL."""
    fake_openai_server.reset()
    monkeypatch.setenv("OPENAI_BASE_URL", fake_openai_server.api_base)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    yield fake_openai_server
    fake_openai_server.reset()


@pytest.fixture(name="chat_tables")
def chat_tables_fixture() -> Iterator[dict[str, str]]:
    """moto in-process with the tables of the chat path (from template.yaml), applying one DynamoDB request
    at a time as DynamoDB's per-item atomicity guarantees (moto alone does not, under threads)."""
    tables = ("AgentsTable", "ConversationsTable", "RateLimitsTable", "UsageTable")
    with mocked_tables(*tables) as names, serialised_dynamodb():
        yield names


@pytest.fixture(name="make_service")
async def make_service_fixture(
    chat_tables: Any, fake_openai: Any
) -> AsyncIterator[Callable[..., ChatService]]:
    """`make_service(**settings_overrides)` → a fresh ChatService (own caches and upstream client).

    Async, so the upstream clients are closed in the test's own event loop (the SDK would otherwise close
    them from a later test's loop when they are garbage-collected).
    """
    made: list[ChatService] = []

    def make(**overrides: Any) -> ChatService:
        settings = get_settings().model_copy(update={"upstream_retry_base_seconds": 0.01, **overrides})
        made.append(ChatService(settings))
        return made[-1]

    yield make
    for service in made:
        await service.gateway.aclose()


@pytest.fixture(name="service")
def service_fixture(make_service: Callable[..., ChatService]) -> ChatService:
    return make_service()


async def collect(frames: AsyncIterator[bytes]) -> bytes:
    return b"".join([frame async for frame in frames])


async def stream_chat(service: ChatService, ip: str = "203.0.113.7", **raw: Any) -> bytes:
    """POST-style streamed request through prepare + widget_frames; returns the whole SSE body."""
    request = parse_chat_request(raw, method="POST", settings=service.settings)
    turn = await service.prepare(request, Caller(source_ip=ip))
    return await collect(service.widget_frames(turn))


async def reply_chat(service: ChatService, ip: str = "203.0.113.7", **raw: Any) -> Any:
    request = parse_chat_request({**raw, "stream": False}, method="POST", settings=service.settings)
    turn = await service.prepare(request, Caller(source_ip=ip))
    return await service.widget_reply(turn)
