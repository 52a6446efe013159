"""Upstream faults (the fake's fault injection) and client disconnects: the client always gets a clean end,
and the conversation's history is never corrupted (no partial or failed turn is stored)."""

from __future__ import annotations

import concurrent.futures
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from tests.chat_protocol import Frame, message_types, parse_frames
from tests.integration.chat_support import client, new_ip, sent_messages, stream_body, wait_chat_log


@pytest.fixture
def fake(local_stack):
    fake = local_stack.fake_openai
    yield fake
    fake.clear_faults()
    fake.set_reply(None)


def conv() -> str:
    return f"conv_{uuid.uuid4().hex[:12]}"


def history_sent_after(local_stack, http, conversation: str) -> list[tuple[str, str]]:
    """Send one more message in `conversation` and return the history the upstream received with it."""
    tag = uuid.uuid4().hex[:8]
    response = http.post(
        "/chat", json={"message": f"follow-up {tag}", "conversation_id": conversation, "stream": False}
    )
    assert response.status_code == 200, response.text
    request = [
        r
        for r in local_stack.fake_openai.requests_to("/v1/responses")
        if f"follow-up {tag}" in str(r["body"])
    ]
    return sent_messages(request[-1])[1:-1]  # without the system message and the follow-up itself


def test_upstream_429_then_success(local_stack, fake):
    conversation = conv()
    fake.queue_faults("429", path="/v1/responses")
    mark = local_stack.mark()

    with client(local_stack) as http:
        _, body = stream_body(
            http, "POST", "/chat", json={"message": "retry me", "conversation_id": conversation}
        )

        frames = parse_frames(body)
        assert message_types(frames)[0] == "start" and message_types(frames)[-1] == "done"
        assert "error" not in message_types(frames)
        attempts = [r for r in fake.requests_to("/v1/responses") if "retry me" in str(r["body"])]
        assert [a["fault"] for a in attempts[-2:]] == ["429", None]
        assert any(
            e.get("event") == "upstream_error" and e.get("status") == 429 for e in local_stack.logs(mark)
        )
        # the completed turn is in the history, once
        assert history_sent_after(local_stack, http, conversation)[0] == ("user", "retry me")


def test_upstream_500_clean_end_and_nothing_stored(local_stack, fake):
    conversation = conv()
    with client(local_stack) as http:
        response, body = stream_body(
            http, "POST", "/chat", json={"message": "x [[fault:500]]", "conversation_id": conversation}
        )

        assert response.status_code == 200
        frames = parse_frames(body)
        assert [f.event for f in frames] == ["start", "message", "close"]
        assert frames[1].data["type"] == "error" and frames[1].data["code"] == "upstream_error"
        assert history_sent_after(local_stack, http, conversation) == []


def test_upstream_disconnect_mid_stream_clean_end_and_nothing_stored(local_stack, fake):
    conversation = conv()
    fake.set_reply("one two three four five six")
    with client(local_stack) as http:
        _, body = stream_body(
            http,
            "POST",
            "/chat",
            json={"message": "x [[fault:disconnect:2]]", "conversation_id": conversation},
        )

        frames = parse_frames(body)
        assert message_types(frames) == ["start", "chunk", "chunk", "error"]
        assert frames[-1] == Frame("close", None)
        fake.set_reply(None)
        assert history_sent_after(local_stack, http, conversation) == []


def test_upstream_timeout_clean_end_and_nothing_stored(local_stack, fake, monkeypatch):
    # Our own timeout (not the fake's): the chat app served alone with a 1 s upstream timeout, against the
    # stack's emulator and fake OpenAI.
    conversation = conv()
    with serve_chat_app(
        monkeypatch,
        OPENAI_BASE_URL=fake.api_base,
        RESPONSES_TIMEOUT_SECONDS="1",
        UPSTREAM_MAX_RETRIES="0",
    ) as base_url:
        import httpx

        started = time.perf_counter()
        with httpx.Client(base_url=base_url, timeout=30) as http:
            _, body = stream_body(
                http,
                "POST",
                "/chat",
                json={"message": "x [[fault:timeout:20]]", "conversation_id": conversation},
            )
        elapsed = time.perf_counter() - started

    frames = parse_frames(body)
    assert [f.event for f in frames] == ["start", "message", "close"]
    assert frames[1].data["type"] == "error" and frames[1].data["code"] == "upstream_timeout"
    assert 0.9 < elapsed < 10
    with client(local_stack) as http:
        assert history_sent_after(local_stack, http, conversation) == []


