"""The worker Lambda over real SQS semantics (moto in-process): claim, retry with backoff, dead-lettering,
stale and duplicate messages, crashes, redrive, unknown types, partial batch responses."""

from __future__ import annotations

import json
import os
import time

import boto3
import pytest

from chatbot.dal.jobs import JobRepository
from chatbot.models.jobs import Job
from chatbot.services.job_runner import JobRunner, backoff_seconds, parse_record
from chatbot.services.jobs import JobService, message_body
from functions.worker.app import WorkerCrashed
from tests.unit._jobs_support import (
    deliver,
    dlq_bodies,
    drain,
    invoke,
    queue_depth,
    receive_records,
    set_env,
)


@pytest.fixture
def jobs(aws_env, monkeypatch) -> JobService:
    set_env(monkeypatch, JOB_BACKOFF_BASE_SECONDS="0")
    return JobService()


def _failed_ids(response: dict) -> set[str]:
    return {f["itemIdentifier"] for f in response["batchItemFailures"]}


# -- happy path and retries --------------------------------------------------------------------------------
def test_worker_completes_a_diagnostic_job(jobs):
    job = jobs.enqueue("diagnostic", {"sleep_ms": 10})

    response, records = deliver()

    assert response == {"batchItemFailures": []} and len(records) == 1
    done = jobs.get(job.id)
    assert done.status == "completed" and done.attempts == 1 and done.handler_completions == 1
    assert done.result == {"ok": True, "attempt": 1, "slept_ms": 10, "handler_completions": 1}
    assert done.started_at and done.finished_at and done.finished_at >= done.started_at
    assert queue_depth(os.environ["JOBS_QUEUE_URL"]) == 0


def test_worker_retries_a_failed_attempt_and_completes_on_attempt_two(jobs):
    job = jobs.enqueue("diagnostic", {"fail_times": 1})

    first, records = deliver()
    after_first = jobs.get(job.id)
    second, _ = deliver()

    assert _failed_ids(first) == {records[0]["messageId"]}
    assert after_first.status == "queued" and after_first.attempts == 1
    assert after_first.errors[0].attempt == 1 and "attempt 1" in after_first.errors[0].error
    assert second == {"batchItemFailures": []}
    done = jobs.get(job.id)
    assert done.status == "completed" and done.attempts == 2 and done.handler_completions == 1


def test_worker_backs_off_with_the_message_visibility(jobs, monkeypatch):
    set_env(monkeypatch, JOB_BACKOFF_BASE_SECONDS="30")
    job = JobService().enqueue("diagnostic", {"fail_times": 1})

    response, _ = deliver()

    assert len(response["batchItemFailures"]) == 1
    assert receive_records() == []  # hidden for ~60 s (30·2^1 + jitter)
    queued = jobs.get(job.id)
    assert queued.status == "queued" and queued.available_at > queued.updated_at


def test_backoff_grows_exponentially_with_a_cap_and_jitter():
    assert backoff_seconds(1, 60, 3600, rand=lambda: 0.0) == 120
    assert backoff_seconds(2, 60, 3600, rand=lambda: 0.0) == 240
    assert backoff_seconds(7, 60, 3600, rand=lambda: 0.0) == 3600
    assert backoff_seconds(1, 60, 3600, rand=lambda: 1.0) == 132
    assert backoff_seconds(3, 0, 3600) == 0
    assert backoff_seconds(1, 0.05, 3600, rand=lambda: 0.0) == 1


def test_worker_dead_letters_after_max_attempts(jobs):
    job = jobs.enqueue("diagnostic", {"fail_permanently": True})

    for attempt in (1, 2, 3):
        response, records = deliver()
        assert _failed_ids(response) == {records[0]["messageId"]}, attempt

    dead = jobs.get(job.id)
    assert dead.status == "dead" and dead.attempts == 3 and dead.finished_at
    assert [e.attempt for e in dead.errors] == [1, 2, 3]
    assert dead.last_error.startswith("JobFailed: diagnostic failure on attempt 3")
    assert deliver()[1] == []  # the next receive moves the message to the DLQ
    assert dlq_bodies() == [{"job_id": job.id, "seq": 1}]


