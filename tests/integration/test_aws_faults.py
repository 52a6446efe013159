"""AWS faults without mocks: the app's boto3 clients talk to the emulator through `infra.local.fault_proxy`,
which throttles, fails, slows or drops chosen requests. Under each fault kind: chat answers or fails cleanly
within a bound and never stores half a turn, the worker loses no job (completed + dead = enqueued, each
dead job's message in the DLQ), admin writes are all-or-nothing, and a backup fails loudly leaving the
previous one intact.

The template's runtime resources are provisioned straight into the emulator; only the code under test sees
the proxy (AWS_ENDPOINT_URL). botocore's own retries (standard mode, 3 retries) stay on: they are part of
what is under test.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from infra.local.fault_proxy import FaultProxy
from tests.conftest import provision_into_emulator, reset_caches
from tests.log_capture import json_lines, powertools_output
from tests.unit.chat_support import (  # noqa: F401 - fixtures
    fake_openai_fixture,
    fake_openai_server_fixture,
    reply_chat,
    stream_chat,
)

pytestmark = pytest.mark.slow

# Every fault kind, at a rate that makes some calls fail even after botocore's retries.
FAULT_KINDS = ("throttle", "error", "drop", "drop_after", "slow")
RATE = {"throttle": 0.3, "error": 0.3, "drop": 0.25, "drop_after": 0.25, "slow": 0.5}
SLOW_S = 0.3
BOUND_S = 30  # no request may take longer: botocore's timeouts and retries end well before


@pytest.fixture(scope="module")
def proxied(emulator: Any) -> Iterator[FaultProxy]:
    """The runtime resources in the emulator; this process's AWS clients go through the proxy."""
    with pytest.MonkeyPatch.context() as env, FaultProxy(emulator.url, seed=20240601) as proxy:
        provision_into_emulator(emulator.url, env, f"faults-{uuid.uuid4().hex[:6]}")
        env.setenv("AWS_ENDPOINT_URL", proxy.url)
        env.setenv("JOB_BACKOFF_BASE_SECONDS", "0")
        reset_caches()
        try:
            yield proxy
        finally:
            reset_caches()


@pytest.fixture
def proxy(proxied: FaultProxy) -> Iterator[FaultProxy]:
    proxied.reset()
    yield proxied
    proxied.clear()


def inject(proxy: FaultProxy, services: tuple[str, ...], fault: str, **kwargs: Any) -> None:
    for service in services:
        proxy.inject(service=service, fault=fault, rate=RATE[fault], delay=SLOW_S, **kwargs)


# -- chat ----------------------------------------------------------------------------------------------------
@pytest.mark.anyio
@pytest.mark.parametrize("fault", FAULT_KINDS)
async def test_chat_answers_or_fails_cleanly_and_stores_whole_turns_only(proxy, fake_openai, fault):
    from chatbot.config import get_settings
    from chatbot.dal.conversations import ConversationRepository
    from chatbot.errors import ChatbotError
    from chatbot.services.chat import ChatService
    from tests.chat_protocol import parse_frames

    service = ChatService(get_settings().model_copy(update={"upstream_retry_base_seconds": 0.01}))
    conversations = [f"conv_{uuid.uuid4().hex[:12]}" for _ in range(2)]
    answered: dict[str, set[str]] = {c: set() for c in conversations}
    inject(proxy, ("dynamodb",), fault)
    try:
        for n in range(6):
            conversation, message = conversations[n % 2], f"question {n}"
            fake_openai.set_reply(f"answer {n}")  # sticky: a refused turn leaves nothing queued
            started = time.monotonic()
            try:
                if n % 2:
                    reply = await asyncio.wait_for(
                        reply_chat(service, f"198.51.100.{n}", message=message, conversation_id=conversation),
                        BOUND_S,
                    )
                    assert reply.response == f"answer {n}"
                    answered[conversation].add(message)
                else:
                    body = await asyncio.wait_for(
                        stream_chat(
                            service, f"198.51.100.{n}", message=message, conversation_id=conversation
                        ),
                        BOUND_S,
                    )
                    # Refused before the stream started (an exception) or a whole stream: done or error.
                    frames = parse_frames(body)
                    assert frames[-1].event == "close"
                    types = [f.data.get("type") for f in frames if f.event == "message"]
                    assert types[-1] in ("done", "error"), types
                    if types[-1] == "done":
                        answered[conversation].add(message)
                    else:
                        assert frames[-2].data["code"] != "internal_error", frames
            except ChatbotError as exc:  # a clean refusal (the route turns it into its JSON envelope)
                assert exc.status in (429, 503), exc
            assert time.monotonic() - started < BOUND_S
    finally:
        proxy.clear()
        await service.gateway.aclose()

    assert proxy.count(fault) > 0
    repo = ConversationRepository()
    for conversation in conversations:
        turns = repo.recent_turns(conversation, max_turns=50)
        for turn in turns:
            roles = [m["role"] for m in turn["messages"]]
            assert roles == ["user", "assistant"], turn
            number = turn["messages"][0]["content"].split()[-1]
            assert turn["messages"][1]["content"] == f"answer {number}"
        stored = [t["messages"][0]["content"] for t in turns]
        assert len(stored) == len(set(stored)), "a turn stored twice"
        # A stored turn is one the client got; a reply whose save failed after retries is only logged.
        assert set(stored) <= answered[conversation]


