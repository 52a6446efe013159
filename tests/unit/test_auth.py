"""Authentication: the admin token (cache, rotation, grace period), API keys (expiry, revocation, inactive
users), permissions, and the admin gate (each rate limit beside an authentication step and deciding first,
failures audited)."""

from __future__ import annotations

import threading
from datetime import timedelta
from typing import Any

import boto3
import pytest

from chatbot import clock, secrets
from chatbot.config import get_settings
from chatbot.errors import Forbidden, RateLimited, ServiceUnavailable, Unauthorized
from chatbot.models.audit import AuditQuery
from chatbot.models.auth import ROLE_PERMISSIONS, ApiKeyCreate, Principal, UserCreate
from chatbot.services import token_rotation
from chatbot.services.api_keys import ApiKeyService, digest_of
from chatbot.services.audit import AuditService
from chatbot.services.auth import (
    ADMIN_TOKEN_PRINCIPAL,
    AUTH_FAILURE_COST,
    AccessGuard,
    Authenticator,
    RequestInfo,
    bearer_token,
)
from chatbot.services.rate_limit import Limit
from chatbot.services.users import UserService
from tests.unit.auth_support import admin_env  # noqa: F401 - a fixture


@pytest.fixture
def auth(admin_env):  # noqa: F811
    return Authenticator.from_settings(get_settings())


@pytest.fixture
def users(admin_env):  # noqa: F811
    return UserService.from_settings(get_settings())


@pytest.fixture
def keys(admin_env):  # noqa: F811
    return ApiKeyService.from_settings(get_settings())


def _bearer(token: str) -> str:
    return f"Bearer {token}"


def _user_with_key(users, keys, role="viewer", **key_fields):
    user = users.create(UserCreate(email=f"{role}-{len(key_fields)}@example.com", role=role))
    created = keys.generate(user.id, ApiKeyCreate(**key_fields))
    return user, created


# -- bearer parsing ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("header", ["Bearer abc", "bearer abc", "BEARER abc", "  Bearer   abc  "])
def test_bearer_token_accepts_any_scheme_case(header):
    assert bearer_token(header) == "abc"


@pytest.mark.parametrize(
    ("header", "code"),
    [
        (None, "missing_credentials"),
        ("", "missing_credentials"),
        ("Basic abc", "invalid_credentials"),
        ("Bearer", "invalid_credentials"),
        ("Bearer a b", "invalid_credentials"),
        ("abc", "invalid_credentials"),
    ],
)
def test_bearer_token_rejects_missing_or_malformed(header, code):
    with pytest.raises(Unauthorized) as err:
        bearer_token(header)
    assert err.value.code == code and err.value.status == 401


# -- admin token --------------------------------------------------------------------------------------------
def test_authenticate_admin_token_ok(admin_env, auth):  # noqa: F811
    principal = auth.authenticate(_bearer(admin_env.admin_token))
    assert principal == ADMIN_TOKEN_PRINCIPAL
    assert principal.id == "admin-token" and principal.email == "admin@token.local"
    assert principal.role == "super-admin" and principal.can("rotate_tokens")


def test_authenticate_admin_token_wrong(admin_env, auth):  # noqa: F811
    with pytest.raises(Unauthorized) as err:
        # Another last character (a random token may end in any of them).
        wrong = admin_env.admin_token[:-1] + ("1" if admin_env.admin_token.endswith("0") else "0")
        auth.authenticate(_bearer(wrong))
    assert err.value.code == "invalid_credentials"


def test_authenticate_admin_token_is_cached(admin_env, auth, monkeypatch):  # noqa: F811
    # Given a first authentication that read the secret
    reads = []
    real = secrets.read_version
    monkeypatch.setattr(secrets, "read_version", lambda *a, **k: reads.append(1) or real(*a, **k))
    auth.authenticate(_bearer(admin_env.admin_token))
    # When the secret changes behind the cache
    boto3.client("secretsmanager").put_secret_value(SecretId=admin_env.secret_id, SecretString="b" * 64)
    # Then the cached token still works without another read, until the cache is invalidated
    auth.authenticate(_bearer(admin_env.admin_token))
    assert len(reads) == 1
    secrets.invalidate(admin_env.secret_id)
    assert auth.authenticate(_bearer("b" * 64)) == ADMIN_TOKEN_PRINCIPAL
    with pytest.raises(Unauthorized):
        auth.authenticate(_bearer(admin_env.admin_token))


