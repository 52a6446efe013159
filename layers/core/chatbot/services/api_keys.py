"""API keys: `chatbot_` + 64 hex characters, shown once at creation and stored only as a SHA-256 hash.

The key id (`ak_` + the first 16 hex characters of the hash) and the display prefix (the key's first 16
characters + "...") identify a key without revealing it.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from datetime import timedelta

from chatbot import clock
from chatbot.config import Settings
from chatbot.dal.api_keys import ID_PREFIX, ApiKeysRepository, key_for_digest
from chatbot.dal.base import Item
from chatbot.dal.users import UsersRepository
from chatbot.errors import BadRequest, NotFound
from chatbot.models.auth import ApiKey, ApiKeyCreate, ApiKeyCreated

KEY_PREFIX = "chatbot_"
KEY_PATTERN = re.compile(r"^chatbot_[0-9a-f]{64}$")


def generate_key() -> str:
    return KEY_PREFIX + secrets.token_hex(32)


def digest_of(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def key_id_of(digest: str) -> str:
    return ID_PREFIX + digest[:16]


def public(item: Item) -> ApiKey:
    return ApiKey.model_validate(item)


class ApiKeyService:
    def __init__(self, keys: ApiKeysRepository, users: UsersRepository) -> None:
        self.keys = keys
        self.users = users

    @classmethod
    def from_settings(cls, settings: Settings) -> ApiKeyService:
        return cls(ApiKeysRepository(settings.api_keys_table), UsersRepository(settings.users_table))

    def generate(self, owner_id: str, data: ApiKeyCreate) -> ApiKeyCreated:
        """A new key for an active user; the returned object is the only place the key ever appears."""
        owner = self.users.find(owner_id, consistent=True)
        if owner is None:
            raise NotFound("User not found")
        if not owner["is_active"]:
            raise BadRequest("Cannot create an API key for an inactive user", code="inactive_user")
        key = generate_key()
        digest = digest_of(key)
        created = clock.now()
        item: Item = {
            **key_for_digest(digest),
            "id": key_id_of(digest),
            "user_id": owner_id,
            "key_prefix": key[:16] + "...",
            "name": data.name,
            "scopes": sorted(set(data.scopes)),
            "created_at": clock.iso(created),
            "expires_at": clock.iso(created + timedelta(days=data.expires_in_days))
            if data.expires_in_days
            else None,
            "is_active": True,
            "gsi1pk": f"USER#{owner_id}",
            "gsi1sk": clock.iso(created),
        }
        stored = self.keys.create(item)
        return ApiKeyCreated(**public(stored).model_dump(), key=key)

    def list_for_user(self, user_id: str) -> list[ApiKey]:
        """A user's keys, newest first (revoked ones included, marked inactive)."""
        return [public(i) for i in reversed(self.keys.list_by_user(user_id))]

    def get(self, key_id: str) -> ApiKey:
        return public(self._require(key_id))

    def owner_of(self, key_id: str) -> str:
        return str(self._require(key_id)["user_id"])

    def revoke(self, key_id: str) -> ApiKey:
        item = self._require(key_id)
        if not item.get("is_active", False):
            return public(item)  # revoking twice changes nothing
        return public(self.keys.revoke(item, at=clock.iso()))

    def _require(self, key_id: str) -> Item:
        item = self.keys.find_by_id(key_id)
        if item is None:
            raise NotFound("API key not found")
        return item
