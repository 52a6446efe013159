"""Usage accounting and daily token quotas through the local stack, under concurrency."""

from __future__ import annotations

import concurrent.futures
import time

import openai
import pytest

from chatbot.models.chat import QuotaSet, UsageQuery
from chatbot.services.usage import NO_KEY, UsageService
from tests.integration.chat_support import chat_api_key, client, new_agent, openai_client


def settled(usage: UsageService, scope: str, ident: str, *, requests: int, timeout: float = 15.0) -> dict:
    """The ledger once `requests` requests are recorded and no reservation is left (usage is written after
    the response): wait for two equal reads in which the ledger adds up."""
    deadline = time.monotonic() + timeout
    previous = None
    while True:
        ledger = usage.ledger(scope, ident)
        tokens = ledger["input_tokens"] + ledger["output_tokens"]
        complete = (
            ledger["requests"] >= requests
            and ledger["reserved"] == 0
            and ledger["committed"] == ledger["total_tokens"] == tokens
        )
        if complete and ledger == previous:
            return ledger
        previous = ledger
        assert time.monotonic() < deadline, ledger
        time.sleep(0.05)


def ask(local_stack, agent_id: str) -> tuple[int, dict]:
    with client(local_stack) as http:
        response = http.post(
            "/chat", json={"message": "How many tokens?", "agent_id": agent_id, "stream": False}
        )
    return response.status_code, response.json() | {"retry-after": response.headers.get("retry-after")}


def test_quota_concurrent_requests_overshoot_by_at_most_one_request(local_stack):
    usage = UsageService()
    # Given the tokens one request costs (measured on a twin agent: same settings, no quota)
    twin, agent = new_agent(api_type="chat"), new_agent(api_type="chat")
    assert ask(local_stack, twin.id)[0] == 200
    per_request = settled(usage, "agent", twin.id, requests=1)["total_tokens"]
    assert per_request > 0

    # and an agent whose daily quota has room for about half a request after its first one
    quota = per_request + per_request // 2
    usage.set_quota(QuotaSet(scope="agent", id=agent.id, daily_tokens=quota))
    assert ask(local_stack, agent.id)[0] == 200

    # When 20 requests arrive at once
    with concurrent.futures.ThreadPoolExecutor(20) as pool:
        results = list(pool.map(lambda _: ask(local_stack, agent.id), range(20)))

    # Then some were admitted, the rest refused with 429 quota_exceeded and Retry-After ...
    admitted = [body for status, body in results if status == 200]
    refused = [body for status, body in results if status == 429]
    assert len(admitted) + len(refused) == 20 and admitted and refused
    assert {body["error"]["code"] for body in refused} == {"quota_exceeded"}
    assert all(int(body["retry-after"]) >= 1 for body in refused)
    # ... and the day's total overshoots the quota by at most one request's tokens
    ledger = settled(usage, "agent", agent.id, requests=1 + len(admitted))
    assert ledger["total_tokens"] == (1 + len(admitted)) * per_request
    assert ledger["total_tokens"] <= quota + per_request
    assert ledger["committed"] == ledger["total_tokens"]


def test_quota_exhausted_refuses_every_later_request(local_stack):
    usage = UsageService()
    agent = new_agent(api_type="chat")
    usage.set_quota(QuotaSet(scope="agent", id=agent.id, daily_tokens=0))

    status, body = ask(local_stack, agent.id)

    assert status == 429 and body["error"]["code"] == "quota_exceeded"
    assert "quota" in body["error"]["message"].lower()
    assert int(body["retry-after"]) > 1  # the quota resets at midnight UTC


def test_usage_recorded_per_agent_key_and_day_for_the_openai_api(local_stack):
    usage = UsageService()
    agent = new_agent(api_type="responses")
    key = chat_api_key()
    sdk = openai_client(local_stack, key)

    completion = sdk.chat.completions.create(model=agent.id, messages=[{"role": "user", "content": "Hi"}])

    ledger = settled(usage, "agent", agent.id, requests=1)
    assert ledger["input_tokens"] == completion.usage.prompt_tokens
    assert ledger["output_tokens"] == completion.usage.completion_tokens
    # The three usage writes run concurrently after the response: wait for the per-day row too.
    deadline = time.monotonic() + 10
    total = completion.usage.total_tokens
    while time.monotonic() < deadline:
        rows = usage.report(UsageQuery(agent_id=agent.id)).rows
        if rows and rows[0].total_tokens == total and rows[0].requests == 1:
            break
        time.sleep(0.05)
    assert len(rows) == 1 and rows[0].requests == 1
    assert rows[0].key_id == _key_id_of(key) != NO_KEY


def test_quota_per_api_key_on_the_openai_api(local_stack):
    usage = UsageService()
    agent = new_agent(api_type="chat")
    key = chat_api_key()
    usage.set_quota(QuotaSet(scope="key", id=_key_id_of(key), daily_tokens=0))

    with pytest.raises(openai.RateLimitError) as caught:
        openai_client(local_stack, key).chat.completions.create(
            model=agent.id, messages=[{"role": "user", "content": "Hi"}]
        )

    assert caught.value.code == "insufficient_quota"
    assert "API key" in caught.value.message


def _key_id_of(key: str) -> str:
    from chatbot.services.api_keys import digest_of, key_id_of

    return key_id_of(digest_of(key))