def test_worker_keeps_a_dead_jobs_message_until_sqs_dead_letters_it(jobs):
    job = jobs.enqueue("diagnostic", {"fail_permanently": True}, max_attempts=1)

    deliver()  # attempt 1 of 1: dead, but the message has only 1 of 3 receives
    again, records = deliver()

    assert jobs.get(job.id).status == "dead"
    assert len(records) == 1 and _failed_ids(again) == {records[0]["messageId"]}
    assert jobs.get(job.id).attempts == 1  # not run again
    drain()
    assert dlq_bodies() == [{"job_id": job.id, "seq": 1}]


def test_worker_reports_only_the_failed_records_of_a_batch(jobs):
    ok = [jobs.enqueue("diagnostic", {}).id for _ in range(6)]
    bad = [jobs.enqueue("diagnostic", {"fail_times": 1}).id for _ in range(4)]

    records = receive_records()
    assert len(records) == 10
    response = invoke(records)

    failed_jobs = {
        json.loads(r["body"])["job_id"] for r in records if r["messageId"] in _failed_ids(response)
    }
    assert failed_jobs == set(bad)
    assert all(jobs.get(i).status == "completed" for i in ok)
    assert all(jobs.get(i).status == "queued" for i in bad)


def test_worker_writes_its_heartbeat(jobs):
    jobs.enqueue("diagnostic", {})

    deliver()

    beat = jobs.heartbeat()
    assert beat.last_job_at and beat.last_success_at == beat.last_job_at


# -- stale, duplicate, unknown -----------------------------------------------------------------------------
def test_worker_acknowledges_a_message_for_a_missing_job(jobs):
    boto3.client("sqs").send_message(
        QueueUrl=os.environ["JOBS_QUEUE_URL"], MessageBody=message_body("job_gone", 1)
    )

    response, records = deliver()

    assert response == {"batchItemFailures": []} and len(records) == 1
    assert queue_depth(os.environ["JOBS_QUEUE_URL"]) == 0


def test_worker_acknowledges_a_message_that_is_not_a_job(jobs):
    boto3.client("sqs").send_message(QueueUrl=os.environ["JOBS_QUEUE_URL"], MessageBody="hello")

    response, _ = deliver()

    assert response == {"batchItemFailures": []}
    assert parse_record({"body": '{"job_id": "x", "seq": true}'}) is None


def test_worker_runs_a_job_once_when_its_message_is_delivered_twice(jobs):
    job = jobs.enqueue("diagnostic", {})
    boto3.client("sqs").send_message(
        QueueUrl=os.environ["JOBS_QUEUE_URL"], MessageBody=message_body(job.id, 1)
    )

    drain()

    done = jobs.get(job.id)
    assert done.status == "completed" and done.handler_completions == 1 and done.attempts == 1
    assert queue_depth(os.environ["JOBS_QUEUE_URL"]) == 0


def test_worker_leaves_a_duplicate_of_a_running_job_for_later(jobs):
    # Given a job another worker is running under a live lease
    job = jobs.enqueue("diagnostic", {})
    original = receive_records()[0]
    runner = JobRunner(jobs)
    claim = runner.claim(parse_record(original), lease_until=time.time() + 60)
    assert claim.kind == "claimed"
    # When a second copy of its message arrives
    boto3.client("sqs").send_message(
        QueueUrl=os.environ["JOBS_QUEUE_URL"], MessageBody=message_body(job.id, 1)
    )
    response, records = deliver()

    # Then it is neither run nor deleted: it comes back after the lease (or a backoff step)
    assert _failed_ids(response) == {records[0]["messageId"]}
    running = jobs.get(job.id)
    assert running.status == "running" and running.attempts == 1 and running.handler_completions == 0
    assert queue_depth(os.environ["JOBS_QUEUE_URL"]) == 2


