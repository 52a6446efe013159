"""The admin API's action table over HTTP: both route styles, RBAC incl. "self or manage_users", error
envelopes, audit of mutating actions, `admin_request` logs, rate limits, origins and the OpenAPI document."""

from __future__ import annotations

import os
from unittest import mock

import pytest
from fastapi.testclient import TestClient

from chatbot.admin.app import create_app
from chatbot.admin.framework import actions
from chatbot.config import get_settings
from chatbot.models.audit import AuditQuery
from chatbot.services.audit import AuditService
from tests.unit.auth_support import admin_env  # noqa: F401 - a fixture


@pytest.fixture(scope="module")
def app():
    return create_app()


@pytest.fixture
def client(admin_env, app):  # noqa: F811
    with TestClient(app) as c:
        c.headers["Authorization"] = f"Bearer {admin_env.admin_token}"
        yield c


def _auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def _user(client, email: str, role: str) -> tuple[str, str]:
    """A user and an API key of theirs: (user id, key)."""
    user = client.post("/admin/users", json={"email": email, "role": role})
    assert user.status_code == 201, user.text
    uid = user.json()["data"]["id"]
    key = client.post("/admin/api-keys", json={"user_id": uid, "name": "test"})
    assert key.status_code == 201, key.text
    return uid, key.json()["data"]["key"]


def _audit(**query):
    return AuditService.from_settings(get_settings()).list(AuditQuery(**query))[0]


def _events(caplog, name: str) -> list[dict]:
    return [vars(r) for r in caplog.records if getattr(r, "event", None) == name]


# -- routes -------------------------------------------------------------------------------------------------
def test_liveness_is_public_and_minimal(client):
    response = client.get("/health", headers={"Authorization": ""})
    assert response.status_code == 200 and response.json() == {"status": "ok"}


@pytest.mark.parametrize("path", ["/admin/me", "/admin-api.php?action=whoami", "/admin-api.php/whoami"])
def test_whoami_route_styles_agree(client, path):
    response = client.get(path)
    assert response.status_code == 200
    assert response.json()["data"] | {"permissions": None} == {
        "id": "admin-token",
        "email": "admin@token.local",
        "role": "super-admin",
        "auth_method": "admin_token",
        "api_key_id": None,
        "scopes": ["admin", "chat"],
        "permissions": None,
    }


@pytest.mark.parametrize("path", ["/admin/health", "/admin-api.php?action=health", "/admin-api.php/health"])
def test_health_route_styles_agree(client, path):
    body = client.get(path).json()["data"]
    # No OpenAI key here (the secret holds its placeholder): that check warns. More in test_health.py.
    assert body["status"] == "degraded" and body["checks"]["openai"]["status"] == "warning"
    assert body["checks"]["database"]["status"] == body["checks"]["secrets"]["status"] == "healthy"


def test_legacy_ids_come_from_the_query_string(client):
    uid, _ = _user(client, "q@example.com", "viewer")
    rest = client.get(f"/admin/users/{uid}").json()
    assert client.get(f"/admin-api.php?action=get_user&id={uid}").json() == rest
    assert client.get(f"/admin-api.php/get_user?id={uid}").json() == rest
    role = client.put(f"/admin-api.php?action=update_user_role&id={uid}", json={"role": "admin"})
    assert role.status_code == 200 and role.json()["data"]["user"]["role"] == "admin"
    assert role.json()["data"]["success"] is True and role.json()["data"]["message"] == "User role updated"


@pytest.mark.parametrize(
    ("method", "path", "status", "code"),
    [
        ("GET", "/admin-api.php?action=no_such_thing", 400, "unknown_action"),
        ("GET", "/admin-api.php", 400, "unknown_action"),
        ("DELETE", "/admin-api.php?action=health", 405, "method_not_allowed"),
        ("GET", "/admin-api.php/create_user", 405, "method_not_allowed"),
        ("GET", "/admin/no-such-resource", 404, "not_found"),
        ("DELETE", "/admin/health", 405, "method_not_allowed"),
        ("GET", "/admin/users/nobody", 404, "not_found"),
    ],
)
def test_errors_use_the_envelope(client, method, path, status, code):
    response = client.request(method, path)
    assert response.status_code == status
    assert response.json() == {
        "error": {"message": response.json()["error"]["message"], "code": code, "status": status}
    }