def test_authenticate_admin_token_rotated_old_token_rejected(admin_env, auth):  # noqa: F811
    rotated = token_rotation.rotate_now(admin_env.secret_id)
    assert rotated.token != admin_env.admin_token and len(rotated.token) == 64
    assert auth.authenticate(_bearer(rotated.token)) == ADMIN_TOKEN_PRINCIPAL
    with pytest.raises(Unauthorized):
        auth.authenticate(_bearer(admin_env.admin_token))


def test_authenticate_admin_token_rotated_with_grace(admin_env, monkeypatch):  # noqa: F811
    # Given a grace period of 10 minutes and a rotation just now
    settings = get_settings().model_copy(update={"admin_token_grace_minutes": 10})
    auth = Authenticator.from_settings(settings)
    rotated = token_rotation.rotate_now(admin_env.secret_id)
    # Then both tokens work within the grace period
    assert auth.authenticate(_bearer(admin_env.admin_token)) == ADMIN_TOKEN_PRINCIPAL
    assert auth.authenticate(_bearer(rotated.token)) == ADMIN_TOKEN_PRINCIPAL
    # And the previous one stops after it
    later = clock.now() + timedelta(minutes=11)
    monkeypatch.setattr(clock, "now", lambda: later)
    with pytest.raises(Unauthorized):
        auth.authenticate(_bearer(admin_env.admin_token))
    assert auth.authenticate(_bearer(rotated.token)) == ADMIN_TOKEN_PRINCIPAL


def test_authenticate_admin_token_unreadable_secret_is_503(admin_env, auth):  # noqa: F811
    boto3.client("secretsmanager").delete_secret(
        SecretId=admin_env.secret_id, ForceDeleteWithoutRecovery=True
    )
    secrets.invalidate()
    with pytest.raises(ServiceUnavailable):
        auth.authenticate(_bearer("x" * 64))


# -- API keys -----------------------------------------------------------------------------------------------
def test_generate_api_key_format_and_storage(admin_env, users, keys):  # noqa: F811
    user, created = _user_with_key(users, keys, name="ci", scopes=["admin", "chat"])
    assert created.key.startswith("chatbot_") and len(created.key) == 72
    assert created.key_prefix == created.key[:16] + "..."
    assert created.id == "ak_" + digest_of(created.key)[:16]
    assert created.scopes == ["admin", "chat"] and created.expires_at is None
    # The plain key is never stored: the item holds the hash only
    item = boto3.resource("dynamodb").Table(get_settings().api_keys_table).scan()["Items"][0]
    assert created.key not in str(item) and item["sk"] == digest_of(created.key)
    assert item["pk"] == "KEY#" + digest_of(created.key)[:16] and item["gsi1pk"] == f"USER#{user.id}"
    listed = keys.list_for_user(user.id)
    assert [k.id for k in listed] == [created.id] and "key" not in listed[0].model_dump()


def test_authenticate_api_key_ok_records_last_use_once_a_minute(admin_env, auth, users, keys):  # noqa: F811
    user, created = _user_with_key(users, keys, role="admin")
    principal = auth.authenticate(_bearer(created.key))
    assert principal.id == user.id and principal.email == user.email and principal.role == "admin"
    assert principal.auth_method == "api_key" and principal.api_key_id == created.id
    assert principal.permissions == ROLE_PERMISSIONS["admin"] and principal.scopes == ("admin",)
    first = keys.get(created.id).last_used_at
    assert first is not None
    # Within the minute the key's item (read anyway) shows the recent use: no write is even tried
    auth.keys.touch = None  # type: ignore[assignment] - calling it would fail
    auth.authenticate(_bearer(created.key))
    assert keys.get(created.id).last_used_at == first


