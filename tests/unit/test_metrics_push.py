"""metrics-push: every gauge of the original's /metrics, computed from seeded data in the emulator and
published as CloudWatch EMF (the JSON documents the handler prints, parsed as CloudWatch would)."""

from __future__ import annotations

import json
import os
from datetime import timedelta
from typing import Any

import boto3
import pytest

from chatbot import clock
from chatbot.dal.jobs import JobRepository
from chatbot.models.agents import AgentCreate
from chatbot.services.agents import AgentService
from infra.local.observability import emf_datapoints
from infra.local.runtime import LambdaContext


def _ago(minutes: float) -> str:
    # Read the clock at each use, not once at import: the suite may reach this test minutes later.
    return clock.iso(clock.now() - timedelta(minutes=minutes))


def _job(job_id: str, job_type: str, status: str, *, age_minutes: float = 1, **fields: Any) -> dict[str, Any]:
    created = _ago(age_minutes)
    return {
        "id": job_id,
        "type": job_type,
        "status": status,
        "created_at": created,
        "updated_at": created,
    } | fields


@pytest.fixture
def seeded(aws_env):
    """Given: jobs in every status, agents with a default, prompts, stores, users by role, queued messages."""
    repo = JobRepository()
    jobs = [
        _job("q1", "diagnostic", "queued", age_minutes=10),  # waiting 10 minutes
        _job("q2", "webhook_event", "queued"),
        _job("r1", "webhook_event", "running"),
        _job("r2", "file_ingest", "running", age_minutes=45),  # stuck: running 45 minutes
        _job("c1", "diagnostic", "completed"),
        _job("c2", "diagnostic", "completed"),
        _job("d1", "file_ingest", "dead"),
        _job("x1", "diagnostic", "cancelled"),
    ]
    for job in jobs:
        repo.create_job(job)
    repo.touch_heartbeat(at=_ago(8), success=True)

    agents = AgentService()
    agents.create(AgentCreate(name="default agent", is_default=True))
    agents.create(AgentCreate(name="other agent"))
    table = boto3.resource("dynamodb")
    for i in range(3):
        table.Table(os.environ["PROMPTS_TABLE"]).put_item(Item={"pk": f"PROMPT#p{i}", "sk": "PROMPT"})
    stores = table.Table(os.environ["VECTOR_STORES_TABLE"])
    stores.put_item(Item={"pk": "VS#vs1", "sk": "STORE"})
    stores.put_item(Item={"pk": "VS#vs1", "sk": "FILE#f1"})  # a file is not a store
    users = table.Table(os.environ["USERS_TABLE"])
    for uid, role, active in (("u1", "admin", True), ("u2", "admin", True), ("u3", "viewer", True)):
        users.put_item(Item={"pk": f"USER#{uid}", "sk": "USER", "role": role, "is_active": active})
    users.put_item(Item={"pk": "USER#u4", "sk": "USER", "role": "super-admin", "is_active": False})
    sqs = boto3.client("sqs")
    for i in range(4):
        sqs.send_message(QueueUrl=os.environ["JOBS_QUEUE_URL"], MessageBody=json.dumps({"job_id": f"m{i}"}))
    sqs.send_message(QueueUrl=os.environ["JOBS_DLQ_URL"], MessageBody=json.dumps({"job_id": "d1", "seq": 1}))
    return aws_env


def _push(stack: Any, capsys: pytest.CaptureFixture[str]) -> tuple[dict[str, Any], dict[tuple, float]]:
    from functions.metrics_push import app

    spec = stack.functions["MetricsPushFunction"]
    capsys.readouterr()
    result = app.handler({}, LambdaContext(spec.name, spec.arn, 128, 60.0, spec.log_group_name))
    points: dict[tuple, float] = {}
    for line in capsys.readouterr().out.splitlines():
        if line.startswith("{") and '"_aws"' in line:
            for p in emf_datapoints(json.loads(line)):
                assert p.namespace == "Chatbot"
                assert (p.name, p.dimensions) not in points, f"{p.name} {p.dimensions} published twice"
                points[(p.name, p.dimensions)] = p.value
    return result, points


def _gauge(points: dict[tuple, float], name: str, **dims: str) -> float:
    return points[(name, tuple(sorted({"service": "metrics_push", **dims}.items())))]


def test_metrics_push_publishes_every_gauge_from_the_data(seeded, capsys):
    result, points = _push(seeded, capsys)

    assert result["status"] == "ok" and result["metrics"] == len(points)
    statuses = {"queued": 2, "running": 2, "completed": 2, "dead": 1, "cancelled": 1}
    assert {s: _gauge(points, "chatbot_jobs_total", status=s) for s in statuses} == statuses
    assert _gauge(points, "chatbot_jobs_by_type", type="diagnostic", status="completed") == 2
    assert _gauge(points, "chatbot_jobs_by_type", type="webhook_event", status="running") == 1
    assert _gauge(points, "chatbot_jobs_by_type", type="vector_store_file_poll", status="queued") == 0
    assert _gauge(points, "chatbot_jobs_queue_depth") == 4
    assert _gauge(points, "chatbot_jobs_dlq_depth") == 1
    assert _gauge(points, "chatbot_webhook_events_pending") == 2
    assert _gauge(points, "chatbot_ingestion_stuck_total") == 1
    assert _gauge(points, "chatbot_agents_total") == 2
    assert _gauge(points, "chatbot_agents_default") == 1
    assert _gauge(points, "chatbot_prompts_total") == 3
    assert _gauge(points, "chatbot_vector_stores_total") == 1
    users = {
        r: _gauge(points, "chatbot_admin_users_total", role=r) for r in ("viewer", "admin", "super-admin")
    }
    assert users == {"viewer": 1, "admin": 2, "super-admin": 0}
    # A job has waited 10 minutes and the worker last started one 8 minutes ago: the worker is down.
    assert _gauge(points, "chatbot_worker_healthy") == 0
    assert 8 * 60 <= _gauge(points, "chatbot_worker_last_job_seconds") < 9 * 60
    per_table = [
        v for (name, dims), v in points.items() if name == "chatbot_database_size_bytes" and len(dims) == 2
    ]
    assert len(per_table) == 11 and _gauge(points, "chatbot_database_size_bytes") == sum(per_table)
    assert 0 <= _gauge(points, "chatbot_metrics_push_duration_seconds") < 30


def test_metrics_push_reports_a_healthy_worker_and_no_default_agent(aws_env, capsys):
    repo = JobRepository()
    repo.create_job(_job("q1", "diagnostic", "queued", age_minutes=10))
    repo.touch_heartbeat(at=_ago(1), success=True)  # still making progress
    AgentService().create(AgentCreate(name="not the default"))

    _, points = _push(aws_env, capsys)

    assert _gauge(points, "chatbot_worker_healthy") == 1
    assert _gauge(points, "chatbot_agents_default") == 0
    assert _gauge(points, "chatbot_agents_total") == 1


def test_metrics_push_on_an_empty_stack_reports_zeros_and_a_healthy_idle_worker(aws_env, capsys):
    _, points = _push(aws_env, capsys)

    assert _gauge(points, "chatbot_jobs_total", status="queued") == 0
    assert _gauge(points, "chatbot_jobs_queue_depth") == 0
    assert _gauge(points, "chatbot_worker_healthy") == 1  # never ran, nothing waiting: not down
    assert ("chatbot_worker_last_job_seconds", (("service", "metrics_push"),)) not in points
