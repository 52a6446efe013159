"""DLQ service: reconciler, list/get, requeue, delete, redrive (manual fallback and native move tasks)."""

from __future__ import annotations

import os
import time

import boto3
import pytest
from botocore.stub import Stubber

from chatbot.errors import Conflict, NotFound
from chatbot.models.jobs import DlqListQuery
from chatbot.services.dlq import DlqService, reconcile_dlq
from chatbot.services.job_runner import JobRunner, parse_record
from chatbot.services.jobs import JobService, message_body
from tests.unit._jobs_support import drain, queue_depth, receive_records, set_env


@pytest.fixture
def jobs(aws_env, monkeypatch) -> JobService:
    set_env(monkeypatch, JOB_BACKOFF_BASE_SECONDS="0")
    return JobService()


@pytest.fixture
def dlq(jobs) -> DlqService:
    return DlqService(jobs)


def _dead(jobs: JobService, **payload) -> str:
    """A dead job whose message is in the DLQ (failing for good, or until requeued from the DLQ)."""
    job = jobs.enqueue("diagnostic", payload or {"fail_permanently": True})
    drain()
    assert jobs.get(job.id).status == "dead"
    return job.id


def _to_dlq(body: str) -> None:
    boto3.client("sqs").send_message(QueueUrl=os.environ["JOBS_DLQ_URL"], MessageBody=body)


# -- reconcile ---------------------------------------------------------------------------------------------
def test_reconcile_marks_dead_a_job_whose_worker_crashed_on_its_last_attempt(jobs, dlq):
    # Given a job claimed by a worker that then died, and SQS dead-lettered its message
    job = jobs.enqueue("diagnostic", {})
    record = receive_records()[0]
    JobRunner(jobs).claim(parse_record(record), lease_until=time.time() - 3600)
    boto3.client("sqs").delete_message(
        QueueUrl=os.environ["JOBS_QUEUE_URL"], ReceiptHandle=record["receiptHandle"]
    )
    _to_dlq(message_body(job.id, 1))

    report = dlq.reconcile()

    dead = jobs.get(job.id)
    assert report.marked_dead == [job.id] and report.examined == 1
    assert dead.status == "dead" and "dead-letter queue" in dead.last_error
    assert [e.attempt for e in dead.errors] == [1]
    assert dlq.list(DlqListQuery()).items[0].id == job.id  # listed at once


def test_reconcile_leaves_consistent_entries_and_running_jobs_alone(jobs, dlq):
    dead_id = _dead(jobs)
    running = jobs.enqueue("diagnostic", {})
    JobRunner(jobs).claim(parse_record(receive_records()[0]), lease_until=time.time() + 600)
    _to_dlq(message_body(running.id, 1))

    report = reconcile_dlq()

    assert report.already_dead == 1 and report.skipped_running == 1 and report.marked_dead == []
    assert jobs.get(running.id).status == "running" and jobs.get(dead_id).status == "dead"
    assert queue_depth(os.environ["JOBS_DLQ_URL"]) == 2  # released, not consumed


def test_reconcile_deletes_stale_and_orphan_messages(jobs, dlq):
    done = jobs.enqueue("diagnostic", {})
    drain()
    _to_dlq(message_body(done.id, 1))  # a duplicate of a completed job
    _to_dlq(message_body("job_never_existed", 1))
    _to_dlq("not json")

    report = dlq.reconcile()

    assert report.stale_deleted == 1 and report.orphans_deleted == 2
    assert queue_depth(os.environ["JOBS_DLQ_URL"]) == 0


# -- list / get --------------------------------------------------------------------------------------------
def test_list_dlq_shows_dead_jobs_with_their_dlq_presence(jobs, dlq):
    first = _dead(jobs)
    second = _dead(jobs, fail_permanently=True, sleep_ms=1)
    jobs.enqueue("diagnostic", {})

    entries = dlq.list(DlqListQuery()).items

    assert [e.id for e in entries] == [second, first]
    assert all(e.in_dlq and e.dlq_message_count == 1 and e.attempts == 3 for e in entries)
    assert len(entries[0].errors) == 3
    assert dlq.list(DlqListQuery(type="file_ingest")).items == []
    assert [e.id for e in dlq.list(DlqListQuery(type="diagnostic", limit=1)).items] == [second]


