"""The upstream readers work on the JSON OpenAI sends (the SDK's typed models are skipped for speed)."""

from __future__ import annotations

import pytest

from chatbot.errors import UpstreamError
from chatbot.models.chat import TokenUsage
from chatbot.upstream.chat_gateway import (
    Finished,
    Started,
    TextDelta,
    ToolActivity,
    _ChatChunks,
    _output_text,
    _ResponsesEvents,
)


def _feed(handler, events):
    return [e for event in events for e in handler.feed(event)]


def test_responses_events_become_neutral_events():
    handler = _ResponsesEvents()
    out = _feed(
        handler,
        [
            {"type": "response.created", "response": {"id": "resp_1", "status": "in_progress"}},
            {"type": "response.output_text.delta", "delta": "Hel"},
            {"type": "response.output_text.delta", "delta": "lo"},
            {
                "type": "response.output_item.added",
                "item": {"type": "function_call", "id": "fc_1", "call_id": "call_1", "name": "lookup"},
            },
            {"type": "response.function_call_arguments.delta", "item_id": "fc_1", "delta": '{"q":'},
            {"type": "response.function_call_arguments.done", "item_id": "fc_1", "arguments": '{"q":1}'},
            {
                "type": "response.completed",
                "response": {
                    "id": "resp_1",
                    "status": "completed",
                    "usage": {"input_tokens": 7, "output_tokens": 2},
                },
            },
        ],
    )
    assert out == [
        Started("resp_1"),
        TextDelta("Hel"),
        TextDelta("lo"),
        ToolActivity("lookup", "call_1", '{"q":'),
        ToolActivity("lookup", "call_1", '{"q":1}', status="completed"),
    ]
    assert handler.finish() == Finished("completed", "resp_1", TokenUsage(input_tokens=7, output_tokens=2))


@pytest.mark.parametrize(
    "event",
    [
        "not an object",
        None,
        {"type": "response.created", "response": None},
        {"type": "response.output_text.delta", "delta": None},
        {"type": "response.output_item.added", "item": ["x"]},
        {"type": "response.completed", "response": {"usage": "lots"}},
    ],
)
def test_responses_events_take_odd_json_without_failing(event):
    _ResponsesEvents().feed(event)


def test_responses_error_event_raises():
    with pytest.raises(UpstreamError):
        _ResponsesEvents().feed({"type": "error", "message": "boom"})


def test_a_stream_without_completion_is_incomplete():
    handler = _ResponsesEvents()
    handler.feed({"type": "response.output_text.delta", "delta": "Hi"})
    with pytest.raises(UpstreamError) as err:
        handler.finish()
    assert err.value.code == "incomplete_stream"


def test_chat_chunks_become_neutral_events():
    handler = _ChatChunks()
    out = _feed(
        handler,
        [
            {"choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]},
            {"choices": [{"index": 0, "delta": {"content": "Hi"}}]},
            {
                "choices": [
                    {
                        "index": 0,
                        "delta": {
                            "tool_calls": [
                                {
                                    "index": 0,
                                    "id": "call_1",
                                    "function": {"name": "lookup", "arguments": "{}"},
                                }
                            ]
                        },
                    }
                ]
            },
            {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]},
            {"choices": [], "usage": {"prompt_tokens": 5, "completion_tokens": 1}},
            "garbage",
        ],
    )
    assert out == [Started(None), TextDelta(""), TextDelta("Hi"), ToolActivity("lookup", "call_1", "{}")]
    assert handler.finish() == Finished("stop", None, TokenUsage(input_tokens=5, output_tokens=1))


def test_output_text_joins_the_message_parts_only():
    response = {
        "output": [
            {"type": "file_search_call", "id": "fs_1"},
            {"type": "message", "content": [{"type": "output_text", "text": "Hello "}, {"type": "refusal"}]},
            {"type": "message", "content": [{"type": "output_text", "text": "there"}]},
            "odd",
        ]
    }
    assert _output_text(response) == "Hello there"
    assert _output_text({}) == ""
