"""The admin app in-process over the template's resources in moto, with every kind of caller, for table-driven
tests over the whole action table (tests/unit/test_admin_rbac_matrix.py, test_admin_contracts.py).

`admin_world()` provisions template.yaml into `mock_aws` once (tests using it share one module-scoped world),
points the app at the fake OpenAI, and makes the callers the RBAC matrix needs: the admin token, a viewer,
an admin and a super-admin key, and keys that must be refused (expired, revoked, a deactivated user's).
`World.call(action, style, ...)` sends one action as its REST route or by name on the legacy routes.
`sample_inputs(action)` builds "valid-ish" inputs for any action from its pydantic models.
"""

from __future__ import annotations

import json
import os
import re
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest
from pydantic import BaseModel
from starlette.testclient import TestClient

ROOT = Path(__file__).resolve().parents[2]
STYLES = ("rest", "query", "path")
# Callers refused at authentication, with the code each must get.
BAD_CREDENTIALS = {
    "none": "missing_credentials",
    "wrong_token": "invalid_credentials",
    "expired_key": "expired_key",
    "revoked_key": "revoked_key",
    "deactivated_user": "inactive_user",
}
ROLE_CALLERS = {"viewer": "viewer", "admin": "admin", "super_admin": "super-admin"}
MISSING_ID = "missing-0000"


@dataclass
class Caller:
    name: str
    key: str | None  # the bearer credential; None sends no Authorization header
    user_id: str | None = None
    role: str | None = None


