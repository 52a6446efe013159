"""Admin users: list, create, read, change role, deactivate; migrate from the shared admin token."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, Field, StringConstraints

from chatbot.admin.framework import ActionContext, Paged, actions, requires, self_or
from chatbot.models.acks import Ack
from chatbot.models.auth import AdminUser, ApiKeyCreate, ApiKeyCreated, UserCreate, UserRoleUpdate
from chatbot.services.api_keys import ApiKeyService
from chatbot.services.users import UserService

UserId = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64)]


class UserIdParam(BaseModel):
    id: UserId


class UserList(BaseModel):
    limit: int = Field(100, ge=1, le=1000)
    cursor: str | None = Field(None, max_length=2048)


class UserAck(Ack):
    user: AdminUser


class LegacyTokenMigrated(BaseModel):
    user: AdminUser
    api_key: ApiKeyCreated


# The original's names: the account the shared token's holders move to, and its keys.
MIGRATED_EMAIL = "admin@system.local"
FIRST_KEY_NAME = "Migrated from ADMIN_TOKEN"
LATER_KEY_NAME = "Migration token"


def _users(ctx: ActionContext) -> UserService:
    return UserService.from_settings(ctx.settings)


@actions.action(
    "list_users",
    "GET",
    "/admin/users",
    access=requires("manage_users"),
    resource="user",
    params=UserList,
    response=AdminUser,
    paged=True,
)
def list_users(ctx: ActionContext, params: UserList, body: None) -> Paged[AdminUser]:
    """List admin users."""
    users, cursor = _users(ctx).list(limit=params.limit, cursor=params.cursor)
    return Paged(users, cursor)


@actions.action(
    "create_user",
    "POST",
    "/admin/users",
    access=requires("manage_users"),
    resource="user",
    body=UserCreate,
    response=AdminUser,
    status_code=201,
    audit="user.create",
    errors=(409,),
)
def create_user(ctx: ActionContext, params: None, body: UserCreate) -> AdminUser:
    """Create an admin user (role viewer, admin or super-admin; default admin).

    E-mail addresses are unique (409 `duplicate_email`). Users authenticate with API keys: create one with
    `generate_api_key`.
    """
    return _users(ctx).create(body)


@actions.action(
    "get_user",
    "GET",
    "/admin/users/{id}",
    resource="user",
    params=UserIdParam,
    response=AdminUser,
    access=self_or("manage_users", lambda ctx, p, b: p.id),
)
def get_user(ctx: ActionContext, params: UserIdParam, body: None) -> AdminUser:
    """One admin user (yourself, or anyone with manage_users)."""
    return _users(ctx).get(params.id)


@actions.action(
    "update_user_role",
    ("POST", "PUT"),
    "/admin/users/{id}/role",
    access=requires("manage_users"),
    resource="user",
    params=UserIdParam,
    body=UserRoleUpdate,
    response=UserAck,
    audit="user.update_role",
    errors=(409,),
)
def update_user_role(ctx: ActionContext, params: UserIdParam, body: UserRoleUpdate) -> UserAck:
    """Change a user's role."""
    user = _users(ctx).update_role(params.id, body.role)
    return UserAck(message="User role updated", user=user)


@actions.action(
    "deactivate_user",
    "POST",
    "/admin/users/{id}/deactivate",
    access=requires("manage_users"),
    resource="user",
    params=UserIdParam,
    response=UserAck,
    audit="user.deactivate",
    errors=(400, 409),
)
def deactivate_user(ctx: ActionContext, params: UserIdParam, body: None) -> UserAck:
    """Deactivate a user: all of their API keys stop working at once.

    You cannot deactivate yourself (400 `cannot_deactivate_self`).
    """
    user = _users(ctx).deactivate(params.id, actor=ctx.principal)
    return UserAck(message="User deactivated", user=user)


@actions.action(
    "migrate_legacy_token",
    "POST",
    "/admin/token/migrate",
    access=requires("manage_users"),
    resource="user",
    response=LegacyTokenMigrated,
    status_code=201,
    audit="user.migrate_legacy_token",
    errors=(400,),
)
def migrate_legacy_token(ctx: ActionContext, params: None, body: None) -> LegacyTokenMigrated:
    """Move from the shared admin token to a personal super-admin account with an API key (shown once).

    Creates the super-admin `admin@system.local` with a key named "Migrated from ADMIN_TOKEN"; when that
    user exists, adds a key named "Migration token" to it. The admin token keeps working (rotate it when
    everyone has moved). A deactivated `admin@system.local` gives 400 `inactive_user`.
    """
    user, created = _users(ctx).get_or_create(UserCreate(email=MIGRATED_EMAIL, role="super-admin"))
    ctx.resource_id = user.id
    name = FIRST_KEY_NAME if created else LATER_KEY_NAME
    key = ApiKeyService.from_settings(ctx.settings).generate(user.id, ApiKeyCreate(name=name))
    return LegacyTokenMigrated(user=user, api_key=key)
