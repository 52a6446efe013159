"""Health: each check's healthy, warning (degraded) and unhealthy case against the emulator and the fake
OpenAI, the overall status, and the admin API's 200 / 503."""

from __future__ import annotations

import json
import os
from datetime import timedelta
from typing import Any

import boto3
import pytest
from fastapi.testclient import TestClient

from chatbot import clock
from chatbot.admin.app import create_app
from chatbot.config import get_settings
from chatbot.dal.jobs import JobRepository
from chatbot.services import health
from chatbot.services.health import CHECKS, HealthReport, run_health
from tests.unit.auth_support import admin_env  # noqa: F401 - a fixture
from tests.unit.chat_support import fake_openai_fixture, fake_openai_server_fixture  # noqa: F401 - fixtures


def _run(name: str) -> HealthReport:
    return run_health(get_settings(), [c for c in CHECKS if c.name == name])


def _status(name: str) -> tuple[str, str]:
    report = _run(name)
    return report.checks[name].status, report.status


def _job(job_id: str, status: str, *, age: timedelta, **fields: Any) -> None:
    created = clock.iso(clock.now() - age)
    JobRepository().create_job(
        {"id": job_id, "type": "diagnostic", "status": status, "created_at": created, "updated_at": created}
        | fields
    )


def _send(queue_env: str, count: int) -> None:
    sqs = boto3.client("sqs")
    for start in range(0, count, 10):
        entries = [
            {"Id": str(i), "MessageBody": json.dumps({"n": i})} for i in range(start, min(count, start + 10))
        ]
        sqs.send_message_batch(QueueUrl=os.environ[queue_env], Entries=entries)


@pytest.fixture(autouse=True)
def _fresh_openai_cache():
    health.forget_openai_check()
    yield
    health.forget_openai_check()


# -- database (critical) ------------------------------------------------------------------------------------
def test_database_healthy(aws_env):
    assert _status("database") == ("healthy", "ok")


def test_database_unreachable_is_unhealthy_overall(aws_env):
    boto3.client("dynamodb").delete_table(TableName=os.environ["USERS_TABLE"])
    report = _run("database")
    assert (report.checks["database"].status, report.status) == ("unhealthy", "unhealthy")
    assert report.checks["database"].message == "database check failed"  # never the exception text


# -- secrets ----------------------------------------------------------------------------------------------
def test_secrets_healthy(aws_env):
    assert _status("secrets") == ("healthy", "ok")


def test_secrets_unreadable_is_unhealthy_but_only_degrades(aws_env, monkeypatch):
    monkeypatch.setenv("ADMIN_TOKEN_SECRET_ID", "no-such-secret")
    get_settings.cache_clear()
    assert _status("secrets") == ("unhealthy", "degraded")


# -- openai (cached 60 s) ---------------------------------------------------------------------------------
def test_openai_healthy_and_cached(aws_env, fake_openai):
    assert _status("openai") == ("healthy", "ok")
    assert _status("openai") == ("healthy", "ok")
    assert len(fake_openai.requests_to("/v1/models")) == 1  # the second answer came from the cache


def test_openai_errors_are_unhealthy_and_degrade(aws_env, fake_openai):
    fake_openai.queue_faults("500", path="/v1/models")
    report = _run("openai")
    assert (report.checks["openai"].status, report.status) == ("unhealthy", "degraded")
    assert report.checks["openai"].message == "OpenAI API error (HTTP 500)"


def test_openai_without_a_key_warns(aws_env, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)  # the template's secret holds its placeholder
    assert _status("openai") == ("warning", "degraded")


# -- worker -----------------------------------------------------------------------------------------------
def test_worker_never_ran_is_unknown_and_not_a_problem(aws_env):
    assert _status("worker") == ("unknown", "ok")


def test_worker_recently_active_is_healthy_even_with_old_work(aws_env):
    _job("old", "queued", age=timedelta(minutes=20))
    JobRepository().touch_heartbeat(at=clock.iso(clock.now() - timedelta(minutes=2)), success=True)
    assert _status("worker") == ("healthy", "ok")


