"""Jobs end to end on the running local stack: the admin API enqueues, the local SQS pollers drive the real
worker Lambda (batches of 10, ReportBatchItemFailures, visibility timeouts, RedrivePolicy → DLQ), and the
admin API inspects, requeues and redrives. Includes the 1,000-job fault-injection run."""

from __future__ import annotations

import os
import random
import time
from collections.abc import Iterator

import pytest

from chatbot.models.jobs import JobListQuery
from chatbot.services.dlq import reconcile_dlq
from chatbot.services.jobs import JobService, message_body
from infra.local.harness import StackProcess
from tests.integration._jobs_stack import (
    VISIBILITY_TIMEOUT,
    JobEvents,
    admin,
    clear_queues,
    data,
    feed,
    job_stack,
    queue_counts,
    wait_until,
)

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def stack() -> Iterator[StackProcess]:
    with job_stack(pollers=4) as running:
        yield running


@pytest.fixture(autouse=True)
def _clean_queues(stack: StackProcess) -> Iterator[None]:
    yield
    clear_queues(stack)


def _enqueue(stack: StackProcess, **payload) -> str:
    job = data(admin(stack, "POST", "/admin/jobs", json={"type": "diagnostic", "payload": payload}), 201)
    return str(job["id"])


def _job(stack: StackProcess, job_id: str) -> dict:
    return data(admin(stack, "GET", f"/admin/jobs/{job_id}"))


def _status_is(stack: StackProcess, job_id: str, *statuses: str) -> dict | None:
    job = _job(stack, job_id)
    return job if job["status"] in statuses else None


def _dlq_entry(stack: StackProcess, job_id: str) -> dict | None:
    """The job's DLQ entry once it is dead and its message is in the DLQ."""
    reply = admin(stack, "GET", f"/admin/dlq/{job_id}")
    if reply.status_code == 404:
        return None
    entry = data(reply)
    return entry if entry["in_dlq"] else None


def test_job_failing_once_completes_on_attempt_two(stack):
    job_id = _enqueue(stack, fail_times=1)

    job = wait_until(lambda: _status_is(stack, job_id, "completed"))

    assert job["attempts"] == 2 and job["handler_completions"] == 1
    assert [e["attempt"] for e in job["errors"]] == [1]


def test_job_failing_permanently_is_dead_after_three_attempts_with_its_message_in_the_dlq(stack):
    job_id = _enqueue(stack, fail_permanently=True)

    job = wait_until(lambda: _status_is(stack, job_id, "dead"))
    entry = wait_until(lambda: _dlq_entry(stack, job_id))

    assert job["attempts"] == 3 and len(job["errors"]) == 3 and job["handler_completions"] == 0
    assert entry["id"] == job_id and entry["dlq_message_count"] == 1
    assert job_id in [e["id"] for e in data(admin(stack, "GET", "/admin/dlq", params={"limit": 200}))]


def test_requeue_dlq_runs_the_job_again_with_attempts_reset(stack):
    job_id = _enqueue(stack, fail_until_requeued=True)
    wait_until(lambda: _dlq_entry(stack, job_id))

    requeued = data(admin(stack, "POST", f"/admin/dlq/{job_id}/requeue"))

    assert requeued["job"]["attempts"] == 0 and requeued["job"]["status"] == "queued"
    job = wait_until(lambda: _status_is(stack, job_id, "completed"))
    assert job["attempts"] == 1 and job["requeued_from_dlq"] == 1 and job["handler_completions"] == 1
    assert len(job["errors"]) == 3  # the history of the first run stays
    assert admin(stack, "GET", f"/admin/dlq/{job_id}").json()["data"]["in_dlq"] is False


def test_redrive_dlq_moves_every_message_back_and_each_is_processed_once(stack):
    ids = [_enqueue(stack, fail_until_requeued=True) for _ in range(5)]
    for job_id in ids:
        wait_until(lambda job_id=job_id: _dlq_entry(stack, job_id), timeout=40)

    task = data(admin(stack, "POST", "/admin/dlq/redrive"))

    assert task["status"] == "completed" and task["messages_moved"] == 5
    for job_id in ids:
        job = wait_until(lambda job_id=job_id: _status_is(stack, job_id, "completed"))
        assert job["handler_completions"] == 1 and job["attempts"] == 1 and job["requeued_from_dlq"] == 1
    assert queue_counts(stack, "JOBS_DLQ_URL") == 0
    tasks = data(admin(stack, "GET", "/admin/dlq/redrive-tasks"))
    assert tasks[0]["id"] == task["id"]


