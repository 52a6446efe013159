"""API keys: generate (shown once), list, revoke."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, StringConstraints

from chatbot.admin.framework import ActionContext, Paged, actions, self_or
from chatbot.errors import BadRequest
from chatbot.models.acks import Ack
from chatbot.models.auth import ApiKey, ApiKeyCreate, ApiKeyCreated
from chatbot.services.api_keys import ApiKeyService

KeyId = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64)]


class KeyOwnerParam(BaseModel):
    user_id: Annotated[str, StringConstraints(strip_whitespace=True, max_length=64)] | None = None


class KeyIdParam(BaseModel):
    id: KeyId


class KeyAck(Ack):
    api_key: ApiKey


def _keys(ctx: ActionContext) -> ApiKeyService:
    return ApiKeyService.from_settings(ctx.settings)


def _owner(ctx: ActionContext, user_id: str | None) -> str:
    if user_id:
        return user_id
    if ctx.principal.auth_method != "api_key":
        raise BadRequest("user_id is required with the admin token", code="user_id_required")
    return ctx.principal.id


@actions.action(
    "generate_api_key",
    "POST",
    "/admin/api-keys",
    resource="api_key",
    body=ApiKeyCreate,
    response=ApiKeyCreated,
    status_code=201,
    audit="api_key.create",
    errors=(400, 404),
    access=self_or("manage_users", lambda ctx, p, b: b.user_id),
)
def generate_api_key(ctx: ActionContext, params: None, body: ApiKeyCreate) -> ApiKeyCreated:
    """Create an API key for yourself, or for anyone with manage_users.

    The key (`chatbot_` + 64 hex) is in the response only; it is stored as a SHA-256 hash. Scopes: `admin`
    (this API, default) and/or `chat` (the OpenAI-compatible chat API).
    """
    return _keys(ctx).generate(_owner(ctx, body.user_id), body)


@actions.action(
    "list_api_keys",
    "GET",
    "/admin/api-keys",
    resource="api_key",
    params=KeyOwnerParam,
    response=ApiKey,
    paged=True,
    errors=(400,),
    access=self_or("manage_users", lambda ctx, p, b: p.user_id),
)
def list_api_keys(ctx: ActionContext, params: KeyOwnerParam, body: None) -> Paged[ApiKey]:
    """A user's API keys (yours by default), newest first; never the keys themselves."""
    return Paged(_keys(ctx).list_for_user(_owner(ctx, params.user_id)))


@actions.action(
    "revoke_api_key",
    "POST",
    "/admin/api-keys/{id}/revoke",
    resource="api_key",
    params=KeyIdParam,
    response=KeyAck,
    audit="api_key.revoke",
    access=self_or("manage_users", lambda ctx, p, b: _keys(ctx).owner_of(p.id)),
)
def revoke_api_key(ctx: ActionContext, params: KeyIdParam, body: None) -> KeyAck:
    """Revoke an API key (your own, or anyone's with manage_users); it stops working at once."""
    return KeyAck(message="API key revoked", api_key=_keys(ctx).revoke(params.id))