def test_created_returns_201_with_data(client):
    response = client.post(
        "/admin-api.php?action=create_user", json={"email": "New@Example.com", "password": "x"}
    )
    assert response.status_code == 201
    user = response.json()["data"]
    assert user["email"] == "new@example.com" and user["role"] == "admin" and user["is_active"] is True
    assert "password" not in response.text


def test_invalid_json_is_400_and_bad_fields_422_without_echo(client):
    bad = client.post("/admin/users", content=b'{"email": ', headers={"Content-Type": "application/json"})
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "invalid_json"
    invalid = client.post("/admin/users", json={"email": "sk-secret-looking-value", "role": "god"})
    assert invalid.status_code == 422 and invalid.json()["error"]["code"] == "validation_error"
    locs = [d["loc"] for d in invalid.json()["error"]["details"]]
    assert ["body", "email"] in locs and ["body", "role"] in locs
    assert "sk-secret-looking-value" not in invalid.text
    not_object = client.post("/admin/users", json=["x"])
    assert not_object.status_code == 422


def test_list_users_pages(client):
    for i in range(3):
        _user(client, f"p{i}@example.com", "viewer")
    first = client.get("/admin/users?limit=2").json()
    assert len(first["data"]) == 2 and first["next_cursor"]
    rest = client.get("/admin/users", params={"limit": 2, "cursor": first["next_cursor"]}).json()
    emails = {u["email"] for u in first["data"] + rest["data"]}
    assert emails == {"p0@example.com", "p1@example.com", "p2@example.com"}
    assert client.get("/admin/users?cursor=%%%").json()["error"]["code"] == "invalid_cursor"


# -- authentication and RBAC --------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("header", "code"),
    [
        ("", "missing_credentials"),
        ("Token abc", "invalid_credentials"),
        ("Bearer wrong", "invalid_credentials"),
        ("Bearer chatbot_" + "f" * 64, "invalid_credentials"),
    ],
)
def test_bad_credentials_are_401(client, header, code):
    for path in (
        "/admin/me",
        "/admin-api.php?action=whoami",
        "/admin-api.php/whoami",
        "/admin-api.php?action=x",
    ):
        response = client.get(path, headers={"Authorization": header})
        assert response.status_code == 401 and response.json()["error"]["code"] == code


def test_viewer_reads_but_cannot_manage_users(client):
    uid, key = _user(client, "viewer@example.com", "viewer")
    other, _ = _user(client, "other@example.com", "viewer")
    viewer = _auth(key)
    assert client.get("/admin/health", headers=viewer).status_code == 200
    assert client.get("/admin/audit-log", headers=viewer).status_code == 200
    for path in ("/admin/users", "/admin-api.php?action=list_users", "/admin-api.php/list_users"):
        denied = client.get(path, headers=viewer)
        assert denied.status_code == 403
        assert denied.json()["error"]["message"] == "Insufficient permissions: manage_users required"
    # "self or manage_users": their own record and keys, nobody else's
    assert client.get(f"/admin/users/{uid}", headers=viewer).status_code == 200
    assert client.get(f"/admin/users/{other}", headers=viewer).status_code == 403
    assert client.get("/admin/api-keys", headers=viewer).status_code == 200
    assert client.get(f"/admin/api-keys?user_id={other}", headers=viewer).status_code == 403
    assert client.post("/admin/api-keys", json={"user_id": other}, headers=viewer).status_code == 403
    assert client.post("/admin/users", json={"email": "z@example.com"}, headers=viewer).status_code == 403
    assert client.post("/admin/token/rotate", headers=viewer).status_code == 403