def test_authenticate_api_key_unknown(admin_env, auth):  # noqa: F811
    with pytest.raises(Unauthorized) as err:
        auth.authenticate(_bearer("chatbot_" + "0" * 64))
    assert err.value.code == "invalid_credentials"


def test_authenticate_api_key_malformed(admin_env, auth):  # noqa: F811
    with pytest.raises(Unauthorized) as err:
        auth.authenticate(_bearer("chatbot_not-hex"))
    assert err.value.code == "invalid_credentials"


def test_authenticate_api_key_expired(admin_env, auth, users, keys, monkeypatch):  # noqa: F811
    _, created = _user_with_key(users, keys, expires_in_days=1)
    assert auth.authenticate(_bearer(created.key))
    later = clock.now() + timedelta(days=1, seconds=1)
    monkeypatch.setattr(clock, "now", lambda: later)
    with pytest.raises(Unauthorized) as err:
        auth.authenticate(_bearer(created.key))
    assert err.value.code == "expired_key"


def test_authenticate_api_key_revoked(admin_env, auth, users, keys):  # noqa: F811
    _, created = _user_with_key(users, keys)
    revoked = keys.revoke(created.id)
    assert revoked.is_active is False and revoked.revoked_at
    with pytest.raises(Unauthorized) as err:
        auth.authenticate(_bearer(created.key))
    assert err.value.code == "revoked_key"
    assert keys.revoke(created.id).revoked_at == revoked.revoked_at  # idempotent


def test_authenticate_api_key_of_deactivated_user(admin_env, auth, users, keys):  # noqa: F811
    user, created = _user_with_key(users, keys)
    users.deactivate(user.id, actor=ADMIN_TOKEN_PRINCIPAL)
    with pytest.raises(Unauthorized) as err:
        auth.authenticate(_bearer(created.key))
    assert err.value.code == "inactive_user"


# -- users --------------------------------------------------------------------------------------------------
def test_create_user_duplicate_email_conflicts(admin_env, users):  # noqa: F811
    users.create(UserCreate(email="Dup@Example.com"))
    with pytest.raises(Exception) as err:
        users.create(UserCreate(email="dup@example.com"))
    assert err.value.status == 409 and err.value.code == "duplicate_email"


def test_deactivate_user_self_is_refused(admin_env, users):  # noqa: F811
    user = users.create(UserCreate(email="me@example.com"))
    me = Principal.of(id=user.id, email=user.email, role="super-admin", auth_method="api_key")
    with pytest.raises(Exception) as err:
        users.deactivate(user.id, actor=me)
    assert err.value.status == 400 and err.value.code == "cannot_deactivate_self"


def test_update_user_role_changes_permissions(admin_env, auth, users, keys):  # noqa: F811
    user, created = _user_with_key(users, keys, role="viewer")
    assert users.update_role(user.id, "super-admin").role == "super-admin"
    assert auth.authenticate(_bearer(created.key)).can("manage_users")


# -- permissions --------------------------------------------------------------------------------------------
def test_role_permissions_matrix():
    assert ROLE_PERMISSIONS["viewer"] == {"read"}
    assert ROLE_PERMISSIONS["admin"] == {"read", "create", "update", "delete", "manage_jobs"}
    assert ROLE_PERMISSIONS["super-admin"] == ROLE_PERMISSIONS["admin"] | {"manage_users", "rotate_tokens"}


def test_principal_require_missing_permission_is_forbidden():
    viewer = Principal.of(id="u1", email="v@example.com", role="viewer", auth_method="api_key")
    viewer.require("read")
    with pytest.raises(Forbidden) as err:
        viewer.require("create")
    assert err.value.status == 403 and err.value.message == "Insufficient permissions: create required"
    viewer.require_self_or("u1", "manage_users")
    with pytest.raises(Forbidden):
        viewer.require_self_or("u2", "manage_users")


