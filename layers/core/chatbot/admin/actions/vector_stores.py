"""Vector stores and their files (mirrored upstream), and the upstream's own files."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, Field, StringConstraints

from chatbot.admin.framework import ActionContext, Paged, actions, requires
from chatbot.models.acks import Ack, SyncResult
from chatbot.models.vector_stores import (
    OpenAIFile,
    OpenAIFileListQuery,
    OpenAIFileUpload,
    VectorStore,
    VectorStoreCreate,
    VectorStoreFile,
    VectorStoreFileCreate,
    VectorStoreListQuery,
    VectorStoreUpdate,
)
from chatbot.services.openai_files import OpenAIFileService
from chatbot.services.optimistic import parse_if_match
from chatbot.services.vector_stores import VectorStoreService

Id = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=128)]
FileStatusFilter = Annotated[
    str, StringConstraints(pattern=r"^(pending|in_progress|completed|failed|cancelled)$")
]


class StoreIdParam(BaseModel):
    id: Id


class StoreFilesParams(BaseModel):
    id: Id
    status: FileStatusFilter | None = None
    limit: int = Field(50, ge=1, le=200)
    cursor: str | None = Field(None, max_length=2048)


class StoreFileParams(BaseModel):
    id: Id
    file_id: Id


class FileStatusParams(BaseModel):
    # The original named only the file (`?file_id=`); the store id makes the lookup direct.
    id: Id | None = None
    file_id: Id


class FileIdParam(BaseModel):
    id: Id


# -- vector stores ------------------------------------------------------------------------------------------
@actions.action(
    "list_vector_stores",
    "GET",
    "/admin/vector-stores",
    access=requires("read"),
    resource="vector_store",
    params=VectorStoreListQuery,
    response=VectorStore,
    paged=True,
    errors=(400,),
)
def list_vector_stores(ctx: ActionContext, params: VectorStoreListQuery, body: None) -> Paged[VectorStore]:
    """List vector stores, optionally by name (substring, any case) and status; cursor pagination."""
    page = VectorStoreService.from_settings(ctx.settings).list(params)
    return Paged(page.items, page.next_cursor)


@actions.action(
    "get_vector_store",
    "GET",
    "/admin/vector-stores/{id}",
    access=requires("read"),
    resource="vector_store",
    params=StoreIdParam,
    response=VectorStore,
)
def get_vector_store(ctx: ActionContext, params: StoreIdParam, body: None) -> VectorStore:
    """One vector store."""
    return VectorStoreService.from_settings(ctx.settings).get(params.id)


@actions.action(
    "create_vector_store",
    "POST",
    "/admin/vector-stores",
    access=requires("create"),
    resource="vector_store",
    body=VectorStoreCreate,
    response=VectorStore,
    status_code=201,
    audit="vector_store.create",
    errors=(502,),
)
def create_vector_store(ctx: ActionContext, params: None, body: VectorStoreCreate) -> VectorStore:
    """Create a vector store upstream and here (`openai_store_id` is the upstream's id)."""
    return VectorStoreService.from_settings(ctx.settings).create(body)


@actions.action(
    "update_vector_store",
    ("PUT", "PATCH"),
    "/admin/vector-stores/{id}",
    access=requires("update"),
    resource="vector_store",
    params=StoreIdParam,
    body=VectorStoreUpdate,
    response=VectorStore,
    audit="vector_store.update",
    errors=(400, 409, 502),
    legacy_methods=("POST",),
)
def update_vector_store(ctx: ActionContext, params: StoreIdParam, body: VectorStoreUpdate) -> VectorStore:
    """Rename a store or change its metadata (mirrored upstream) or its local status."""
    return VectorStoreService.from_settings(ctx.settings).update(
        params.id, body, if_match=parse_if_match(ctx.if_match)
    )


@actions.action(
    "delete_vector_store",
    "DELETE",
    "/admin/vector-stores/{id}",
    access=requires("delete"),
    resource="vector_store",
    params=StoreIdParam,
    response=Ack,
    audit="vector_store.delete",
    errors=(502,),
    legacy_methods=("POST",),
)
def delete_vector_store(ctx: ActionContext, params: StoreIdParam, body: None) -> Ack:
    """Delete a vector store here and upstream, with the upstream files uploaded for it."""
    return VectorStoreService.from_settings(ctx.settings).delete(params.id)


@actions.action(
    "sync_vector_stores",
    "POST",
    "/admin/vector-stores/sync",
    access=requires("update"),
    resource="vector_store",
    response=SyncResult,
    audit="vector_store.sync",
    errors=(502,),
)
def sync_vector_stores(ctx: ActionContext, params: None, body: None) -> SyncResult:
    """Import the upstream's vector stores not known here and refresh the known ones (first 100)."""
    return VectorStoreService.from_settings(ctx.settings).sync()


# -- vector store files -------------------------------------------------------------------------------------
@actions.action(
    "list_vector_store_files",
    "GET",
    "/admin/vector-stores/{id}/files",
    access=requires("read"),
    resource="vector_store",
    params=StoreFilesParams,
    response=VectorStoreFile,
    paged=True,
    errors=(400,),
)
def list_vector_store_files(
    ctx: ActionContext, params: StoreFilesParams, body: None
) -> Paged[VectorStoreFile]:
    """A store's files with their ingestion status, optionally only those in one status."""
    from chatbot.models.vector_stores import VectorStoreFileListQuery

    query = VectorStoreFileListQuery(status=params.status, limit=params.limit, cursor=params.cursor)
    page = VectorStoreService.from_settings(ctx.settings).list_files(params.id, query)
    return Paged(page.items, page.next_cursor)


@actions.action(
    "add_vector_store_file",
    "POST",
    "/admin/vector-stores/{id}/files",
    access=requires("create"),
    resource="vector_store",
    params=StoreIdParam,
    body=VectorStoreFileCreate,
    response=VectorStoreFile,
    status_code=202,
    audit="vector_store.add_file",
    errors=(409, 413, 502),
)
def add_vector_store_file(
    ctx: ActionContext, params: StoreIdParam, body: VectorStoreFileCreate
) -> VectorStoreFile:
    """Add a file (base64 `file_data`, or an upstream `openai_file_id`) and start its ingestion.

    Answers 202 with the file `pending`; a `file_ingest` job uploads and attaches it, and its status moves
    `pending → in_progress → completed | failed` (list the files or `poll_file_status` to follow it).
    `file_data` larger than the configured limit is a 413.
    """
    ctx.resource_id = params.id
    return VectorStoreService.from_settings(ctx.settings).add_file(params.id, body)


@actions.action(
    "delete_vector_store_file",
    "DELETE",
    "/admin/vector-stores/{id}/files/{file_id}",
    access=requires("delete"),
    resource="vector_store",
    params=StoreFileParams,
    response=Ack,
    audit="vector_store.delete_file",
    errors=(502,),
    legacy_methods=("POST",),
)
def delete_vector_store_file(ctx: ActionContext, params: StoreFileParams, body: None) -> Ack:
    """Remove a file from a store, here and upstream (the upstream file too, if it was uploaded for it)."""
    return VectorStoreService.from_settings(ctx.settings).delete_file(params.id, params.file_id)


@actions.action(
    "poll_file_status",
    "GET",
    "/admin/vector-stores/{id}/files/{file_id}/status",
    access=requires("read"),
    resource="vector_store",
    params=FileStatusParams,
    response=VectorStoreFile,
    errors=(502,),
)
def poll_file_status(ctx: ActionContext, params: FileStatusParams, body: None) -> VectorStoreFile:
    """A file with its ingestion status refreshed from the upstream now."""
    return VectorStoreService.from_settings(ctx.settings).poll_file_status(params.file_id, params.id)


# -- the upstream's files -----------------------------------------------------------------------------------
@actions.action(
    "list_files",
    "GET",
    "/admin/files",
    access=requires("read"),
    resource="file",
    params=OpenAIFileListQuery,
    response=OpenAIFile,
    paged=True,
    errors=(502,),
)
def list_files(ctx: ActionContext, params: OpenAIFileListQuery, body: None) -> Paged[OpenAIFile]:
    """The upstream's files for one purpose (default `assistants`)."""
    return Paged(OpenAIFileService(settings=ctx.settings).list(params).items)


@actions.action(
    "upload_file",
    "POST",
    "/admin/files",
    access=requires("create"),
    resource="file",
    body=OpenAIFileUpload,
    response=OpenAIFile,
    status_code=201,
    audit="file.upload",
    errors=(413, 502),
)
def upload_file(ctx: ActionContext, params: None, body: OpenAIFileUpload) -> OpenAIFile:
    """Upload a file (base64 `file_data`) to the upstream."""
    return OpenAIFileService(settings=ctx.settings).upload(body)


@actions.action(
    "delete_file",
    "DELETE",
    "/admin/files/{id}",
    access=requires("delete"),
    resource="file",
    params=FileIdParam,
    response=Ack,
    audit="file.delete",
    errors=(502,),
    legacy_methods=("POST",),
)
def delete_file(ctx: ActionContext, params: FileIdParam, body: None) -> Ack:
    """Delete an upstream file (404 when the upstream has no such file)."""
    return OpenAIFileService(settings=ctx.settings).delete(params.id)