def test_generate_and_revoke_own_key_but_not_others(client):
    uid, key = _user(client, "self@example.com", "viewer")
    _, other_key = _user(client, "victim@example.com", "admin")
    own = client.post("/admin-api.php?action=generate_api_key", json={"name": "second"}, headers=_auth(key))
    assert own.status_code == 201 and own.json()["data"]["user_id"] == uid
    other_id = client.get("/admin/me", headers=_auth(other_key)).json()["data"]["api_key_id"]
    assert client.post(f"/admin/api-keys/{other_id}/revoke", headers=_auth(key)).status_code == 403
    revoked = client.post(
        f"/admin-api.php?action=revoke_api_key&id={own.json()['data']['id']}", headers=_auth(key)
    )
    assert revoked.status_code == 200 and revoked.json()["data"]["api_key"]["is_active"] is False
    assert (
        client.get("/admin/me", headers=_auth(own.json()["data"]["key"])).json()["error"]["code"]
        == "revoked_key"
    )
    assert client.post("/admin/api-keys/ak_0000000000000000/revoke").status_code == 404


def test_admin_token_needs_user_id_for_keys(client):
    response = client.post("/admin/api-keys", json={"name": "x"})
    assert response.status_code == 400 and response.json()["error"]["code"] == "user_id_required"


def test_deactivated_user_is_locked_out_at_once(client):
    uid, key = _user(client, "leaver@example.com", "admin")
    assert client.get("/admin/me", headers=_auth(key)).status_code == 200
    assert client.post(f"/admin/users/{uid}/deactivate").status_code == 200
    response = client.get("/admin/me", headers=_auth(key))
    assert response.status_code == 401 and response.json()["error"]["code"] == "inactive_user"


def test_deactivate_self_is_400(client):
    uid, key = _user(client, "boss@example.com", "super-admin")
    response = client.post(f"/admin-api.php?action=deactivate_user&id={uid}", headers=_auth(key))
    assert response.status_code == 400 and response.json()["error"]["code"] == "cannot_deactivate_self"


def test_duplicate_email_is_409(client):
    _user(client, "twice@example.com", "viewer")
    response = client.post("/admin/users", json={"email": "TWICE@example.com"})
    assert response.status_code == 409 and response.json()["error"]["code"] == "duplicate_email"


# -- audit and logs -----------------------------------------------------------------------------------------
def test_mutating_actions_are_audited_with_outcome(client):
    uid, key = _user(client, "aud@example.com", "viewer")
    client.post("/admin/users", json={"email": "aud@example.com"})  # failure: duplicate
    client.post("/admin/users", json={"email": "v2@example.com"}, headers=_auth(key))  # denied
    client.get("/admin/users")  # reads are not audited
    entries = _audit(action="user.create")
    assert [(e.outcome, e.actor) for e in entries] == [
        ("denied", uid),
        ("failure", "admin-token"),
        ("success", "admin-token"),
    ]
    success = entries[-1]
    assert success.resource_type == "user" and success.resource_id == uid and success.request_id
    assert success.source_ip == "testclient" and success.summary == {
        "email": "aud@example.com",
        "role": "viewer",
    }
    assert entries[1].summary["error"] == "duplicate_email"
    key_entry = _audit(action="api_key.create")[0]
    assert key_entry.resource_type == "api_key" and key_entry.resource_id.startswith("ak_")
    assert key not in str(_audit())


def test_admin_request_is_logged_per_request(client, caplog):
    caplog.set_level("INFO")
    client.get("/admin/health")
    client.get("/admin-api.php?action=list_users", headers={"Authorization": "Bearer nope"})
    client.get("/admin-api.php?action=nope")
    logs = _events(caplog, "admin_request")
    assert [(e["action"], e["resource"], e["status"], e["status_class"]) for e in logs] == [
        ("health", "system", 200, "2xx"),
        ("list_users", "user", 401, "4xx"),
        ("unknown", "system", 400, "4xx"),
    ]
    assert all(isinstance(e["duration_ms"], float) for e in logs)
    assert [e["code"] for e in _events(caplog, "auth_failed")] == ["invalid_credentials"]