# -- the gate -----------------------------------------------------------------------------------------------
def _guard(limit: int = 10) -> AccessGuard:
    guard = AccessGuard.for_admin(get_settings())
    guard.ip_limit = Limit("test-ip", limit, 60)
    guard.credential_limit = Limit("test-key", limit, 60)
    return guard


def test_admit_failed_authentication_is_audited_and_penalized(admin_env):  # noqa: F811
    guard = _guard(limit=2 * AUTH_FAILURE_COST)
    request = RequestInfo(
        authorization="Bearer nope", source_ip="198.51.100.7", request_id="r1", path="/admin/me"
    )
    # Given two failed attempts, each counting AUTH_FAILURE_COST against the IP
    for _ in range(2):
        with pytest.raises(Unauthorized):
            guard.admit(request)
    # Then even the right token is refused from that IP before authentication
    good = RequestInfo(authorization=_bearer(admin_env.admin_token), source_ip="198.51.100.7")
    with pytest.raises(RateLimited) as err:
        guard.admit(good)
    assert 1 <= err.value.retry_after <= 60
    # And a wrong one gets the 429 too, neither audited nor penalized again
    with pytest.raises(RateLimited):
        guard.admit(request)
    # While another IP is unaffected
    assert guard.admit(RequestInfo(authorization=good.authorization, source_ip="198.51.100.8"))
    entries, _ = AuditService.from_settings(get_settings()).list(AuditQuery(action="auth.failed"))
    assert len(entries) == 2 and entries[0].outcome == "failure" and entries[0].actor == "anonymous"
    assert entries[0].source_ip == "198.51.100.7" and entries[0].summary == {
        "code": "invalid_credentials",
        "path": "/admin/me",
    }
    assert "nope" not in str(entries)


def test_admit_rate_limits_per_credential(admin_env, users, keys):  # noqa: F811
    guard = _guard(limit=2)
    guard.ip_limit = Limit("test-ip", 100, 60)
    _, created = _user_with_key(users, keys)
    for ip in ("192.0.2.1", "192.0.2.2"):
        guard.admit(RequestInfo(authorization=_bearer(created.key), source_ip=ip))
    with pytest.raises(RateLimited):
        guard.admit(RequestInfo(authorization=_bearer(created.key), source_ip="192.0.2.3"))


def test_admit_api_key_without_admin_scope_is_forbidden(admin_env, users, keys):  # noqa: F811
    _, created = _user_with_key(users, keys, role="super-admin", scopes=["chat"])
    with pytest.raises(Forbidden) as err:
        _guard().admit(RequestInfo(authorization=_bearer(created.key), source_ip="192.0.2.9"))
    assert err.value.code == "insufficient_scope"
    chat = AccessGuard.for_chat(get_settings())
    assert chat.admit(RequestInfo(authorization=_bearer(created.key), source_ip="192.0.2.9")).scopes == (
        "chat",
    )


def test_admit_runs_each_limit_beside_an_authentication_step(admin_env, users, keys):  # noqa: F811
    guard = _guard()
    _, created = _user_with_key(users, keys)
    started = {"identify": threading.Event(), "confirm": threading.Event()}
    authenticator, hit = guard.authenticator, guard.limiter.hit

    def noting(name: str, step: Any) -> Any:
        def run(arg: Any) -> Any:
            started[name].set()
            return step(arg)

        return run

    authenticator.identify = noting("identify", authenticator.identify)  # type: ignore[method-assign]
    authenticator.confirm = noting("confirm", authenticator.confirm)  # type: ignore[method-assign]
    overlapped = []

    def waiting_hit(limit: Limit, key: str) -> Any:
        # In sequence (limit, then step) each wait would time out.
        overlapped.append(started["identify" if limit is guard.ip_limit else "confirm"].wait(5))
        return hit(limit, key)

    guard.limiter.hit = waiting_hit  # type: ignore[method-assign]
    principal = guard.admit(RequestInfo(authorization=_bearer(created.key), source_ip="192.0.2.10"))
    assert principal.api_key_id == created.id and overlapped == [True, True]