def test_worker_idle_with_nothing_to_do_is_healthy(aws_env):
    JobRepository().touch_heartbeat(at=clock.iso(clock.now() - timedelta(hours=3)), success=True)
    _job("fresh", "queued", age=timedelta(minutes=1))  # waiting less than 5 minutes
    assert _status("worker") == ("healthy", "ok")


def test_worker_with_work_waiting_over_5_minutes_and_no_progress_is_unhealthy(aws_env):
    JobRepository().touch_heartbeat(at=clock.iso(clock.now() - timedelta(minutes=30)), success=True)
    _job("stuck", "queued", age=timedelta(minutes=12))
    report = _run("worker")
    assert (report.checks["worker"].status, report.status) == ("unhealthy", "degraded")
    assert report.checks["worker"].message.startswith("Jobs waiting for 12 minutes")


def test_worker_job_in_backoff_waits_from_its_available_time(aws_env):
    JobRepository().touch_heartbeat(at=clock.iso(clock.now() - timedelta(minutes=30)), success=True)
    _job("retrying", "queued", age=timedelta(minutes=40), available_at=clock.iso(clock.now()))
    assert _status("worker") == ("healthy", "ok")


# -- queue and DLQ ------------------------------------------------------------------------------------------
def test_queue_normal_is_healthy(aws_env):
    _send("JOBS_QUEUE_URL", 100)
    assert _status("queue") == ("healthy", "ok")


def test_queue_over_100_warns(aws_env):
    _send("JOBS_QUEUE_URL", 101)
    report = _run("queue")
    assert (report.checks["queue"].status, report.status) == ("warning", "degraded")
    assert report.metrics["queue_depth"] == 101


def test_dlq_empty_is_healthy(aws_env):
    assert _status("dlq") == ("healthy", "ok")


def test_dlq_not_empty_warns(aws_env):
    _send("JOBS_DLQ_URL", 2)
    assert _status("dlq") == ("warning", "degraded")


# -- failed jobs in the last 24 hours -----------------------------------------------------------------------
def test_failed_jobs_only_older_than_a_day_are_healthy(aws_env):
    _job("old-dead", "dead", age=timedelta(days=2))
    assert _status("failed_jobs") == ("healthy", "ok")


def test_failed_jobs_in_the_last_day_warn(aws_env):
    _job("dead-1", "dead", age=timedelta(hours=3))
    _job("dead-2", "dead", age=timedelta(hours=20))
    report = _run("failed_jobs")
    assert (report.checks["failed_jobs"].status, report.status) == ("warning", "degraded")
    assert report.metrics["failed_jobs_24h"] == 2


# -- the admin action: 200 ok / 200 degraded / 503 unhealthy -----------------------------------------------
@pytest.fixture
def admin(admin_env, fake_openai):  # noqa: F811
    with TestClient(create_app()) as client:
        client.headers["Authorization"] = f"Bearer {admin_env.admin_token}"
        yield client


def test_admin_health_ok(admin):
    response = admin.get("/admin/health")
    assert response.status_code == 200
    body = response.json()["data"]
    assert body["status"] == "ok"
    assert set(body["checks"]) == {"database", "secrets", "openai", "worker", "queue", "dlq", "failed_jobs"}
    assert body["metrics"] == {
        "queue_depth": 0,
        "dlq_depth": 0,
        "worker_last_seen": None,
        "failed_jobs_24h": 0,
    }


def test_admin_health_degraded_is_still_200(admin):
    _send("JOBS_DLQ_URL", 1)
    response = admin.get("/admin-api.php?action=health")
    assert response.status_code == 200 and response.json()["data"]["status"] == "degraded"


def test_admin_health_unhealthy_is_503_with_the_report(admin):
    boto3.client("dynamodb").delete_table(TableName=os.environ["USERS_TABLE"])
    response = admin.get("/admin/health")
    assert response.status_code == 503
    body = response.json()["data"]
    assert body["status"] == "unhealthy" and body["checks"]["database"]["status"] == "unhealthy"


def test_public_health_says_only_that_the_service_is_up(admin):
    response = admin.get("/health", headers={"Authorization": ""})
    assert response.status_code == 200 and response.json() == {"status": "ok"}
