"""Conversation history through the local stack, asserted on what the fake OpenAI received."""

from __future__ import annotations

import concurrent.futures
import uuid

from tests.chat_protocol import message_types, parse_frames
from tests.integration.chat_support import client, new_agent, sent_messages, stream_body


def test_history_three_turns_are_sent_upstream(local_stack):
    fake = local_stack.fake_openai
    conversation = f"conv_{uuid.uuid4().hex[:12]}"
    tag = uuid.uuid4().hex[:8]
    fake.queue_replies(f"Reply one {tag}.", f"Reply two {tag}.", f"Reply three {tag}.")

    with client(local_stack) as http:
        for n in ("one", "two", "three"):
            _, body = stream_body(
                http,
                "POST",
                "/chat",
                json={"message": f"Question {n} {tag}", "conversation_id": conversation},
            )
            assert message_types(parse_frames(body))[-1] == "done"

    third = [r for r in fake.requests_to("/v1/responses") if f"Question three {tag}" in str(r["body"])][-1]
    assert sent_messages(third) == [
        ("system", "You are a helpful AI assistant."),
        ("user", f"Question one {tag}"),
        ("assistant", f"Reply one {tag}."),
        ("user", f"Question two {tag}"),
        ("assistant", f"Reply two {tag}."),
        ("user", f"Question three {tag}"),
    ]


def test_history_chat_mode_with_agent_system_message(local_stack):
    fake = local_stack.fake_openai
    agent = new_agent(api_type="chat", system_message="You answer in French.", model="gpt-4o")
    conversation = f"conv_{uuid.uuid4().hex[:12]}"
    tag = uuid.uuid4().hex[:8]

    with client(local_stack) as http:
        for n in ("a", "b"):
            response = http.post(
                "/chat",
                json={
                    "message": f"{n} {tag}",
                    "conversation_id": conversation,
                    "agent_id": agent.id,
                    "stream": False,
                },
            )
            assert response.status_code == 200, response.text
            assert response.json()["agent_id"] == agent.id and response.json()["api_type"] == "chat"

    second = [r for r in fake.requests_to("/v1/chat/completions") if f"b {tag}" in str(r["body"])][-1]
    roles = [role for role, _ in sent_messages(second)]
    assert roles == ["system", "user", "assistant", "user"]
    assert sent_messages(second)[0] == ("system", "You answer in French.")
    assert second["body"]["model"] == "gpt-4o"


def test_history_concurrent_turns_on_one_conversation_are_all_kept(local_stack):
    fake = local_stack.fake_openai
    conversation = f"conv_{uuid.uuid4().hex[:12]}"
    tag = uuid.uuid4().hex[:8]

    def send(i: int) -> None:
        with client(local_stack) as http:
            http.post(
                "/chat", json={"message": f"p{i} {tag}", "conversation_id": conversation, "stream": False}
            )

    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        list(pool.map(send, range(4)))
    with client(local_stack) as http:
        http.post("/chat", json={"message": f"last {tag}", "conversation_id": conversation, "stream": False})

    last = [r for r in fake.requests_to("/v1/responses") if f"last {tag}" in str(r["body"])][-1]
    users = sorted(text for role, text in sent_messages(last) if role == "user")
    assert users == sorted([f"p{i} {tag}" for i in range(4)] + [f"last {tag}"])
