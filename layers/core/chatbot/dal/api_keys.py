"""API keys (API_KEYS_TABLE), stored by hash: pk `KEY#<sha256[:16]>`, sk `<sha256>`; gsi1 `USER#<user id>`.

The key id is `ak_<sha256[:16]>`, so a lookup by key (pk + sk) and by id (pk alone) each read one partition.
"""

from __future__ import annotations

import contextlib

from boto3.dynamodb.conditions import Attr, Key

from chatbot.dal.base import Item, Repository
from chatbot.errors import Conflict, NotFound

ID_PREFIX = "ak_"


def key_for_digest(digest: str) -> dict[str, str]:
    return {"pk": f"KEY#{digest[:16]}", "sk": digest}


def pk_for_id(key_id: str) -> str:
    return f"KEY#{key_id.removeprefix(ID_PREFIX)}"


class ApiKeysRepository(Repository):
    entity = "api_key"

    def create(self, item: Item) -> Item:
        return self.put_new(item)

    def find_by_digest(self, digest: str) -> Item | None:
        return self.get(**key_for_digest(digest), consistent=True)

    def find_by_id(self, key_id: str) -> Item | None:
        if not key_id.startswith(ID_PREFIX):
            return None
        items = list(self.query_all(Key("pk").eq(pk_for_id(key_id))))
        return items[0] if items else None

    def list_by_user(self, user_id: str) -> list[Item]:
        return list(self.query_all(Key("gsi1pk").eq(f"USER#{user_id}"), index="gsi1"))

    def revoke(self, item: Item, *, at: str) -> Item:
        return self.update(item["pk"], item["sk"], {"is_active": False, "revoked_at": at})

    def touch(self, item: Item, *, at: str, unless_since: str) -> None:
        """Record use, at most once per period: skipped when `last_used_at` is newer than `unless_since`."""
        fresh = Attr("last_used_at").not_exists() | Attr("last_used_at").lt(unless_since)
        # Refused when another request recorded it first, or the key was just deleted: nothing to do.
        with contextlib.suppress(Conflict, NotFound):
            self.update(item["pk"], item["sk"], {"last_used_at": at}, condition=fresh)
