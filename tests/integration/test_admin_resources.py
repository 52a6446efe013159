"""Contract tests of the agent, prompt, vector store, file and test_agent actions on every route style.

The admin app runs in-process (Starlette's TestClient) on the template's resources in moto and the fake
OpenAI; each action is called as its REST route, as `/admin-api.php?action=NAME` and as
`/admin-api.php/NAME`, and must answer the same envelope: `{"data": ...}` on success,
`{"error": {"message", "code", "status"}}` on failure (401, 403, 404, 405, 409, 422).
"""

from __future__ import annotations

import base64
import json
import os
import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from infra.local.fake_openai import FakeOpenAI

ROOT = Path(__file__).resolve().parents[2]
STYLES = ("rest", "query", "path")
TEXT = base64.b64encode(b"Refunds take 5 days.\n").decode()
MY_ACTIONS = {
    "list_agents", "get_agent", "create_agent", "update_agent", "delete_agent", "make_default", "test_agent",
    "list_prompts", "get_prompt", "create_prompt", "update_prompt", "delete_prompt", "list_prompt_versions",
    "create_prompt_version", "sync_prompts", "list_vector_stores", "get_vector_store", "create_vector_store",
    "update_vector_store", "delete_vector_store", "list_vector_store_files", "add_vector_store_file",
    "delete_vector_store_file", "poll_file_status", "sync_vector_stores",
    "list_files", "upload_file", "delete_file",
}  # fmt: skip


# -- one environment per module (tests use unique names, so they do not see each other) ---------------------
@pytest.fixture(scope="module")
def fake() -> Iterator[FakeOpenAI]:
    with FakeOpenAI(token_latency_ms=0, ingest_delay_s=0.05) as server:
        yield server


@pytest.fixture(scope="module")
def admin(fake: FakeOpenAI) -> Iterator[Admin]:
    from moto import mock_aws

    from chatbot import aws
    from chatbot.admin.app import create_app
    from chatbot.config import get_settings
    from chatbot.models.auth import ApiKeyCreate, UserCreate
    from chatbot.secrets import get_secret
    from chatbot.services.api_keys import ApiKeyService
    from chatbot.services.chat import reset_chat_service
    from chatbot.services.users import UserService
    from infra.local.provision import RUNTIME_TYPES, provision

    with pytest.MonkeyPatch.context() as mp:
        for var in [k for k in os.environ if k.startswith("AWS_ENDPOINT_URL")]:
            mp.delenv(var)
        with mock_aws():
            stack = provision(
                ROOT / "template.yaml", parameters={"Stage": "local"}, include_types=RUNTIME_TYPES
            )
            for key, value in stack.environment().items():
                mp.setenv(key, value)
            mp.setenv("OPENAI_BASE_URL", fake.api_base)
            mp.setenv("OPENAI_API_KEY", "sk-test")
            mp.setenv("JOB_POLL_DELAY_SECONDS", "0")
            mp.setenv("ADMIN_RATE_LIMIT", "100000")
            mp.setenv("CHAT_RATE_LIMIT", "100000")
            get_settings.cache_clear()
            aws.reset()
            reset_chat_service()
            settings = get_settings()
            token = get_secret(settings.admin_token_secret_id).value
            users = UserService.from_settings(settings)
            viewer = users.create(
                UserCreate(email=f"viewer-{uuid.uuid4().hex[:6]}@example.com", role="viewer")
            )
            viewer_key = ApiKeyService.from_settings(settings).generate(viewer.id, ApiKeyCreate(name="t")).key
            with TestClient(create_app(), raise_server_exceptions=False) as client:
                yield Admin(client, token, viewer_key)
            reset_chat_service()
            get_settings.cache_clear()
            aws.reset()


