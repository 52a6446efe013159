"""The vector stores table: stores and their files, with the ingestion status the worker and webhooks keep.

Items (pk / sk):
- `VS#<store id>` / `STORE`: a store (fields of `chatbot.models.vector_stores.VectorStore`);
  `gsi1pk=OPENAI_STORE#<openai store id>` once it exists upstream.
- `VS#<store id>` / `FILE#<file id>`: a file (fields of `VectorStoreFile`, ingestion state in `status`);
  `gsi1pk=OPENAI_FILE#<openai file id>` once uploaded (webhooks and upstream status carry only that id).

Deliberately small (what jobs and webhooks need); the vector store admin features build on it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from boto3.dynamodb.conditions import Attr, ConditionBase, Key

from chatbot.config import get_settings
from chatbot.dal.base import Item, Page, Repository
from chatbot.dal.transact import scan_page
from chatbot.errors import NotFound

STORE_SK = "STORE"
KEY_ATTRIBUTES = ("pk", "sk", "gsi1pk", "gsi1sk", "ttl")


def store_key(store_id: str) -> dict[str, str]:
    return {"pk": f"VS#{store_id}", "sk": STORE_SK}


def file_key(store_id: str, file_id: str) -> dict[str, str]:
    return {"pk": f"VS#{store_id}", "sk": f"FILE#{file_id}"}


def _store_index(store_id: str, openai_store_id: str | None) -> dict[str, str]:
    if not openai_store_id:
        return {}
    return {"gsi1pk": f"OPENAI_STORE#{openai_store_id}", "gsi1sk": f"VS#{store_id}"}


def _file_index(store_id: str, file_id: str, openai_file_id: str | None) -> dict[str, str]:
    if not openai_file_id:
        return {}
    return {"gsi1pk": f"OPENAI_FILE#{openai_file_id}", "gsi1sk": f"VS#{store_id}#FILE#{file_id}"}


def _strip(item: Mapping[str, Any]) -> Item:
    return {k: v for k, v in item.items() if k not in KEY_ATTRIBUTES}


class VectorStoreRepository(Repository):
    entity = "vector_store"

    def __init__(self, table_name: str | None = None, *, resource: Any = None) -> None:
        super().__init__(table_name or get_settings().vector_stores_table, resource=resource)

    # -- stores ------------------------------------------------------------------------------------------
    def create_store(self, store: Mapping[str, Any]) -> Item:
        item = {**store, **store_key(store["id"]), **_store_index(store["id"], store.get("openai_store_id"))}
        return _strip(self.put_new(item))

    def get_store(self, store_id: str, *, consistent: bool = False) -> Item | None:
        item = self.get(**store_key(store_id), consistent=consistent)
        return _strip(item) if item else None

    def find_stores_by_openai_id(self, openai_store_id: str) -> list[Item]:
        return [
            _strip(item)
            for item in self.query_all(Key("gsi1pk").eq(f"OPENAI_STORE#{openai_store_id}"), index="gsi1")
        ]

    def update_store(
        self,
        store_id: str,
        changes: Mapping[str, Any],
        *,
        expected_version: int | None = None,
        condition: ConditionBase | None = None,
    ) -> Item:
        changes = dict(changes)
        if changes.get("openai_store_id"):
            changes.update(_store_index(store_id, changes["openai_store_id"]))
        condition = Attr("sk").eq(STORE_SK) if condition is None else condition
        item = self.update(
            **store_key(store_id), changes=changes, expected_version=expected_version, condition=condition
        )
        return _strip(item)

    # -- files -------------------------------------------------------------------------------------------
    def create_file(self, file: Mapping[str, Any]) -> Item:
        item = {
            **file,
            **file_key(file["vector_store_id"], file["id"]),
            **_file_index(file["vector_store_id"], file["id"], file.get("openai_file_id")),
        }
        return _strip(self.put_new(item))

    def get_file(self, store_id: str, file_id: str, *, consistent: bool = False) -> Item | None:
        item = self.get(**file_key(store_id, file_id), consistent=consistent)
        return _strip(item) if item else None

    def list_files(
        self, store_id: str, *, limit: int = 50, cursor: str | None = None, status: str | None = None
    ) -> Page:
        page = self.query_page(
            Key("pk").eq(f"VS#{store_id}") & Key("sk").begins_with("FILE#"),
            limit=limit,
            cursor=cursor,
            filter_expression=Attr("status").eq(status) if status else None,
        )
        return Page(items=[_strip(item) for item in page.items], next_cursor=page.next_cursor)

    def find_files_by_openai_id(self, openai_file_id: str) -> list[Item]:
        return [
            _strip(item)
            for item in self.query_all(Key("gsi1pk").eq(f"OPENAI_FILE#{openai_file_id}"), index="gsi1")
        ]

    def update_file(
        self,
        store_id: str,
        file_id: str,
        changes: Mapping[str, Any],
        *,
        expected_version: int | None = None,
        only_from_status: Iterable[str] | None = None,
    ) -> Item:
        """Update a file; `only_from_status` makes a status change conditional (Conflict otherwise)."""
        changes = dict(changes)
        if changes.get("openai_file_id"):
            changes.update(_file_index(store_id, file_id, changes["openai_file_id"]))
        condition = Attr("sk").begins_with("FILE#")
        if only_from_status is not None:
            condition = condition & Attr("status").is_in(list(only_from_status))
        item = self.update(
            **file_key(store_id, file_id),
            changes=changes,
            expected_version=expected_version,
            condition=condition,
            conflict_message="Vector store file is not in a state for this change",
        )
        return _strip(item)

    # -- admin listing and deletion (the vector store admin actions) ----------------------------------------
    def list_stores(
        self,
        *,
        name: str | None = None,
        status: str | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> Page:
        """Stores (not files), in table order; `name` matches a case-insensitive substring."""
        condition = Attr("sk").eq(STORE_SK)
        if name:
            condition = condition & Attr("name_lower").contains(name.strip().casefold())
        if status:
            condition = condition & Attr("status").eq(status)
        page = scan_page(self, condition, limit=limit, cursor=cursor)
        return Page(items=[_strip(item) for item in page.items], next_cursor=page.next_cursor)

    def all_files(self, store_id: str) -> list[Item]:
        return [
            _strip(item)
            for item in self.query_all(Key("pk").eq(f"VS#{store_id}") & Key("sk").begins_with("FILE#"))
        ]

    def find_file(self, file_id: str) -> Item | None:
        """A file by its id alone (the original's `poll_file_status` named no store): a filtered scan."""
        page = scan_page(self, Attr("sk").eq(f"FILE#{file_id}"), limit=1)
        return _strip(page.items[0]) if page.items else None

    def delete_store(self, store_id: str) -> Item:
        """Delete the store (NotFound if missing), then its files."""
        old = self.delete(**store_key(store_id))
        with self.table.batch_writer() as batch:
            for item in self.query_all(Key("pk").eq(f"VS#{store_id}")):
                batch.delete_item(Key={"pk": item["pk"], "sk": item["sk"]})
        return _strip(old or {})

    def delete_file(self, store_id: str, file_id: str) -> Item:
        try:
            old = self.delete(**file_key(store_id, file_id))
        except NotFound:
            raise NotFound("File not found", code="file_not_found") from None
        return _strip(old or {})
