"""The widget protocol through the local gateway: GET and POST streaming against the captured exchange,
non-streaming JSON, errors as `type: error` messages then `close`, headers, token-by-token streaming."""

from __future__ import annotations

import time
import uuid

import pytest

from tests.chat_protocol import Frame, assert_captured_shape, parse_frames
from tests.integration.chat_support import client, stream_body, wait_chat_log


@pytest.fixture
def fake(local_stack):
    fake = local_stack.fake_openai
    fake.set_reply("Hello from fake OpenAI!")
    yield fake
    fake.set_reply(None)
    fake.clear_faults()


def conv() -> str:
    return f"conv_{uuid.uuid4().hex[:12]}"


def test_post_stream_matches_captured_exchange(local_stack, fake):
    conversation = conv()
    with client(local_stack) as http:
        response, body = stream_body(
            http,
            "POST",
            "/chat-unified.php",
            json={"message": "Hello there", "conversation_id": conversation},
        )

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    assert response.headers["cache-control"] == "no-cache"
    assert response.headers["x-accel-buffering"] == "no"
    assert response.headers["access-control-allow-origin"] == "*"
    text = assert_captured_shape(parse_frames(body), conversation_id=conversation)
    assert text == "Hello from fake OpenAI!"
    assert body.endswith(b"event: close\n\n")


def test_get_stream_matches_captured_exchange(local_stack, fake):
    conversation = conv()
    with client(local_stack) as http:
        response, body = stream_body(
            http, "GET", "/chat", params={"message": "Hello there", "conversation_id": conversation}
        )

    assert response.status_code == 200
    assert (
        assert_captured_shape(parse_frames(body), conversation_id=conversation) == "Hello from fake OpenAI!"
    )