# -- worker --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("fault", FAULT_KINDS)
def test_worker_loses_no_job(proxy, fault):
    from botocore.exceptions import BotoCoreError, ClientError

    from chatbot import aws
    from chatbot.services.dlq import reconcile_dlq
    from chatbot.services.jobs import JobService
    from tests.unit import _jobs_support as jobs_support

    emulator_sqs = _emulator_client("sqs", proxy)
    emulator_sqs.set_queue_attributes(
        QueueUrl=os.environ["JOBS_QUEUE_URL"], Attributes={"VisibilityTimeout": "2"}
    )
    service = JobService()
    ids = [service.enqueue("diagnostic", {}).id for _ in range(4)]
    ids.append(service.enqueue("diagnostic", {"fail_times": 1}).id)
    ids.append(service.enqueue("diagnostic", {"fail_permanently": True}).id)

    inject(proxy, ("dynamodb", "sqs"), fault)
    for _ in range(4):
        # A receive or delete failing after retries is an invocation the event source mapping retries.
        with contextlib.suppress(ClientError, BotoCoreError):
            jobs_support.deliver()
    assert proxy.count(fault) > 0
    proxy.clear()
    aws.reset()  # connections the proxy dropped are not reused

    deadline = time.monotonic() + 40
    while jobs_support.queue_depth(os.environ["JOBS_QUEUE_URL"]) and time.monotonic() < deadline:
        if not jobs_support.deliver()[1]:
            time.sleep(0.5)  # messages left invisible by a dropped answer come back after 2 s
    # A message whose job could not be written on its last receive went to the DLQ by the queue's redrive
    # policy with its job still queued or running: the reconciler (every minute on metrics-push) settles it.
    reconcile_dlq()
    jobs = [service.get(i) for i in ids]
    completed = [j for j in jobs if j.status == "completed"]
    dead = [j for j in jobs if j.status == "dead"]
    assert len(completed) + len(dead) == len(ids), [(j.id, j.status) for j in jobs]
    # At least once: a handler runs again only when an earlier attempt's outcome could not be recorded.
    assert all(1 <= j.handler_completions <= j.attempts for j in completed)
    assert {j.id for j in dead} <= {body["job_id"] for body in jobs_support.dlq_bodies()}, (
        "dead but not in the DLQ"
    )
    assert jobs[-1].status == "dead"  # fail_permanently; fail_times=1 may die too if faults took its attempts


# -- admin ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("fault", ("throttle", "error", "drop", "drop_after"))
def test_admin_writes_are_all_or_nothing(proxy, fault):
    from chatbot.dal.agents import AgentRepository, name_key
    from chatbot.errors import ChatbotError
    from chatbot.models.agents import AgentCreate
    from chatbot.services.agents import AgentService

    agents = AgentService()
    base = agents.create(AgentCreate(name=f"base {uuid.uuid4().hex[:6]}"))
    agents.make_default(base.id)
    names = [f"agent {fault} {n} {uuid.uuid4().hex[:6]}" for n in range(3)]
    told_created: list[str] = []
    inject(proxy, ("dynamodb",), fault)
    for n, name in enumerate(names):
        with contextlib.suppress(ChatbotError):
            told_created.append(agents.create(AgentCreate(name=name, is_default=n % 2 == 0)).id)
        with contextlib.suppress(ChatbotError):
            agents.make_default(base.id if n % 2 else (told_created or [base.id])[-1])
    assert proxy.count(fault) > 0
    proxy.clear()

    repo = AgentRepository()
    everything = _scan(os.environ["AGENTS_TABLE"], proxy)
    for name in names:
        guard = next((i for i in everything if i["pk"] == name_key(name)["pk"]), None)
        agent = next((i for i in everything if i.get("name") == name), None)
        assert (guard is None) == (agent is None), f"half-created {name}: guard {guard}, agent {agent}"
        if agent:
            assert guard["agent_id"] == agent["id"]
    assert set(told_created) <= {i.get("id") for i in everything}
    flagged = [i["id"] for i in everything if i.get("sk") == "AGENT" and i.get("is_default")]
    assert flagged == [repo.default_agent_id(consistent=True)], "not exactly one default agent"


# -- backup --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("service_name", "fault"), [("s3", "error"), ("s3", "drop"), ("dynamodb", "deny")])
def test_backup_fails_loudly_and_leaves_the_previous_backup_intact(proxy, service_name, fault):
    from chatbot.backup import BackupService
    from chatbot.config import get_settings

    service = BackupService.from_settings(get_settings())
    previous = service.create(source="manual").backup_id
    time.sleep(1.0)  # a new id (ids name the second a backup started)

    proxy.inject(service=service_name, fault=fault, rate=1.0, operations={"PUT", "Scan"})
    with powertools_output() as output, pytest.raises(Exception) as failure:
        service.create(source="manual")
    proxy.clear()

    assert proxy.count(fault) > 0, failure.value
    failed = [line for line in json_lines(output()) if line.get("event") == "backup_failed"]
    assert len(failed) == 1, "what the BackupFailures alarm counts"
    assert service.latest() == previous
    assert service.verify(previous).backup_id == previous


def _emulator_client(service: str, proxy: FaultProxy) -> Any:
    import boto3

    return boto3.client(service, endpoint_url=proxy.upstream)


def _scan(table: str, proxy: FaultProxy) -> list[dict[str, Any]]:
    from boto3.dynamodb.types import TypeDeserializer

    client, items, start = _emulator_client("dynamodb", proxy), [], None
    while True:
        page = client.scan(
            TableName=table, ConsistentRead=True, **({"ExclusiveStartKey": start} if start else {})
        )
        items += [{k: TypeDeserializer().deserialize(v) for k, v in i.items()} for i in page["Items"]]
        start = page.get("LastEvaluatedKey")
        if not start:
            return items