class Admin:
    """Calls one action in one route style, as the admin token (or `as_token`)."""

    def __init__(self, client: TestClient, token: str, viewer_key: str) -> None:
        self.client = client
        self.token = token
        self.viewer_key = viewer_key

    def call(
        self,
        name: str,
        style: str = "rest",
        *,
        ids: dict[str, str] | None = None,
        query: dict[str, Any] | None = None,
        body: Any = None,
        method: str | None = None,
        token: str | None = "admin",
        headers: dict[str, str] | None = None,
    ) -> Any:
        from chatbot.admin.framework import actions

        action = actions.get(name)
        assert action is not None, name
        method = method or action.methods[0]
        ids = ids or {}
        params = dict(query or {})
        if style == "rest":
            url = re.sub(r"\{(\w+)\}", lambda m: ids[m.group(1)], action.path)
            params.update({k: v for k, v in ids.items() if "{" + k + "}" not in action.path})
        else:
            url = "/admin-api.php" if style == "query" else f"/admin-api.php/{name}"
            if style == "query":
                params["action"] = name
            params.update(ids)
        all_headers = dict(headers or {})
        if token is not None:
            all_headers["Authorization"] = f"Bearer {self.token if token == 'admin' else token}"
        content = None if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
        if content is not None:
            all_headers["Content-Type"] = "application/json"
        return self.client.request(method, url, params=params, content=content, headers=all_headers)


def _data(response: Any, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) <= {"data", "next_cursor"} and "data" in body, body
    return body["data"]


def _error(response: Any, status: int, code: str | None = None) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"}, body
    error = body["error"]
    assert {"message", "code", "status"} <= set(error) and error["status"] == status
    assert isinstance(error["message"], str) and error["message"]
    if code:
        assert error["code"] == code, error
    return error


def _name(prefix: str = "n") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def _agent(admin: Admin, **fields: Any) -> dict[str, Any]:
    return _data(admin.call("create_agent", body={"name": _name("agent"), **fields}), 201)


def _store(admin: Admin) -> dict[str, Any]:
    return _data(admin.call("create_vector_store", body={"name": _name("store")}), 201)


# -- the action table ---------------------------------------------------------------------------------------
def test_action_table_declares_every_resource_action(admin):
    from chatbot.admin.framework import actions

    declared = {a.name: a for a in actions}
    assert set(declared) >= MY_ACTIONS
    for name in MY_ACTIONS:
        action = declared[name]
        expected = "read" if action.methods == ("GET",) else None
        if expected:
            assert action.access.permission == "read", name
        else:
            assert action.access.permission in ("create", "update", "delete"), name
            assert action.audit, name


def test_openapi_lists_resource_routes_with_permissions(admin):
    doc = admin.client.get("/admin/openapi.json").json()
    operations = {}
    for path in doc["paths"].values():
        for op in path.values():
            # Actions with several methods are documented once per method: `update_agent_put`, ...
            name = re.sub(r"_(put|patch|post|delete)$", "", op["operationId"])
            operations[name] = op
    for name in MY_ACTIONS:
        assert name in operations, name
        assert operations[name]["x-permission"] in ("read", "create", "update", "delete")


# -- agents -------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("style", STYLES)
def test_create_agent_success_and_errors(admin, style):
    name = _name("Agent")
    created = _data(admin.call("create_agent", style, body={"name": name, "temperature": 0.5}), 201)
    assert created["name"] == name and created["version"] == 1 and created["is_default"] is False

    _error(admin.call("create_agent", style, body={"name": name.upper()}), 409, "agent_name_taken")
    invalid = _error(admin.call("create_agent", style, body={"name": "x", "temperature": 3}), 422)
    assert invalid["details"][0]["loc"] == ["body", "temperature"]
    _error(admin.call("create_agent", style, body={"description": "no name"}), 422)
    _error(admin.call("create_agent", style, body=b"{not json"), 400, "invalid_json")
    _error(admin.call("create_agent", style, body={"name": _name()}, token=None), 401)
    _error(admin.call("create_agent", style, body={"name": _name()}, token=admin.viewer_key), 403)


