"""Admin users: create (unique e-mail), read, list, change role, deactivate.

Users authenticate with their API keys only (there is no password login); deactivating a user stops all of
their keys at once, because every key authentication reads the user too.
"""

from __future__ import annotations

import uuid

from chatbot import clock
from chatbot.config import Settings
from chatbot.dal.base import Item
from chatbot.dal.users import UsersRepository
from chatbot.errors import BadRequest, Conflict
from chatbot.models.auth import AdminUser, Principal, Role, UserCreate


def public(item: Item) -> AdminUser:
    return AdminUser.model_validate(item)


class UserService:
    def __init__(self, users: UsersRepository) -> None:
        self.users = users

    @classmethod
    def from_settings(cls, settings: Settings) -> UserService:
        return cls(UsersRepository(settings.users_table))

    def create(self, data: UserCreate) -> AdminUser:
        now = clock.iso()
        item = {
            "id": str(uuid.uuid4()),
            "email": data.email,
            "role": data.role,
            "is_active": True,
            "created_at": now,
            "updated_at": now,
        }
        return public(self.users.create(item))

    def get_or_create(self, data: UserCreate) -> tuple[AdminUser, bool]:
        """The user with this e-mail address, created when there is none: (user, created)."""
        existing = self.users.find_by_email(data.email)
        if existing is not None:
            return public(existing), False
        try:
            return self.create(data), True
        except Conflict as exc:
            if exc.code != "duplicate_email":
                raise
            # Created concurrently by another request: use theirs.
            raced = self.users.find_by_email(data.email)
            if raced is None:
                raise
            return public(raced), False

    def get(self, user_id: str) -> AdminUser:
        return public(self.users.require_user(user_id))

    def list(self, *, limit: int = 100, cursor: str | None = None) -> tuple[list[AdminUser], str | None]:
        page = self.users.list_page(limit=limit, cursor=cursor)
        users = sorted((public(i) for i in page.items), key=lambda u: u.created_at)
        return users, page.next_cursor

    def update_role(self, user_id: str, role: Role) -> AdminUser:
        current = self.users.require_user(user_id, consistent=True)
        if current["role"] == role:
            return public(current)
        changes = {"role": role, "updated_at": clock.iso()}
        return public(self.users.change(user_id, changes, expected_version=current["version"]))

    def deactivate(self, user_id: str, *, actor: Principal) -> AdminUser:
        if user_id == actor.id:
            raise BadRequest("Cannot deactivate your own account", code="cannot_deactivate_self")
        current = self.users.require_user(user_id, consistent=True)
        if not current["is_active"]:
            return public(current)
        changes = {"is_active": False, "updated_at": clock.iso()}
        return public(self.users.change(user_id, changes, expected_version=current["version"]))