def test_get_dlq_entry_and_not_found(jobs, dlq):
    dead_id = _dead(jobs)
    alive = jobs.enqueue("diagnostic", {})

    entry = dlq.get(dead_id)

    assert entry.status == "dead" and entry.in_dlq and entry.attempts == 3
    with pytest.raises(NotFound, match="DLQ entry not found"):
        dlq.get(alive.id)
    with pytest.raises(NotFound):
        dlq.get("job_missing")


# -- requeue / delete --------------------------------------------------------------------------------------
def test_requeue_dlq_resets_attempts_runs_again_and_removes_the_dlq_message(jobs, dlq):
    dead_id = _dead(jobs, fail_until_requeued=True)

    requeued = dlq.requeue(dead_id)

    assert requeued.status == "queued" and requeued.attempts == 0 and requeued.requeued_from_dlq == 1
    assert queue_depth(os.environ["JOBS_DLQ_URL"]) == 0
    drain()
    done = jobs.get(dead_id)
    assert done.status == "completed" and done.attempts == 1 and done.handler_completions == 1
    assert dlq.list(DlqListQuery()).items == []
    listed = dlq.list(DlqListQuery(include_requeued=True)).items
    assert [e.id for e in listed] == [dead_id] and not listed[0].in_dlq
    with pytest.raises(Conflict):
        dlq.requeue(dead_id)


def test_requeue_dlq_without_reset_gives_one_more_attempt(jobs, dlq):
    dead_id = _dead(jobs)

    requeued = dlq.requeue(dead_id, reset_attempts=False)

    assert requeued.attempts == 3 and requeued.max_attempts == 4
    drain()
    assert jobs.get(dead_id).status == "dead" and jobs.get(dead_id).attempts == 4


def test_delete_dlq_entry_removes_the_message_and_hides_the_job(jobs, dlq):
    dead_id = _dead(jobs)

    entry = dlq.delete(dead_id)

    assert not entry.in_dlq and queue_depth(os.environ["JOBS_DLQ_URL"]) == 0
    assert jobs.get(dead_id).status == "dead" and jobs.get(dead_id).dlq_deleted
    assert dlq.list(DlqListQuery(include_requeued=True)).items == []
    with pytest.raises(NotFound):
        dlq.get(dead_id)
    with pytest.raises(NotFound):
        dlq.delete(dead_id)


# -- redrive -----------------------------------------------------------------------------------------------
def test_redrive_dlq_moves_every_message_back_and_each_runs_once(jobs, dlq):
    # Given three dead jobs that will succeed once they come back from the DLQ
    dead_ids = [jobs.enqueue("diagnostic", {"fail_until_requeued": True}).id for _ in range(3)]
    drain()
    assert all(jobs.get(i).status == "dead" for i in dead_ids)

    task = dlq.redrive(started_by="admin@test")

    assert task.mode == "manual" and task.status == "completed" and task.messages_moved == 3
    assert queue_depth(os.environ["JOBS_DLQ_URL"]) == 0
    drain()
    for job_id in dead_ids:
        done = jobs.get(job_id)
        assert done.status == "completed" and done.handler_completions == 1 and done.attempts == 1
    tasks = dlq.list_redrive_tasks().items
    assert [t.id for t in tasks] == [task.id] and tasks[0].started_by == "admin@test"


def test_redrive_dlq_uses_start_message_move_task_where_available(jobs):
    control = boto3.client("sqs")
    stub = Stubber(control)
    stub.add_response("start_message_move_task", {"TaskHandle": "handle-1"})
    stub.add_response(
        "list_message_move_tasks",
        {
            "Results": [
                {
                    "TaskHandle": "handle-1",
                    "Status": "COMPLETED",
                    "SourceArn": "arn:aws:sqs:us-east-1:123456789012:chatbot-local-jobs-dlq",
                    "ApproximateNumberOfMessagesMoved": 7,
                    "ApproximateNumberOfMessagesToMove": 7,
                }
            ]
        },
    )
    dlq = DlqService(jobs, control_sqs=control)

    with stub:
        task = dlq.redrive()
        tasks = dlq.list_redrive_tasks().items

    assert task.mode == "native" and task.task_handle == "handle-1" and task.status == "running"
    assert tasks[0].status == "completed" and tasks[0].messages_moved == 7
    stub.assert_no_pending_responses()


def test_redrive_dlq_refused_by_sqs_is_a_conflict(jobs):
    control = boto3.client("sqs")
    stub = Stubber(control)
    stub.add_client_error(
        "start_message_move_task", "AWS.SimpleQueueService.UnsupportedOperation", "A task is already running"
    )

    with stub, pytest.raises(Conflict, match="already running"):
        DlqService(jobs, control_sqs=control).redrive()
