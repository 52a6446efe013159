"""The job and DLQ admin actions through the admin app (REST and legacy routes), on moto in-process:
envelopes, permissions (viewer reads jobs; DLQ and changes need manage_jobs), audit entries, errors."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from starlette.testclient import TestClient

from chatbot.services.jobs import JobService
from tests.unit._jobs_support import drain, set_env

JOB_ACTIONS = {
    "list_jobs", "get_job", "retry_job", "cancel_job", "job_stats", "enqueue_job", "list_dlq",
    "get_dlq_entry", "requeue_dlq", "delete_dlq_entry", "redrive_dlq", "list_redrive_tasks",
}  # fmt: skip


class Admin:
    def __init__(self, client: TestClient, token: str, viewer: str, operator: str) -> None:
        self.client, self.token, self.viewer, self.operator = client, token, viewer, operator

    def call(
        self,
        name: str,
        *,
        style: str = "rest",
        id: str | None = None,
        query: dict[str, Any] | None = None,
        body: Any = None,
        as_: str = "admin",
        method: str | None = None,
    ) -> Any:
        from chatbot.admin.framework import actions

        action = actions.get(name)
        assert action is not None, name
        params = dict(query or {})
        if style == "rest":
            url = re.sub(r"\{id\}", id or "", action.path)
        else:
            url = "/admin-api.php" if style == "query" else f"/admin-api.php/{name}"
            if style == "query":
                params["action"] = name
            if id:
                params["id"] = id
        token = {"admin": self.token, "viewer": self.viewer, "operator": self.operator}[as_]
        return self.client.request(
            method or action.methods[0],
            url,
            params=params,
            json=body,
            headers={"Authorization": f"Bearer {token}"},
        )


@pytest.fixture
def admin(aws_env, monkeypatch) -> Iterator[Admin]:
    from chatbot.admin.app import create_app
    from chatbot.config import get_settings
    from chatbot.models.auth import ApiKeyCreate, UserCreate
    from chatbot.secrets import get_secret
    from chatbot.services.api_keys import ApiKeyService
    from chatbot.services.users import UserService

    set_env(monkeypatch, JOB_BACKOFF_BASE_SECONDS="0", ADMIN_RATE_LIMIT="100000")
    settings = get_settings()
    token = get_secret(settings.admin_token_secret_id).value
    users = UserService.from_settings(settings)
    keys = ApiKeyService.from_settings(settings)
    tag = uuid.uuid4().hex[:6]
    viewer = users.create(UserCreate(email=f"viewer-{tag}@example.com", role="viewer"))
    operator = users.create(UserCreate(email=f"op-{tag}@example.com", role="admin"))
    with TestClient(create_app(), raise_server_exceptions=False) as client:
        yield Admin(
            client,
            token,
            keys.generate(viewer.id, ApiKeyCreate(name="t")).key,
            keys.generate(operator.id, ApiKeyCreate(name="t")).key,
        )


def _data(response: Any, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    return response.json()["data"]


def _error(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) >= {"message", "code", "status"} and error["status"] == status
    return error


def _dead_job() -> str:
    job = JobService().enqueue("diagnostic", {"fail_permanently": True})
    drain()
    return job.id


def test_job_actions_are_all_declared():
    from chatbot.admin.app import load_actions
    from chatbot.admin.framework import actions

    load_actions()
    assert {a.name for a in actions} >= JOB_ACTIONS


@pytest.mark.parametrize("style", ["rest", "query", "path"])
def test_enqueue_list_get_and_stats_on_every_route_style(admin, style):
    created = _data(
        admin.call("enqueue_job", style=style, body={"type": "diagnostic", "payload": {"sleep_ms": 1}}), 201
    )

    assert created["status"] == "queued" and created["payload"]["sleep_ms"] == 1
    listed = admin.call("list_jobs", style=style, query={"status": "queued", "limit": 10})
    assert listed.status_code == 200 and created["id"] in [j["id"] for j in listed.json()["data"]]
    assert "next_cursor" in listed.json()
    assert _data(admin.call("get_job", style=style, id=created["id"]))["id"] == created["id"]
    stats = _data(admin.call("job_stats", style=style, query={"by_type": "true"}))
    assert stats["queued"] == 1 and stats["pending"] == 1 and stats["by_type"]["diagnostic"]["queued"] == 1


def test_job_lifecycle_through_the_admin_api(admin):
    job = _data(
        admin.call("enqueue_job", body={"type": "diagnostic", "payload": {}, "delay_seconds": 60}), 201
    )

    cancelled = _data(admin.call("cancel_job", id=job["id"]))
    assert (
        cancelled
        == {"success": True, "message": "Job cancelled", "job_id": job["id"], "job": cancelled["job"]}
        and cancelled["job"]["status"] == "cancelled"
    )
    _error(admin.call("cancel_job", id=job["id"]), 409)
    retried = _data(admin.call("retry_job", style="query", id=job["id"], query={"reset_attempts": "true"}))
    assert retried["message"] == "Job retried" and retried["job"]["status"] == "queued"
    drain()
    assert _data(admin.call("get_job", id=job["id"]))["status"] == "completed"
    _error(admin.call("retry_job", id=job["id"]), 409)


def test_enqueue_job_accepts_only_valid_diagnostic_jobs(admin):
    error = _error(admin.call("enqueue_job", body={"type": "file_ingest", "payload": {}}), 422)
    assert error["details"]
    _error(admin.call("enqueue_job", body={"type": "diagnostic", "payload": {"sleep_ms": "x"}}), 422)
    _error(admin.call("enqueue_job", body={"type": "diagnostic", "unknown": 1}), 422)
    _error(admin.call("get_job", id="job_missing"), 404)
    _error(admin.call("list_jobs", query={"cursor": "garbage"}), 400)


def test_dlq_actions_through_the_admin_api(admin):
    dead = _dead_job()

    entries = admin.call("list_dlq", style="path", query={"type": "diagnostic"})
    assert [e["id"] for e in _data(entries)] == [dead] and _data(entries)[0]["in_dlq"] is True
    entry = _data(admin.call("get_dlq_entry", style="query", id=dead))
    assert entry["attempts"] == 3 and len(entry["errors"]) == 3
    requeued = _data(admin.call("requeue_dlq", id=dead, query={"reset_attempts": "false"}))
    assert requeued["message"] == "Job requeued from DLQ" and requeued["job"]["attempts"] == 3
    _error(admin.call("requeue_dlq", id=dead), 409)
    drain()  # one more attempt; it fails again and is dead again

    assert _data(admin.call("delete_dlq_entry", id=dead)) == {"success": True, "message": "DLQ entry deleted"}
    _error(admin.call("get_dlq_entry", id=dead), 404)
    assert _data(admin.call("delete_dlq_entry", style="query", id=_dead_job(), method="POST"))["success"]


def test_redrive_through_the_admin_api(admin):
    job = JobService().enqueue("diagnostic", {"fail_until_requeued": True})
    drain()

    task = _data(admin.call("redrive_dlq"))
    drain()

    assert task["mode"] == "manual" and task["status"] == "completed" and task["messages_moved"] == 1
    assert task["started_by"]
    assert [t["id"] for t in _data(admin.call("list_redrive_tasks"))] == [task["id"]]
    assert _data(admin.call("get_job", id=job.id))["status"] == "completed"


def test_viewer_reads_jobs_but_cannot_change_them_or_see_the_dlq(admin):
    job = JobService().enqueue("diagnostic", {})

    assert admin.call("list_jobs", as_="viewer").status_code == 200
    assert admin.call("get_job", id=job.id, as_="viewer").status_code == 200
    assert admin.call("job_stats", as_="viewer").status_code == 200
    for name, kwargs in [
        ("enqueue_job", {"body": {"type": "diagnostic"}}),
        ("retry_job", {"id": job.id}),
        ("cancel_job", {"id": job.id}),
        ("list_dlq", {}),
        ("get_dlq_entry", {"id": job.id}),
        ("requeue_dlq", {"id": job.id}),
        ("delete_dlq_entry", {"id": job.id}),
        ("redrive_dlq", {}),
        ("list_redrive_tasks", {}),
    ]:
        error = _error(admin.call(name, as_="viewer", **kwargs), 403)
        assert "manage_jobs" in error["message"], name
    assert JobService().get(job.id).status == "queued"


def test_admin_role_has_manage_jobs_and_changes_are_audited(admin):
    job = JobService().enqueue("diagnostic", {})

    _data(admin.call("cancel_job", id=job.id, as_="operator"))
    _data(admin.call("list_dlq", as_="operator"))

    items = boto3.resource("dynamodb").Table(_audit_table()).scan()["Items"]
    cancel = [i for i in items if i.get("action") == "job.cancel"]
    assert len(cancel) == 1 and cancel[0]["resource_id"] == job.id and cancel[0]["outcome"] == "success"


def _audit_table() -> str:
    from chatbot.config import get_settings

    return get_settings().audit_table