@pytest.mark.parametrize("style", STYLES)
def test_get_and_list_agents_success_and_errors(admin, style):
    agent = _agent(admin, api_type="chat")

    got = _data(admin.call("get_agent", style, ids={"id": agent["id"]}, token=admin.viewer_key))
    listed = admin.call("list_agents", style, query={"name": agent["name"][6:], "api_type": "chat"})

    assert got == agent
    assert [a["id"] for a in _data(listed)] == [agent["id"]] and "next_cursor" in listed.json()
    _error(admin.call("get_agent", style, ids={"id": "missing"}), 404, "agent_not_found")
    _error(admin.call("list_agents", style, query={"api_type": "assistants"}), 422)
    _error(admin.call("list_agents", style, query={"cursor": "bad!"}), 400, "invalid_cursor")
    _error(admin.call("list_agents", style, token="wrong-token"), 401)


@pytest.mark.parametrize("style", STYLES)
def test_update_agent_success_and_errors(admin, style):
    agent = _agent(admin)
    method = "PUT" if style == "rest" else "POST"

    updated = _data(
        admin.call(
            "update_agent", style, ids={"id": agent["id"]}, body={"top_p": 0.5, "version": 1}, method=method
        )
    )
    assert updated["top_p"] == 0.5 and updated["version"] == 2

    stale = _error(
        admin.call(
            "update_agent", style, ids={"id": agent["id"]}, body={"top_p": 0.1, "version": 1}, method=method
        ),
        409,
    )
    assert stale["details"] == {"current_version": 2}
    _error(
        admin.call("update_agent", style, ids={"id": agent["id"]}, body={"top_p": 0.1}, method=method,
                   headers={"If-Match": '"1"'}),
        409,
    )  # fmt: skip
    _error(admin.call("update_agent", style, ids={"id": agent["id"]}, body={"top_p": 2}, method=method), 422)
    _error(admin.call("update_agent", style, ids={"id": "missing"}, body={"top_p": 0.2}, method=method), 404)
    _error(
        admin.call(
            "update_agent", style, ids={"id": agent["id"]}, body={}, method=method, token=admin.viewer_key
        ),
        403,
    )


def test_update_agent_patch_with_if_match(admin):
    agent = _agent(admin)
    ok = admin.call("update_agent", ids={"id": agent["id"]}, body={"model": "gpt-4o"}, method="PATCH",
                    headers={"If-Match": 'W/"1"'})  # fmt: skip
    assert _data(ok)["model"] == "gpt-4o"


@pytest.mark.parametrize("style", STYLES)
def test_delete_agent_success_and_errors(admin, style):
    agent = _agent(admin)
    method = "DELETE" if style == "rest" else "POST"

    _error(
        admin.call("delete_agent", style, ids={"id": agent["id"]}, method=method, token=admin.viewer_key), 403
    )
    _error(
        admin.call("delete_agent", style, ids={"id": agent["id"]}, query={"version": 9}, method=method), 409
    )
    assert _data(admin.call("delete_agent", style, ids={"id": agent["id"]}, method=method)) == {
        "success": True,
        "message": "Agent deleted",
    }
    _error(admin.call("delete_agent", style, ids={"id": agent["id"]}, method=method), 404)


@pytest.mark.parametrize("style", ("query", "path"))
def test_legacy_wrong_method_is_405(admin, style):
    _error(admin.call("delete_agent", style, ids={"id": "x"}, method="GET"), 405, "method_not_allowed")
    _error(admin.call("create_agent", style, body={"name": "x"}, method="PUT"), 405)


@pytest.mark.parametrize("style", STYLES)
def test_make_default_success_and_errors(admin, style):
    first, second = _agent(admin), _agent(admin)

    done = _data(admin.call("make_default", style, ids={"id": first["id"]}))
    _data(admin.call("make_default", style, ids={"id": second["id"]}))

    assert done["success"] is True and done["message"] == "Default agent set" and done["agent"]["is_default"]
    assert _data(admin.call("get_agent", ids={"id": first["id"]}))["is_default"] is False
    _error(admin.call("make_default", style, ids={"id": "missing"}), 404)
    _error(admin.call("make_default", style, ids={"id": first["id"]}, token=admin.viewer_key), 403)


