"""The chat service against moto (template tables) and the fake OpenAI: history, limits, faults, usage."""

from __future__ import annotations

import asyncio
import time

import pytest

from chatbot.config import get_settings
from chatbot.dal.agents import AgentRepository
from chatbot.dal.conversations import ConversationRepository
from chatbot.errors import QuotaExceeded, RateLimited
from chatbot.models.chat import QuotaSet, UsageQuery
from chatbot.services.agents import AgentService
from chatbot.services.chat import Caller, parse_chat_request
from chatbot.services.usage import NO_AGENT, NO_KEY
from tests.chat_protocol import message_types, parse_frames
from tests.unit.chat_support import (  # noqa: F401 - fixtures
    chat_tables_fixture,
    collect,
    fake_openai_fixture,
    fake_openai_server_fixture,
    make_service_fixture,
    reply_chat,
    service_fixture,
    stream_chat,
)

pytestmark = pytest.mark.anyio


def user_texts(request: dict) -> list[tuple[str, str]]:
    body = request["body"]
    items = body.get("input") or body.get("messages")
    out = []
    for item in items:
        content = item["content"]
        text = content if isinstance(content, str) else "".join(p.get("text", "") for p in content)
        out.append((item["role"], text))
    return out


# -- history -------------------------------------------------------------------------------------------------
async def test_history_three_turns_are_sent_upstream(service, fake_openai):
    fake_openai.queue_replies("One.", "Two.", "Three.")

    for question in ("first?", "second?", "third?"):
        await stream_chat(service, message=question, conversation_id="conv_hist")

    sent = fake_openai.requests_to("/v1/responses")[-1]
    assert user_texts(sent) == [
        ("system", "You are a helpful AI assistant."),
        ("user", "first?"),
        ("assistant", "One."),
        ("user", "second?"),
        ("assistant", "Two."),
        ("user", "third?"),
    ]


async def test_a_conversation_the_server_names_reads_no_history(service, fake_openai, monkeypatch):
    def no_read(*_args, **_kwargs):
        raise AssertionError("a new conversation has no history to read")

    monkeypatch.setattr(ConversationRepository, "recent_turns", no_read)
    reply = await reply_chat(service, message="hello?")

    monkeypatch.undo()
    turns = ConversationRepository().recent_turns(reply.conversation_id, max_turns=5)
    assert [m["content"] for m in turns[0]["messages"]] == ["hello?", reply.response]


async def test_history_window_trims_old_turns_but_keeps_system(make_service, fake_openai):
    service = make_service(chat_max_messages=3, api_type="chat")
    for i in range(4):
        await reply_chat(service, message=f"q{i}", conversation_id="conv_win")

    sent = user_texts(fake_openai.requests_to("/v1/chat/completions")[-1])
    assert sent[0][0] == "system"
    assert [t for _, t in sent[1:]][:-1] == ["q2", sent[2][1]]
    assert sent[-1] == ("user", "q3")


async def test_history_not_saved_for_failed_reply(service, fake_openai):
    await stream_chat(service, message="boom [[fault:500]]", conversation_id="conv_fail")
    await stream_chat(service, message="mid [[fault:error_event]]", conversation_id="conv_fail")

    assert ConversationRepository().recent_turns("conv_fail", max_turns=10) == []


async def test_history_concurrent_requests_do_not_lose_a_turn(service, fake_openai):
    await asyncio.gather(
        *(stream_chat(service, message=f"parallel {i}", conversation_id="conv_race") for i in range(6))
    )

    turns = ConversationRepository().recent_turns("conv_race", max_turns=20)
    assert sorted(t["messages"][0]["content"] for t in turns) == [f"parallel {i}" for i in range(6)]
    assert all(t["messages"][1]["role"] == "assistant" and t["ttl"] > time.time() for t in turns)


async def test_disconnect_mid_stream_closes_upstream_and_stores_nothing(service, fake_openai):
    # Given a slow reply (50 ms per token)
    request = parse_chat_request(
        {"message": "slow [[latency:50]] " + "word " * 40, "conversation_id": "conv_gone"},
        method="POST",
        settings=service.settings,
    )
    turn = await service.prepare(request, Caller(source_ip="198.51.100.1"))
    frames = service.widget_frames(turn)
    seen = []

    async def consume():
        async for frame in frames:
            seen.append(frame)

    # When the client goes away after the first chunks (the server cancels the response task)
    task = asyncio.ensure_future(consume())
    while sum(b'"chunk"' in f for f in seen) < 2:
        await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await frames.aclose()  # what the route's EventStreamResponse does when the client is gone

    # Then nothing is stored, the turn is accounted as cancelled, and the upstream stream was closed early
    assert turn.finished and turn.status == "cancelled"
    assert ConversationRepository().recent_turns("conv_gone", max_turns=5) == []
    assert service.usage.ledger("agent", NO_AGENT)["errors"] == 1


