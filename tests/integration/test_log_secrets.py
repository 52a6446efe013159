"""No secret reaches a log line: a representative set of requests (good and bad admin tokens, an API key
used for chat and a wrong one, signed and forged webhooks, the OpenAI key in use, a token rotation), with
everything the functions and the stack wrote captured and searched for each secret used."""

from __future__ import annotations

import json
import secrets
import uuid

import pytest
from fastapi.testclient import TestClient

from infra.local.fake_openai import build_event, new_webhook_secret, sign_webhook
from tests.log_capture import SERVICES, powertools_output
from tests.unit.auth_support import admin_env  # noqa: F401 - a fixture


def _raw_log(stack, since: int) -> str:
    with stack._lines_lock:  # the child's stdout, raw (JSON or not)
        return "\n".join(stack.lines[max(0, since - stack.dropped) :])


def test_local_stack_logs_hold_no_secret(local_stack):
    mark = local_stack.mark()
    admin = local_stack.admin_headers
    wrong_token = "chatbot_" + secrets.token_hex(24)
    forged_secret = new_webhook_secret()
    used: list[str] = [local_stack.admin_token, wrong_token]

    with local_stack.http() as http:
        # admin: the right token, a wrong one (both styles), a malformed header
        assert http.get("/admin/agents", headers=admin).status_code == 200
        assert (
            http.get("/admin/agents", headers={"Authorization": f"Bearer {wrong_token}"}).status_code == 401
        )
        assert http.get(f"/admin-api.php?action=list_agents&token={wrong_token}").status_code == 401
        assert http.get("/admin/me", headers={"Authorization": wrong_token}).status_code == 401
        # an API key: created (shown once), used for chat, then a wrong one
        email = f"{uuid.uuid4().hex[:10]}@example.com"
        user = http.post("/admin/users", json={"email": email, "role": "admin"}, headers=admin).json()["data"]
        created = http.post(
            "/admin/api-keys", json={"user_id": user["id"], "name": "scan", "scopes": ["chat"]}, headers=admin
        )
        assert created.status_code == 201, created.text
        key = created.json()["data"]["key"]
        wrong_key = key[:-6] + "zzzzzz"
        used += [key, wrong_key]
        completion = {"model": "default", "messages": [{"role": "user", "content": "hello"}]}
        for bearer in (key, wrong_key):
            http.post("/v1/chat/completions", json=completion, headers={"Authorization": f"Bearer {bearer}"})
        # chat (the OpenAI key in use goes upstream on every call)
        assert http.post("/chat", json={"message": "hello", "stream": False}).status_code == 200
        # webhooks: signed with the stack's secret, and forged
        secret = local_stack.webhook_secret()
        used += [secret, secret.removeprefix("whsec_"), forged_secret]
        for signing in (secret, forged_secret):
            event = build_event(
                "vector_store.file.completed", {"id": "file-scan", "vector_store_id": "vs_scan"}
            )
            body = json.dumps(event).encode()
            headers = sign_webhook(signing, body, msg_id=event["id"])
            used.append(headers["webhook-signature"].split(",", 1)[1])
            http.post(
                "/webhooks/openai", content=body, headers={**headers, "content-type": "application/json"}
            )

    used.append("sk-test-fake-openai-key-000000000000")  # the harness gives the stack this OpenAI key
    local_stack.wait_for_log(lambda e: e.get("event") == "webhook_received", since=mark)
    logged = _raw_log(local_stack, mark)
    assert "auth_failed" in logged and "admin_request" in logged and "chat_completed" in logged
    for secret_value in used:
        assert secret_value not in logged


@pytest.fixture
def admin_client(admin_env):  # noqa: F811
    from chatbot.admin.app import create_app

    with TestClient(create_app()) as client:
        yield client


def test_token_rotation_logs_neither_token(admin_env, admin_client, caplog):  # noqa: F811
    from tests.unit.auth_support import current_admin_token

    caplog.set_level("DEBUG")  # every record of ours, before redaction too
    old = admin_env.admin_token
    with powertools_output() as output:
        rotated = admin_client.post("/admin/token/rotate", headers={"Authorization": f"Bearer {old}"})
        assert rotated.status_code == 200, rotated.text
        new = rotated.json()["data"]["new_token"]
        assert admin_client.get("/admin/me", headers={"Authorization": f"Bearer {old}"}).status_code == 401
    assert new == current_admin_token()
    ours = [r for r in caplog.records if r.name.split(".")[0] in SERVICES]  # not botocore's debug lines
    written = output() + "\n".join(repr(vars(r)) for r in ours)
    assert "rotation_step_completed" in written
    assert old not in written and new not in written
