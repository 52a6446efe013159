"""Admin token rotation through the admin API and through the rotation Lambda, on the template's secret in
moto: the old token is refused once rotation finishes, the new one works, the rotation is audited, and a
rotation that fails at testSecret leaves the current token working (and the next rotation succeeds)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from starlette.testclient import TestClient

from chatbot.config import get_settings
from chatbot.models.audit import AuditQuery
from chatbot.services import token_rotation
from chatbot.services.audit import AuditService
from functions.rotation.app import handler as rotation_handler
from tests.unit.auth_support import admin_env, current_admin_token  # noqa: F401 - a fixture


@pytest.fixture
def client(admin_env) -> Iterator[TestClient]:  # noqa: F811
    from chatbot.admin.app import create_app

    with TestClient(create_app(), raise_server_exceptions=False) as c:
        yield c


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _audit(action: str) -> list[Any]:
    return AuditService.from_settings(get_settings()).list(AuditQuery(action=action))[0]


def _stages(secret_id: str) -> dict[str, list[str]]:
    described = boto3.client("secretsmanager").describe_secret(SecretId=secret_id)
    return {v: s for v, s in described["VersionIdsToStages"].items() if s}


class _Context:
    function_name = "rotation"
    memory_limit_in_mb = 128
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:rotation"
    aws_request_id = "req-1"


def _step(secret_id: str, token: str, step: str) -> None:
    rotation_handler({"SecretId": secret_id, "ClientRequestToken": token, "Step": step}, _Context())


@pytest.mark.parametrize("path", ["/admin/token/rotate", "/admin-api.php/rotate_admin_token"])
def test_rotate_admin_token_old_token_401_new_token_200_and_audited(admin_env, client, path):  # noqa: F811
    old = admin_env.admin_token

    response = client.post(path, headers=_bearer(old))

    assert response.status_code == 200, response.text
    new = response.json()["data"]["new_token"]
    assert new != old and new == current_admin_token()
    refused = client.get("/admin/me", headers=_bearer(old))
    assert refused.status_code == 401 and refused.json()["error"]["code"] == "invalid_credentials"
    assert client.get("/admin/me", headers=_bearer(new)).status_code == 200
    (entry,) = _audit("token.rotate")
    assert entry.outcome == "success" and entry.actor == "admin-token"
    assert entry.resource_id == response.json()["data"]["version_id"]
    assert old not in str(entry) and new not in str(entry)


def test_rotation_failing_at_test_secret_leaves_the_current_token_working(admin_env, client):  # noqa: F811
    # Given a rotation whose pending token is unusable (here: a malformed value stored as AWSPENDING, as a
    # broken createSecret would leave it)
    secret_id, old = admin_env.secret_id, admin_env.admin_token
    current = _version_of_current(secret_id)
    version = str(uuid.uuid4())
    boto3.client("secretsmanager").put_secret_value(
        SecretId=secret_id,
        ClientRequestToken=version,
        SecretString="not a token!",
        VersionStages=["AWSPENDING"],
    )
    _step(secret_id, version, "setSecret")

    # When Secrets Manager runs testSecret, it fails, so finishSecret never runs
    with pytest.raises(token_rotation.RotationFailed):
        _step(secret_id, version, "testSecret")

    # Then the current token is still AWSCURRENT and still works; the pending value does not
    assert _version_of_current(secret_id) == current
    assert current_admin_token() == old
    assert client.get("/admin/me", headers=_bearer(old)).status_code == 200
    assert client.get("/admin/me", headers=_bearer("not a token!")).status_code == 401
    # And the next rotation (a new version) completes and replaces it
    rotated = client.post("/admin/token/rotate", headers=_bearer(old))
    assert rotated.status_code == 200, rotated.text
    assert client.get("/admin/me", headers=_bearer(old)).status_code == 401
    assert client.get("/admin/me", headers=_bearer(rotated.json()["data"]["new_token"])).status_code == 200
    assert "AWSPENDING" not in str(_stages(secret_id))


def test_rotate_admin_token_failing_at_test_secret_is_a_500_and_the_token_still_works(
    admin_env,  # noqa: F811
    client,
    monkeypatch,
):
    # Given createSecret makes a token testSecret refuses
    monkeypatch.setattr(token_rotation, "new_token", lambda: "short")
    old = admin_env.admin_token

    response = client.post("/admin-api.php?action=rotate_admin_token", headers=_bearer(old))

    # Then the action fails in the error envelope, is audited as a failure, and nothing changed
    assert response.status_code == 500
    assert response.json()["error"]["code"] == "rotation_failed"
    assert client.get("/admin/me", headers=_bearer(old)).status_code == 200
    assert current_admin_token() == old
    (entry,) = _audit("token.rotate")
    assert entry.outcome == "failure" and entry.summary["error"] == "rotation_failed"


def test_rotation_lambda_runs_the_four_steps_and_finish_retires_the_old_token(admin_env, client):  # noqa: F811
    secret_id, old = admin_env.secret_id, admin_env.admin_token
    version = str(uuid.uuid4())

    for step in token_rotation.STEPS:
        _step(secret_id, version, step)
        if step != "finishSecret":  # until finishSecret, the current token is the old one
            assert client.get("/admin/me", headers=_bearer(old)).status_code == 200
    _step(secret_id, version, "finishSecret")  # Secrets Manager may retry a step: nothing changes

    assert _stages(secret_id)[version] == ["AWSCURRENT"]
    assert client.get("/admin/me", headers=_bearer(old)).status_code == 401
    assert client.get("/admin/me", headers=_bearer(current_admin_token())).status_code == 200


def _version_of_current(secret_id: str) -> str:
    return next(v for v, s in _stages(secret_id).items() if "AWSCURRENT" in s)