# -- upstream faults -----------------------------------------------------------------------------------------
async def test_upstream_429_then_success_is_retried_before_first_byte(service, fake_openai):
    fake_openai.queue_faults("429", path="/v1/responses")

    body = await stream_chat(service, message="hello", conversation_id="conv_429")

    assert message_types(parse_frames(body))[-1] == "done"
    assert [r["fault"] for r in fake_openai.requests_to("/v1/responses")] == ["429", None]


@pytest.mark.parametrize("streamed", [True, False])
async def test_a_rotated_openai_key_is_picked_up_after_a_401_without_redeploy(
    make_service, fake_openai, monkeypatch, streamed
):
    import boto3

    # Given a container that read the OpenAI key from its secret, which an operator then replaced
    monkeypatch.delenv("OPENAI_API_KEY")
    secret_id = get_settings().openai_secret_id
    secrets = boto3.client("secretsmanager")
    secrets.create_secret(Name=secret_id, SecretString="sk-invalid-revoked")
    service = make_service()
    await service.gateway.client()
    secrets.put_secret_value(SecretId=secret_id, SecretString="sk-rotated")

    # When a chat's upstream call is refused with 401
    if streamed:
        frames = parse_frames(await stream_chat(service, message="hello", conversation_id="conv_key"))
        outcome = message_types(frames)[-1]
    else:
        outcome = "done" if (await reply_chat(service, message="hello")).response else "error"

    # Then the key is read again and the same request succeeds with the new one
    assert outcome == "done"
    assert len(fake_openai.requests_to("/v1/responses")) == 2


async def test_upstream_503_exhausts_retries_then_error(make_service, fake_openai):
    service = make_service(upstream_max_retries=1)
    fake_openai.queue_faults("503", "503", "503", path="/v1/responses")

    body = await stream_chat(service, message="hello", conversation_id="conv_503")

    assert message_types(parse_frames(body)) == ["error"]
    assert len(fake_openai.requests_to("/v1/responses")) == 2


async def test_upstream_timeout_gives_timeout_error_frame(make_service, fake_openai):
    service = make_service(responses_timeout_seconds=0.5)

    started = time.perf_counter()
    body = await stream_chat(service, message="wait [[fault:timeout:30]]", conversation_id="conv_to")

    frames = parse_frames(body)
    assert frames[1].data["code"] == "upstream_timeout" and frames[-1].event == "close"
    assert time.perf_counter() - started < 20  # our 0.5 s timeout, not the fault's 30 s


async def test_upstream_disconnect_mid_stream_ends_with_error(service, fake_openai):
    body = await stream_chat(
        service, message="cut [[fault:disconnect:2]] more words here", conversation_id="c_dc"
    )

    types = message_types(parse_frames(body))
    assert types[0] == "start" and types[-1] == "error" and "done" not in types
    assert ConversationRepository().recent_turns("c_dc", max_turns=5) == []


# -- rate limit ----------------------------------------------------------------------------------------------
async def test_rate_limit_per_source_ip_with_retry_after(make_service, fake_openai):
    service = make_service(chat_rate_limit=2)
    # A fixed window may roll over once during the test: at most 2 + 2 requests pass before a refusal.
    with pytest.raises(RateLimited) as caught:
        for _ in range(5):
            await reply_chat(service, ip="192.0.2.10", message="hi")

    assert 1 <= caught.value.retry_after <= 60
    # another address is not affected
    await reply_chat(service, ip="192.0.2.11", message="hi")


# -- agents --------------------------------------------------------------------------------------------------
async def test_agent_settings_reach_upstream_and_unknown_agent_falls_back_to_default(service, fake_openai):
    from chatbot.models.agents import AgentCreate

    agents = AgentService(AgentRepository())
    agent = agents.create(
        AgentCreate(
            name="Brief", api_type="chat", model="gpt-4.1", system_message="Be brief.", temperature=0.1
        )
    )
    agents.make_default(agent.id)

    await reply_chat(service, message="hello", agent_id="no-such-agent")

    sent = fake_openai.requests_to("/v1/chat/completions")[-1]["body"]
    assert sent["model"] == "gpt-4.1" and sent["temperature"] == 0.1
    assert sent["messages"][0] == {"role": "system", "content": "Be brief."}