@pytest.mark.parametrize("style", STYLES)
def test_test_agent_streams_like_chat(admin, fake, style):
    agent = _agent(admin, api_type="chat", system_message="Be brief.")
    fake.set_reply("Hello from the agent")
    try:
        response = admin.call("test_agent", style, ids={"id": agent["id"]}, body={"message": "Hi"})
    finally:
        fake.set_reply(None)

    assert response.status_code == 200 and response.headers["content-type"].startswith("text/event-stream")
    frames = _frames(response.text)
    assert frames[0] == ("message", {"type": "start", "agent_id": agent["id"], "agent_name": agent["name"]})
    assert frames[1][0] == "start" and frames[1][1]["agent_id"] == agent["id"]
    assert frames[1][1]["conversation_id"].startswith("test-")
    text = "".join(d["content"] for e, d in frames if e == "message" and d and d.get("type") == "chunk")
    assert text == "Hello from the agent"
    assert ("message", "done") in [(e, d.get("type")) for e, d in frames if d]
    assert frames[-1] == ("close", None)
    _error(admin.call("test_agent", style, ids={"id": "missing"}, body={}), 404)
    _error(admin.call("test_agent", style, ids={"id": agent["id"]}, body={}, token=admin.viewer_key), 403)
    _error(admin.call("test_agent", style, ids={"id": agent["id"]}, body={"message": ""}), 422)


def test_test_agent_upstream_failure_is_an_error_frame(admin, fake):
    agent = _agent(admin, api_type="chat")
    fake.queue_faults("500", "500", "500", "500", path="/v1/chat/completions")
    try:
        response = admin.call("test_agent", ids={"id": agent["id"]}, body={})
    finally:
        fake.clear_faults()

    frames = _frames(response.text)
    errors = [d for e, d in frames if e == "message" and d and d.get("type") == "error"]
    assert response.status_code == 200 and len(errors) == 1 and errors[0]["message"]
    assert frames[-1] == ("close", None)


# -- prompts ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("style", STYLES)
def test_prompt_actions_success_and_errors(admin, style):
    name = _name("Prompt")
    prompt = _data(admin.call("create_prompt", style, body={"name": name, "content": "Say hi."}), 201)
    pid = {"id": prompt["id"]}
    update_method = "PUT" if style == "rest" else "POST"
    delete_method = "DELETE" if style == "rest" else "POST"

    assert _data(admin.call("get_prompt", style, ids=pid)) == prompt
    assert prompt["id"] in [p["id"] for p in _data(admin.call("list_prompts", style, query={"name": name}))]
    version = _data(
        admin.call("create_prompt_version", style, ids=pid, body={"version": "2", "content": "Hi!"}), 201
    )
    versions = _data(admin.call("list_prompt_versions", style, ids=pid))
    renamed = _data(
        admin.call("update_prompt", style, ids=pid, body={"description": "d"}, method=update_method)
    )

    assert version["version"] == "2" and [v["version"] for v in versions] == ["2", "1"]
    assert renamed["description"] == "d" and renamed["latest_version"] == "2"
    _error(admin.call("create_prompt", style, body={"name": name}), 409, "prompt_name_taken")
    _error(admin.call("create_prompt", style, body={"name": ""}), 422)
    _error(admin.call("create_prompt_version", style, ids=pid, body={"version": "2"}), 409, "version_exists")
    _error(admin.call("create_prompt_version", style, ids=pid, body={}), 422)
    _error(admin.call("get_prompt", style, ids={"id": "missing"}), 404, "prompt_not_found")
    _error(admin.call("list_prompt_versions", style, ids={"id": "missing"}), 404)
    _error(admin.call("update_prompt", style, ids=pid, body={"version": 1}, method=update_method), 409)
    _error(admin.call("create_prompt", style, body={"name": _name()}, token=admin.viewer_key), 403)
    _error(admin.call("delete_prompt", style, ids=pid, method=delete_method, token=admin.viewer_key), 403)
    assert (
        _data(admin.call("delete_prompt", style, ids=pid, method=delete_method))["message"]
        == "Prompt deleted"
    )
    _error(admin.call("delete_prompt", style, ids=pid, method=delete_method), 404)