def test_get_stream_chat_api_and_tools_as_json_string(local_stack, fake):
    conversation = conv()
    tools = '[{"type":"function","name":"lookup","parameters":{"type":"object"}}]'
    with client(local_stack) as http:
        _, body = stream_body(
            http,
            "GET",
            "/chat",
            params={"message": "Hi", "conversation_id": conversation, "api_type": "chat", "tools": tools},
        )

    assert assert_captured_shape(parse_frames(body), conversation_id=conversation, api_type="chat")
    sent = fake.requests_to("/v1/chat/completions")[-1]["body"]
    assert sent["tools"] == [
        {"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}
    ]


def test_post_non_streaming_json_shape(local_stack, fake):
    conversation = conv()
    with client(local_stack) as http:
        response = http.post(
            "/chat", json={"message": "Hello there", "conversation_id": conversation, "stream": False}
        )

    assert response.status_code == 200 and response.headers["content-type"] == "application/json"
    body = response.json()
    assert list(body) == ["response", "response_id", "conversation_id", "api_type"]
    assert body["response"] == "Hello from fake OpenAI!" and body["response_id"].startswith("resp_")
    assert (body["conversation_id"], body["api_type"]) == (conversation, "responses")


def test_post_form_body_is_accepted(local_stack, fake):
    with client(local_stack) as http:
        response = http.post("/chat", data={"message": "Hello there", "stream": "false", "api_type": "chat"})

    assert response.status_code == 200
    assert response.json()["api_type"] == "chat" and response.json()["conversation_id"].startswith("conv_")


def test_options_preflight(local_stack):
    with client(local_stack) as http:
        response = http.options(
            "/chat", headers={"Origin": "https://site.example", "Access-Control-Request-Method": "POST"}
        )

    assert response.status_code in (200, 204)
    assert response.headers["access-control-allow-origin"] in ("*", "https://site.example")


@pytest.mark.parametrize(
    ("payload", "status", "code"),
    [
        ({}, 400, "message_required"),
        ({"message": "   "}, 400, "message_empty"),
        ({"message": "x" * 4001}, 400, "message_too_long"),
        ({"message": "hi", "conversation_id": "bad id"}, 400, "invalid_conversation_id"),
        ({"message": "hi", "api_type": "nope"}, 400, "invalid_api_type"),
        ({"message": "hi", "tools": "{oops"}, 400, "invalid_tools"),
        ({"message": "hi", "file_data": [{"name": "a.txt", "data": "aGk="}]}, 400, "file_upload_disabled"),
    ],
)
def test_rejections_before_the_stream_are_plain_http_errors(local_stack, payload, status, code):
    with client(local_stack) as http:
        response = http.post("/chat", json=payload)

    assert response.status_code == status
    assert response.headers["content-type"] == "application/json"
    assert response.json()["error"]["code"] == code
    assert response.headers["access-control-allow-origin"] == "*"


def test_invalid_json_body_is_400(local_stack):
    with client(local_stack) as http:
        response = http.post("/chat", content=b"{not json", headers={"content-type": "application/json"})

    assert response.status_code == 400 and response.json()["error"]["code"] == "invalid_json"


def test_upstream_error_is_error_message_then_close(local_stack, fake):
    conversation = conv()
    with client(local_stack) as http:
        response, body = stream_body(
            http, "POST", "/chat", json={"message": "boom [[fault:500]]", "conversation_id": conversation}
        )

    frames = parse_frames(body)
    assert response.status_code == 200
    assert [f.event for f in frames] == ["start", "message", "close"]
    assert frames[1].data == {
        "type": "error",
        "message": "An error occurred while processing your request.",
        "code": "upstream_error",
    }
    assert frames[-1] == Frame("close", None)


def test_non_streaming_upstream_error_is_5xx_json(local_stack, fake):
    with client(local_stack) as http:
        response = http.post("/chat", json={"message": "boom [[fault:500]]", "stream": False})

    assert response.status_code == 502
    assert response.json()["error"]["message"] == "An error occurred while processing your request."


def test_stream_arrives_token_by_token(local_stack, fake):
    # Given a reply of 8 tokens, 150 ms apart
    fake.set_reply("one two three four five six seven eight")
    arrivals: list[float] = []
    with (
        client(local_stack) as http,
        http.stream(
            "POST", "/chat", json={"message": "slowly [[latency:150]]", "conversation_id": conv()}
        ) as response,
    ):
        started = time.perf_counter()
        for raw in response.iter_raw():
            if b'"chunk"' in raw:
                arrivals.append(time.perf_counter() - started)

    # Then chunks arrive spread over time, not in one buffered block at the end
    assert len(arrivals) >= 4
    assert arrivals[-1] - arrivals[0] > 0.5


def test_chat_completed_log_has_metrics_and_no_message_text(local_stack, fake):
    conversation = conv()
    mark = local_stack.mark()
    with client(local_stack) as http:
        stream_body(http, "POST", "/chat", json={"message": "secret words", "conversation_id": conversation})

    entry = wait_chat_log(local_stack, mark, conversation)
    assert entry["event"] == "chat_completed" and entry["status"] == "completed"
    assert entry["api_type"] == "responses" and entry["stream"] is True
    assert entry["duration_ms"] >= entry["ttft_ms"] >= 0
    assert entry["prompt_tokens"] > 0 and entry["completion_tokens"] > 0
    assert entry["total_tokens"] == entry["prompt_tokens"] + entry["completion_tokens"]
    assert "secret words" not in str(local_stack.logs(mark))


def test_chat_failed_log_for_upstream_error(local_stack, fake):
    conversation = conv()
    mark = local_stack.mark()
    with client(local_stack) as http:
        stream_body(
            http, "POST", "/chat", json={"message": "x [[fault:500]]", "conversation_id": conversation}
        )

    entry = wait_chat_log(local_stack, mark, conversation)
    assert entry["event"] == "chat_failed" and entry["error_code"] == "upstream_error"
    assert any(e.get("event") == "upstream_error" for e in local_stack.logs(mark))
