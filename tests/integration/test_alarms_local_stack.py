"""The template's main alarms go to ALARM on the local stack when their condition is driven (OK before).

A local stack of its own, with schedules on and a clock 60 times faster (a minute lasts a second; metrics-push
runs every minute, the alarms are evaluated every minute) and no pollers (so work waits). Phase 1: a default
agent, nothing waiting: the five alarms settle to OK. Phase 2: 101 jobs waiting, a failed job attempt, the
default agent unset, a job waiting 10 minutes with an idle worker, a dead job's message in the DLQ: each alarm
goes to ALARM in the emulator (DescribeAlarms), evaluated from the functions' own log lines and EMF.

The functions' clock is not scaled: "waiting 10 minutes" is a job record created 10 minutes ago.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest

from infra.local.harness import StackProcess
from infra.local.pollers import sqs_event
from tests.conftest import TEMPLATE, reset_caches

pytestmark = pytest.mark.slow

ALARMS = {
    "HighQueueDepthAlarm",
    "HighJobFailureRateAlarm",
    "NoDefaultAgentAlarm",
    "WorkerDownAlarm",
    "DeadLetterQueueNotEmptyAlarm",
}


@pytest.fixture(scope="module")
def fast_stack() -> Iterator[StackProcess]:
    stack = StackProcess(
        template=TEMPLATE,
        env={"LOCAL_SCHEDULES": "on", "LOCAL_SCHEDULE_SCALE": "60", "LOCAL_POLLERS": "0"},
    )
    stack.start()
    saved = dict(os.environ)
    try:
        for key in [k for k in os.environ if k.startswith("AWS_ENDPOINT_URL")]:
            del os.environ[key]
        os.environ.update(stack.env)
        reset_caches()
        yield stack
    finally:
        os.environ.clear()
        os.environ.update(saved)
        reset_caches()
        stack.stop()


def _states(stack: StackProcess) -> dict[str, dict[str, Any]]:
    names = {stack.stack.resources[lid].physical_id: lid for lid in ALARMS}
    found = stack.client("cloudwatch").describe_alarms(AlarmNames=list(names))["MetricAlarms"]
    return {names[a["AlarmName"]]: a for a in found}


def _wait_for(stack: StackProcess, state: str, timeout: float = 60.0) -> dict[str, dict[str, Any]]:
    """Wait until each alarm has been evaluated into `state` (returns each one's alarm as first seen so)."""
    seen: dict[str, dict[str, Any]] = {}
    deadline = time.monotonic() + timeout
    while set(seen) != ALARMS:
        for lid, alarm in _states(stack).items():
            # moto creates alarms in OK ("Unchecked"), which is no evaluation: counted, it let phase 1 end
            # before the first one, whose no-data ALARM of WorkerDown phase 2 then took for its own.
            evaluated = not alarm["StateReason"].startswith("Unchecked")
            if alarm["StateValue"] == state and evaluated:
                seen.setdefault(lid, alarm)
        if time.monotonic() > deadline:
            missing = {lid: a["StateValue"] for lid, a in _states(stack).items() if lid not in seen}
            raise AssertionError(f"never {state}: {missing}")
        time.sleep(0.2)
    return seen


def _fail_one_job_attempt(stack: StackProcess) -> None:
    """A job attempt fails in the worker: its message is received here and handed to the worker function,
    as the SQS event source would (the stack runs no pollers)."""
    from chatbot.services.jobs import JobService

    job = JobService().enqueue("diagnostic", {"fail_times": 5})
    sqs = stack.client("sqs")
    queue_url = os.environ["JOBS_QUEUE_URL"]
    messages = sqs.receive_message(
        QueueUrl=queue_url, AttributeNames=["All"], MessageAttributeNames=["All"], WaitTimeSeconds=2
    )["Messages"]
    assert [json.loads(m["Body"])["job_id"] for m in messages] == [job.id]
    arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    mark = stack.mark()
    result = stack.invoke("WorkerFunction", sqs_event(messages, arn, "us-east-1"))
    assert [f["itemIdentifier"] for f in result["batchItemFailures"]] == [messages[0]["MessageId"]]
    stack.wait_for_log(lambda e: e.get("event") == "job_failed" and e.get("job_id") == job.id, since=mark)


def test_main_alarms_go_to_alarm_when_their_conditions_hold(fast_stack):
    from chatbot import clock
    from chatbot.dal.jobs import JobRepository
    from chatbot.models.agents import AgentCreate, AgentUpdate
    from chatbot.services.agents import AgentService

    # Phase 1: a default agent, nothing waiting, no failures: everything settles to OK.
    agents = AgentService()
    default = agents.create(AgentCreate(name=f"default-{uuid.uuid4().hex[:6]}", is_default=True))
    _wait_for(fast_stack, "OK")

    # Phase 2: drive each condition.
    _fail_one_job_attempt(fast_stack)  # 1 of 1 attempts failed: over 10 %
    agents.update(default.id, AgentUpdate(is_default=False))  # no default agent
    repo = JobRepository()
    # The worker last started a job 30 minutes ago (the failed attempt above wrote "now": time has passed).
    repo.touch_heartbeat(at=clock.iso(clock.now() - timedelta(minutes=30)), success=False)
    created = clock.iso(clock.now() - timedelta(minutes=10))  # waiting 10 minutes, the worker never ran
    repo.create_job(
        {
            "id": "job_waiting",
            "type": "diagnostic",
            "status": "queued",
            "created_at": created,
            "updated_at": created,
        }
    )
    dead = clock.iso(clock.now() - timedelta(minutes=1))
    repo.create_job(
        {"id": "job_dead", "type": "diagnostic", "status": "dead", "created_at": dead, "updated_at": dead}
    )
    sqs = fast_stack.client("sqs")
    sqs.send_message(
        QueueUrl=os.environ["JOBS_DLQ_URL"], MessageBody=json.dumps({"job_id": "job_dead", "seq": 1})
    )
    for _ in range(11):  # over 100 waiting
        entries = [
            {"Id": str(i), "MessageBody": json.dumps({"job_id": f"job_x{i}", "seq": 1})} for i in range(10)
        ]
        sqs.send_message_batch(QueueUrl=os.environ["JOBS_QUEUE_URL"], Entries=entries)

    alarmed = _wait_for(fast_stack, "ALARM")

    assert "0.0" in alarmed["WorkerDownAlarm"]["StateReason"]  # from the gauge, not only missing data
    assert "110.0" in alarmed["HighQueueDepthAlarm"]["StateReason"]
    assert "1.0" in alarmed["HighJobFailureRateAlarm"]["StateReason"]  # the failure ratio
    topic = fast_stack.stack.resources["AlarmTopic"].physical_id
    assert topic.startswith("arn:aws:sns:")

    # The same stack shows its metrics to Prometheus scrapers: the gauges read now, and the counters its
    # metric filters derived from the functions' logs (the failed attempt above).
    with fast_stack.http() as http:
        scrape = http.get("/admin/metrics", headers=fast_stack.admin_headers)
    assert scrape.status_code == 200
    assert scrape.headers["content-type"].startswith("text/plain; version=0.0.4")
    samples = dict(line.rsplit(" ", 1) for line in scrape.text.splitlines() if not line.startswith("#"))
    assert samples["chatbot_agents_default"] == "0"
    assert int(samples['chatbot_jobs_total{status="queued"}']) >= 1
    assert samples["chatbot_jobs_failed_total"] == "1"
