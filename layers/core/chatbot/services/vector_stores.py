"""Vector stores and their files, mirrored to the upstream.

- Stores: created upstream first (the local record keeps `openai_store_id`); renames and metadata follow;
  delete removes the upstream store and the upstream files this platform uploaded for it.
- Files: `add_file` stores the file `pending`, enqueues a `file_ingest` job and answers 202. The worker
  uploads (small files travel in the job; larger ones are uploaded during the request, since a job is a
  DynamoDB item) and attaches; the poll job and the webhooks move it `in_progress → completed | failed`.
  `poll_file_status` asks the upstream at once. Deleting a file detaches it upstream and deletes the
  upstream file if we uploaded it and no other local file uses it.
- `sync` imports upstream stores not known locally and refreshes the known ones (first 100).
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import mimetypes
import uuid
from collections.abc import Callable
from typing import Any

from chatbot import clock
from chatbot.config import Settings, get_settings
from chatbot.dal.base import Item
from chatbot.dal.vector_stores import VectorStoreRepository
from chatbot.errors import ChatbotError, Conflict, NotFound, PayloadTooLarge, ValidationFailed
from chatbot.models.acks import Ack, SyncResult
from chatbot.models.vector_stores import (
    VectorStore,
    VectorStoreCreate,
    VectorStoreFile,
    VectorStoreFileCreate,
    VectorStoreFileList,
    VectorStoreFileListQuery,
    VectorStoreList,
    VectorStoreListQuery,
    VectorStoreUpdate,
)
from chatbot.observability import get_logger
from chatbot.services.optimistic import check_version, expected_version
from chatbot.upstream.openai_admin import OpenAIAdmin

logger = get_logger("admin")
SYNC_LIMIT = 100
FILE_STATUSES = ("pending", "in_progress", "completed", "failed", "cancelled")
_STORE_STATUS = {"completed": "ready", "in_progress": "ingesting", "expired": "error"}


def decode_file(data: str, *, limit: int, field: str = "file_data") -> bytes:
    """Decode a base64 body (a `data:` prefix is tolerated); 413 above `limit` bytes, 422 if not base64."""
    if data.startswith("data:") and "," in data:
        data = data.split(",", 1)[1]
    if len(data) * 3 // 4 > limit + 3:  # refuse before decoding
        raise PayloadTooLarge(f"File exceeds the limit of {limit} bytes", code="file_too_large")
    try:
        content = base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        raise ValidationFailed(
            details=[{"loc": ["body", field], "msg": "Value is not valid base64", "type": "value_error"}]
        ) from None
    if len(content) > limit:
        raise PayloadTooLarge(f"File exceeds the limit of {limit} bytes", code="file_too_large")
    if not content:
        raise ValidationFailed(
            details=[{"loc": ["body", field], "msg": "File is empty", "type": "value_error"}]
        )
    return content


def guess_mime_type(name: str) -> str:
    return mimetypes.guess_type(name)[0] or "application/octet-stream"


class VectorStoreService:
    def __init__(
        self,
        repo: VectorStoreRepository | None = None,
        upstream: OpenAIAdmin | None = None,
        *,
        enqueue: Callable[..., Any] | None = None,
        settings: Settings | None = None,
    ) -> None:
        self._repo = repo
        self.upstream = upstream or OpenAIAdmin()
        self._enqueue = enqueue
        self.settings = settings or get_settings()

    @classmethod
    def from_settings(cls, settings: Settings) -> VectorStoreService:
        return cls(settings=settings)

    @property
    def repo(self) -> VectorStoreRepository:
        if self._repo is None:
            self._repo = VectorStoreRepository(self.settings.vector_stores_table)
        return self._repo

    def enqueue(self, job_type: str, payload: dict[str, Any]) -> Any:
        if self._enqueue is not None:
            return self._enqueue(job_type, payload)
        from chatbot.services.jobs import get_job_service

        return get_job_service().enqueue(job_type, payload)

    # -- stores --------------------------------------------------------------------------------------------
    def list(self, query: VectorStoreListQuery | None = None) -> VectorStoreList:
        query = query or VectorStoreListQuery()
        page = self.repo.list_stores(
            name=query.name, status=query.status, limit=query.limit, cursor=query.cursor
        )
        return VectorStoreList(items=[_store(i) for i in page.items], next_cursor=page.next_cursor)

    def get(self, store_id: str) -> VectorStore:
        return _store(self._require_store(store_id))

    def create(self, data: VectorStoreCreate) -> VectorStore:
        remote = self.upstream.create_vector_store(data.name, data.metadata)
        now = clock.iso()
        item = {
            "id": str(uuid.uuid4()),
            "name": data.name,
            "name_lower": data.name.casefold(),
            "openai_store_id": remote.id,
            "status": _STORE_STATUS.get(getattr(remote, "status", None) or "", "ready"),
            "metadata": data.metadata or {},
            "created_at": now,
            "updated_at": now,
        }
        try:
            stored = self.repo.create_store(item)
        except ChatbotError:
            self.upstream.delete_vector_store(remote.id)  # never leave an upstream store nobody knows of
            raise
        return _store(stored)

    def update(self, store_id: str, data: VectorStoreUpdate, *, if_match: int | None = None) -> VectorStore:
        expected = expected_version(data.version, if_match)
        current = self._require_store(store_id, consistent=True)
        check_version("Vector store", current["version"], expected)
        changes: dict[str, Any] = data.changes()
        if not changes:
            return _store(current)
        if "metadata" in changes and changes["metadata"] is None:
            changes["metadata"] = {}
        if "name" in changes:
            changes["name_lower"] = changes["name"].casefold()
        remote_changes = {k: changes.get(k) for k in ("name", "metadata") if k in changes}
        if remote_changes and current.get("openai_store_id"):
            self.upstream.update_vector_store(
                current["openai_store_id"],
                name=remote_changes.get("name"),
                metadata=remote_changes.get("metadata"),
            )
        changes["updated_at"] = clock.iso()
        return _store(self.repo.update_store(store_id, changes, expected_version=expected))

    def delete(self, store_id: str) -> Ack:
        current = self._require_store(store_id, consistent=True)
        files = self.repo.all_files(store_id)
        if current.get("openai_store_id"):
            self.upstream.delete_vector_store(current["openai_store_id"])
        for file in files:
            self._delete_owned_upstream_file(file, whole_store=True)
        self.repo.delete_store(store_id)
        return Ack(message="Vector store deleted")

    # -- files ---------------------------------------------------------------------------------------------
    def list_files(self, store_id: str, query: VectorStoreFileListQuery | None = None) -> VectorStoreFileList:
        query = query or VectorStoreFileListQuery()
        self._require_store(store_id)
        page = self.repo.list_files(store_id, limit=query.limit, cursor=query.cursor, status=query.status)
        return VectorStoreFileList(items=[_file(i) for i in page.items], next_cursor=page.next_cursor)

    def get_file(self, store_id: str, file_id: str) -> VectorStoreFile:
        return _file(self._require_file(store_id, file_id))

    def add_file(self, store_id: str, data: VectorStoreFileCreate) -> VectorStoreFile:
        """Store the file `pending` and enqueue its ingestion; the caller answers 202."""
        store = self._require_store(store_id, consistent=True)
        if not store.get("openai_store_id"):
            raise Conflict("This vector store has no upstream store", code="vector_store_not_remote")
        if store.get("status") == "deleted":
            raise Conflict("This vector store is deleted", code="vector_store_deleted")
        mime_type = data.mime_type or guess_mime_type(data.name)
        now = clock.iso()
        file: Item = {
            "id": str(uuid.uuid4()),
            "vector_store_id": store_id,
            "name": data.name,
            "mime_type": mime_type,
            "status": "pending",
            "created_at": now,
            "updated_at": now,
        }
        payload: dict[str, Any] = {"vector_store_id": store_id, "file_id": file["id"]}
        if data.file_data is not None:
            content = decode_file(data.file_data, limit=self.settings.admin_max_file_bytes)
            file["size"] = len(content)  # measured, never the client's claim
            file["owns_openai_file"] = True
            if len(content) <= self.settings.admin_inline_file_bytes:
                payload["file_data"] = base64.b64encode(content).decode()
            else:
                uploaded = self.upstream.upload_file(
                    data.name, content, purpose="assistants", mime_type=mime_type
                )
                file["openai_file_id"] = uploaded.id
        else:
            remote = self._existing_upstream_file(data.openai_file_id or "")
            file["openai_file_id"] = remote.id
            file["size"] = getattr(remote, "bytes", None) or data.size
            file["owns_openai_file"] = False
        stored = self.repo.create_file({k: v for k, v in file.items() if v is not None})
        try:
            job = self.enqueue("file_ingest", payload)
        except ChatbotError:
            self.repo.delete_file(store_id, file["id"])
            if file.get("openai_file_id") and file.get("owns_openai_file"):
                self.upstream.delete_file(file["openai_file_id"], missing_ok=True)
            raise
        # Deleted in the meantime? Then the job finds no file and stops.
        with contextlib.suppress(NotFound):
            stored = self.repo.update_file(store_id, file["id"], {"job_id": job.id})
        return _file({**stored, "job_id": job.id})

    def delete_file(self, store_id: str, file_id: str) -> Ack:
        store = self._require_store(store_id, consistent=True)
        file = self._require_file(store_id, file_id)
        if store.get("openai_store_id") and file.get("openai_file_id"):
            self.upstream.delete_vector_store_file(store["openai_store_id"], file["openai_file_id"])
        self._delete_owned_upstream_file(file)
        self.repo.delete_file(store_id, file_id)
        return Ack(message="File deleted")

    def poll_file_status(self, file_id: str, store_id: str | None = None) -> VectorStoreFile:
        """Refresh one file's ingestion status from the upstream now (the worker also polls on its own)."""
        file = self._require_file(store_id, file_id) if store_id else self.repo.find_file(file_id)
        if file is None:
            raise NotFound("File not found", code="file_not_found")
        store = self.repo.get_store(file["vector_store_id"], consistent=True)
        if store is None or not store.get("openai_store_id") or not file.get("openai_file_id"):
            return _file(file)  # not uploaded or attached yet: the job still owns it
        try:
            remote = self.upstream.get_vector_store_file(store["openai_store_id"], file["openai_file_id"])
        except NotFound:
            return _file(file)  # not attached yet
        status = getattr(remote, "status", None)
        if status not in FILE_STATUSES or status == file.get("status"):
            return _file(file)
        last_error = getattr(remote, "last_error", None)
        error = (
            (getattr(last_error, "message", None) or "Ingestion failed upstream")
            if status == "failed"
            else None
        )
        updated = self.repo.update_file(
            file["vector_store_id"],
            file["id"],
            {"status": status, "error_message": error, "updated_at": clock.iso()},
        )
        return _file(updated)

    # -- sync ----------------------------------------------------------------------------------------------
    def sync(self) -> SyncResult:
        """Import upstream stores we do not know and refresh the names and status of those we do."""
        synced = 0
        for remote in self.upstream.list_vector_stores(limit=SYNC_LIMIT):
            name = (getattr(remote, "name", None) or remote.id)[:255]
            status = _STORE_STATUS.get(getattr(remote, "status", None) or "", "ready")
            metadata = {str(k): str(v) for k, v in (getattr(remote, "metadata", None) or {}).items()}
            known = [s for s in self.repo.find_stores_by_openai_id(remote.id) if s.get("status") != "deleted"]
            if not known:
                now = clock.iso()
                self.repo.create_store(
                    {
                        "id": str(uuid.uuid4()),
                        "name": name,
                        "name_lower": name.casefold(),
                        "openai_store_id": remote.id,
                        "status": status,
                        "metadata": metadata,
                        "created_at": now,
                        "updated_at": now,
                    }
                )
                synced += 1
                continue
            for store in known:
                changes = {k: v for k, v in (("name", name), ("status", status)) if store.get(k) != v}
                if changes:
                    changes["name_lower"] = name.casefold()
                    changes["updated_at"] = clock.iso()
                    self.repo.update_store(store["id"], changes)
                    synced += 1
        return SyncResult(synced=synced, message=f"Synced {synced} vector store(s) from the upstream")

    # -- helpers -------------------------------------------------------------------------------------------
    def _require_store(self, store_id: str, *, consistent: bool = False) -> Item:
        store = self.repo.get_store(store_id, consistent=consistent)
        if store is None:
            raise NotFound("Vector store not found", code="vector_store_not_found")
        return store

    def _require_file(self, store_id: str | None, file_id: str) -> Item:
        file = self.repo.get_file(store_id or "", file_id, consistent=True)
        if file is None:
            raise NotFound("File not found", code="file_not_found")
        return file

    def _existing_upstream_file(self, openai_file_id: str) -> Any:
        try:
            return self.upstream.get_file(openai_file_id)
        except NotFound:
            raise ValidationFailed(
                details=[
                    {"loc": ["body", "openai_file_id"], "msg": "No such file upstream", "type": "value_error"}
                ]
            ) from None

    def _delete_owned_upstream_file(self, file: Item, *, whole_store: bool = False) -> None:
        """Delete the upstream file we uploaded for `file`, unless another local file still uses it."""
        openai_file_id = file.get("openai_file_id")
        if not openai_file_id or not file.get("owns_openai_file"):
            return
        leaving = file["vector_store_id"] if whole_store else None
        others = [
            f
            for f in self.repo.find_files_by_openai_id(openai_file_id)
            if f["id"] != file["id"] and f.get("vector_store_id") != leaving
        ]
        if not others:
            self.upstream.delete_file(openai_file_id, missing_ok=True)


def _store(item: Item) -> VectorStore:
    return VectorStore.model_validate(item)


def _file(item: Item) -> VectorStoreFile:
    return VectorStoreFile.model_validate(item)
