"""Admin identities: roles and permissions, the authenticated `Principal`, admin users and API keys.

Permissions follow the original's names (`read`, `create`, `update`, `delete`, `manage_jobs`,
`manage_users`, `rotate_tokens`). Unlike the original, `manage_jobs` is granted (to admin and super-admin) so
the DLQ actions work, and `rotate_tokens` guards token rotation.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from chatbot.errors import Forbidden

Role = Literal["viewer", "admin", "super-admin"]
Permission = Literal["read", "create", "update", "delete", "manage_jobs", "manage_users", "rotate_tokens"]
AuthMethod = Literal["admin_token", "api_key"]
# Where an API key may be used: the admin API and/or the OpenAI-compatible chat routes.
Scope = Literal["admin", "chat"]

ROLES: tuple[Role, ...] = ("viewer", "admin", "super-admin")
_VIEWER: frozenset[Permission] = frozenset({"read"})
_ADMIN: frozenset[Permission] = _VIEWER | {"create", "update", "delete", "manage_jobs"}
ROLE_PERMISSIONS: dict[Role, frozenset[Permission]] = {
    "viewer": _VIEWER,
    "admin": _ADMIN,
    "super-admin": _ADMIN | {"manage_users", "rotate_tokens"},
}

Email = Annotated[
    str,
    StringConstraints(
        strip_whitespace=True, to_lower=True, max_length=254, pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$"
    ),
]


class Principal(BaseModel):
    """Who is calling: a user through one of their API keys, or the synthetic admin-token super-admin."""

    model_config = ConfigDict(frozen=True)

    id: str
    email: str
    role: Role
    auth_method: AuthMethod
    api_key_id: str | None = None
    scopes: tuple[Scope, ...] = ("admin", "chat")
    permissions: frozenset[Permission] = frozenset()

    @classmethod
    def of(cls, **fields: object) -> Principal:
        """A principal whose permissions are those of its role."""
        return cls(**fields, permissions=ROLE_PERMISSIONS[fields["role"]])  # type: ignore[arg-type,index]

    @property
    def credential_id(self) -> str:
        """What rate limits count against: the API key, or the admin token."""
        return self.api_key_id or self.id

    def can(self, permission: Permission) -> bool:
        return permission in self.permissions

    def require(self, permission: Permission) -> None:
        if permission not in self.permissions:
            raise Forbidden(f"Insufficient permissions: {permission} required")

    def require_self_or(self, user_id: str | None, permission: Permission) -> None:
        """Access to one's own records, or to anyone's with `permission`."""
        if user_id != self.id:
            self.require(permission)


class PrincipalPublic(BaseModel):
    id: str
    email: str
    role: Role
    auth_method: AuthMethod
    api_key_id: str | None = None
    scopes: list[Scope]
    permissions: list[Permission]


# -- admin users --------------------------------------------------------------------------------------------
class UserCreate(BaseModel):
    # `password` from the original's scripts is accepted and ignored: users authenticate with API keys only.
    model_config = ConfigDict(extra="ignore")

    email: Email
    role: Role = "admin"


class UserRoleUpdate(BaseModel):
    role: Role


class AdminUser(BaseModel):
    id: str
    email: str
    role: Role
    is_active: bool
    created_at: str
    updated_at: str
    version: int = 1


# -- API keys -----------------------------------------------------------------------------------------------
class ApiKeyCreate(BaseModel):
    model_config = ConfigDict(extra="ignore")

    user_id: str | None = Field(None, max_length=64, description="Owner; defaults to the caller")
    name: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)] = "API Key"
    expires_in_days: int | None = Field(None, ge=1, le=3650, description="Omitted: never expires")
    scopes: list[Scope] = Field(default_factory=lambda: ["admin"], min_length=1, max_length=2)


class ApiKey(BaseModel):
    """An API key as listed: never the key itself, nor its hash."""

    id: str
    user_id: str
    key_prefix: str
    name: str
    scopes: list[Scope]
    created_at: str
    expires_at: str | None = None
    last_used_at: str | None = None
    revoked_at: str | None = None
    is_active: bool


class ApiKeyCreated(ApiKey):
    key: str = Field(description="The API key; shown this once and never again")
