"""Contract tests of the admin actions on every route style: REST, `/admin-api.php?action=NAME` and
`/admin-api.php/NAME`.

- Every action of the table (read from it, so a new action is covered without touching this file) answers
  its generic inputs with a status its OpenAPI operation documents, in the envelope: `{"data": ...}`
  (`next_cursor` too for paged lists; data valid against the action's response model) or
  `{"error": {"message", "code", "status"[, "details"]}}`; reads answer all three styles alike.
- The actions whose success the resource tests (tests/integration/test_admin_resources.py: agents, prompts,
  vector stores, files) do not already show on all three styles succeed here, table-driven: users, API
  keys, token migration and rotation, audit log, usage and quotas, system, jobs and the DLQ.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from chatbot.admin.app import load_actions
from chatbot.admin.framework import Action, actions
from infra.local.fake_openai import FakeOpenAI
from tests.unit.admin_api_support import STYLES, World, admin_world, sample_inputs

load_actions()
ACTION_NAMES = sorted(a.name for a in actions)


@pytest.fixture(scope="module")
def world() -> Iterator[World]:
    with FakeOpenAI(token_latency_ms=0) as fake, admin_world(fake.api_base) as w:
        yield w


@pytest.fixture(scope="module")
def openapi(world) -> dict[str, Any]:
    response = world.client.get("/admin/openapi.json")
    assert response.status_code == 200
    return response.json()


# -- every action: documented statuses, envelopes, styles alike ---------------------------------------------
@pytest.mark.parametrize("name", ACTION_NAMES)
def test_every_action_answers_in_its_documented_envelope_on_every_style(world, openapi, name):
    action = actions.get(name)
    assert action is not None
    params, body = sample_inputs(action)

    responses = {style: world.call(name, style, ids=params, body=body) for style in STYLES}

    for style, response in responses.items():
        assert_contract(openapi, action, response, style)
    if action.methods == ("GET",):  # reads change nothing: the three styles must answer the same
        statuses = {r.status_code for r in responses.values()}
        assert len(statuses) == 1, {s: r.status_code for s, r in responses.items()}
        if statuses != {200}:  # error bodies are equal; successful reads may carry times and request ids
            assert len({r.text for r in responses.values()}) == 1


def assert_contract(openapi: dict[str, Any], action: Action, response: Any, style: str) -> None:
    where = f"{action.name} ({style}) answered {response.status_code}: {response.text[:300]}"
    operation = openapi["paths"][action.path][action.methods[0].lower()]
    assert str(response.status_code) in operation["responses"], f"undocumented status: {where}"
    if response.status_code >= 400:
        body = response.json()
        assert set(body) == {"error"}, where
        error = body["error"]
        assert {"message", "code", "status"} <= set(error) <= {"message", "code", "status", "details"}, where
        assert error["status"] == response.status_code, where
        assert isinstance(error["message"], str) and error["message"], where
        assert isinstance(error["code"], str) and error["code"], where
        return
    assert response.status_code == action.status_code or action.name == "health", where
    documented = operation["responses"][str(response.status_code)]["content"]
    media_type = response.headers["content-type"].split(";")[0]
    assert media_type in documented, where
    if media_type != "application/json":
        return
    body = response.json()
    assert set(body) == ({"data", "next_cursor"} if action.paged else {"data"}), where
    if action.response is not None:
        items = body["data"] if action.paged else [body["data"]]
        for item in items:
            action.response.model_validate(item)


# -- successes, table-driven --------------------------------------------------------------------------------
@dataclass
class Call:
    ids: dict[str, str] = field(default_factory=dict)
    query: dict[str, Any] = field(default_factory=dict)
    body: Any = None
    check: Callable[[Any], bool] = lambda data: True  # what the data must satisfy


def _email() -> str:
    return f"c-{uuid.uuid4().hex[:10]}@example.com"


def _user(world: World, role: str = "viewer") -> str:
    response = world.call("create_user", body={"email": _email(), "role": role})
    assert response.status_code == 201, response.text
    return str(response.json()["data"]["id"])


def _after(setup: Any, call: Call) -> Call:
    """`call`, once `setup` (evaluated first, as the argument) has made what it lists."""
    return call


def _job(**options: Any) -> str:
    from chatbot.services.jobs import JobService

    return JobService().enqueue("diagnostic", {}, **options).id


def _cancelled_job() -> str:
    from chatbot.services.jobs import JobService

    job_id = _job(delay_seconds=900)
    JobService().cancel(job_id)
    return job_id


def _dead_job() -> str:
    from chatbot.services.jobs import JobService
    from tests.unit._jobs_support import drain

    job = JobService().enqueue("diagnostic", {"fail_permanently": True}, max_attempts=1)
    drain()
    assert JobService().get(job.id).status == "dead"
    return job.id


SUCCESS: dict[str, Callable[[World], Call]] = {
    "whoami": lambda w: Call(
        check=lambda d: d["role"] == "super-admin" and d["auth_method"] == "admin_token"
    ),
    "health": lambda w: Call(check=lambda d: d["status"] in ("ok", "degraded")),
    "list_users": lambda w: Call(query={"limit": 2}, check=lambda d: len(d) == 2),
    "create_user": lambda w: Call(body={"email": _email(), "role": "viewer"}, check=lambda d: d["is_active"]),
    "get_user": lambda w: Call(ids={"id": w.bystander_id}, check=lambda d: d["id"] == w.bystander_id),
    "update_user_role": lambda w: Call(
        ids={"id": _user(w)}, body={"role": "admin"}, check=lambda d: d["user"]["role"] == "admin"
    ),
    "deactivate_user": lambda w: Call(ids={"id": _user(w)}, check=lambda d: d["user"]["is_active"] is False),
    "generate_api_key": lambda w: Call(
        body={"user_id": w.bystander_id, "name": "contract", "expires_in_days": 1},
        check=lambda d: d["key"].startswith("chatbot_") and d["expires_at"],
    ),
    "list_api_keys": lambda w: Call(
        query={"user_id": w.bystander_id}, check=lambda d: all(k["user_id"] == w.bystander_id for k in d)
    ),
    "revoke_api_key": lambda w: Call(
        ids={"id": w.new_key(w.bystander_id)[0]}, check=lambda d: d["api_key"]["is_active"] is False
    ),
    "migrate_legacy_token": lambda w: Call(
        check=lambda d: (
            d["user"]["email"] == "admin@system.local" and d["api_key"]["key"].startswith("chatbot_")
        )
    ),
    "rotate_admin_token": lambda w: Call(check=lambda d: len(d["new_token"]) == 64),
    "list_audit_log": lambda w: _after(
        [_user(w) for _ in range(3)],
        Call(query={"limit": 3, "action": "user.create"}, check=lambda d: len(d) == 3),
    ),
    "usage": lambda w: Call(query={"day_from": "2026-01-01", "day_to": "2026-01-02"}),
    "set_quota": lambda w: Call(
        body={"scope": "agent", "id": "agent-x", "daily_tokens": 1000},
        check=lambda d: d["quota"]["daily_tokens"] == 1000,
    ),
    "list_quotas": lambda w: Call(check=lambda d: isinstance(d["items"], list)),
    "enqueue_job": lambda w: Call(
        body={"type": "diagnostic", "payload": {"sleep_ms": 1}, "delay_seconds": 900},
        check=lambda d: d["status"] == "queued",
    ),
    "list_jobs": lambda w: _after(
        _job(delay_seconds=900), Call(query={"status": "queued", "limit": 1}, check=lambda d: len(d) == 1)
    ),
    "job_stats": lambda w: _after(
        _job(delay_seconds=900), Call(query={"by_type": "true"}, check=lambda d: "diagnostic" in d["by_type"])
    ),
    "get_job": lambda w: (lambda job_id: Call(ids={"id": job_id}, check=lambda d: d["id"] == job_id))(
        _job(delay_seconds=900)
    ),
    "cancel_job": lambda w: Call(
        ids={"id": _job(delay_seconds=900)}, check=lambda d: d["job"]["status"] == "cancelled"
    ),
    "retry_job": lambda w: Call(ids={"id": _cancelled_job()}, check=lambda d: d["job"]["status"] == "queued"),
    "list_dlq": lambda w: Call(query={"type": "diagnostic"}),
    "get_dlq_entry": lambda w: Call(ids={"id": _dead_job()}, check=lambda d: d["status"] == "dead"),
    "requeue_dlq": lambda w: Call(
        ids={"id": _dead_job()}, check=lambda d: d["message"] == "Job requeued from DLQ"
    ),
    "delete_dlq_entry": lambda w: Call(
        ids={"id": _dead_job()}, check=lambda d: d["message"] == "DLQ entry deleted"
    ),
    "redrive_dlq": lambda w: Call(check=lambda d: d["status"] in ("running", "completed")),
    "list_redrive_tasks": lambda w: Call(query={"limit": 5}),
}


@pytest.mark.parametrize("style", STYLES)
@pytest.mark.parametrize("name", sorted(SUCCESS))
def test_success_shape_on_every_style(world, openapi, name, style):
    action = actions.get(name)
    assert action is not None
    call = SUCCESS[name](world)

    response = world.call(name, style, ids=call.ids, query=call.query, body=call.body)

    assert response.status_code == action.status_code, response.text
    assert_contract(openapi, action, response, style)
    assert call.check(response.json()["data"]), response.text


@pytest.mark.parametrize("style", STYLES)
def test_error_shapes_on_every_style(world, openapi, style):
    """The error statuses of the non-resource actions (the resource ones are in test_admin_resources)."""
    cases: list[tuple[str, dict[str, Any], int, str]] = [
        ("get_user", {"ids": {"id": "nobody"}}, 404, "not_found"),
        ("create_user", {"body": {"email": "not-an-email"}}, 422, "validation_error"),
        ("create_user", {"body": b"{"}, 400, "invalid_json"),
        (
            "update_user_role",
            {"ids": {"id": world.bystander_id}, "body": {"role": "god"}},
            422,
            "validation_error",
        ),
        ("generate_api_key", {"body": {"name": "no owner"}}, 400, "user_id_required"),
        (
            "generate_api_key",
            {"body": {"user_id": world.bystander_id, "expires_in_days": 0}},
            422,
            "validation_error",
        ),
        ("revoke_api_key", {"ids": {"id": "ak_0000000000000000"}}, 404, "not_found"),
        ("list_audit_log", {"query": {"cursor": "%%%"}}, 400, "invalid_cursor"),
        ("list_audit_log", {"query": {"limit": 0}}, 422, "validation_error"),
        ("usage", {"query": {"day_from": "yesterday"}}, 422, "validation_error"),
        ("set_quota", {"body": {"scope": "planet", "id": "x"}}, 422, "validation_error"),
        ("enqueue_job", {"body": {"type": "file_ingest"}}, 422, "validation_error"),
        ("get_job", {"ids": {"id": "job_missing"}}, 404, "job_not_found"),
        ("cancel_job", {"ids": {"id": _cancelled_job()}}, 409, None),
        ("get_dlq_entry", {"ids": {"id": "job_missing"}}, 404, "dlq_entry_not_found"),
        # Numbers DynamoDB cannot store are refused up front (they used to fail the write with a 500)
        ("enqueue_job", {"body": {"type": "diagnostic", "payload": {"n": [1e300]}}}, 422, "validation_error"),
        ("create_agent", {"body": {"name": "tiny", "top_p": 1e-200}}, 422, "validation_error"),
        (
            "set_quota",
            {"body": {"scope": "agent", "id": "a", "daily_tokens": 10**40}},
            422,
            "validation_error",
        ),
        ("create_agent", {"body": b'{"name": "nan", "temperature": NaN}'}, 400, "invalid_json"),
        ("create_prompt", {"body": {"name": "p", "meta": {"a": {"": []}}}}, 422, "validation_error"),
        ("generate_api_key", {"body": {"user_id": "nobody"}}, 404, "not_found"),
        ("whoami", {"caller": "wrong_token"}, 401, "invalid_credentials"),
        ("list_users", {"caller": "expired_key"}, 401, "expired_key"),
    ]
    viewer_denied = [
        ("list_users", {}),
        ("rotate_admin_token", {}),
        ("migrate_legacy_token", {}),
        ("list_dlq", {}),
    ]

    for name, kwargs, status, code in cases:
        response = world.call(name, style, **kwargs)
        assert response.status_code == status, f"{name}: {response.text}"
        assert_contract(openapi, actions.get(name), response, style)  # type: ignore[arg-type]
        assert code is None or response.json()["error"]["code"] == code, f"{name}: {response.text}"
    for name, kwargs in viewer_denied:
        response = world.call(name, style, caller="viewer", **kwargs)
        assert response.status_code == 403 and response.json()["error"]["code"] == "forbidden", name
        assert_contract(openapi, actions.get(name), response, style)  # type: ignore[arg-type]


# -- the OpenAPI document -----------------------------------------------------------------------------------
def test_openapi_documents_each_routes_permission_and_error_responses(openapi):
    for action in actions:
        for method in action.methods:
            operation = openapi["paths"][action.path][method.lower()]
            where = f"{method} {action.path}"
            assert operation["x-permission"] == action.access.describe(), where
            assert f"Permission: `{action.access.describe()}`" in operation["description"], where
            assert {"401", "403", "429"} <= set(operation["responses"]), where
            for status, response in operation["responses"].items():
                if int(status) >= 400:
                    schema = response["content"]["application/json"]["schema"]
                    assert schema["$ref"] == "#/components/schemas/ErrorEnvelope", where
            assert "Retry-After" in operation["responses"]["429"]["headers"], where
    for path in ("/admin-api.php", "/admin-api.php/{legacy_action}"):
        for operation in openapi["paths"][path].values():
            assert {"400", "401", "403", "404", "405", "409", "422", "429"} <= set(operation["responses"])


def test_openapi_declares_the_test_agent_stream(openapi):
    operation = openapi["paths"]["/admin/agents/{id}/test"]["post"]

    assert set(operation["responses"]["200"]["content"]) == {"text/event-stream"}
    assert operation["x-permission"] == "update"
