"""Jobs service: enqueue with compensation, get, list/filter/paginate, stats, retry, cancel (moto)."""

from __future__ import annotations

import json
import os
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from chatbot.errors import BadRequest, Conflict, NotFound, ServiceUnavailable, ValidationFailed
from chatbot.models.jobs import JobListQuery
from chatbot.services.jobs import JobService
from tests.unit._jobs_support import deliver, drain, invoke, queue_depth, receive_records, set_env


class FailingSqs:
    """An SQS client whose sends fail (the queue is down); everything else goes to the real one."""

    def __init__(self) -> None:
        self._real = boto3.client("sqs")

    def send_message(self, **_: Any) -> Any:
        raise ClientError({"Error": {"Code": "ServiceUnavailable", "Message": "down"}}, "SendMessage")

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)


@pytest.fixture
def service(aws_env, monkeypatch) -> JobService:
    set_env(monkeypatch, JOB_BACKOFF_BASE_SECONDS="0")
    return JobService()


def _bodies() -> list[dict[str, Any]]:
    return [json.loads(r["body"]) for r in receive_records()]


# -- enqueue -----------------------------------------------------------------------------------------------
def test_enqueue_writes_record_then_message(service):
    job = service.enqueue("diagnostic", {"sleep_ms": 5}, max_attempts=2)

    stored = service.get(job.id)
    assert stored.status == "queued" and stored.attempts == 0 and stored.max_attempts == 2
    assert stored.payload == {"sleep_ms": 5}  # as given; defaults apply when it runs
    assert stored.seq == 1 and stored.created_at.endswith("Z")
    assert _bodies() == [{"job_id": job.id, "seq": 1}]


def test_enqueue_send_failure_removes_the_record(service):
    failing = JobService(service.repo, sqs=FailingSqs())

    with pytest.raises(ServiceUnavailable):
        failing.enqueue("diagnostic", {}, job_id="job_lost")

    assert service.repo.get_job("job_lost") is None
    assert queue_depth(os.environ["JOBS_QUEUE_URL"]) == 0


def test_enqueue_rejects_unknown_type_and_bad_payload(service):
    with pytest.raises(ValidationFailed, match="Unknown job type: nope"):
        service.enqueue("nope", {})
    with pytest.raises(ValidationFailed) as bad:
        service.enqueue("diagnostic", {"sleep_ms": -1})
    assert bad.value.details
    with pytest.raises(ValidationFailed):
        service.enqueue("diagnostic", {}, max_attempts=21)
    assert queue_depth(os.environ["JOBS_QUEUE_URL"]) == 0


def test_enqueue_once_returns_the_existing_job(service):
    first, created = service.enqueue_once("diagnostic", {}, job_id="job_fixed")
    again, created_again = service.enqueue_once("diagnostic", {"sleep_ms": 9}, job_id="job_fixed")

    assert created and not created_again
    assert again.id == first.id and again.payload == {}
    assert len(_bodies()) == 1


def test_enqueue_with_delay_hides_the_message(service):
    service.enqueue("diagnostic", {}, delay_seconds=30)

    assert receive_records() == []


# -- get / list / stats ------------------------------------------------------------------------------------
def test_get_unknown_job_is_not_found(service):
    with pytest.raises(NotFound):
        service.get("job_missing")


def _seed(service: JobService) -> dict[str, str]:
    """Jobs in every status, created in a known order."""
    ids = {}
    for name, payload in [
        ("done", {}),
        ("dead", {"fail_permanently": True}),
        ("queued", {}),
        ("cancelled", {}),
    ]:
        ids[name] = service.enqueue("diagnostic", payload, max_attempts=1).id
    service.cancel(ids["cancelled"])
    # Run only the first two; the third stays queued.
    for record in receive_records():
        if json.loads(record["body"])["job_id"] in (ids["done"], ids["dead"]):
            invoke([record])
    return ids


def test_list_jobs_filters_by_status_type_and_time(service):
    ids = _seed(service)

    everything = service.list(JobListQuery(limit=50)).items
    assert [j.id for j in everything] == [ids["cancelled"], ids["queued"], ids["dead"], ids["done"]]
    assert [j.id for j in service.list(JobListQuery(status="dead")).items] == [ids["dead"]]
    assert [j.id for j in service.list(JobListQuery(type="diagnostic", status="completed")).items] == [
        ids["done"]
    ]
    assert len(service.list(JobListQuery(type="diagnostic")).items) == 4
    assert service.list(JobListQuery(type="file_ingest")).items == []
    middle = service.get(ids["dead"]).created_at
    newer = service.list(JobListQuery(created_after=middle)).items
    assert [j.id for j in newer] == [ids["cancelled"], ids["queued"], ids["dead"]]
    older = service.list(JobListQuery(created_before=middle)).items
    assert [j.id for j in older] == [ids["done"]]
    assert service.list(JobListQuery(created_after=middle, created_before=middle)).items == []


def test_list_jobs_paginates_across_statuses(service):
    ids = _seed(service)

    seen, cursor = [], None
    while True:
        page = service.list(JobListQuery(limit=1, cursor=cursor))
        seen += [j.id for j in page.items]
        cursor = page.next_cursor
        if not cursor:
            break
    assert seen == [ids["cancelled"], ids["queued"], ids["dead"], ids["done"]]