def test_job_killed_mid_run_is_retried_and_completes(stack):
    # The first attempt crashes the whole invocation (like a Lambda timeout or OOM kill): nothing of its
    # batch is acknowledged, and the message comes back after the queue's visibility timeout.
    mark = stack.mark()
    job_id = _enqueue(stack, crash_times=1, sleep_ms=100)

    job = wait_until(lambda: _status_is(stack, job_id, "completed"), timeout=40)

    assert job["attempts"] == 2 and job["handler_completions"] == 1
    started = [e for e in stack.logs(mark) if e.get("event") == "job_started" and e.get("job_id") == job_id]
    assert len(started) == 2


def test_the_same_message_delivered_twice_runs_the_job_once(stack):
    job = JobService().enqueue("diagnostic", {"sleep_ms": 1500})
    stack.client("sqs").send_message(
        QueueUrl=os.environ["JOBS_QUEUE_URL"], MessageBody=message_body(job.id, 1)
    )

    done = wait_until(lambda: _status_is(stack, job.id, "completed"))
    wait_until(lambda: queue_counts(stack, "JOBS_QUEUE_URL") == 0, timeout=30)

    assert done["attempts"] == 1 and _job(stack, job.id)["handler_completions"] == 1


@pytest.mark.timeout(300)
@pytest.mark.long_running
def test_a_thousand_jobs_with_injected_faults(stack):
    """20 % fail once, 5 % fail every attempt, 2 % crash their worker once: afterwards every job is completed
    or dead, none ran to completion twice, and every dead job is listed by list_dlq."""
    rng = random.Random(20240601)
    payloads = []
    for _ in range(1000):
        roll = rng.random()
        if roll < 0.05:
            payloads.append({"fail_permanently": True})
        elif roll < 0.25:
            payloads.append({"fail_times": 1})
        elif roll < 0.27:
            payloads.append({"crash_times": 1})
        else:
            payloads.append({})
    jobs = JobService()
    events = JobEvents(stack)
    started = time.monotonic()
    ids = feed(stack, payloads, backlog=60, on_wait=events.poll)
    progress = {"count": 0, "at": time.monotonic()}

    def settled() -> bool:
        remaining = set(ids) - events.poll().finished()
        if not remaining:
            return True
        if len(remaining) != progress["count"]:
            progress.update(count=len(remaining), at=time.monotonic())
        elif time.monotonic() - progress["at"] > VISIBILITY_TIMEOUT + 4 and not queue_counts(
            stack, "JOBS_QUEUE_URL"
        ):
            # Stalled with an empty queue: a worker crashed on a last attempt, SQS dead-lettered the
            # message while the record says running; the reconciler (run by metrics-push) marks it dead.
            reconcile_dlq()
            return all(jobs.get(i).status in ("completed", "dead") for i in remaining)
        return False

    wait_until(settled, timeout=200, interval=0.5)
    elapsed = time.monotonic() - started

    mine = set(ids)
    by_status: dict[str, list] = {"completed": [], "dead": []}
    for status in by_status:
        cursor = None
        while True:
            page = jobs.list(JobListQuery(status=status, limit=200, cursor=cursor))
            by_status[status] += [j for j in page.items if j.id in mine]
            cursor = page.next_cursor
            if not cursor:
                break
    assert len(by_status["completed"]) + len(by_status["dead"]) == 1000
    assert all(j.handler_completions == 1 for j in by_status["completed"])
    assert all(j.handler_completions == 0 for j in by_status["dead"])
    expected_dead = {i for i, p in zip(ids, payloads, strict=True) if p.get("fail_permanently")}
    dead_ids = {j.id for j in by_status["dead"]}
    assert expected_dead <= dead_ids
    listed, cursor = set(), None
    while True:
        reply = admin(
            stack, "GET", "/admin/dlq", params={"limit": 200, **({"cursor": cursor} if cursor else {})}
        )
        listed |= {e["id"] for e in data(reply)}
        cursor = reply.json()["next_cursor"]
        if not cursor:
            break
    assert dead_ids <= listed
    print(
        f"\n1000 jobs: {len(by_status['completed'])} completed, {len(dead_ids)} dead "
        f"({len(expected_dead)} permanent) in {elapsed:.1f} s"
    )
