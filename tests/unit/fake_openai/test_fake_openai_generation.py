"""Reply planning, tokens, markers and faults of the fake OpenAI server (no server needed)."""

from __future__ import annotations

import json

import pytest

from infra.local.fake_openai import Fault
from infra.local.fake_openai import generation as gen


@pytest.mark.parametrize("text", ["Hello  there\n you ", "", "   ", "one", " lead", "<b>x</b>\ty"])
def test_tokenize_round_trips_whitespace(text: str) -> None:
    assert "".join(gen.tokenize(text)) == text


def test_default_reply_echoes_last_user_message_without_markers_truncated() -> None:
    turn = gen.chat_turn(
        {
            "messages": [
                {"role": "system", "content": "be nice"},
                {"role": "user", "content": "old"},
                {"role": "user", "content": [{"type": "text", "text": "new [[latency:5]]" + "x" * 300}]},
            ]
        }
    )

    plan = gen.plan_reply(turn, lambda: None)

    assert plan.text == "Hello from fake OpenAI! You said: new " + "x" * 196
    assert "".join(plan.tokens) == plan.text


def test_plan_prefers_marker_then_override_then_echo() -> None:
    marked = gen.responses_turn({"input": "hi [[reply:<script>1</script>]]"})
    plain = gen.responses_turn({"input": "hi"})

    assert gen.plan_reply(marked, lambda: "override").text == "<script>1</script>"
    assert gen.plan_reply(plain, lambda: "override").text == "override"
    assert gen.plan_reply(plain, lambda: None).text == "Hello from fake OpenAI! You said: hi"


def test_tool_marker_calls_only_offered_functions() -> None:
    body = {
        "input": [
            {"role": "user", "content": [{"type": "input_text", "text": '[[tool:lookup {"q": [1]}]]'}]}
        ],
        "tools": [{"type": "function", "name": "lookup"}],
    }

    offered = gen.plan_reply(gen.responses_turn(body), lambda: None)
    not_offered = gen.plan_reply(gen.responses_turn({**body, "tools": []}), lambda: None)

    assert [(c.name, json.loads(c.arguments)) for c in offered.tool_calls] == [("lookup", {"q": [1]})]
    assert offered.text == ""
    assert not_offered.tool_calls == []


def test_tool_result_is_answered_and_user_markers_ignored() -> None:
    body = {
        "messages": [
            {"role": "user", "content": "[[tool:f]] [[fault:500]]"},
            {"role": "assistant", "tool_calls": []},
            {"role": "tool", "tool_call_id": "c1", "content": "42"},
        ],
        "tools": [{"type": "function", "function": {"name": "f"}}],
    }

    turn = gen.chat_turn(body)

    assert gen.fault_marker(turn.marker_source) is None
    assert gen.plan_reply(turn, lambda: None).text == "Tool result: 42"


def test_max_tokens_truncates_and_marks_incomplete() -> None:
    body = {"model": "m", "input": "a b c d e", "max_output_tokens": 3}
    turn = gen.responses_turn(body)
    plan = gen.plan_reply(turn, lambda: None, max_tokens=3)

    draft = gen.ResponseDraft(body, turn, plan)

    assert plan.text == "Hello from fake"
    assert draft.snapshot(draft.final_status)["incomplete_details"] == {"reason": "max_output_tokens"}
    assert gen.chat_completion("m", turn, plan)["choices"][0]["finish_reason"] == "length"


def test_response_events_carry_the_full_text_once() -> None:
    body = {"model": "m", "input": "hi"}
    turn = gen.responses_turn(body)
    draft = gen.ResponseDraft(body, turn, gen.plan_reply(turn, lambda: None))

    frames = list(draft.events())

    deltas = "".join(f.data["delta"] for f in frames if f.event == "response.output_text.delta")
    assert deltas == draft.plan.text
    assert frames[-1].data["response"]["output"][0]["content"][0]["text"] == deltas
    assert gen.sse(frames[0], 0).startswith(b"event: response.created\ndata: {")


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("429", Fault("status", status=429)),
        ("429:2", Fault("status", status=429, arg=2.0)),
        (" Timeout:1.5 ", Fault("timeout", arg=1.5)),
        ("disconnect", Fault("disconnect")),
        ("error_event", Fault("error_event")),
        ("quota", Fault("quota", status=429)),
        ("none", Fault("none")),
    ],
)
def test_fault_parse_accepts_known_kinds(spec: str, expected: Fault) -> None:
    assert Fault.parse(spec) == expected


@pytest.mark.parametrize("spec", ["200", "boom", "status", "timeout:soon"])
def test_fault_parse_rejects_unknown(spec: str) -> None:
    with pytest.raises(ValueError):
        Fault.parse(spec)