def test_client_disconnect_mid_stream_stops_the_reply(local_stack, fake):
    # Given a reply of 30 tokens, 100 ms apart (3 s)
    conversation = conv()
    fake.set_reply(" ".join(f"w{i}" for i in range(30)))
    mark = local_stack.mark()

    # When the client reads two chunks and goes away
    with (
        client(local_stack) as http,
        http.stream(
            "POST", "/chat", json={"message": "slow [[latency:100]]", "conversation_id": conversation}
        ) as response,
    ):
        chunks = 0
        for raw in response.iter_raw():
            chunks += raw.count(b'"chunk"')
            if chunks >= 2:
                break

    # Then the function stops early (cancelled, well before the 3 s reply would have ended) and stores nothing
    entry = wait_chat_log(local_stack, mark, conversation)
    assert entry["event"] == "chat_failed" and entry["status"] == "cancelled"
    assert entry["duration_ms"] < 2500
    fake.set_reply(None)
    with client(local_stack) as http:
        assert history_sent_after(local_stack, http, conversation) == []


def test_rate_limit_per_source_ip_ignores_x_forwarded_for(local_stack, fake):
    # Given one address sending until it is refused (60 per fixed minute window, aligned to the epoch):
    # start early in a window so the follow-up requests below land in the same one
    if time.time() % 60 > 35:
        time.sleep(60 - time.time() % 60 + 0.1)
    ip = new_ip()

    def send(_: int) -> int:
        with client(local_stack, ip=ip) as http:
            return http.post("/chat", json={"message": "hi", "stream": False}).status_code

    statuses: list[int] = []
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        while 429 not in statuses and len(statuses) < 240:
            statuses += pool.map(send, range(16))
    assert 429 in statuses and set(statuses) == {200, 429}, statuses
    assert statuses.count(200) >= 60

    # When it sends more right away, even claiming another address in X-Forwarded-For
    with client(local_stack, ip=ip) as http:
        limited = http.post("/chat", json={"message": "hi"}, headers={"X-Forwarded-For": "198.51.100.9"})
        limited_stream = http.get("/chat", params={"message": "hi"})
    with client(local_stack) as http:
        other = http.post("/chat", json={"message": "hi", "stream": False})

    # Then it is refused before any stream starts, as JSON with Retry-After; other addresses are not affected
    assert limited.status_code == 429 and limited_stream.status_code == 429
    assert limited.json()["error"]["code"] == "rate_limited"
    assert limited_stream.headers["content-type"] == "application/json"
    assert 1 <= int(limited.headers["retry-after"]) <= 60
    assert other.status_code == 200


# -- the chat app alone, with its own settings ---------------------------------------------------------------
@contextmanager
def serve_chat_app(monkeypatch: pytest.MonkeyPatch, **env: str) -> Iterator[str]:
    """functions/chat/app.py under uvicorn in this process (what the gateway mounts), with `env` on top of
    the stack's environment (which must include OPENAI_BASE_URL: this process has none of its own)."""
    import uvicorn

    from chatbot import aws

    assert "OPENAI_BASE_URL" in env
    from chatbot.config import get_settings
    from chatbot.services.chat import reset_chat_service

    for key, value in env.items():
        monkeypatch.setenv(key, value)
    get_settings.cache_clear()
    aws.reset()
    reset_chat_service()
    from functions.chat.app import app

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_config=None, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 10
        while not server.started:
            assert time.monotonic() < deadline, "chat app did not start"
            time.sleep(0.01)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()
        reset_chat_service()
        for key in env:
            monkeypatch.delenv(key)
        get_settings.cache_clear()
