"""The widget protocol: frame encoding, the captured exchange, errors as messages, `close` always last."""

from __future__ import annotations

import json

import pytest

from chatbot.errors import QuotaExceeded, UpstreamError, UpstreamTimeout
from chatbot.services import sse
from chatbot.services.chat import error_payload
from tests.chat_protocol import Frame, assert_captured_shape, message_types, parse_frames
from tests.unit.chat_support import (  # noqa: F401 - fixtures
    chat_tables_fixture,
    fake_openai_fixture,
    fake_openai_server_fixture,
    make_service_fixture,
    reply_chat,
    service_fixture,
    stream_chat,
)

pytestmark = pytest.mark.anyio


# -- encoding ------------------------------------------------------------------------------------------------
def test_frame_encodes_event_and_compact_json():
    assert sse.frame("start", {"a": 1, "b": "x"}) == b'event: start\ndata: {"a":1,"b":"x"}\n\n'


def test_frame_close_has_no_data_line():
    assert sse.CLOSE == b"event: close\n\n"
    assert sse.frame("close") == sse.CLOSE


def test_frame_escapes_like_php_json_encode():
    # Given text with a slash, non-ASCII and a newline
    encoded = sse.frame("message", {"content": "a/b é\n😀"})

    # Then it is one line, ASCII only, `/` escaped as PHP does by default
    assert encoded == b'event: message\ndata: {"content":"a\\/b \\u00e9\\n\\ud83d\\ude00"}\n\n'
    assert json.loads(encoded.split(b"data: ")[1]) == {"content": "a/b é\n😀"}


def test_openai_chunk_and_done_frames():
    assert sse.openai_chunk({"x": 1}) == b'data: {"x":1}\n\n'
    assert sse.OPENAI_DONE == b"data: [DONE]\n\n"


def test_error_payload_hides_server_side_details():
    assert error_payload(UpstreamError()) == {
        "type": "error",
        "message": "An error occurred while processing your request.",
        "code": "upstream_error",
    }
    assert error_payload(UpstreamTimeout())["code"] == "upstream_timeout"
    assert (
        error_payload(QuotaExceeded("Daily token quota exceeded"))["message"] == "Daily token quota exceeded"
    )


def test_parse_frames_rejects_malformed_body():
    with pytest.raises(AssertionError):
        parse_frames("event: start\ndata: {}\n")
    assert parse_frames("event: close\n\n") == [Frame("close", None)]


# -- against the fake OpenAI ---------------------------------------------------------------------------------
async def test_stream_responses_matches_captured_exchange(service, fake_openai):
    # Given the fake answers with the captured exchange's text
    fake_openai.set_reply("Hello from fake OpenAI!")

    # When the captured request is replayed
    body = await stream_chat(service, message="Hello there", conversation_id="conv_test1")

    # Then the frames are the original's, field by field
    text = assert_captured_shape(parse_frames(body), conversation_id="conv_test1")
    assert text == "Hello from fake OpenAI!"
    chunks = [
        f.data["content"] for f in parse_frames(body) if f.event == "message" and f.data["type"] == "chunk"
    ]
    assert chunks == ["Hello", " from", " fake", " OpenAI!"]


async def test_stream_chat_api_matches_original_chat_mode(service, fake_openai):
    fake_openai.set_reply("Hi there")

    body = await stream_chat(service, message="Hello", conversation_id="conv_chat1", api_type="chat")

    frames = parse_frames(body)
    assert assert_captured_shape(frames, conversation_id="conv_chat1", api_type="chat") == "Hi there"


async def test_stream_assistants_is_an_alias_of_responses(service, fake_openai):
    body = await stream_chat(service, message="Hello", conversation_id="conv_a1", api_type="assistants")

    assert parse_frames(body)[0].data["api_type"] == "responses"


async def test_stream_upstream_error_is_a_message_then_close(service, fake_openai):
    # Given an upstream that fails with 500 on every attempt
    body = await stream_chat(service, message="Hi [[fault:500]]", conversation_id="conv_err1")

    # Then the client gets an error *message* frame (not a named error event), then close
    frames = parse_frames(body)
    assert [f.event for f in frames] == ["start", "message", "close"]
    assert frames[1].data == {
        "type": "error",
        "message": "An error occurred while processing your request.",
        "code": "upstream_error",
    }


async def test_stream_error_mid_reply_ends_cleanly(service, fake_openai):
    body = await stream_chat(service, message="Hi [[fault:error_event]]", conversation_id="conv_err2")

    frames = parse_frames(body)
    assert message_types(frames)[0] == "start"
    assert message_types(frames)[-1] == "error"
    assert frames[-1] == Frame("close", None)


async def test_reply_non_streaming_has_the_original_json_shape(service, fake_openai):
    fake_openai.set_reply("Hello from fake OpenAI!")

    reply = await reply_chat(service, message="Hello there", conversation_id="conv_test3")

    body = reply.model_dump(exclude_none=True)
    assert list(body) == ["response", "response_id", "conversation_id", "api_type"]
    assert body["response"] == "Hello from fake OpenAI!"
    assert body["response_id"].startswith("resp_")
    assert body["conversation_id"] == "conv_test3" and body["api_type"] == "responses"


async def test_reply_chat_mode_has_no_response_id_and_echoes_agent_id(service, fake_openai):
    reply = await reply_chat(
        service, message="Hello", conversation_id="conv_c3", api_type="chat", agent_id="nope"
    )

    body = reply.model_dump(exclude_none=True)
    assert list(body) == ["response", "conversation_id", "api_type", "agent_id"]
    assert body["agent_id"] == "nope"


async def test_stream_prompt_unavailable_gives_notice_and_retries_without_prompt(service, fake_openai):
    body = await stream_chat(service, message="Hi", conversation_id="conv_p1", prompt_id="pmpt_missing_1")

    frames = parse_frames(body)
    notices = [f.data for f in frames if f.event == "message" and f.data["type"] == "notice"]
    assert notices == [{"type": "notice", "message": "Prompt unavailable. Retrying without prompt."}]
    assert message_types(frames)[-1] == "done"
    sent = [r["body"] for r in fake_openai.requests_to("/v1/responses")]
    assert [("prompt" in b) for b in sent] == [True, False]


async def test_stream_unsupported_model_falls_back_with_notice(make_service, fake_openai):
    service = make_service(responses_model="unsupported-model")

    body = await stream_chat(service, message="Hi", conversation_id="conv_m1")

    frames = parse_frames(body)
    assert {"type": "notice", "message": "Model unsupported. Falling back to gpt-4o-mini."} in [
        f.data for f in frames if f.event == "message"
    ]
    assert message_types(frames)[-1] == "done"
    assert [r["body"]["model"] for r in fake_openai.requests_to("/v1/responses")] == [
        "unsupported-model",
        "gpt-4o-mini",
    ]


async def test_stream_function_tool_is_surfaced_as_tool_call(service, fake_openai):
    tools = [{"type": "function", "name": "get_weather", "parameters": {"type": "object", "properties": {}}}]

    body = await stream_chat(
        service,
        message='Weather? [[tool:get_weather {"city":"Paris"}]]',
        conversation_id="conv_t1",
        tools=tools,
    )

    calls = [f.data for f in parse_frames(body) if f.event == "message" and f.data["type"] == "tool_call"]
    assert calls, parse_frames(body)
    assert calls[-1]["tool_name"] == "get_weather"
    assert json.loads(calls[-1]["arguments"]) == {"city": "Paris"}
    assert calls[-1]["call_id"].startswith("call_") and calls[-1]["status"] == "completed"