def test_list_jobs_rejects_bad_cursor_and_timestamp(service):
    with pytest.raises(BadRequest):
        service.list(JobListQuery(cursor="not-a-cursor"))
    with pytest.raises(BadRequest):
        service.list(JobListQuery(created_after="yesterday"))


def test_list_jobs_hides_internal_fields(service):
    service.enqueue("diagnostic", {})

    item = service.list(JobListQuery()).items[0].model_dump()
    assert "claim_id" not in item and "message_id" not in item and "gsi1pk" not in item


def test_job_stats_count_each_status(service):
    _seed(service)

    stats = service.stats(by_type=True)

    assert (stats.queued, stats.running, stats.completed, stats.dead, stats.cancelled) == (1, 0, 1, 1, 1)
    assert stats.total == 4 and stats.pending == 1 and stats.failed == 1
    assert stats.by_type["diagnostic"]["dead"] == 1 and stats.by_type["file_ingest"]["queued"] == 0


def test_job_stats_never_scan(service, monkeypatch):
    calls: list[str] = []
    original = service.repo.table.meta.client._make_api_call

    def spy(operation, params):
        calls.append(operation)
        return original(operation, params)

    monkeypatch.setattr(service.repo.table.meta.client, "_make_api_call", spy)
    service.stats(by_type=True)

    assert calls and set(calls) == {"Query"}


# -- cancel / retry ----------------------------------------------------------------------------------------
def test_cancel_queued_job_and_its_message_is_skipped(service):
    job = service.enqueue("diagnostic", {})

    cancelled = service.cancel(job.id)
    response, records = deliver()

    assert cancelled.status == "cancelled" and cancelled.finished_at
    assert response == {"batchItemFailures": []} and len(records) == 1
    assert service.get(job.id).status == "cancelled" and service.get(job.id).attempts == 0


def test_cancel_running_or_finished_job_conflicts(service):
    job = service.enqueue("diagnostic", {})
    drain()

    with pytest.raises(Conflict) as err:
        service.cancel(job.id)
    assert err.value.status == 409
    with pytest.raises(NotFound):
        service.cancel("job_missing")


def test_retry_dead_job_sends_it_again_with_a_new_seq(service):
    job = service.enqueue("diagnostic", {"fail_times": 1}, max_attempts=1)
    drain()
    assert service.get(job.id).status == "dead"

    retried = service.retry(job.id)

    assert retried.status == "queued" and retried.seq == 2
    assert retried.attempts == 1 and retried.max_attempts == 2  # not reset: one more attempt
    assert retried.requeued_from_dlq == 1
    drain()
    done = service.get(job.id)
    assert done.status == "completed" and done.attempts == 2 and done.handler_completions == 1


def test_retry_with_reset_restarts_attempts(service):
    job = service.enqueue("diagnostic", {"fail_permanently": True}, max_attempts=2)
    drain()

    retried = service.retry(job.id, reset_attempts=True)

    assert retried.attempts == 0 and retried.max_attempts == 2
    assert [e.attempt for e in retried.errors] == [1, 2]  # the history stays


def test_retry_queued_job_supersedes_its_old_message(service):
    job = service.enqueue("diagnostic", {}, delay_seconds=60)

    service.retry(job.id)
    drain()

    done = service.get(job.id)
    assert done.status == "completed" and done.seq == 2 and done.handler_completions == 1


def test_retry_completed_job_conflicts(service):
    job = service.enqueue("diagnostic", {})
    drain()

    with pytest.raises(Conflict):
        service.retry(job.id)


def test_retry_send_failure_restores_the_job(service):
    job = service.enqueue("diagnostic", {"fail_permanently": True}, max_attempts=1)
    drain()
    dead = service.get(job.id)

    with pytest.raises(ServiceUnavailable):
        JobService(service.repo, sqs=FailingSqs()).retry(job.id)

    restored = service.get(job.id)
    assert restored.status == "dead" and restored.seq == dead.seq and restored.attempts == dead.attempts
    assert restored.requeued_from_dlq == 0 and restored.finished_at == dead.finished_at


def test_enqueue_many_writes_records_then_batched_messages(service):
    from chatbot.models.jobs import JobCreate

    jobs = service.enqueue_many([JobCreate(type="diagnostic", payload={"sleep_ms": i}) for i in range(23)])

    assert len(jobs) == 23 and len({j.id for j in jobs}) == 23
    assert service.stats().queued == 23
    drain(rounds=10)
    assert service.stats().completed == 23


def test_enqueue_many_removes_the_records_whose_messages_failed(service):
    from chatbot.models.jobs import JobCreate

    class DownSqs(FailingSqs):
        def send_message_batch(self, **_: Any) -> Any:
            raise ClientError(
                {"Error": {"Code": "ServiceUnavailable", "Message": "down"}}, "SendMessageBatch"
            )

    with pytest.raises(ServiceUnavailable) as err:
        JobService(service.repo, sqs=DownSqs()).enqueue_many([JobCreate(type="diagnostic")] * 3)

    assert err.value.details == {"enqueued": []}
    assert service.stats().total == 0