# -- usage and quotas ----------------------------------------------------------------------------------------
async def test_usage_recorded_per_agent_key_and_day(service, fake_openai):
    await reply_chat(service, message="count me")

    report = service.usage.report(UsageQuery())
    assert len(report.rows) == 1
    row = report.rows[0]
    assert (row.agent_id, row.key_id, row.requests, row.errors) == (NO_AGENT, NO_KEY, 1, 0)
    assert row.input_tokens > 0 and row.output_tokens > 0
    assert row.total_tokens == row.input_tokens + row.output_tokens
    ledger = service.usage.ledger("agent", NO_AGENT)
    assert ledger["committed"] == row.total_tokens and ledger["reserved"] == 0


async def test_quota_exhausted_refuses_with_429_until_tomorrow(service, fake_openai):
    service.usage.set_quota(QuotaSet(scope="agent", id=NO_AGENT, daily_tokens=1))
    await reply_chat(service, message="first is admitted")

    with pytest.raises(QuotaExceeded) as caught:
        await reply_chat(service, message="second is not")

    assert caught.value.status == 429 and caught.value.retry_after > 1
    assert "quota" in caught.value.message.lower()


async def test_quota_concurrent_requests_overshoot_by_at_most_one_request(service, fake_openai):
    # Given a quota with room for about one more request
    one = await reply_chat(service, message="measure")
    per_request = service.usage.ledger("agent", NO_AGENT)["total_tokens"]
    service.usage.set_quota(QuotaSet(scope="agent", id=NO_AGENT, daily_tokens=per_request + per_request // 2))
    assert one.response

    # When 20 requests arrive at once
    results = await asyncio.gather(
        *(reply_chat(service, ip=f"10.0.0.{i}", message="measure") for i in range(20)), return_exceptions=True
    )

    # Then some are refused, and the day's total exceeds the quota by at most one request's tokens
    refused = [r for r in results if isinstance(r, QuotaExceeded)]
    assert refused and all(isinstance(r, QuotaExceeded) or r.response for r in results)
    ledger = service.usage.ledger("agent", NO_AGENT)
    assert ledger["total_tokens"] <= per_request + per_request // 2 + per_request
    assert ledger["reserved"] == 0


async def test_quota_per_api_key(service, fake_openai):
    service.usage.set_quota(QuotaSet(scope="key", id="key-1", daily_tokens=0))
    request = parse_chat_request({"message": "hi"}, method="POST", settings=service.settings)

    with pytest.raises(QuotaExceeded, match="API key"):
        await service.prepare(request, Caller(source_ip="1.2.3.4", key_id="key-1"))
    # the refused request left no reservation behind
    assert service.usage.ledger("agent", NO_AGENT)["reserved"] == 0


# -- files ---------------------------------------------------------------------------------------------------
async def test_files_are_uploaded_and_attached_in_responses_mode(make_service, fake_openai):
    import base64

    service = make_service(enable_file_upload=True)
    data = base64.b64encode(b"quarterly numbers").decode()

    body = await stream_chat(
        service, message="summarise", conversation_id="conv_f1", file_data=[{"name": "q.txt", "data": data}]
    )

    assert message_types(parse_frames(body))[-1] == "done"
    uploads = fake_openai.requests_to("/v1/files")
    assert len(uploads) == 1
    sent = fake_openai.requests_to("/v1/responses")[-1]["body"]["input"][-1]["content"]
    assert sent[0] == {"type": "input_text", "text": "summarise"}
    assert sent[1]["type"] == "input_file" and sent[1]["file_id"].startswith("file")
    # the history keeps the file with its message
    stored = ConversationRepository().recent_turns("conv_f1", max_turns=1)[0]["messages"][0]
    assert stored["file_ids"] == [sent[1]["file_id"]]


async def test_files_refused_when_the_agent_uses_chat_completions(make_service, fake_openai):
    import base64

    from chatbot.errors import BadRequest
    from chatbot.models.agents import AgentCreate

    service = make_service(enable_file_upload=True)
    agent = AgentService(AgentRepository()).create(AgentCreate(name="Chatty", api_type="chat"))
    raw = {
        "message": "hi",
        "agent_id": agent.id,
        "file_data": [{"name": "a.txt", "data": base64.b64encode(b"x").decode()}],
    }

    with pytest.raises(BadRequest, match="only supported with api_type=responses"):
        await stream_chat(service, **raw)
    assert fake_openai.requests_to("/v1/files") == []