@pytest.mark.parametrize("style", STYLES)
def test_sync_prompts_without_upstream_prompt_objects(admin, style):
    result = _data(admin.call("sync_prompts", style))
    assert result["synced"] == 0 and result["message"]
    _error(admin.call("sync_prompts", style, token=admin.viewer_key), 403)


# -- vector stores and files --------------------------------------------------------------------------------
@pytest.mark.parametrize("style", STYLES)
def test_vector_store_actions_success_and_errors(admin, style):
    store = _store(admin)
    sid = {"id": store["id"]}
    update_method = "PUT" if style == "rest" else "POST"
    delete_method = "DELETE" if style == "rest" else "POST"

    assert store["openai_store_id"].startswith("vs_") and store["status"] == "ready"
    assert _data(admin.call("get_vector_store", style, ids=sid, token=admin.viewer_key)) == store
    listed = _data(admin.call("list_vector_stores", style, query={"name": store["name"]}))
    renamed = _data(
        admin.call("update_vector_store", style, ids=sid, body={"name": "Renamed"}, method=update_method)
    )

    assert [s["id"] for s in listed] == [store["id"]] and renamed["name"] == "Renamed"
    _error(admin.call("create_vector_store", style, body={}), 422)
    _error(admin.call("get_vector_store", style, ids={"id": "missing"}), 404, "vector_store_not_found")
    _error(admin.call("list_vector_stores", style, query={"status": "weird"}), 422)
    _error(
        admin.call(
            "update_vector_store", style, ids=sid, body={"version": 1, "name": "x"}, method=update_method
        ),
        409,
    )
    _error(admin.call("create_vector_store", style, body={"name": "x"}, token=admin.viewer_key), 403)
    assert _data(admin.call("delete_vector_store", style, ids=sid, method=delete_method))["success"] is True
    _error(admin.call("delete_vector_store", style, ids=sid, method=delete_method), 404)


@pytest.mark.parametrize("style", STYLES)
def test_vector_store_file_actions_success_and_errors(admin, style):
    store = _store(admin)
    sid = {"id": store["id"]}
    delete_method = "DELETE" if style == "rest" else "POST"

    added = _data(
        admin.call("add_vector_store_file", style, ids=sid, body={"name": "faq.txt", "file_data": TEXT}), 202
    )
    files = _data(admin.call("list_vector_store_files", style, ids=sid, query={"status": "pending"}))
    polled = _data(admin.call("poll_file_status", style, ids={**sid, "file_id": added["id"]}))

    assert added["status"] == "pending" and added["job_id"] and added["size"] == 21
    assert [f["id"] for f in files] == [added["id"]] and polled["id"] == added["id"]
    _error(admin.call("add_vector_store_file", style, ids=sid, body={"name": "x.txt"}), 422)
    _error(
        admin.call("add_vector_store_file", style, ids=sid, body={"name": "x.txt", "file_data": "@@"}), 422
    )
    _error(
        admin.call(
            "add_vector_store_file", style, ids={"id": "missing"}, body={"name": "x", "file_data": TEXT}
        ),
        404,
    )
    _error(admin.call("add_vector_store_file", style, ids=sid, body={"name": "x", "file_data": TEXT},
                      token=admin.viewer_key), 403)  # fmt: skip
    _error(admin.call("poll_file_status", style, ids={**sid, "file_id": "missing"}), 404, "file_not_found")
    ack = _data(
        admin.call(
            "delete_vector_store_file", style, ids={**sid, "file_id": added["id"]}, method=delete_method
        )
    )
    assert ack == {"success": True, "message": "File deleted"}
    _error(
        admin.call(
            "delete_vector_store_file", style, ids={**sid, "file_id": added["id"]}, method=delete_method
        ),
        404,
    )