@dataclass
class World:
    client: TestClient
    callers: dict[str, Caller] = field(default_factory=dict)
    bystander_id: str = ""  # a user nobody authenticates as: "someone else" for self-or rules
    bystander_key_id: str = ""

    def admin_token(self) -> str:
        from chatbot.config import get_settings
        from chatbot.secrets import get_secret

        return str(get_secret(get_settings().admin_token_secret_id).value)

    def bearer(self, caller: str) -> str | None:
        if caller == "admin_token":
            return self.admin_token()  # read each time: a rotation in one test must not break the next
        return self.callers[caller].key

    def call(
        self,
        name: str,
        style: str = "rest",
        *,
        caller: str = "admin_token",
        ids: dict[str, str] | None = None,
        query: dict[str, Any] | None = None,
        body: Any = None,
        method: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> Any:
        from chatbot.admin.framework import actions

        action = actions.get(name)
        assert action is not None, name
        ids = dict(ids or {})
        params = dict(query or {})
        if style == "rest":
            method = method or action.methods[0]
            url = re.sub(r"\{(\w+)\}", lambda m: ids.pop(m.group(1), MISSING_ID), action.path)
            params.update(ids)
        else:
            method = method or (action.methods + action.legacy_methods)[0]
            url = "/admin-api.php" if style == "query" else f"/admin-api.php/{name}"
            if style == "query":
                params["action"] = name
            params.update(ids)
        all_headers = dict(headers or {})
        token = self.bearer(caller)
        if token is not None:
            all_headers["Authorization"] = f"Bearer {token}"
        content = None
        if body is not None:
            content = body if isinstance(body, bytes) else json.dumps(body).encode()
            all_headers["Content-Type"] = "application/json"
        return self.client.request(method, url, params=params, content=content, headers=all_headers)

    def new_key(self, user_id: str) -> tuple[str, str]:
        """Another API key of a user: (key id, key)."""
        from chatbot.config import get_settings
        from chatbot.models.auth import ApiKeyCreate
        from chatbot.services.api_keys import ApiKeyService

        created = ApiKeyService.from_settings(get_settings()).generate(user_id, ApiKeyCreate(name="spare"))
        return created.id, created.key


@contextmanager
def admin_world(openai_base: str) -> Iterator[World]:
    from moto import mock_aws

    from chatbot import aws
    from chatbot.admin.app import create_app
    from chatbot.config import get_settings
    from chatbot.services.chat import reset_chat_service
    from infra.local.provision import RUNTIME_TYPES, provision

    with pytest.MonkeyPatch.context() as mp:
        for var in [k for k in os.environ if k.startswith("AWS_ENDPOINT_URL")]:
            mp.delenv(var)
        with mock_aws():
            stack = provision(
                ROOT / "template.yaml", parameters={"Stage": "local"}, include_types=RUNTIME_TYPES, lean=True
            )
            for key, value in stack.environment().items():
                mp.setenv(key, value)
            mp.setenv("OPENAI_BASE_URL", openai_base)
            mp.setenv("OPENAI_API_KEY", "sk-test")
            # Hundreds of refused credentials from one address: the rate limit is tested elsewhere.
            mp.setenv("ADMIN_RATE_LIMIT", "1000000")
            mp.setenv("JOB_BACKOFF_BASE_SECONDS", "0")  # dead jobs without waiting for retries
            get_settings.cache_clear()
            aws.reset()
            reset_chat_service()
            try:
                with TestClient(create_app(), raise_server_exceptions=False) as client:
                    world = World(client)
                    _make_callers(world)
                    yield world
            finally:
                reset_chat_service()
                get_settings.cache_clear()
                aws.reset()


def _make_callers(world: World) -> None:
    from chatbot.config import get_settings
    from chatbot.models.auth import ApiKeyCreate, Principal, UserCreate
    from chatbot.services.api_keys import ApiKeyService, digest_of
    from chatbot.services.users import UserService

    settings = get_settings()
    users, keys = UserService.from_settings(settings), ApiKeyService.from_settings(settings)

    def user_and_key(name: str, role: str, **key: Any) -> tuple[str, Any]:
        user = users.create(UserCreate(email=f"{name}-{uuid.uuid4().hex[:8]}@example.com", role=role))
        return user.id, keys.generate(user.id, ApiKeyCreate(name=name, **key))

    for name, role in ROLE_CALLERS.items():
        uid, key = user_and_key(name, role)
        world.callers[name] = Caller(name, key.key, uid, role)
    world.callers["none"] = Caller("none", None)
    world.callers["wrong_token"] = Caller("wrong_token", "not-the-admin-token-" + "x" * 44)
    # The refused keys belong to super-admins: everything they are refused, they are refused for the key.
    uid, expired = user_and_key("expired", "super-admin", expires_in_days=1)
    digest = digest_of(expired.key)
    boto3.client("dynamodb").update_item(
        TableName=settings.api_keys_table,
        Key={"pk": {"S": f"KEY#{digest[:16]}"}, "sk": {"S": digest}},
        UpdateExpression="SET expires_at = :past",
        ExpressionAttributeValues={":past": {"S": (datetime.now(UTC) - timedelta(seconds=1)).isoformat()}},
    )
    world.callers["expired_key"] = Caller("expired_key", expired.key, uid, "super-admin")
    uid, revoked = user_and_key("revoked", "super-admin")
    keys.revoke(revoked.id)
    world.callers["revoked_key"] = Caller("revoked_key", revoked.key, uid, "super-admin")
    uid, leaver = user_and_key("leaver", "super-admin")
    boss = world.callers["super_admin"]
    actor = Principal.of(id=boss.user_id, email="boss@example.com", role="super-admin", auth_method="api_key")
    users.deactivate(uid, actor=actor)
    world.callers["deactivated_user"] = Caller("deactivated_user", leaver.key, uid, "super-admin")
    world.bystander_id, bystander = user_and_key("bystander", "viewer")
    world.bystander_key_id = bystander.id


# -- valid-ish inputs from an action's models ---------------------------------------------------------------
def sample_inputs(action: Any) -> tuple[dict[str, str], dict[str, Any] | None]:
    """(path/query parameters, JSON body) that pass validation where a generic value can: each required
    field gets the simplest value its JSON schema allows; ids name nothing that exists."""
    params: dict[str, str] = {}
    if action.params is not None:
        for name, value in _required_values(action.params).items():
            params[name] = MISSING_ID if name in ("id", "user_id", "file_id") else _query_value(value)
    for name in re.findall(r"\{(\w+)\}", action.path):
        params.setdefault(name, MISSING_ID)
    body = _required_values(action.body) if action.body is not None else None
    return params, body


def _required_values(model: type[BaseModel]) -> dict[str, Any]:
    schema = model.model_json_schema()
    defs = schema.get("$defs", {})
    return {name: _value(schema["properties"][name], defs) for name in schema.get("required", [])}


def _value(schema: dict[str, Any], defs: dict[str, Any]) -> Any:
    if "$ref" in schema:
        return _value(defs[schema["$ref"].rsplit("/", 1)[-1]], defs)
    for key in ("const", "default"):
        if key in schema:
            return schema[key]
    if "enum" in schema:
        return schema["enum"][0]
    for key in ("anyOf", "oneOf", "allOf"):
        if key in schema:
            options = [s for s in schema[key] if s.get("type") != "null"] or schema[key]
            return _value(options[0], defs)
    kind = schema.get("type")
    if kind == "string":
        if schema.get("format") == "email" or "@" in schema.get("pattern", ""):
            return "someone@example.com"
        return "x" * max(1, int(schema.get("minLength", 1)))
    if kind == "integer":
        return int(schema.get("minimum", schema.get("exclusiveMinimum", 0) + 1))
    if kind == "number":
        return float(schema.get("minimum", 0))
    if kind == "boolean":
        return False
    if kind == "array":
        items = schema.get("items", {})
        return [_value(items, defs) for _ in range(int(schema.get("minItems", 0)))]
    if kind == "object":
        if "properties" in schema:
            props = schema["properties"]
            return {n: _value(props[n], defs) for n in schema.get("required", [])}
        return {}
    return None


def _query_value(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    return str(value)
