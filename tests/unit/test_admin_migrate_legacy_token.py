"""`migrate_legacy_token`: from the shared admin token to a personal super-admin account with an API key."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
from starlette.testclient import TestClient

from chatbot.config import get_settings
from chatbot.models.audit import AuditQuery
from chatbot.services.audit import AuditService
from tests.unit.auth_support import admin_env  # noqa: F401 - a fixture
from tests.unit.resources_env import serialised_dynamodb

ROUTES = [
    "/admin/token/migrate",
    "/admin-api.php?action=migrate_legacy_token",
    "/admin-api.php/migrate_legacy_token",
]


@pytest.fixture
def client(admin_env) -> Iterator[TestClient]:  # noqa: F811
    from chatbot.admin.app import create_app

    with TestClient(create_app(), raise_server_exceptions=False) as c:
        c.headers["Authorization"] = f"Bearer {admin_env.admin_token}"
        yield c


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.mark.parametrize("route", ROUTES)
def test_migration_creates_a_super_admin_whose_key_works(client, route):
    response = client.post(route)

    assert response.status_code == 201, response.text
    data = response.json()["data"]
    assert set(data) == {"user", "api_key"}
    user, key = data["user"], data["api_key"]
    assert (user["email"], user["role"], user["is_active"]) == ("admin@system.local", "super-admin", True)
    assert key["user_id"] == user["id"] and key["name"] == "Migrated from ADMIN_TOKEN"
    me = client.get("/admin/me", headers=_bearer(key["key"])).json()["data"]
    assert (me["id"], me["role"], me["auth_method"]) == (user["id"], "super-admin", "api_key")
    assert client.get("/admin/users", headers=_bearer(key["key"])).status_code == 200
    # The admin token keeps working: rotating it is a separate decision
    assert client.get("/admin/me").json()["data"]["auth_method"] == "admin_token"


def test_migrating_again_adds_a_key_to_the_same_user(client):
    first = client.post("/admin/token/migrate").json()["data"]

    second = client.post("/admin-api.php?action=migrate_legacy_token")

    assert second.status_code == 201
    data = second.json()["data"]
    assert data["user"]["id"] == first["user"]["id"] and data["api_key"]["name"] == "Migration token"
    assert data["api_key"]["key"] != first["api_key"]["key"]
    for key in (first["api_key"]["key"], data["api_key"]["key"]):
        assert client.get("/admin/me", headers=_bearer(key)).status_code == 200
    keys = client.get("/admin/api-keys", params={"user_id": first["user"]["id"]}).json()["data"]
    assert sorted(k["name"] for k in keys) == ["Migrated from ADMIN_TOKEN", "Migration token"]


def test_migration_is_audited_without_the_key(client):
    data = client.post("/admin/token/migrate").json()["data"]

    entries, _ = AuditService.from_settings(get_settings()).list(
        AuditQuery(action="user.migrate_legacy_token")
    )

    assert len(entries) == 1
    assert (entries[0].outcome, entries[0].actor, entries[0].resource_type) == (
        "success",
        "admin-token",
        "user",
    )
    assert entries[0].resource_id == data["user"]["id"]
    assert data["api_key"]["key"] not in str(entries)


def test_migration_needs_manage_users(client):
    user = client.post("/admin/users", json={"email": "ops@example.com", "role": "admin"}).json()["data"]
    key = client.post("/admin/api-keys", json={"user_id": user["id"]}).json()["data"]["key"]

    for route in ROUTES:
        response = client.post(route, headers=_bearer(key))
        assert response.status_code == 403
        assert response.json()["error"]["message"] == "Insufficient permissions: manage_users required"
    assert client.get("/admin/users").json()["data"] == [user]


def test_migration_to_a_deactivated_account_is_refused(client):
    migrated = client.post("/admin/token/migrate").json()["data"]
    assert client.post(f"/admin/users/{migrated['user']['id']}/deactivate").status_code == 200

    response = client.post("/admin/token/migrate")

    assert response.status_code == 400 and response.json()["error"]["code"] == "inactive_user"


def test_concurrent_migrations_make_one_user(client):
    start = threading.Barrier(6)

    def migrate(_: int) -> tuple[int, str]:
        start.wait()
        response = client.post("/admin/token/migrate")
        return response.status_code, response.json()["data"]["user"]["id"]

    with serialised_dynamodb(), ThreadPoolExecutor(6) as pool:
        results = list(pool.map(migrate, range(6)))

    assert {status for status, _ in results} == {201}
    assert len({user_id for _, user_id in results}) == 1
    users = client.get("/admin/users").json()["data"]
    assert [u["email"] for u in users] == ["admin@system.local"]
