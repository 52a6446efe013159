"""`file_ingest` and `vector_store_file_poll` through the worker, against the fake OpenAI over HTTP
(AWS: moto in-process)."""

from __future__ import annotations

import base64
import time
from collections.abc import Iterator

import openai
import pytest

from chatbot.dal.vector_stores import VectorStoreRepository
from chatbot.services.job_types.vector_store_file_poll import poll_job_id
from chatbot.services.jobs import JobService
from chatbot.upstream.openai_client import reset_openai_client
from infra.local.fake_openai import FakeOpenAI
from tests.unit._jobs_support import deliver, set_env

NOW = "2026-01-01T00:00:00.000000Z"


@pytest.fixture
def fake(aws_env, monkeypatch) -> Iterator[FakeOpenAI]:
    with FakeOpenAI(ingest_delay_s=0.3) as server:
        set_env(
            monkeypatch,
            OPENAI_BASE_URL=server.api_base,
            OPENAI_API_KEY="sk-test-jobs",
            JOB_BACKOFF_BASE_SECONDS="0",
            JOB_POLL_DELAY_SECONDS="1",
        )
        reset_openai_client()
        yield server
        reset_openai_client()


def _store_and_file(fake: FakeOpenAI, name: str = "notes.txt") -> None:
    upstream = openai.OpenAI(api_key="sk-test-jobs", base_url=fake.api_base).vector_stores.create(name="Docs")
    repo = VectorStoreRepository()
    repo.create_store(
        {
            "id": "vs_1",
            "name": "Docs",
            "openai_store_id": upstream.id,
            "status": "ingesting",
            "created_at": NOW,
            "updated_at": NOW,
        }
    )
    repo.create_file(
        {
            "id": "f_1",
            "vector_store_id": "vs_1",
            "name": name,
            "mime_type": "text/plain",
            "status": "pending",
            "created_at": NOW,
            "updated_at": NOW,
        }
    )


def _run_until(predicate, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        _, records = deliver()
        if not records:
            time.sleep(0.2)


def _file() -> dict:
    return VectorStoreRepository().get_file("vs_1", "f_1", consistent=True)


def test_file_ingest_uploads_attaches_and_polls_until_completed(fake):
    _store_and_file(fake)
    content = b"hello vector store"

    job = JobService().enqueue(
        "file_ingest",
        {"vector_store_id": "vs_1", "file_id": "f_1", "file_data": base64.b64encode(content).decode()},
    )
    _run_until(lambda: _file()["status"] == "completed")

    jobs = JobService()
    ingest = jobs.get(job.id)
    assert ingest.status == "completed" and ingest.result["uploaded"] is True
    assert ingest.result["poll_job_id"] == poll_job_id("vs_1", "f_1", 1)
    file = _file()
    assert file["openai_file_id"] == ingest.result["openai_file_id"]
    assert fake.state.file_contents[file["openai_file_id"]] == content
    first_poll = jobs.get(poll_job_id("vs_1", "f_1", 1))
    assert first_poll.status == "completed" and first_poll.type == "vector_store_file_poll"


def test_file_ingest_retry_does_not_upload_twice(fake):
    _store_and_file(fake)
    jobs = JobService()
    job = jobs.enqueue(
        "file_ingest",
        {"vector_store_id": "vs_1", "file_id": "f_1", "file_data": base64.b64encode(b"x").decode()},
    )
    _run_until(lambda: jobs.get(job.id).status == "completed")

    # The same ingestion again (e.g. an operator re-runs it): the file is already upstream.
    again = jobs.enqueue("file_ingest", {"vector_store_id": "vs_1", "file_id": "f_1"})
    _run_until(lambda: jobs.get(again.id).status == "completed")

    assert jobs.get(again.id).result["uploaded"] is False
    uploads = [r for r in fake.requests if r["method"] == "POST" and r["path"] == "/v1/files"]
    assert len(uploads) == 1


def test_file_ingest_failure_upstream_marks_the_file_failed(fake):
    _store_and_file(fake, name="will-fail.txt")

    JobService().enqueue(
        "file_ingest",
        {"vector_store_id": "vs_1", "file_id": "f_1", "file_data": base64.b64encode(b"bad").decode()},
    )
    _run_until(lambda: _file()["status"] == "failed")

    assert _file()["error_message"] == "The file could not be parsed."


def test_file_ingest_for_a_missing_file_fails_into_the_dlq(fake):
    _store_and_file(fake)
    jobs = JobService()

    job = jobs.enqueue("file_ingest", {"vector_store_id": "vs_1", "file_id": "f_missing"})
    _run_until(lambda: jobs.get(job.id).status == "dead")

    assert "not found" in jobs.get(job.id).last_error


def test_file_ingest_upstream_errors_are_retried(fake):
    _store_and_file(fake)
    # More 500s than the SDK's own retries absorb, so the job's first attempt fails.
    fake.queue_faults("500", "500", "500", path="/v1/files")
    jobs = JobService()

    job = jobs.enqueue(
        "file_ingest",
        {"vector_store_id": "vs_1", "file_id": "f_1", "file_data": base64.b64encode(b"x").decode()},
    )
    _run_until(lambda: jobs.get(job.id).status in ("completed", "dead"))

    done = jobs.get(job.id)
    assert done.status == "completed" and done.attempts == 2 and "500" in done.errors[0].error


def test_file_ingest_that_dies_marks_the_file_failed_with_its_last_error(fake):
    _store_and_file(fake)
    # Every attempt's upload fails (three attempts, each after the SDK's own retries).
    fake.queue_faults(*["500"] * 12, path="/v1/files")
    jobs = JobService()

    job = jobs.enqueue(
        "file_ingest",
        {"vector_store_id": "vs_1", "file_id": "f_1", "file_data": base64.b64encode(b"x").decode()},
    )
    _run_until(lambda: jobs.get(job.id).status == "dead")

    file = _file()
    assert file["status"] == "failed"
    assert file["error_message"] == jobs.get(job.id).last_error and "500" in file["error_message"]