def test_poll_file_status_legacy_with_file_id_only(admin):
    store = _store(admin)
    added = _data(admin.call("add_vector_store_file", ids={"id": store["id"]},
                             body={"name": "a.txt", "file_data": TEXT}), 202)  # fmt: skip

    polled = _data(admin.call("poll_file_status", "query", ids={"file_id": added["id"]}))

    assert polled["id"] == added["id"] and polled["vector_store_id"] == store["id"]


def test_add_vector_store_file_is_ingested_by_the_worker(admin):
    from tests.unit import _jobs_support as worker

    store = _store(admin)
    added = _data(admin.call("add_vector_store_file", ids={"id": store["id"]},
                             body={"name": "faq.txt", "file_data": TEXT}), 202)  # fmt: skip
    ids = {"id": store["id"], "file_id": added["id"]}

    for _ in range(100):
        worker.drain()
        file = next(
            f
            for f in _all(admin, "list_vector_store_files", ids={"id": store["id"]})
            if f["id"] == added["id"]
        )
        if file["status"] in ("completed", "failed"):
            break
    assert file["status"] == "completed" and file["openai_file_id"]
    assert _data(admin.call("poll_file_status", ids=ids))["status"] == "completed"


@pytest.mark.parametrize("style", STYLES)
def test_sync_vector_stores_success_and_errors(admin, style):
    result = _data(admin.call("sync_vector_stores", style))
    assert isinstance(result["synced"], int) and result["message"]
    _error(admin.call("sync_vector_stores", style, token=admin.viewer_key), 403)


@pytest.mark.parametrize("style", STYLES)
def test_openai_file_actions_success_and_errors(admin, style):
    delete_method = "DELETE" if style == "rest" else "POST"

    uploaded = _data(admin.call("upload_file", style, body={"name": "kb.txt", "file_data": TEXT}), 201)
    listed = _data(admin.call("list_files", style, query={"purpose": "assistants"}))

    assert uploaded["filename"] == "kb.txt" and uploaded["bytes"] == 21
    assert uploaded["id"] in [f["id"] for f in listed]
    _error(admin.call("upload_file", style, body={"name": "kb.txt", "file_data": TEXT, "purpose": "x"}), 422)
    _error(admin.call("list_files", style, query={"purpose": "nope"}), 422)
    _error(
        admin.call("upload_file", style, body={"name": "kb.txt", "file_data": TEXT}, token=admin.viewer_key),
        403,
    )
    assert _data(admin.call("delete_file", style, ids={"id": uploaded["id"]}, method=delete_method))[
        "success"
    ]
    _error(admin.call("delete_file", style, ids={"id": uploaded["id"]}, method=delete_method), 404)


def test_mutations_are_audited(admin):
    agent = _agent(admin)
    admin.call("make_default", ids={"id": agent["id"]})
    admin.call("delete_agent", ids={"id": "missing"}, method="DELETE")

    entries = _data(admin.call("list_audit_log", query={"limit": 50}))
    mine = [(e["action"], e["outcome"]) for e in entries if e.get("resource_id") in (agent["id"], "missing")]

    assert ("agent.create", "success") in mine
    assert ("agent.make_default", "success") in mine
    assert ("agent.delete", "failure") in mine


# -- helpers ------------------------------------------------------------------------------------------------
def _all(admin: Admin, name: str, ids: dict[str, str] | None = None) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    cursor = None
    while True:
        query = {"limit": 200, **({"cursor": cursor} if cursor else {})}
        body = admin.call(name, ids=ids, query=query).json()
        items += body["data"]
        if not (cursor := body.get("next_cursor")):
            return items


def _frames(text: str) -> list[tuple[str, Any]]:
    out = []
    for block in text.split("\n\n"):
        if not block.strip():
            continue
        event, data = None, None
        for line in block.split("\n"):
            if line.startswith("event: "):
                event = line[7:]
            elif line.startswith("data: "):
                data = json.loads(line[6:])
        out.append((event, data))
    return out