def test_rate_limit_is_429_with_retry_after(admin_env, app):  # noqa: F811
    with mock.patch.dict(os.environ, {"ADMIN_RATE_LIMIT": "3"}):
        get_settings.cache_clear()
        with TestClient(app) as client:
            statuses = [
                client.get("/admin/me", headers=_auth(admin_env.admin_token)).status_code for _ in range(4)
            ]
            limited = client.get("/admin/me")
        assert statuses == [200, 200, 200, 429]
        assert limited.status_code == 429 and 1 <= int(limited.headers["Retry-After"]) <= 60
        assert limited.json()["error"]["code"] == "rate_limited"
    get_settings.cache_clear()


def test_rotate_admin_token_returns_new_token_once(client):
    old = client.headers["Authorization"]
    response = client.post("/admin-api.php?action=rotate_admin_token")
    assert response.status_code == 200
    data = response.json()["data"]
    assert len(data["new_token"]) == 64 and data["grace_minutes"] == 0
    assert client.get("/admin/me", headers={"Authorization": old}).status_code == 401
    assert client.get("/admin/me", headers=_auth(data["new_token"])).status_code == 200
    entry = _audit(action="token.rotate")[0]
    assert entry.resource_id == data["version_id"] and data["new_token"] not in str(entry)


# -- origins ------------------------------------------------------------------------------------------------
def test_foreign_origin_is_refused_same_origin_passes(client):
    foreign = client.get("/admin/me", headers={"Origin": "https://evil.example"})
    assert foreign.status_code == 403 and foreign.json()["error"]["code"] == "origin_not_allowed"
    assert client.get("/admin/me", headers={"Origin": "http://testserver"}).status_code == 200


def test_listed_origin_gets_cors_headers(admin_env):  # noqa: F811
    with mock.patch.dict(os.environ, {"ADMIN_CORS_ORIGINS": "https://console.example, https://ops.example"}):
        get_settings.cache_clear()
        with TestClient(create_app()) as client:
            preflight = client.options(
                "/admin/agents",
                headers={"Origin": "https://ops.example", "Access-Control-Request-Method": "POST"},
            )
            allowed = client.get(
                "/admin/me", headers={"Origin": "https://console.example", **_auth(admin_env.admin_token)}
            )
    get_settings.cache_clear()
    assert preflight.status_code == 204
    assert preflight.headers["access-control-allow-origin"] == "https://ops.example"
    assert "Authorization" in preflight.headers["access-control-allow-headers"]
    assert (
        allowed.status_code == 200
        and allowed.headers["access-control-allow-origin"] == "https://console.example"
    )


# -- OpenAPI ------------------------------------------------------------------------------------------------
def test_openapi_documents_every_action(client):
    doc = client.get("/admin/openapi.json", headers={"Authorization": ""}).json()
    operations = {
        op["x-legacy-action"]: (path, method, op)
        for path, item in doc["paths"].items()
        for method, op in item.items()
        if "x-legacy-action" in op
    }
    assert set(operations) == {a.name for a in actions}
    path, method, op = operations["list_users"]
    assert (path, method) == ("/admin/users", "get") and op["x-permission"] == "manage_users"
    assert "Permission: `manage_users`" in op["description"]
    assert {"401", "403", "422", "429"} <= set(op["responses"])
    assert op["responses"]["403"]["content"]["application/json"]["schema"]["$ref"].endswith("/ErrorEnvelope")
    path, _, op = operations["get_user"]
    assert path == "/admin/users/{id}" and op["x-permission"] == "self or manage_users"
    id_param = op["parameters"][0]
    assert (id_param["name"], id_param["in"], id_param["required"]) == ("id", "path", True)
    assert "404" in op["responses"]
    _, _, op = operations["create_user"]
    assert "201" in op["responses"] and "409" in op["responses"] and op["x-audit-action"] == "user.create"
    assert op["requestBody"]["content"]["application/json"]["schema"]["$ref"].endswith("/UserCreate")
    assert "/admin-api.php" in doc["paths"] and "/admin-api.php/{legacy_action}" in doc["paths"]
    assert doc["paths"]["/health"]["get"]["security"] == []
    assert "ErrorEnvelope" in doc["components"]["schemas"]