def test_worker_skips_a_message_superseded_by_a_retry(jobs):
    job = jobs.enqueue("diagnostic", {}, delay_seconds=0)
    jobs.retry(job.id)  # seq 2 and a second message; the seq 1 message is stale

    drain()

    done = jobs.get(job.id)
    assert done.status == "completed" and done.handler_completions == 1 and done.seq == 2


def test_worker_unknown_job_type_fails_clearly_and_dead_letters(jobs):
    repo = JobRepository()
    now = "2026-01-01T00:00:00.000000Z"
    job = Job(id="job_mystery", type="mystery", status="queued", created_at=now, updated_at=now)
    repo.create_job(job.model_dump(exclude_none=True))
    boto3.client("sqs").send_message(
        QueueUrl=os.environ["JOBS_QUEUE_URL"], MessageBody=message_body(job.id, 1)
    )
    jobs.enqueue("diagnostic", {})  # shares the batch and is unaffected

    drain()

    dead = jobs.get("job_mystery")
    assert dead.status == "dead" and dead.attempts == 3
    assert dead.last_error == "UnknownJobType: Unknown job type: mystery"
    assert {b["job_id"] for b in dlq_bodies()} == {"job_mystery"}
    assert jobs.stats().completed == 1


# -- crashes and redrive -----------------------------------------------------------------------------------
def test_worker_crash_mid_job_is_retried_after_the_visibility_timeout(jobs):
    job = jobs.enqueue("diagnostic", {"crash_times": 1})
    other = jobs.enqueue("diagnostic", {})
    records = receive_records()

    # A crash fails the whole invocation: nothing of the batch is acknowledged.
    with pytest.raises(WorkerCrashed):
        invoke(records)
    assert jobs.get(job.id).status == "running"
    # The visibility timeout runs out (here: at once).
    sqs = boto3.client("sqs")
    for record in records:
        sqs.change_message_visibility(
            QueueUrl=os.environ["JOBS_QUEUE_URL"], ReceiptHandle=record["receiptHandle"], VisibilityTimeout=0
        )
    drain()

    done = jobs.get(job.id)
    assert done.status == "completed" and done.attempts == 2 and done.handler_completions == 1
    assert jobs.get(other.id).handler_completions == 1


def test_worker_reclaims_a_job_whose_lease_expired(jobs):
    job = jobs.enqueue("diagnostic", {})
    original = receive_records()[0]
    JobRunner(jobs).claim(parse_record(original), lease_until=time.time() - 60)
    boto3.client("sqs").send_message(
        QueueUrl=os.environ["JOBS_QUEUE_URL"], MessageBody=message_body(job.id, 1)
    )

    deliver()

    done = jobs.get(job.id)
    assert done.status == "completed" and done.attempts == 2 and done.handler_completions == 1


def test_worker_runs_a_redriven_dead_job_again_with_attempts_restarted(jobs):
    # Given a dead job (that succeeds once it is back from the DLQ), its message in the DLQ
    job = jobs.enqueue("diagnostic", {"fail_until_requeued": True})
    drain()
    assert jobs.get(job.id).status == "dead"
    # When an operator moves the DLQ's messages back (as StartMessageMoveTask does: new messages)
    sqs = boto3.client("sqs")
    for message in sqs.receive_message(QueueUrl=os.environ["JOBS_DLQ_URL"], MaxNumberOfMessages=10)[
        "Messages"
    ]:
        sqs.send_message(QueueUrl=os.environ["JOBS_QUEUE_URL"], MessageBody=message["Body"])
        sqs.delete_message(QueueUrl=os.environ["JOBS_DLQ_URL"], ReceiptHandle=message["ReceiptHandle"])
    drain()

    # Then it runs dead → running → completed, once, on a fresh first attempt
    done = jobs.get(job.id)
    assert done.status == "completed" and done.attempts == 1 and done.requeued_from_dlq == 1
    assert done.handler_completions == 1 and len(done.errors) == 3
