"""Admin authentication and RBAC against the running local stack (`make run`), over HTTP.

Every case is checked through the REST route and both legacy forms (`/admin-api.php?action=NAME`,
`/admin-api.php/NAME`), which must answer alike.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from chatbot.services.api_keys import digest_of


@pytest.fixture
def http(local_stack) -> Iterator[httpx.Client]:
    with local_stack.http() as client:
        yield client


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _styles(action: str, rest: str, query: str = "") -> list[str]:
    sep = "&" if query else ""
    return [
        rest + (f"?{query}" if query else ""),
        f"/admin-api.php?action={action}{sep}{query}",
        f"/admin-api.php/{action}" + (f"?{query}" if query else ""),
    ]


def _user_and_key(http: httpx.Client, admin: dict[str, str], role: str, **key_fields) -> tuple[str, dict]:
    email = f"{role}-{uuid.uuid4().hex[:10]}@example.com"
    user = http.post("/admin/users", json={"email": email, "role": role}, headers=admin)
    assert user.status_code == 201, user.text
    uid = user.json()["data"]["id"]
    key = http.post("/admin/api-keys", json={"user_id": uid, **key_fields}, headers=admin)
    assert key.status_code == 201, key.text
    return uid, key.json()["data"]


def _assert_same(responses: list[httpx.Response], status: int, code: str | None = None) -> None:
    assert [r.status_code for r in responses] == [status] * len(responses), [r.text for r in responses]
    bodies = [r.json() for r in responses]
    if code:
        assert {b["error"]["code"] for b in bodies} == {code}
    assert all(b == bodies[0] for b in bodies), bodies


@pytest.mark.parametrize(
    ("headers", "code"),
    [
        ({}, "missing_credentials"),
        (_bearer("not-the-token"), "invalid_credentials"),
        ({"Authorization": "Basic YWRtaW46YWRtaW4="}, "invalid_credentials"),
        (_bearer("chatbot_" + "0" * 64), "invalid_credentials"),
    ],
)
def test_bad_credentials_are_401_in_every_route_style(http, headers, code):
    _assert_same([http.get(p, headers=headers) for p in _styles("whoami", "/admin/me")], 401, code)


def test_admin_token_works_in_every_route_style(http, local_stack):
    responses = [http.get(p, headers=local_stack.admin_headers) for p in _styles("whoami", "/admin/me")]
    _assert_same(responses, 200)
    assert responses[0].json()["data"]["role"] == "super-admin"
    assert (
        responses[0].headers["x-content-type-options"] == "nosniff" and responses[0].headers["x-request-id"]
    )


def test_expired_key_is_401(http, local_stack):
    # Given a key whose expiry has passed (set in storage: nobody waits a day in a test)
    _, key = _user_and_key(http, local_stack.admin_headers, "admin", expires_in_days=1)
    assert http.get("/admin/me", headers=_bearer(key["key"])).status_code == 200
    digest = digest_of(key["key"])
    local_stack.client("dynamodb").update_item(
        TableName=local_stack.env["API_KEYS_TABLE"],
        Key={"pk": {"S": f"KEY#{digest[:16]}"}, "sk": {"S": digest}},
        UpdateExpression="SET expires_at = :past",
        ExpressionAttributeValues={":past": {"S": (datetime.now(UTC) - timedelta(seconds=1)).isoformat()}},
    )
    # Then it is refused at once, in every route style
    responses = [http.get(p, headers=_bearer(key["key"])) for p in _styles("whoami", "/admin/me")]
    _assert_same(responses, 401, "expired_key")


def test_revoked_key_is_401(http, local_stack):
    _, key = _user_and_key(http, local_stack.admin_headers, "admin")
    revoked = http.post(
        f"/admin-api.php?action=revoke_api_key&id={key['id']}", headers=local_stack.admin_headers
    )
    assert revoked.status_code == 200 and revoked.json()["data"]["api_key"]["is_active"] is False
    responses = [http.get(p, headers=_bearer(key["key"])) for p in _styles("whoami", "/admin/me")]
    _assert_same(responses, 401, "revoked_key")


def test_viewer_key_reads_but_cannot_manage_users(http, local_stack):
    uid, key = _user_and_key(http, local_stack.admin_headers, "viewer")
    viewer = _bearer(key["key"])
    _assert_same(
        [http.get(p, headers=viewer) for p in _styles("list_users", "/admin/users")], 403, "forbidden"
    )
    body = {"email": f"x-{uuid.uuid4().hex[:8]}@example.com"}
    _assert_same(
        [http.post(p, json=body, headers=viewer) for p in _styles("create_user", "/admin/users")],
        403,
        "forbidden",
    )
    reads = [http.get(p, headers=viewer) for p in _styles("whoami", "/admin/me")]
    _assert_same(reads, 200)
    assert reads[0].json()["data"]["id"] == uid and reads[0].json()["data"]["permissions"] == ["read"]
    assert [http.get(p, headers=viewer).status_code for p in _styles("health", "/admin/health")] == [200] * 3
    # get_user is "self or manage_users": their own record, in every style
    own = [
        f"/admin/users/{uid}",
        f"/admin-api.php?action=get_user&id={uid}",
        f"/admin-api.php/get_user?id={uid}",
    ]
    _assert_same([http.get(p, headers=viewer) for p in own], 200)


def test_deactivated_users_key_is_401_at_once(http, local_stack):
    uid, key = _user_and_key(http, local_stack.admin_headers, "super-admin")
    assert http.get("/admin/users", headers=_bearer(key["key"])).status_code == 200
    deactivated = http.post(f"/admin-api.php/deactivate_user?id={uid}", headers=local_stack.admin_headers)
    assert deactivated.status_code == 200
    responses = [http.get(p, headers=_bearer(key["key"])) for p in _styles("whoami", "/admin/me")]
    _assert_same(responses, 401, "inactive_user")


def test_failed_authentication_is_audited(http, local_stack):
    marker = f"/admin/me?probe={uuid.uuid4().hex}"
    assert http.get(marker, headers=_bearer("guess")).status_code == 401
    entries = http.get(
        "/admin/audit-log", params={"action": "auth.failed", "limit": 50}, headers=local_stack.admin_headers
    ).json()["data"]
    assert (
        entries
        and entries[0]["outcome"] == "failure"
        and entries[0]["summary"]["code"] == "invalid_credentials"
    )
    assert all("guess" not in str(e) for e in entries)
